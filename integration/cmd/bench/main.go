// Command bench runs the secrets-prefetch benchmarks, each beside its
// baseline in the same run, and writes a report (BENCHMARKS.md) and its
// data (JSON):
//
//  1. Init prefetch: start to ready for mixed secrets and parameters at
//     injected AWS latencies, against a naive sequential fetcher and the
//     lower bound of one latency per wave of batch calls.
//  2. Cached GET through the localhost API at several concurrencies,
//     against a floor server (a minimal net/http handler returning the same
//     bytes) run the same way, interleaved.
//  3. Per-INVOKE cost: CPU time of the built binary per INVOKE cycle, idle
//     and with entries due, and the Go benchmarks of the same cycle.
//  4. Footprint: RSS with 1000 × 4 KiB cached, stripped binary size,
//     process start to registered.
//  5. Fleet simulation: calls per second to each AWS API against the
//     account quotas, with and without refresh jitter, and the API cost.
//
// AWS is the emulator of package awstest (kumo behind a front that injects
// latency and counts calls), in this process; the Extensions API is a
// minimal fake, also in this process. Targets are printed as met or
// missed; nothing here fails because the machine was slow.
//
// Usage (from integration/, as `make bench` runs it):
//
//	go run ./cmd/bench -out ../BENCHMARKS.md -json ../benchmarks.json
//	go run ./cmd/bench -smoke -out /tmp/bench.md   # tiny sizes, seconds (CI)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	var o options
	flag.BoolVar(&o.smoke, "smoke", false, "tiny sizes and durations: checks that every benchmark runs, in seconds (CI)")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "the Markdown report to write")
	flag.StringVar(&o.json, "json", "", "the JSON data file to write (none if empty)")
	flag.BoolVar(&o.verbose, "v", false, "log progress to stderr")
	flag.StringVar(&o.only, "only", "", "run only these sections, comma-separated: "+strings.Join(sectionNames, ","))
	flag.StringVar(&o.bin, "bin", "", "measure this prebuilt extension binary in the process sections (an older build, say) instead of building the tree's")
	flag.StringVar(&o.before, "before", "", "an older build of the extension, measured beside this one in the pinned GET and memory sections (before and after in the same run)")
	flag.StringVar(&o.beforeLabel, "before-label", "an older build", "what -before is, for the report")
	loadgen := flag.String("loadgen", "", "(internal) run as the load generator against this address")
	flag.String("loadgen-request", "", "(internal) the request to send, a file")
	flag.Int("loadgen-concurrency", 32, "(internal) connections")
	flag.Duration("loadgen-duration", time.Second, "(internal) how long")
	flag.Parse()
	if *loadgen != "" {
		loadgenMain(*loadgen, flag.CommandLine)
		return
	}
	o.log = func(string, ...any) {}
	if o.verbose || !o.smoke {
		o.log = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if err := write(o, rep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s in %.0f s\n", o.out, rep.DurationSeconds)
	for _, t := range rep.Targets {
		fmt.Fprintf(os.Stderr, "  %-6s %s: %s\n", t.verdict(), t.Name, t.Figure)
	}
}

// write writes the Markdown report and, if asked, the JSON data.
func write(o options, rep *Report) error {
	if err := os.WriteFile(o.out, []byte(rep.Markdown()), 0o644); err != nil {
		return err
	}
	if o.json == "" {
		return nil
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(o.json, append(b, '\n'), 0o644)
}
