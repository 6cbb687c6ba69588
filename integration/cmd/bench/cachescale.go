package main

// Section 6: the cache at scale (issue 10, item 5). A hit must not slow
// down as the cache grows or while a flood of made-up names makes it evict,
// and a cached failed lookup must cost little more than its key.

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// CacheScale is section 6's data.
type CacheScale struct {
	Hits []CacheHitRow `json:"hits"`
	// FailedLookups is how many not-found reads the memory rows cached.
	FailedLookups int              `json:"failed_lookups"`
	Memory        []CacheMemoryRow `json:"memory"`
}

// CacheHitRow is the latency of cached hits of a configured item in a full
// cache of Entries entries: idle (the baseline: nothing else happening), or
// while readers of made-up names make it evict on every insertion.
type CacheHitRow struct {
	Entries       int     `json:"entries"`
	Case          string  `json:"case"` // "idle" or "evicting"
	Hits          int     `json:"hits"`
	P50us         float64 `json:"p50_us"`
	P99us         float64 `json:"p99_us"`
	InsertsPerSec float64 `json:"inserts_per_second"` // the flood's rate, evicting
}

// CacheMemoryRow is the heap one cached not-found costs.
type CacheMemoryRow struct {
	Case          string  `json:"case"`
	BytesPerEntry float64 `json:"bytes_per_entry"`
}

func (w *world) cacheScaleSection(ctx context.Context, rep *Report) error {
	sizes, d := []int{1000, 20000, 100000}, time.Second
	lookups := 2000
	if w.plan.benchCount == 1 { // the smoke plan
		sizes, d, lookups = []int{100, 1000}, 50*time.Millisecond, 50
	}
	cs := &CacheScale{FailedLookups: lookups}
	for _, n := range sizes {
		for _, evicting := range []bool{false, true} {
			row := hitLatency(n, evicting, d)
			w.log("  cache %d entries, %s: p50 %.1f µs, p99 %.1f µs", n, row.Case, row.P50us, row.P99us)
			cs.Hits = append(cs.Hits, row)
		}
	}
	sdk, err := failedLookupBytes(ctx, lookups, true)
	if err != nil {
		return err
	}
	floor, err := failedLookupBytes(ctx, lookups, false)
	if err != nil {
		return err
	}
	cs.Memory = []CacheMemoryRow{{"ResourceNotFoundException through the SDK", sdk}, {"floor: the same error made by hand, wrapping nothing", floor}}
	w.log("  a cached not-found: %.0f bytes (floor %.0f)", sdk, floor)
	rep.CacheScale = cs
	return nil
}

// hitPause is the timed reader's pause between two reads.
const hitPause = 100 * time.Microsecond

// floodReaders is how many readers of made-up names run beside the timed
// one: one, so that on a small machine the timed reader keeps a CPU and
// what it measures is the wait for the cache's lock.
const floodReaders = 1

// scaleFetcher answers at once: a value for names under "v/", not found
// for the rest.
type scaleFetcher struct{ item *source.Item }

func (f scaleFetcher) outcome(k source.Key) (*source.Item, error) {
	if len(k.ID) > 2 && k.ID[:2] == "v/" {
		return f.item, nil
	}
	return nil, &source.Error{Class: source.ClassNotFound, Code: "ResourceNotFoundException", Message: "not found", Key: k}
}

func (f scaleFetcher) Fetch(_ context.Context, keys []source.Key, deliver source.Deliver) {
	for _, k := range keys {
		item, err := f.outcome(k)
		deliver(k, item, err)
	}
}

func (f scaleFetcher) FetchOne(_ context.Context, k source.Key) (*source.Item, error) {
	return f.outcome(k)
}

func (f scaleFetcher) FetchPath(context.Context, string, bool, source.Deliver) (int, error) {
	return 0, nil
}

// hitLatency fills a cache of n entries (one configured item, the rest
// values read lazily) and times reads of the configured item for d, with
// or without readers of made-up names running meanwhile.
func hitLatency(n int, evicting bool, d time.Duration) CacheHitRow {
	ctx := context.Background()
	listed := source.SecretKey("v/listed")
	c := cache.New(cache.Options{
		Fetcher:    scaleFetcher{&source.Item{Body: []byte(`{"SecretString":"v"}`), Text: []byte("v")}},
		SecretsTTL: time.Hour, ParametersTTL: time.Hour,
		RefreshAhead: 0.8,
		Size:         n,
		Lazy:         true,
		Listed:       func(k source.Key) bool { return k == listed },
	})
	c.Prefetch(ctx, []source.Key{listed}, nil)
	for i := range n - 1 {
		c.Get(ctx, source.SecretKey(fmt.Sprintf("v/fill-%d", i)), false)
	}
	row := CacheHitRow{Entries: n, Case: "idle"}
	stop := make(chan struct{})
	var (
		wg      sync.WaitGroup
		inserts atomic.Int64
	)
	if evicting {
		row.Case = "evicting"
		for g := range floodReaders {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					c.Get(ctx, source.SecretKey(fmt.Sprintf("made-up-%d-%d", g, i)), false)
					inserts.Add(1)
				}
			})
		}
	}
	var lat []time.Duration
	start := time.Now()
	for time.Since(start) < d {
		// Spaced out, as a function's reads are, so that the reads sample
		// the time evenly: back to back, the many fast reads between two
		// insertions would hide the ones that waited.
		time.Sleep(hitPause)
		t := time.Now()
		if r, err := c.Get(ctx, listed, false); err != nil || r.Status != cache.Hit {
			panic(fmt.Sprintf("cachescale: the configured item was not a hit: %v %v", r.Status, err))
		}
		lat = append(lat, time.Since(t))
	}
	close(stop)
	wg.Wait()
	slices.Sort(lat)
	row.Hits = len(lat)
	row.P50us, row.P99us = us(percentile(lat, 50)), us(percentile(lat, 99))
	row.InsertsPerSec = float64(inserts.Load()) / time.Since(start).Seconds()
	return row
}

// failedLookupBytes is the heap each of n cached not-found reads holds:
// through the real SDK against the emulator (viaSDK), or from a fetcher
// that makes the same error by hand.
func failedLookupBytes(ctx context.Context, n int, viaSDK bool) (float64, error) {
	var f cache.Fetcher = scaleFetcher{}
	if viaSDK {
		cfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return 0, err
		}
		f = source.New(source.Options{SecretsManager: secretsmanager.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg), MaxConcurrency: 3})
	}
	c := cache.New(cache.Options{Fetcher: f, SecretsTTL: time.Hour, ParametersTTL: time.Hour, Size: n + 1, Lazy: true})
	// One read first, so the SDK's own one-time setup is not counted.
	c.Get(ctx, source.SecretKey("warm-up"), false)
	before := heapInUse()
	for i := range n {
		if _, err := c.Get(ctx, source.SecretKey(fmt.Sprintf("never-created-%06d", i)), false); err == nil {
			return 0, fmt.Errorf("cachescale: never-created-%06d was found", i)
		}
	}
	after := heapInUse()
	runtime.KeepAlive(c)
	return float64(after-before) / float64(n), nil
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func (r *Report) cacheScaleMarkdown(p printer) {
	cs := r.CacheScale
	if cs == nil {
		return
	}
	p("## 8. The cache at scale")
	p("")
	p("In process, the cache alone (no HTTP) over a fetcher that answers at once. **Hits**: reads of a configured item in a full cache by one reader, %v apart, each timed alone; **idle** is the baseline (nothing else happening), **evicting** the same while %d reader(s) of made-up names (lazy fetching, not found) insert as fast as they can, so that every insertion evicts. A hit waits for the cache's lock while an insertion evicts: with O(1) eviction its latency does not grow with the entries.", hitPause, floodReaders)
	p("")
	p("| entries | case | hits | p50 | p99 | insertions/s |")
	p("|---|---|---|---|---|---|")
	for _, h := range cs.Hits {
		ins := "—"
		if h.Case == "evicting" {
			ins = fmt.Sprintf("%.0f", h.InsertsPerSec)
		}
		p("| %d | %s | %d | %.1f µs | %.1f µs | %s |", h.Entries, h.Case, h.Hits, h.P50us, h.P99us, ins)
	}
	p("")
	p("**A cached failed lookup**: the heap held per not-found read of %d made-up secret names (entry, key, error), against the floor of the same error made by hand.", cs.FailedLookups)
	p("")
	p("| case | bytes per cached not-found |")
	p("|---|---|")
	for _, m := range cs.Memory {
		p("| %s | %.0f |", m.Case, m.BytesPerEntry)
	}
	p("")
}
