//go:build unix

package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/config"
	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/lifecycle"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// The per-INVOKE benchmarks report cpu-ns/op beside ns/op: the process's
// CPU time per cycle (every goroutine, GC included), which other load on a
// shared machine does not inflate the way it does wall time. The cycles run
// against a fetcher that answers at once (an AWS with no latency); the
// cost of the real SDK against the emulator is measured on the built
// binary by `make bench` (integration/cmd/bench).

// BenchmarkInvokeCycle is one INVOKE as the event loop runs it: event/next
// answered by the fake Extensions API, the refresh of what is due, and the
// next event/next. The fake API runs in this process, so its side of the
// HTTP exchange is counted too: an upper bound of the extension's own cost.
func BenchmarkInvokeCycle(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("idle/entries=%d", n), func(b *testing.B) { benchInvokeCycle(b, n, false) })
	}
	b.Run("due/entries=100", func(b *testing.B) { benchInvokeCycle(b, 100, true) })
}

// BenchmarkRefresh is the extension's own work on an INVOKE, without the
// Extensions API round trip: what the loop does between two event/next calls.
func BenchmarkRefresh(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("idle/entries=%d", n), func(b *testing.B) {
			e, _ := benchExtension(b, n)
			ev := lifecycle.Event{EventType: lifecycle.Invoke, RequestID: "bench", DeadlineMs: time.Now().Add(time.Hour).UnixMilli()}
			ctx := context.Background()
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				e.refresh(ctx, ev)
			}
			cpu.report(b)
		})
	}
	b.Run("due/entries=100", func(b *testing.B) {
		e, clock := benchExtension(b, 100)
		ev := lifecycle.Event{EventType: lifecycle.Invoke, RequestID: "bench", DeadlineMs: time.Now().Add(time.Hour).UnixMilli()}
		ctx := context.Background()
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			clock.advance(benchTTL) // every entry is past its refresh point
			e.refresh(ctx, ev)
		}
		cpu.report(b)
	})
}

const benchTTL = 5 * time.Minute

func benchInvokeCycle(b *testing.B, n int, due bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, clock := benchExtension(b, n)
	api, rec := extapitest.NewServer(b)
	lc := lifecycle.NewClient(api.Addr(), nil)
	if _, err := lc.Register(ctx, "secrets-prefetch"); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.loop(ctx, lc, make(chan error)) }()
	if err := rec.WaitNext(ctx, 1); err != nil {
		b.Fatal(err)
	}
	ev := extapitest.Invoke("bench", time.Now().Add(time.Hour))
	next := 1
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if due {
			clock.advance(benchTTL)
		}
		api.Push(ev)
		next++
		if err := rec.WaitNext(ctx, next); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
	b.StopTimer()
	api.Push(extapitest.Shutdown(extapitest.ReasonSpindown, time.Now().Add(time.Second)))
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// benchExtension is an extension holding n entries (half secrets, half
// parameters) over a fetcher that answers at once, with a clock that only
// moves when the benchmark advances it.
func benchExtension(b *testing.B, n int) (*extension, *benchClock) {
	b.Helper()
	var secrets, params []string
	keys := make([]source.Key, 0, n)
	for i := range n {
		if i%2 == 0 {
			secrets = append(secrets, fmt.Sprintf("bench/secret/%d", i))
			keys = append(keys, source.SecretKey(secrets[len(secrets)-1]))
		} else {
			params = append(params, fmt.Sprintf("/bench/param/%d", i))
			keys = append(keys, source.ParameterKey(params[len(params)-1]))
		}
	}
	env := map[string]string{
		config.EnvSessionToken:                    testToken,
		config.EnvSecrets:                         strings.Join(secrets, ","),
		config.EnvParameters:                      strings.Join(params, ","),
		"PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE": fmt.Sprint(max(n, 1)),
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL":  "info",
	}
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		b.Fatal(err)
	}
	clock := &benchClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := assemble(cfg, benchFetcher{&source.Item{Body: []byte(`{"Value":"v"}`), Text: []byte("v")}}, slog.New(slog.DiscardHandler), clock.now, nil)
	if rep := e.cache.Prefetch(context.Background(), keys, nil); rep.Fetched != n {
		b.Fatalf("prefetched %d of %d", rep.Fetched, n)
	}
	return e, clock
}

// benchFetcher answers every key at once with one prebuilt item.
type benchFetcher struct{ item *source.Item }

func (f benchFetcher) Fetch(_ context.Context, keys []source.Key, deliver source.Deliver) {
	for _, k := range keys {
		deliver(k, f.item, nil)
	}
}

func (f benchFetcher) FetchOne(context.Context, source.Key) (*source.Item, error) {
	return f.item, nil
}

func (f benchFetcher) FetchPath(context.Context, string, bool, source.Deliver) (int, error) {
	return 0, nil
}

type benchClock struct {
	mu sync.Mutex // protects t
	t  time.Time
}

func (c *benchClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *benchClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// cpuStart is the process's CPU time when a measurement began.
type cpuStart time.Duration

func startCPU() cpuStart { return cpuStart(processCPU()) }

// report adds cpu-ns/op: the process's CPU time since start per iteration.
func (s cpuStart) report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-time.Duration(s))/float64(b.N), "cpu-ns/op")
}

// processCPU is the user and system CPU time of the whole process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
