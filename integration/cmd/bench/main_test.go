package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSmoke runs every benchmark at its smoke sizes (as CI does, through
// `make test`) and checks that the report has every section and figure. It
// checks no timing: a slow machine makes slow figures, not a failure.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the extension and runs the Go benchmarks: not in -short")
	}
	// run points this process's SDK at the emulator through the
	// environment; t.Setenv restores it when the test ends.
	for _, k := range []string{"AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_SSM", "AWS_EC2_METADATA_DISABLED"} {
		t.Setenv(k, os.Getenv(k))
	}
	dir := t.TempDir()
	o := options{smoke: true, out: filepath.Join(dir, "BENCHMARKS.md"), json: filepath.Join(dir, "benchmarks.json"), log: t.Logf}
	rep, err := run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(o, rep); err != nil {
		t.Fatal(err)
	}

	md, err := os.ReadFile(o.out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Benchmarks", "Smoke run", "**Machine**", "## Targets",
		"## 1. Init prefetch", "| sequential |", "**Under a quota.**", "## 2. Cached GET on one CPU", "## 3. Cached GET in process", "| floor |", "**ratio**", "BenchmarkServeHit",
		"## 4. Per-INVOKE cost", "BenchmarkRefreshDue", "BenchmarkInvokeCycle", "## 5. Footprint", "stripped binary", "**Registration.**",
		"## 6. Memory", "as shipped (GOGC=25)", "**Idle connections**",
		"## 7. Fleet simulation", "no jitter", "## Reproduce", "make bench",
		"## 9. The function's SDK, unchanged", "SDK alone (no-op transport)",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("the report lacks %q", want)
		}
	}

	b, err := os.ReadFile(o.json)
	if err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	fetchers := map[string]bool{}
	for _, x := range got.Init {
		fetchers[x.Fetcher] = true
		if x.MedianMS <= 0 || x.TotalCalls() == 0 {
			t.Errorf("init %+v: no time or no AWS calls", x)
		}
	}
	if !fetchers["secrets-prefetch"] || !fetchers["sequential"] {
		t.Errorf("init fetchers %v", fetchers)
	}
	if s := got.SDKAPI; s == nil || len(s.Targets) != 3 || s.Targets[0].P50us <= 0 || s.Targets[2].P50us <= 0 {
		t.Errorf("SDK through the AWS API endpoint: %+v", got.SDKAPI)
	}
	if len(got.Get) == 0 || got.Get[0].Extension.RPS <= 0 || got.Get[0].Floor.RPS <= 0 {
		t.Errorf("cached GET: %+v", got.Get)
	}
	for _, name := range []string{"BenchmarkServeHit", "BenchmarkFloor", "BenchmarkRefreshDue/idle/entries=1000", "BenchmarkInvokeCycle/idle/entries=1000", "BenchmarkRefresh/due/entries=100"} {
		if _, ok := got.goBench(name); !ok {
			t.Errorf("no Go benchmark %s", name)
		}
	}
	var cycles []string
	for _, c := range got.Invoke {
		cycles = append(cycles, c.Name)
		if c.CPUusPerCycle <= 0 {
			t.Errorf("INVOKE %s: no CPU time", c.Name)
		}
	}
	for _, want := range []string{"idle", "floor", "due"} {
		if !slices.Contains(cycles, want) {
			t.Errorf("no INVOKE cycle %q among %q", want, cycles)
		}
	}
	if due := got.Invoke[len(got.Invoke)-1]; due.Name == "due" && due.CallsPerCycle == 0 {
		t.Errorf("the due cycle made no AWS calls: %+v", due)
	}
	f := got.Footprint
	if f.BinaryBytes == 0 || f.RSSBytes == 0 || len(f.StartToRegisteredMS) == 0 {
		t.Errorf("footprint %+v", f)
	}
	if len(got.Fleet.Rows) == 0 || len(got.Fleet.PlotJitter) == 0 {
		t.Errorf("fleet %+v", got.Fleet)
	}
	if len(got.Targets) != 15 {
		t.Errorf("%d targets, want 15", len(got.Targets))
	}
	if len(got.Pinned) != 2 || got.Pinned[0].Extension.RPS <= 0 || got.Pinned[1].TokenChars != longTokenChars {
		t.Errorf("pinned GET: %+v", got.Pinned)
	}
	if len(got.Quota) != 1 || !got.Quota[0].AllFetched || got.Quota[0].Calls != got.Quota[0].MinCalls+got.Quota[0].Throttled {
		t.Errorf("Init under a quota: %+v", got.Quota)
	}
	if len(got.Memory.GC) != 2 || got.Memory.GC[0].RSSReady == 0 || !got.Memory.FDLimitAnswered {
		t.Errorf("memory: %+v", got.Memory)
	}
	if f.InitTrace.TotalMS <= 0 || len(f.FloorStartToRegisteredMS) == 0 {
		t.Errorf("registration: %+v", f)
	}
}

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
BenchmarkServeHit-2   	  278772	      5263 ns/op	  46.93 MB/s	    1736 B/op	      21 allocs/op
BenchmarkServeHit-2   	  278772	      5000 ns/op	  46.93 MB/s	    1736 B/op	      21 allocs/op
BenchmarkServeHit-2   	  278772	      9000 ns/op	  46.93 MB/s	    1736 B/op	      21 allocs/op
BenchmarkInvokeCycle/idle/entries=100-2         	    6079	    200297 ns/op	    198251 cpu-ns/op	   11745 B/op	     122 allocs/op
PASS
`
	got := parseGoBench(out)
	if len(got) != 2 {
		t.Fatalf("%d benchmarks: %+v", len(got), got)
	}
	if got[0].Name != "BenchmarkServeHit" || got[0].Runs != 3 || got[0].Metrics["ns/op"] != 5263 || got[0].Metrics["allocs/op"] != 21 {
		t.Errorf("ServeHit: %+v", got[0])
	}
	if got[1].Name != "BenchmarkInvokeCycle/idle/entries=100" || got[1].Metrics["cpu-ns/op"] != 198251 {
		t.Errorf("InvokeCycle: %+v", got[1])
	}
}

func TestSimulateJitterSpreadsABurst(t *testing.T) {
	// 1000 environments started within 10 s, invoked often: without
	// jitter they refresh together for good; with it, they spread out.
	peak := func(jitter bool) int {
		n := 0
		for _, c := range simulate(1000, 10, 300e9, jitter, 7200e9, 1) {
			n = max(n, c)
		}
		return n
	}
	none, some := peak(false), peak(true)
	if none < 80 || some*2 > none {
		t.Errorf("peak refreshes in one second: %d without jitter, %d with", none, some)
	}
}

func TestScaleOutModel(t *testing.T) {
	// Started slowly, a fleet fits the quotas: no throttling, every Init
	// one latency; started fast, SSM throttles and Inits wait.
	slow := simulateScaleOut(200, 60e9, true, 1)
	if slow.Throttled != 0 || slow.WithinBudget != 1 || slow.InitP99MS != float64(scaleLatency.Milliseconds()) {
		t.Errorf("slow start: %+v", slow)
	}
	fast := simulateScaleOut(1000, 10e9, false, 1)
	if fast.Throttled == 0 || fast.InitP99MS <= slow.InitP99MS || fast.PeakSSM <= quotaSSMStandard {
		t.Errorf("fast start: %+v", fast)
	}
	without, with, ratio := fallbackFleet(1.0 / 240)
	if with <= without || ratio <= 1 {
		t.Errorf("fallback fleet: %d without, %d with, %.2f× the calls", without, with, ratio)
	}
}
