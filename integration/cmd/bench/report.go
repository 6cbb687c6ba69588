package main

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is everything one run measured; it is also the JSON file.
type Report struct {
	Generated       time.Time      `json:"generated"`
	Command         string         `json:"command"`
	Smoke           bool           `json:"smoke"`
	DurationSeconds float64        `json:"duration_seconds"`
	Machine         Machine        `json:"machine"`
	Targets         []Target       `json:"targets"`
	Init            []InitResult   `json:"init"`
	Quota           []QuotaInit    `json:"init_under_quota"`
	Pinned          []PinnedResult `json:"pinned_get"`
	Get             []GetResult    `json:"get"`
	GoBenchmarks    []GoBenchmark  `json:"go_benchmarks"`
	Invoke          []InvokeCost   `json:"invoke"`
	// InvokeOwnUS is the median over rounds of the idle cycle over the most
	// entries less the floor's, measured back to back: the extension's own
	// CPU time per idle INVOKE.
	InvokeOwnUS       float64   `json:"invoke_own_us"`
	InvokeOwnRoundsUS []float64 `json:"invoke_own_rounds_us"`
	Footprint         Footprint `json:"footprint"`
	Memory            Memory    `json:"memory"`
	Fleet             Fleet     `json:"fleet"`

	// CacheScale is section 6 (cachescale.go).
	CacheScale *CacheScale `json:"cache_scale,omitempty"`

	// SDKAPI is the AWS API endpoint section (sdkapibench.go).
	SDKAPI *SDKAPIResult `json:"sdk_api,omitempty"`
}

// Machine is where the run happened.
type Machine struct {
	CPU        string `json:"cpu"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Memory     string `json:"memory"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	Kernel     string `json:"kernel"`
	LoadAvg    string `json:"load_average_start"` // 1, 5 and 15 minutes
	LoadAvgEnd string `json:"load_average_end"`
}

// Target is one of the goals and where this run stands.
type Target struct {
	Name   string `json:"name"`
	Goal   string `json:"goal"`
	Figure string `json:"figure"`
	Status string `json:"status"` // met, missed, or n/a (not measured at this size)
}

func (t Target) verdict() string { return t.Status }

func status(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

const defaultConns = 3 // the old default bound on the prefetch (MAX_CONNECTIONS), now a baseline

// initResult finds an Init measurement.
func (r *Report) initResult(fetcher string, items, latencyMS, conns int) (InitResult, bool) {
	for _, x := range r.Init {
		if x.Fetcher == fetcher && x.Items == items && x.LatencyMS == latencyMS && (fetcher == "sequential" || x.MaxConnections == conns) {
			return x, true
		}
	}
	return InitResult{}, false
}

// evaluate sets Targets from the measurements.
func (r *Report) evaluate() {
	na := func(name, goal string) Target {
		return Target{Name: name, Goal: goal, Figure: "not measured in this run", Status: "n/a"}
	}

	r.evaluatePerf(na)

	name, goal := "Init, 1000 items at 50 ms", "≤ 2× the lower bound"
	if x, ok := r.initResult("secrets-prefetch", 1000, 50, defaultConns); ok {
		t := Target{Name: name, Goal: goal, Status: status(x.MedianMS <= 2*x.LowerBoundMS)}
		t.Figure = fmt.Sprintf("%.0f ms = %.2f× the lower bound of %.0f ms (concurrency %d)", x.MedianMS, x.MedianMS/x.LowerBoundMS, x.LowerBoundMS, defaultConns)
		if y, ok := r.initResult("secrets-prefetch", 1000, 50, 16); ok {
			t.Figure += fmt.Sprintf("; %.0f ms = %.2f× its %.0f ms at 16", y.MedianMS, y.MedianMS/y.LowerBoundMS, y.LowerBoundMS)
		}
		r.Targets = append(r.Targets, t)
	} else {
		r.Targets = append(r.Targets, na(name, goal))
	}

	name, goal = "Init, 100 items at 50 ms", "≥ 10× faster than sequential"
	x, ok1 := r.initResult("secrets-prefetch", 100, 50, defaultConns)
	s, ok2 := r.initResult("sequential", 100, 50, 0)
	if ok1 && ok2 {
		r.Targets = append(r.Targets, Target{Name: name, Goal: goal, Status: status(s.MedianMS >= 10*x.MedianMS),
			Figure: fmt.Sprintf("%.1f× (%.0f ms against %.0f ms)", s.MedianMS/x.MedianMS, x.MedianMS, s.MedianMS)})
	} else {
		r.Targets = append(r.Targets, na(name, goal))
	}

	var get *GetResult
	for i := range r.Get {
		if r.Get[i].Concurrency == 32 {
			get = &r.Get[i]
		}
	}
	name, goal = "Cached GET in process (client on the same CPUs) at concurrency 32: throughput", "≥ 0.7× the floor"
	if get != nil {
		r.Targets = append(r.Targets, Target{Name: name, Goal: goal, Status: status(get.ThroughputRatio >= 0.7),
			Figure: fmt.Sprintf("%.2f× (%.0f against %.0f requests/s)", get.ThroughputRatio, get.Extension.RPS, get.Floor.RPS)})
	} else {
		r.Targets = append(r.Targets, na(name, goal))
	}
	name, goal = "Idle INVOKE cycle", "≤ 50 µs of CPU"
	var (
		idle  []InvokeCost
		floor *InvokeCost
	)
	for i, c := range r.Invoke {
		switch c.Name {
		case "idle":
			idle = append(idle, c)
		case "floor":
			floor = &r.Invoke[i]
		}
	}
	if len(idle) > 0 {
		worst := slices.MaxFunc(idle, func(a, b InvokeCost) int { return cmp.Compare(a.CPUusPerCycle, b.CPUusPerCycle) })
		var parts []string
		for _, c := range idle {
			parts = append(parts, fmt.Sprintf("%.0f µs with %d entries", c.CPUusPerCycle, c.Entries))
		}
		fig := strings.Join(parts, ", ") + " (the built binary's CPU per cycle)"
		if floor != nil {
			fig += fmt.Sprintf("; the floor, the Extensions API client alone, takes %.0f µs: the extension's own work is %.0f µs", floor.CPUusPerCycle, r.InvokeOwnUS)
		}
		r.Targets = append(r.Targets, Target{Name: name, Goal: goal, Status: status(worst.CPUusPerCycle <= 50), Figure: fig})
	} else {
		r.Targets = append(r.Targets, na(name, goal))
	}

}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	p("# Benchmarks")
	p("")
	if r.Smoke {
		p("> **Smoke run**: tiny sizes and durations, to check that every benchmark still runs. The figures mean nothing; `make bench` makes the real report.")
		p("")
	}
	p("Written by `%s` (integration/cmd/bench) on %s, in %.0f s. Every figure is set beside its baseline measured in the same run; the machine is shared and noisy, so the report gives medians of repeated runs and ratios, CPU time where wall time would measure the neighbours, and no timing is ever a test failure.", r.Command, r.Generated.Format("2006-01-02 15:04 MST"), r.DurationSeconds)
	p("")
	m := r.Machine
	p("**Machine**: %s, %d CPUs (GOMAXPROCS %d), %s memory; %s %s/%s; %s. Load average (1, 5, 15 min) %s at the start, %s at the end.",
		orDash(m.CPU), m.NumCPU, m.GOMAXPROCS, orDash(m.Memory), m.GoVersion, m.OS, m.Arch, orDash(m.Kernel), orDash(m.LoadAvg), orDash(m.LoadAvgEnd))
	p("")
	p("**AWS** is the emulator the integration tests use (`integration/awstest`: kumo behind a front that adds BatchGetSecretValue, injects latency and counts calls), in the driver's process; the Extensions API is a minimal fake, also in the driver's process.")
	p("")

	p("## Targets")
	p("")
	p("| target | goal | this run | |")
	p("|---|---|---|---|")
	for _, t := range r.Targets {
		mark := map[string]string{"met": "✅ met", "missed": "❌ missed", "n/a": "n/a"}[t.Status]
		p("| %s | %s | %s | %s |", t.Name, t.Goal, t.Figure, mark)
	}
	p("")

	r.initMarkdown(p)
	r.pinnedMarkdown(p)
	r.getMarkdown(p)
	r.invokeMarkdown(p)
	r.footprintMarkdown(p)
	r.memoryMarkdown(p)
	r.fleetMarkdown(p)
	r.cacheScaleMarkdown(p)
	r.sdkapiMarkdown(p)

	p("## Reproduce")
	p("")
	p("```sh")
	p("make bench                                   # this report: BENCHMARKS.md and benchmarks.json (a few minutes)")
	p("make bench-smoke   # every benchmark at tiny sizes, in seconds (make test runs it as a test)")
	p("go test -run='^$' -bench=. -benchmem ./localserver ./cache ./app   # the Go benchmarks alone")
	p("cd integration && go test -run='^$' -bench=RefreshDueSDK -cpuprofile=cpu.out ./cmd/bench   # 100 entries due through the real SDK, for pprof")
	p("```")
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

type printer func(format string, args ...any)

func (r *Report) initMarkdown(p printer) {
	p("## 1. Init prefetch")
	p("")
	p("Time from the start of the extension (`app.Run`, in process, real SDK clients) to the end of its prefetch, for as many secrets as parameters, with every AWS call held for the injected latency. **Sequential** is the naive fetcher of the aws-samples cache demo: one `GetSecretValue` or `GetParameter` per item, one after another (same SDK, same emulator). The **lower bound** is one latency per wave of batch calls at the concurrency limit: ⌈(⌈secrets/20⌉ + ⌈parameters/10⌉) / concurrency⌉ × latency (for sequential: items × latency). **Concurrency** is `SECRETS_PREFETCH_CONCURRENCY` (default 16); 3 is the bound the prefetch had before it had its own, `MAX_CONNECTIONS`'s default; the rows marked (defaults) set no variable at all. Medians of %s.", runsText(r.Init))
	p("")
	p("| items (secrets + parameters) | latency | fetcher | concurrency | start → ready | lower bound | × lower bound | AWS calls | × faster than sequential |")
	p("|---|---|---|---|---|---|---|---|---|")
	for _, x := range r.Init {
		conns := fmt.Sprint(x.MaxConnections)
		if x.Defaults {
			conns += " (defaults)"
		}
		name := x.Fetcher
		if x.Fetcher == "sequential" {
			conns = "1"
		}
		ratio := "—"
		if x.LowerBoundMS > 0 {
			ratio = fmt.Sprintf("%.2f", x.MedianMS/x.LowerBoundMS)
		}
		speed := "—"
		if s, ok := r.initResult("sequential", x.Items, x.LatencyMS, 0); ok && x.Fetcher != "sequential" && x.MedianMS > 0 {
			speed = fmt.Sprintf("%.1f×", s.MedianMS/x.MedianMS)
		}
		p("| %d (%d + %d) | %d ms | %s | %s | %.1f ms | %.0f ms | %s | %s | %s |", x.Items, x.Secrets, x.Parameters, x.LatencyMS, name, conns, x.MedianMS, x.LowerBoundMS, ratio, callsText(x.Calls), speed)
	}
	p("")
	r.quotaMarkdown(p)
	p("The extension's time includes registering with the Extensions API and loading the SDK configuration; the sequential fetcher's is its calls alone, which is why it wins at 0 ms and 10 items. The emulator's own work (kumo serves BatchGetSecretValue as one GetSecretValue per id; the front checks every SigV4 signature) runs on the same cores as the extension: the 0 ms rows show that fixed cost, which the lower bound leaves out.")
	p("")
}

func runsText(init []InitResult) string {
	n := 0
	for _, x := range init {
		if x.Fetcher != "sequential" {
			n = max(n, len(x.RunsMS))
		}
	}
	if n <= 1 {
		return "one run each"
	}
	return fmt.Sprintf("%d runs (one of the sequential fetcher at 1000 items)", n)
}

func callsText(calls map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(calls)) {
		_, op, _ := strings.Cut(k, ".")
		parts = append(parts, fmt.Sprintf("%d %s", calls[k], op))
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, ", ")
}

func (r *Report) getMarkdown(p printer) {
	p("## 3. Cached GET in process (the client on the same CPUs)")
	p("")
	rounds := 0
	body := 0
	for _, g := range r.Get {
		rounds, body = max(rounds, len(g.Extension.Rounds)), g.BodyBytes
	}
	p("`GET /secretsmanager/get?secretId=…` of a prefetched secret (a %d-byte body) from the extension run by `app.Run`, against the **floor**: a minimal `net/http` handler that writes the same bytes, served the same way. Each worker holds one keep-alive connection and sends its next request when the answer is in; the client is a few lines of HTTP/1.1 that allocate nothing, in the same process, so both servers share the cores with it alike. %d rounds per setting, the extension and the floor back to back (alternating which goes first); medians. CPU is this process's (client and server) per request; allocations are the process's heap allocations per request, i.e. the server's.", body, rounds)
	p("")
	p("| concurrency | server | requests/s | p50 | p99 | CPU per request | allocations per request |")
	p("|---|---|---|---|---|---|---|")
	for _, g := range r.Get {
		for _, s := range []struct {
			name string
			v    GetServer
		}{{"secrets-prefetch", g.Extension}, {"floor", g.Floor}} {
			p("| %d | %s | %.0f | %.0f µs | %.0f µs | %.1f µs | %.1f |", g.Concurrency, s.name, s.v.RPS, s.v.P50us, s.v.P99us, s.v.CPUusPerRq, s.v.AllocsPerR)
		}
		p("| %d | **ratio** | **%.2f×** | | | %.2f× | |", g.Concurrency, g.ThroughputRatio, g.CPURatio)
	}
	p("")
	for _, g := range r.Get {
		if g.Concurrency != 32 || g.Floor.RPS == 0 {
			continue
		}
		p("With 32 connections each waiting for its answer before it asks again, the mean latency is 32 / throughput (Little's law): %.0f µs at the floor's %.0f requests/s, before any queueing behind the machine's other work. A p99 of 1 ms at concurrency 32 needs more than 32,000 answers a second from the floor itself; on %d shared CPUs, with the client on them too, that is out of reach for any server, so the p99 target is one for the floor as much as for the extension: compare the two.", 32/g.Floor.RPS*1e6, g.Floor.RPS, r.Machine.NumCPU)
		p("")
	}
	hit, ok1 := r.goBench("BenchmarkServeHit")
	floor, ok2 := r.goBench("BenchmarkFloor")
	if ok1 && ok2 {
		p("The handler alone (`go test -run='^$' -bench=. -benchmem ./localserver`, through `httptest.ResponseRecorder`, no network):")
		p("")
		p("| benchmark | ns/op | B/op | allocs/op |")
		p("|---|---|---|---|")
		for _, x := range []GoBenchmark{hit, floor} {
			p("| %s | %.0f | %.0f | %.0f |", x.Name, x.Metrics["ns/op"], x.Metrics["B/op"], x.Metrics["allocs/op"])
		}
		p("")
	}
}

func (r *Report) invokeMarkdown(p printer) {
	p("## 4. Per-INVOKE cost")
	p("")
	p("The built binary (stripped, as it ships) as a process, against the emulator with no latency: the CPU time of all its threads (from `/proc/<pid>/task/*/schedstat`) per INVOKE cycle, from the INVOKE being handed to it to its next `event/next`. **Idle**: nothing is due. **Floor**: a program that registers and takes INVOKEs with the extension's own Extensions API client and does nothing else (`integration/cmd/bench/loopfloor`), built the same way: what any Go extension spends to take an INVOKE at all (waking up, one HTTP exchange, decoding the event); the idle rows less the floor are the extension's own work. **Due**: TTLs of 1 s and an INVOKE every 0.9 s, so every entry is refreshed on every INVOKE (batched: real SDK calls, signed, over HTTP).")
	p("")
	p("| cycle | entries | cycles | CPU per cycle (median of blocks) | range over blocks | wall time (median) | AWS calls per cycle |")
	p("|---|---|---|---|---|---|---|")
	for _, c := range r.Invoke {
		what := c.Name
		if c.Name == "due" {
			what = fmt.Sprintf("due (%d items)", c.ItemsPerCycle)
		}
		spread := "—"
		if len(c.BlocksUS) > 1 {
			spread = fmt.Sprintf("%.0f–%.0f µs (%d blocks)", slices.Min(c.BlocksUS), slices.Max(c.BlocksUS), len(c.BlocksUS))
		}
		p("| %s | %d | %d | %.1f µs | %s | %.0f µs | %.1f |", what, c.Entries, c.Cycles, c.CPUusPerCycle, spread, c.WallusMedian, c.CallsPerCycle)
	}
	p("")
	loop := ""
	if b, ok := r.goBench("BenchmarkRefresh/idle/entries=1000"); ok {
		loop = fmt.Sprintf("; `BenchmarkRefresh/idle/entries=1000` below, the loop's work between two `event/next` calls, takes %.1f µs of CPU", b.Metrics["cpu-ns/op"]/1000)
	}
	iqr := ""
	if v := slices.Sorted(slices.Values(r.InvokeOwnRoundsUS)); len(v) >= 4 {
		iqr = fmt.Sprintf(" (over %d rounds; the middle half of them between %.0f and %.0f µs)", len(v), percentile(v, 25), percentile(v, 75))
	}
	p("The extension's own work per idle INVOKE, the idle cycle over the most entries less the floor's, each pair measured back to back: a median of **%.1f µs**%s%s. Almost all of an idle cycle is the floor: a Go process woken by one HTTP answer, on a machine where every wake-up competes with the neighbours.", r.InvokeOwnUS, iqr, loop)
	p("")
	p("The Go benchmarks of the same cycle (`cpu-ns/op` is the process's CPU time per iteration): `BenchmarkRefreshDue` is the cache's share; `BenchmarkRefresh` the event loop's work between two `event/next` calls; `BenchmarkInvokeCycle` the whole cycle against the fake Extensions API in the same process (so its side of the HTTP exchange is counted too). The fetcher answers at once.")
	p("")
	p("| benchmark | ns/op | cpu-ns/op | B/op | allocs/op |")
	p("|---|---|---|---|---|")
	for _, x := range r.GoBenchmarks {
		if x.Package == "localserver" {
			continue
		}
		cpu := "—"
		if v, ok := x.Metrics["cpu-ns/op"]; ok {
			cpu = fmt.Sprintf("%.0f", v)
		}
		p("| %s.%s | %.0f | %s | %.0f | %.0f |", x.Package, x.Name, x.Metrics["ns/op"], cpu, x.Metrics["B/op"], x.Metrics["allocs/op"])
	}
	p("")
}

func (r *Report) footprintMarkdown(p printer) {
	f := r.Footprint
	p("## 5. Footprint")
	p("")
	p("| measure | value |")
	p("|---|---|")
	p("| stripped binary (`%s`, %s/%s) | %.2f MiB (%d bytes) |", f.BuildCommand, r.Machine.OS, r.Machine.Arch, mib(f.BinaryBytes), f.BinaryBytes)
	p("| process start → registered (median of %d) | %.1f ms |", len(f.StartToRegisteredMS), median(f.StartToRegisteredMS))
	p("| process start → ready, nothing to prefetch (median of %d) | %.1f ms |", len(f.StartToReadyMS), median(f.StartToReadyMS))
	p("| process start → ready, %d × %d B prefetched (defaults, no latency) | %.0f ms |", f.Entries, f.ValueBytes, f.PrefetchReadyMS)
	p("| RSS (VmRSS) once ready with %d × %d B cached | %.1f MiB |", f.Entries, f.ValueBytes, mib(f.RSSBytes))
	p("| peak RSS (VmHWM) by then | %.1f MiB |", mib(f.PeakRSSBytes))
	p("| RSS after the idle INVOKE cycles | %.1f MiB |", mib(f.RSSAfterIdleByte))
	p("")
	r.registerMarkdown(p)
}

func (r *Report) fleetMarkdown(p printer) {
	f := r.Fleet
	p("## 7. Fleet simulation")
	p("")
	p("Calls per second to each API for a fleet of environments in one account and region (the quotas are per account and region, shared by every function). Each environment holds %d secrets (one `BatchGetSecretValue` per refresh) and %d parameters (two `GetParameters`), is invoked at random (Poisson) at the given rate, and refreshes on its first INVOKE past %.0f%% of the TTL — less up to 10%% at random with **jitter** (the cache's behaviour), exactly there without. The **mean** is the steady state (one refresh per cycle: the refresh point plus the mean wait for an INVOKE). The **peak** is the busiest second of %d simulated environments over %s after they all started within %s (a deploy, a scale-out), scaled to 1000; their Init fetches are left out (see below). Quotas: BatchGetSecretValue %d TPS, GetSecretValue %d TPS, SSM %d TPS at standard throughput. Cost: $%.2f per 10,000 calls (Secrets Manager, counting a BatchGetSecretValue as one call; SSM at higher throughput — at standard throughput SSM API calls are free), 30-day month.",
		f.Secrets, f.Parameters, fleetRefreshAhead*100, f.Environments, human(time.Duration(f.HorizonSeconds)*time.Second), human(fleetStartWindow), quotaBatchGetSecretValue, quotaGetSecretValue, quotaSSMStandard, pricePer10kCalls)
	p("")
	p("| TTL | invokes/s per env | jitter | refresh cycle | mean TPS per 1000 env: Batch / SSM | peak TPS per 1000 env: Batch / SSM | largest fleet, Batch ≤ 100 TPS: peak / mean | largest fleet, SSM ≤ 40 TPS: peak / mean | largest fleet with GetSecretValue per secret (mean) | $/month per 1000 env: SM / SSM |")
	p("|---|---|---|---|---|---|---|---|---|---|")
	for _, x := range f.Rows {
		j := "no"
		if x.Jitter {
			j = "yes"
		}
		p("| %d s | %g | %s | %.0f s | %.2f / %.2f | %.1f / %.1f | %s / %s | %s / %s | %s | %.2f / %.2f |",
			x.TTLSeconds, x.InvokesPerSecond, j, x.CycleSeconds, x.MeanBatchPer1000, x.MeanSSMPer1000, x.PeakBatchPer1000, x.PeakSSMPer1000,
			count(x.MaxFleetBatchPeak), count(x.MaxFleetBatchMean), count(x.MaxFleetSSMPeak), count(x.MaxFleetSSMMean), count(x.MaxFleetGetSecretMean), x.CostSecretsPer1000, x.CostSSMPer1000)
	}
	p("")
	if len(f.PlotNoJitter) > 0 && len(f.PlotJitter) > 0 {
		top := max(slices.Max(f.PlotNoJitter), slices.Max(f.PlotJitter))
		p("GetParameters calls per second over %s, %s, %d environments started within %s (%d-second buckets; a full block is %.0f calls/s):", human(time.Duration(f.HorizonSeconds)*time.Second), f.PlotSetting, f.Environments, human(fleetStartWindow), f.PlotBucketS, top)
		p("")
		p("```")
		p("no jitter  %s", spark(f.PlotNoJitter, top))
		p("jitter     %s", spark(f.PlotJitter, top))
		p("```")
		p("")
	}
	r.scaleOutMarkdown(p)
	p("Reading it: the refresh jitter spreads a burst of starts over ≥ 10%% of the refresh point within one cycle, and further each cycle; without it, environments that started together refresh together for as long as they live, at the rate of the burst. Batching costs quota headroom on Secrets Manager: one `BatchGetSecretValue` per 20 secrets draws on a %d TPS quota, where 20 `GetSecretValue` calls would draw on %d TPS — 5× the fleet by the mean, at 20× the calls (and cost). SSM's %d TPS is the tightest: Init alone takes %d `GetParameters` per cold start, so cold starts at Lambda's fastest scaling (1,000 environments per 10 s per function) would need %d TPS — ask for higher throughput (and its per-call price) before a fleet scales like that.",
		quotaBatchGetSecretValue, quotaGetSecretValue, quotaSSMStandard, ceilDiv(fleetParameters, parametersPerBatch), 100*ceilDiv(fleetParameters, parametersPerBatch))
	p("")
}

// human renders a duration as "10 s", "20 min" or "2 h".
func human(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%d h", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return fmt.Sprintf("%g s", d.Seconds())
}

func count(n int) string {
	switch {
	case n >= 10_000_000:
		return fmt.Sprintf("%.0fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%.0fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// spark renders values as a line of block characters scaled to top.
func spark(v []float64, top float64) string {
	const blocks = " ▁▂▃▄▅▆▇█"
	runes := []rune(blocks)
	var b strings.Builder
	for _, x := range v {
		i := 0
		if top > 0 {
			i = int(x / top * float64(len(runes)-1))
			if x > 0 && i == 0 {
				i = 1
			}
		}
		b.WriteRune(runes[min(i, len(runes)-1)])
	}
	return b.String()
}
