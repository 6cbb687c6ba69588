package rie

import (
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RIE's log lines, as printed by the pinned version:
//
//	[INFO] (rapid) INIT RTDONE(status: success)
//	[INFO] (rapid) INIT REPORT(durationMs: 59.245000)
//	[WARNING] (rapid) First fatal error stored in appctx: Extension.Crash
//	[ERROR] (rapid) Invoke DONE failed: Extension.Crash
var (
	initDoneRE   = regexp.MustCompile(`INIT RTDONE\(status: (\w+)`)
	initReportRE = regexp.MustCompile(`INIT REPORT\(.*?durationMs: ([0-9.]+)`)
	errorTypeRE  = regexp.MustCompile(`(?:fatal error stored in appctx: |Omitting fatal error |DONE failed: |"errorType": ?")([A-Z][\w.]*)`)
)

// InitReport is one `INIT REPORT` line of RIE's output.
type InitReport struct {
	// Duration is the real Init time (the REPORT line's "Init Duration" is not).
	Duration time.Duration
	// Status is that of the INIT RTDONE line before it ("success", "error"),
	// or "" when there was none, as for the quick retry after a failed Init.
	Status string
}

// InitReports returns every INIT REPORT in output, oldest first; a failed
// Init and each re-Init after it add one.
func InitReports(output string) []InitReport {
	var out []InitReport
	status := ""
	for line := range strings.Lines(output) {
		if m := initDoneRE.FindStringSubmatch(line); m != nil {
			status = m[1]
		}
		m := initReportRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ms, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			continue
		}
		out = append(out, InitReport{Duration: time.Duration(math.Round(ms * float64(time.Millisecond))), Status: status})
		status = ""
	}
	return out
}

// ErrorTypes returns the distinct error types RIE reported (e.g.
// "Extension.Crash", "Extension.InitError"), in the order first seen.
func ErrorTypes(output string) []string {
	var out []string
	for _, m := range errorTypeRE.FindAllStringSubmatch(output, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}
