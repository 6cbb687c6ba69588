package main

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// GoBenchmark is one Go benchmark of the root module (`go test -bench`),
// with the median of each metric over -count runs.
type GoBenchmark struct {
	Package string             `json:"package"`
	Name    string             `json:"name"` // without the -GOMAXPROCS suffix
	Runs    int                `json:"runs"`
	Metrics map[string]float64 `json:"metrics"` // unit -> median value: ns/op, cpu-ns/op, B/op, allocs/op
}

// goBenchmarks are the root module's benchmarks the report quotes: the
// handler against its floor (allocations per request), the cache's and the
// event loop's share of an INVOKE.
var goBenchmarks = []struct{ pkg, pattern string }{
	{"./localserver", "^(BenchmarkServeHit|BenchmarkFloor)$"},
	{"./cache", "^BenchmarkRefreshDue$"},
	{"./app", "^(BenchmarkInvokeCycle|BenchmarkRefresh)$"},
}

func (w *world) goBenchSection(ctx context.Context, rep *Report) error {
	for _, b := range goBenchmarks {
		out, err := goCmd(ctx, w.root, nil, "test", "-run", "^$", "-bench", b.pattern, "-benchmem",
			"-benchtime", w.plan.benchtime, "-count", strconv.Itoa(w.plan.benchCount), b.pkg)
		if err != nil {
			return err
		}
		got := parseGoBench(out)
		for i := range got {
			got[i].Package = strings.TrimPrefix(b.pkg, "./")
			w.log("  %s.%s: %v", got[i].Package, got[i].Name, got[i].Metrics)
		}
		rep.GoBenchmarks = append(rep.GoBenchmarks, got...)
	}
	return nil
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$`)

// parseGoBench reads `go test -bench` output: per benchmark, the median of
// each metric over its runs, in order of first appearance.
func parseGoBench(out string) []GoBenchmark {
	var (
		order []string
		runs  = map[string]map[string][]float64{}
		count = map[string]int{}
	)
	for line := range strings.Lines(out) {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		name := m[1]
		if runs[name] == nil {
			runs[name] = map[string][]float64{}
			order = append(order, name)
		}
		count[name]++
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			runs[name][f[i+1]] = append(runs[name][f[i+1]], v)
		}
	}
	res := make([]GoBenchmark, 0, len(order))
	for _, name := range order {
		b := GoBenchmark{Name: name, Runs: count[name], Metrics: map[string]float64{}}
		for unit, v := range runs[name] {
			b.Metrics[unit] = median(v)
		}
		res = append(res, b)
	}
	return res
}

// goBench finds a benchmark by name.
func (r *Report) goBench(name string) (GoBenchmark, bool) {
	i := slices.IndexFunc(r.GoBenchmarks, func(b GoBenchmark) bool { return b.Name == name })
	if i < 0 {
		return GoBenchmark{}, false
	}
	return r.GoBenchmarks[i], true
}
