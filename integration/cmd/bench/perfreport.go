package main

import (
	"fmt"
	"strings"
)

// evaluatePerf sets the targets of issue 11 (the read path pinned to one
// CPU, registration, Init in one wave, memory), first in the report.
func (r *Report) evaluatePerf(na func(name, goal string) Target) {
	add := func(t Target) { r.Targets = append(r.Targets, t) }
	pinned := func(tokenChars int, setting string) *PinnedResult {
		for i := range r.Pinned {
			if x := &r.Pinned[i]; x.TokenChars == tokenChars && x.Setting == setting {
				return x
			}
		}
		return nil
	}
	var short *PinnedResult
	for i := range r.Pinned {
		if x := &r.Pinned[i]; x.TokenChars != longTokenChars && x.Setting == "" {
			short = x
		}
	}
	name, goal := "Cached GET, server pinned to 1 CPU, 32 clients on the other: throughput", "≥ 0.9× the floor"
	if x := short; x != nil {
		add(Target{Name: name, Goal: goal, Status: status(x.ThroughputRatio >= 0.9),
			Figure: fmt.Sprintf("%.2f× (%.0f against %.0f requests/s)", x.ThroughputRatio, x.Extension.RPS, x.Floor.RPS)})
	} else {
		add(na(name, goal))
	}
	name, goal = "Same: p99", "≤ 1.3× the floor's p99"
	if x := short; x != nil {
		add(Target{Name: name, Goal: goal, Status: status(x.P99Ratio <= 1.3),
			Figure: fmt.Sprintf("%.2f× (%.0f µs against %.0f µs)", x.P99Ratio, x.Extension.P99us, x.Floor.P99us)})
	} else {
		add(na(name, goal))
	}
	name, goal = fmt.Sprintf("Same with a %d-character session token: throughput", longTokenChars), "≥ 0.9× the floor"
	if x := pinned(longTokenChars, ""); x != nil {
		add(Target{Name: name, Goal: goal, Status: status(x.ThroughputRatio >= 0.9),
			Figure: fmt.Sprintf("%.2f× (%.0f against %.0f requests/s; p99 %.2f× the floor's)", x.ThroughputRatio, x.Extension.RPS, x.Floor.RPS, x.P99Ratio)})
	} else {
		add(na(name, goal))
	}

	f := r.Footprint
	name, goal = "Process start → register", "≤ the floor (loopfloor) + 1 ms, or the SDK's share shown"
	if len(f.StartToRegisteredMS) > 0 && len(f.FloorStartToRegisteredMS) > 0 {
		ext, floor := median(f.StartToRegisteredMS), median(f.FloorStartToRegisteredMS)
		add(Target{Name: name, Goal: goal, Status: status(ext <= floor+1),
			Figure: fmt.Sprintf("%.1f ms against %.1f ms (+%.1f ms); package initialisation %.1f ms against %.1f ms, %.1f ms of it in the AWS SDK (%s)",
				ext, floor, ext-floor, f.InitTrace.TotalMS, f.FloorInitTrace.TotalMS, sdkInitMS(f.InitTrace), topInit(f.InitTrace, 2))})
	} else {
		add(na(name, goal))
	}

	name, goal = "Init, 40 secrets + 100 parameters at 50 ms per call, defaults", "≤ 75 ms (1.5 waves)"
	var def, old *InitResult
	for i := range r.Init {
		x := &r.Init[i]
		if x.Fetcher == "secrets-prefetch" && x.Secrets == 40 && x.Parameters == 100 && x.LatencyMS == 50 {
			if x.Defaults {
				def = x
			} else if x.MaxConnections == defaultConns {
				old = x
			}
		}
	}
	if def != nil {
		t := Target{Name: name, Goal: goal, Status: status(def.MedianMS <= 75),
			Figure: fmt.Sprintf("%.0f ms, %s (one wave: %.0f ms)", def.MedianMS, callsText(def.Calls), def.LowerBoundMS)}
		if old != nil {
			t.Figure += fmt.Sprintf("; %.0f ms at the old bound of %d", old.MedianMS, defaultConns)
		}
		add(t)
	} else {
		add(na(name, goal))
	}

	name, goal = "Init under an SSM quota of 40 TPS, 1000 parameters", "no item lost; calls = batches + throttled retries"
	if len(r.Quota) > 0 {
		q := r.Quota[0]
		ok := q.AllFetched && q.Calls == q.MinCalls+q.Throttled
		t := Target{Name: name, Goal: goal, Status: status(ok),
			Figure: fmt.Sprintf("%d parameters in %.0f ms (the quota's own bound %.0f ms): %d calls = %d batches + %d throttled", q.Parameters, q.MS, q.BoundMS, q.Calls, q.MinCalls, q.Throttled)}
		if q.Parameters < 1000 {
			t.Status, t.Figure = "n/a", t.Figure+" (smoke run)"
		}
		add(t)
	} else {
		add(na(name, goal))
	}

	m := r.Memory
	var ship *GCResult
	if len(m.GC) > 0 && m.GC[0].Setting == "" {
		ship = &m.GC[0]
	}
	full := m.Entries >= 1000 && m.ValueBytes >= 4096
	name, goal = "RSS, 1000 × 4 KiB cached", "≤ 20 MiB"
	if ship != nil && full {
		add(Target{Name: name, Goal: goal, Status: status(ship.RSSReady <= 20<<20),
			Figure: fmt.Sprintf("%.1f MiB once ready (%.1f MiB of it the binary's mapped pages), peak %.1f MiB", mib(ship.RSSReady), mib(ship.FileReady), mib(ship.PeakReady))})
	} else {
		add(na(name, goal))
	}
	name, goal = "RSS growth over 10,000 idle INVOKEs", "≤ 1 MiB"
	if ship != nil && ship.IdleInvokes >= 10000 {
		d := ship.RSSAfterIdle - ship.RSSReady
		add(Target{Name: name, Goal: goal, Status: status(d <= 1<<20),
			Figure: fmt.Sprintf("%+.1f MiB (%.1f → %.1f MiB, 1000 × 4 KiB cached): %+.1f MiB over the first 1,000, %+.1f MiB over the next 9,000",
				mib(d), mib(ship.RSSReady), mib(ship.RSSAfterIdle), mib(ship.RSSAfterWarm-ship.RSSReady), mib(ship.RSSAfterIdle-ship.RSSAfterWarm))})
	} else {
		add(na(name, goal))
	}
	name, goal = "RSS growth over 10,000 refresh cycles", "≤ 1 MiB"
	if m.RefreshCycles >= 10000 {
		d := m.RefreshRSSAfter - m.RefreshRSSBefore
		add(Target{Name: name, Goal: goal, Status: status(d <= 1<<20),
			Figure: fmt.Sprintf("%+.1f MiB (%.1f → %.1f MiB, %d entries due each cycle): %+.1f MiB over the first 1,000, %+.1f MiB over the next 9,000",
				mib(d), mib(m.RefreshRSSBefore), mib(m.RefreshRSSAfter), m.RefreshEntries, mib(m.RefreshRSSWarm-m.RefreshRSSBefore), mib(m.RefreshRSSAfter-m.RefreshRSSWarm))})
	} else {
		add(na(name, goal))
	}
	name, goal = "Stripped binary", "≤ 12 MiB"
	if f.BinaryBytes > 0 {
		add(Target{Name: name, Goal: goal, Status: status(f.BinaryBytes <= 12<<20),
			Figure: fmt.Sprintf("%.2f MiB (%d bytes)", mib(f.BinaryBytes), f.BinaryBytes)})
	} else {
		add(na(name, goal))
	}
	name, goal = "10,000 idle connections; 1,100 under Lambda's 1,024 descriptors", "RSS bounded; a new request still answered"
	if m.IdleConns > 0 && m.FDLimitConns > 0 {
		t := Target{Name: name, Goal: goal, Status: status(m.FDLimitAnswered),
			Figure: fmt.Sprintf("RSS %.1f → %.1f MiB with %d opened (%d descriptors open); a request after %d idle ones answered: %v",
				mib(m.ConnsRSSBefore), mib(m.ConnsRSSOpen), m.IdleConns, m.ConnsOpenAtPeak, m.FDLimitConns, m.FDLimitAnswered)}
		if m.IdleConns < 10000 {
			t.Status = "n/a"
		}
		add(t)
	} else {
		add(na(name, goal))
	}
}

// sdkInitMS is the package initialisation of the AWS SDK's packages.
func sdkInitMS(t InitTrace) float64 {
	return t.SDKMS
}

func topInit(t InitTrace, n int) string {
	var parts []string
	for _, p := range t.Top[:min(n, len(t.Top))] {
		parts = append(parts, fmt.Sprintf("%s %.1f ms", strings.TrimPrefix(p.Package, "github.com/aws/aws-sdk-go-v2/"), p.MS))
	}
	return strings.Join(parts, ", ")
}

func (r *Report) pinnedMarkdown(p printer) {
	if len(r.Pinned) == 0 {
		return
	}
	p("## 2. Cached GET on one CPU (the headline)")
	p("")
	x := r.Pinned[0]
	how := "The server (the built extension, stripped, as a process, or the floor) runs alone on CPU 0 (`taskset -c 0`, so its Go runtime sees one CPU: GOMAXPROCS 1, as in a 1-vCPU function); the load generator, a separate process, runs on CPU 1 with 32 keep-alive connections, each sending its next request when the answer is in."
	if !x.Pinned {
		how = "**Not pinned in this run** (taskset or a second CPU is missing): the server and the load generator share the CPUs."
	}
	p("`GET /secretsmanager/get?secretId=…` of a prefetched secret (a %d-byte body). %s The **floor** is a minimal `net/http` server writing the same bytes (`integration/cmd/bench/getfloor`), on the same CPU. %d rounds of %s per server, the two back to back, alternating which goes first; medians, and the ratios are medians of the rounds' ratios. CPU is the server process's per request. The machine is shared with other work: compare each row with its floor, not with other runs.",
		x.BodyBytes, how, len(x.Extension.Rounds), r.pinnedRoundText())
	p("")
	p("| token | server | requests/s | p50 | p99 | server CPU per request |")
	p("|---|---|---|---|---|---|")
	for _, x := range r.Pinned {
		tok := fmt.Sprintf("%d chars", x.TokenChars)
		if x.Setting != "" {
			tok += ", " + x.Setting
		}
		for _, s := range []struct {
			name string
			v    GetServer
		}{{"secrets-prefetch", x.Extension}, {"floor", x.Floor}} {
			p("| %s | %s | %.0f | %.0f µs | %.0f µs | %.1f µs |", tok, s.name, s.v.RPS, s.v.P50us, s.v.P99us, s.v.CPUusPerRq)
		}
		p("| %s | **ratio** | **%.2f×** | | **%.2f×** | %.2f× |", tok, x.ThroughputRatio, x.P99Ratio, x.CPURatio)
	}
	p("")
}

func (r *Report) pinnedRoundText() string {
	for _, x := range r.Pinned {
		if len(x.Extension.Rounds) > 0 {
			return fmt.Sprintf("%.1f s", x.Extension.Rounds[0].Seconds)
		}
	}
	return "—"
}

func (r *Report) registerMarkdown(p printer) {
	f := r.Footprint
	if len(f.FloorStartToRegisteredMS) == 0 {
		return
	}
	p("**Registration.** Process start (exec) to its `register` call reaching the Extensions API, median of %d alternating starts: the extension %.1f ms, `loopfloor` (the Extensions API client alone, no AWS SDK) %.1f ms. Package initialisation before `main` (`GODEBUG=inittrace=1`, median of 5 starts): the extension %.2f ms and %.1f MB allocated in %d packages, %.2f ms of it in the AWS SDK's; the floor %.2f ms. The costliest:",
		len(f.StartToRegisteredMS), median(f.StartToRegisteredMS), median(f.FloorStartToRegisteredMS), f.InitTrace.TotalMS, float64(f.InitTrace.TotalBytes)/1e6, f.InitTrace.Packages, f.InitTrace.SDKMS, f.FloorInitTrace.TotalMS)
	p("")
	p("| package | init | allocated |")
	p("|---|---|---|")
	for _, x := range f.InitTrace.Top {
		p("| `%s` | %.2f ms | %.0f KB |", x.Package, x.MS, float64(x.Bytes)/1e3)
	}
	p("")
	p("Every package's initialisation runs before `main`, so before the extension can register; the SDK's service packages (`service/ssm/schemas` above all, the serialisation schemas of every SSM operation, built as package variables) are linked in because the extension calls SSM and Secrets Manager, and Go has no lazy package initialisation. Our own packages take %s. What is left is the floor of a Go binary that links the SDK's SSM client.", r.ownInitText())
	p("")
}

func (r *Report) ownInitText() string {
	t := r.Footprint.InitTrace
	if t.OwnMS == 0 {
		return "no measurable time"
	}
	return fmt.Sprintf("%.3f ms", t.OwnMS)
}

func (r *Report) quotaMarkdown(p printer) {
	if len(r.Quota) == 0 {
		return
	}
	p("**Under a quota.** The emulator's front enforces a token bucket on SSM (one second's burst, then the rate; a call finding it empty is answered `ThrottlingException` at once and counted), and the extension prefetches parameters with the defaults (`SECRETS_PREFETCH_REQUIRED=true`, so a lost item fails Init):")
	p("")
	p("| parameters | SSM quota | latency | start → ready | the quota's own bound | AWS calls | of which batches | throttled | every item fetched |")
	p("|---|---|---|---|---|---|---|---|---|")
	for _, q := range r.Quota {
		p("| %d | %d TPS | %d ms | %.0f ms | %.0f ms | %d | %d | %d | %v |", q.Parameters, q.QuotaTPS, q.LatencyMS, q.MS, q.BoundMS, q.Calls, q.MinCalls, q.Throttled, q.AllFetched)
	}
	p("")
	p("Each throttled answer halves the prefetch's concurrency (once per round of calls sent together); each run of successes as long as the bound raises it by one; a throttled call is sent again after a jittered back-off (on top of the SDK's own retries), within the Init budget. A throttled `BatchGetSecretValue` is not retried: its secrets are asked for with `GetSecretValue`, whose quota is 100 times larger.")
	p("")
}

func (r *Report) memoryMarkdown(p printer) {
	m := r.Memory
	if len(m.GC) == 0 {
		return
	}
	p("## 6. Memory")
	p("")
	p("The built binary as a process. **GC settings**: with %d × %d B cached (half secrets, half parameters), RSS (VmRSS) once ready — after the Init prefetch, which ends by returning freed memory to the OS (`debug.FreeOSMemory`) — split into anonymous memory (heap, stacks, runtime) and file-backed pages (the binary as mapped), then after %d idle INVOKEs, and the CPU per idle INVOKE over them. The first row is the binary as it ships (`GOGC=25` unless `GOGC` or `GOMEMLIMIT` is set); the others set the variable.", m.Entries, m.ValueBytes, m.GC[0].IdleInvokes)
	p("")
	p("| setting | RSS ready | anonymous / file | peak | after the first tenth of the INVOKEs | after all | growth | CPU per idle INVOKE |")
	p("|---|---|---|---|---|---|---|---|")
	for _, g := range m.GC {
		name := g.Setting
		if name == "" {
			name = "as shipped (GOGC=25)"
		}
		p("| %s | %.1f MiB | %.1f / %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %+.1f MiB | %.0f µs |", name, mib(g.RSSReady), mib(g.AnonReady), mib(g.FileReady), mib(g.PeakReady), mib(g.RSSAfterWarm), mib(g.RSSAfterIdle), mib(g.RSSAfterIdle-g.RSSReady), g.CPUusPerIdle)
	}
	p("")
	if m.RefreshCycles > 0 {
		p("**Refresh cycles**: %d entries, every one due on every INVOKE (TTL 1 s, `SECRETS_PREFETCH_REFRESH_AHEAD=0.001`; %.1f AWS calls per cycle): RSS %.1f MiB after 20 cycles, %.1f MiB after a tenth of %d more, %.1f MiB after all of them (%+.1f MiB).",
			m.RefreshEntries, m.RefreshCallsPerCyc, mib(m.RefreshRSSBefore), mib(m.RefreshRSSWarm), m.RefreshCycles, mib(m.RefreshRSSAfter), mib(m.RefreshRSSAfter-m.RefreshRSSBefore))
		p("")
		p("The growth is the collector's headroom, taken once: with `GOGC=25` the heap may grow by a quarter of what is live (mostly the cache) before a collection, and the pages it used stay with the process for the next cycle. It comes in the first tenth of the INVOKEs and not after; a lower GOGC shrinks it, at a collection every few hundred KiB allocated (the read path's cost of that is in section 2).")
		p("")
	}
	if b := m.Before; b != nil && len(b.GC) > 0 && len(m.GC) > 0 {
		p("**Before and after**, the same measurements in this run of the build before this work (`-before`: its own defaults, GOGC 100, no memory returned after Init, no connection cap) and of this one:")
		p("")
		p("| measure | before | now |")
		p("|---|---|---|")
		bg, ng := b.GC[0], m.GC[0]
		p("| RSS once ready, %d × %d B cached | %.1f MiB (anonymous %.1f) | %.1f MiB (anonymous %.1f) |", m.Entries, m.ValueBytes, mib(bg.RSSReady), mib(bg.AnonReady), mib(ng.RSSReady), mib(ng.AnonReady))
		p("| growth over %d idle INVOKEs | %+.1f MiB | %+.1f MiB |", ng.IdleInvokes, mib(bg.RSSAfterIdle-bg.RSSReady), mib(ng.RSSAfterIdle-ng.RSSReady))
		p("| growth over %d refresh cycles | %+.1f MiB | %+.1f MiB |", m.RefreshCycles, mib(b.RefreshRSSAfter-b.RefreshRSSBefore), mib(m.RefreshRSSAfter-m.RefreshRSSBefore))
		p("| RSS with %d idle connections opened | %.1f MiB (%d descriptors) | %.1f MiB (%d descriptors) |", m.IdleConns, mib(b.ConnsRSSOpen), b.ConnsOpenAtPeak, mib(m.ConnsRSSOpen), m.ConnsOpenAtPeak)
		p("| RSS after they closed | %.1f MiB | %.1f MiB |", mib(b.ConnsRSSClosed), mib(m.ConnsRSSClosed))
		p("| a request after %d idle connections, 1,024 descriptors | answered: %v (%.0f ms) | answered: %v (%.0f ms) |", m.FDLimitConns, b.FDLimitAnswered, b.FDLimitLatencyMS, m.FDLimitAnswered, m.FDLimitLatencyMS)
		p("")
	}
	if m.IdleConns > 0 {
		p("**Idle connections**: %d keep-alive connections opened one after another (one request each), none closed by the client: RSS %.1f MiB before, %.1f MiB with them open (the process holding %d descriptors: the server keeps at most 512 connections, closing the idlest), %.1f MiB after the client closed them. Under Lambda's limit of 1,024 descriptors (`ulimit -n 1024`), after %d idle connections a new request was answered: %v (in %.0f ms).",
			m.IdleConns, mib(m.ConnsRSSBefore), mib(m.ConnsRSSOpen), m.ConnsOpenAtPeak, mib(m.ConnsRSSClosed), m.FDLimitConns, m.FDLimitAnswered, m.FDLimitLatencyMS)
		p("")
	}
}

func (r *Report) scaleOutMarkdown(p printer) {
	f := r.Fleet
	if len(f.ScaleOut) == 0 {
		return
	}
	p("**Scale-out.** %d environments starting at random within a window, each prefetching its %d secrets and %d parameters in Init with the defaults (its %d calls at once; %d ms per answered call, %d ms per throttled one; the SDK's %d attempts with up to 1 s of jitter between them, then the source's back-off; a %s Init budget), against token buckets of the quotas above (a burst of one second's worth). Init is from an environment's start to its last item, or the budget for those it cut (their missing items are fetched on first read).",
		f.ScaleOut[0].Environments, fleetSecrets, fleetParameters, ceilDiv(fleetSecrets, secretsPerBatch)+ceilDiv(fleetParameters, parametersPerBatch),
		scaleLatency.Milliseconds(), scaleThrottled.Milliseconds(), scaleSDKTries, human(scaleBudget))
	p("")
	p("| window | fallback | Init p50 | Init p99 | every item within the budget | items left for first reads | peak TPS: SSM / Batch / GetSecretValue | throttled answers | calls |")
	p("|---|---|---|---|---|---|---|---|---|")
	for _, s := range f.ScaleOut {
		fb := "no"
		if s.Fallback {
			fb = "yes"
		}
		p("| %g s | %s | %.0f ms | %.0f ms | %.0f%% | %d | %d / %d / %d | %d | %d |", s.WindowS, fb, s.InitP50MS, s.InitP99MS, 100*s.WithinBudget, s.ItemsMissing, s.PeakSSM, s.PeakBatch, s.PeakGetSecret, s.Throttled, s.Calls)
	}
	p("")
	if f.FallbackFleetWithout > 0 {
		p("**The fallback in steady state** (TTL 300 s, 1 invoke/s, jitter): Secrets Manager's quotas hold %s environments refreshing by `BatchGetSecretValue` alone (100 TPS); with the fallback, the batches past that quota go out as `GetSecretValue` (10,000 TPS, 20 calls a batch), and they hold %s — at %.1f× the calls (and Secrets Manager's per-call price) of the same refreshes batched. SSM's 40 TPS is still the tighter bound for the parameters.",
			count(f.FallbackFleetWithout), count(f.FallbackFleetWith), f.FallbackCallRatio)
		p("")
	}
}
