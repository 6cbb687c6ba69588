package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/localserver"
)

// PinnedResult is the cached read as a 1-vCPU function sees it: the server
// (the built extension, or the floor) alone on one CPU, the load generator
// (a separate process) on the other, with one session token length.
type PinnedResult struct {
	TokenChars  int       `json:"token_chars"`
	Setting     string    `json:"setting,omitempty"` // an environment variable set on the extension (GOGC=100, say)
	Concurrency int       `json:"concurrency"`
	Pinned      bool      `json:"pinned"` // false where taskset or a second CPU is missing
	Extension   GetServer `json:"extension"`
	Floor       GetServer `json:"floor"`
	// The medians over rounds of extension/floor, each pair of rounds run
	// back to back.
	ThroughputRatio float64 `json:"throughput_ratio"`
	P99Ratio        float64 `json:"p99_ratio"`
	CPURatio        float64 `json:"cpu_ratio"` // server CPU per request
	BodyBytes       int     `json:"body_bytes"`
}

// longTokenChars is the length of a real Lambda session token, about.
const longTokenChars = 1100

// pinnedSection measures the cached GET with the server pinned to CPU 0 and
// the load on CPU 1, for the emulator's short token and a Lambda-length one.
func (w *world) pinnedSection(ctx context.Context, rep *Report) error {
	bins, err := w.binaries(ctx)
	if err != nil {
		return err
	}
	pin := func(cpu string) []string { return nil }
	pinned := false
	if _, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
		pin = func(cpu string) []string { return []string{"taskset", "-c", cpu} }
		pinned = true
	}
	self := bins.loadGen
	path := "/secretsmanager/get?secretId=" + url.QueryEscape(w.getSecret)
	long := filler("lambda-session-token-", longTokenChars)
	type pinnedRun struct{ token, setting, bin string }
	runs := []pinnedRun{{benchToken(), "", bins.extension}, {long, "", bins.extension}}
	for _, setting := range w.plan.pinnedGC {
		runs = append(runs, pinnedRun{benchToken(), setting, bins.extension})
	}
	if w.beforeBin != "" {
		// An older build, for a before-and-after in the same run.
		runs = append(runs, pinnedRun{benchToken(), "before", w.beforeBin}, pinnedRun{long, "before", w.beforeBin})
	}
	for _, run := range runs {
		env := map[string]string{
			"SECRETS_PREFETCH_SECRETS":  w.getSecret,
			"SECRETS_PREFETCH_REQUIRED": "true",
			"AWS_SESSION_TOKEN":         run.token,
		}
		if k, v, ok := strings.Cut(run.setting, "="); ok {
			env[k] = v
		}
		ext, err := w.startCommand(append(pin("0"), run.bin), env)
		if err != nil {
			return err
		}
		res, err := w.pinnedRounds(ctx, ext, bins, pin, self, path, run.token)
		if err := cmpOr(err, ext.stop()); err != nil {
			return err
		}
		res.Pinned, res.Setting = pinned, run.setting
		w.log("  pinned GET, token %4d chars %s: extension %6.0f req/s p99 %5.0f µs %5.1f µs CPU; floor %6.0f req/s p99 %5.0f µs %5.1f µs CPU; ratio %.2f, p99 ratio %.2f",
			res.TokenChars, run.setting, res.Extension.RPS, res.Extension.P99us, res.Extension.CPUusPerRq, res.Floor.RPS, res.Floor.P99us, res.Floor.CPUusPerRq, res.ThroughputRatio, res.P99Ratio)
		rep.Pinned = append(rep.Pinned, res)
	}
	return nil
}

func (w *world) pinnedRounds(ctx context.Context, ext *proc, bins *binaries, pin func(string) []string, self, path, token string) (PinnedResult, error) {
	res := PinnedResult{TokenChars: len(token), Concurrency: w.plan.pinnedConc}
	if _, _, err := ext.waitReady(time.Minute); err != nil {
		return res, err
	}
	extAddr := fmt.Sprintf("127.0.0.1:%d", ext.port)
	body, err := fetchOnceToken(ctx, extAddr, path, token)
	if err != nil {
		return res, err
	}
	res.BodyBytes = len(body)

	dir, err := os.MkdirTemp("", "bench-pinned-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	bodyFile, reqFile := filepath.Join(dir, "body"), filepath.Join(dir, "request")
	req := "GET " + path + " HTTP/1.1\r\nHost: localhost:2773\r\n" + localserver.TokenHeader + ": " + token + "\r\n\r\n"
	if err := cmpOr(os.WriteFile(bodyFile, body, 0o600), os.WriteFile(reqFile, []byte(req), 0o600)); err != nil {
		return res, err
	}
	argv := append(pin("0"), bins.getFloor, bodyFile)
	floor := exec.Command(argv[0], argv[1:]...)
	floor.Stderr = os.Stderr
	out, err := floor.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := floor.Start(); err != nil {
		return res, err
	}
	defer func() {
		floor.Process.Kill()
		floor.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return res, fmt.Errorf("getfloor: %w", err)
	}
	floorAddr := strings.TrimSpace(line)

	var tput, p99s, cpus []float64
	for round := range w.plan.pinnedRounds {
		order := []string{"floor", "extension"}
		if round%2 == 1 {
			slices.Reverse(order)
		}
		var got [2]GetRound
		for _, which := range order {
			addr, pid, i := floorAddr, floor.Process.Pid, 0
			if which == "extension" {
				addr, pid, i = extAddr, ext.cmd.Process.Pid, 1
			}
			r, err := loadFrom(ctx, pin("1"), self, addr, reqFile, w.plan.pinnedConc, w.plan.pinnedRound, pid)
			if err != nil {
				return res, fmt.Errorf("%s: %w", which, err)
			}
			got[i] = r
		}
		res.Floor.Rounds = append(res.Floor.Rounds, got[0])
		res.Extension.Rounds = append(res.Extension.Rounds, got[1])
		tput = append(tput, got[1].RPS/got[0].RPS)
		p99s = append(p99s, got[1].P99us/got[0].P99us)
		cpus = append(cpus, got[1].CPUusPerRq/got[0].CPUusPerRq)
	}
	res.Floor.summarize()
	res.Extension.summarize()
	res.ThroughputRatio, res.P99Ratio, res.CPURatio = median(tput), median(p99s), median(cpus)
	return res, nil
}

// loadFrom runs one round of load in a child process (this program with
// -loadgen, pinned by prefix) and measures the server's CPU (pid) over it.
func loadFrom(ctx context.Context, prefix []string, self, addr, reqFile string, conc int, d time.Duration, pid int) (GetRound, error) {
	argv := append(slices.Clone(prefix), self, "-loadgen", addr, "-loadgen-request", reqFile,
		"-loadgen-concurrency", fmt.Sprint(conc), "-loadgen-duration", d.String())
	cpu0, _, err := procCPU(pid)
	if err != nil {
		return GetRound{}, err
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return GetRound{}, fmt.Errorf("load generator: %w\n%s", err, stderr.String())
	}
	cpu1, _, err := procCPU(pid)
	if err != nil {
		return GetRound{}, err
	}
	var r GetRound
	if err := json.Unmarshal(out, &r); err != nil {
		return GetRound{}, fmt.Errorf("load generator: %w: %q", err, out)
	}
	if r.Requests > 0 {
		r.CPUusPerRq = us(cpu1-cpu0) / float64(r.Requests)
	}
	r.AllocsPerR = 0 // the client's, in another process: not the server's
	return r, nil
}

// loadgenMain is this program run as a load generator (-loadgen ADDR): one
// round of load, its result as JSON on stdout.
func loadgenMain(addr string, fs *flag.FlagSet) {
	reqFile := fs.Lookup("loadgen-request").Value.String()
	var conc int
	var d time.Duration
	fmt.Sscan(fs.Lookup("loadgen-concurrency").Value.String(), &conc)
	d, err := time.ParseDuration(fs.Lookup("loadgen-duration").Value.String())
	if err == nil && conc < 1 {
		err = errors.New("-loadgen-concurrency must be at least 1")
	}
	var req []byte
	if err == nil {
		req, err = os.ReadFile(reqFile)
	}
	var r GetRound
	if err == nil {
		r, err = load(context.Background(), addr, req, conc, d)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(r)
}
