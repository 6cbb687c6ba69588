package cache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// benchFetcher answers every key at once with one prebuilt item, so the
// benchmarks measure the cache rather than a fake that records its calls.
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

// benchCache is a cache holding n entries, half secrets and half
// parameters, prefetched at t0 on clock.
func benchCache(b *testing.B, n int, clock *fakeClock) *Cache {
	b.Helper()
	c := New(Options{
		Fetcher:       benchFetcher{&source.Item{Body: []byte(`{"Value":"v"}`), Text: []byte("v")}},
		SecretsTTL:    5 * time.Minute,
		ParametersTTL: 5 * time.Minute,
		RefreshAhead:  0.8,
		Size:          max(n, 1),
		Now:           clock.Now,
	})
	keys := make([]source.Key, n)
	for i := range keys {
		if i%2 == 0 {
			keys[i] = source.SecretKey(fmt.Sprintf("bench/secret/%d", i))
		} else {
			keys[i] = source.ParameterKey(fmt.Sprintf("/bench/param/%d", i))
		}
	}
	if rep := c.Prefetch(context.Background(), keys, nil); rep.Fetched != n {
		b.Fatalf("prefetched %d of %d", rep.Fetched, n)
	}
	return c
}

// BenchmarkRefreshDue is the cache's share of an INVOKE: finding what is
// due and, when something is, refreshing it (with a fetcher that costs
// nothing, as against an AWS with no latency).
func BenchmarkRefreshDue(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("idle/entries=%d", n), func(b *testing.B) {
			clock := &fakeClock{now: t0}
			c := benchCache(b, n, clock)
			b.ReportAllocs()
			for b.Loop() {
				if rep := c.RefreshDue(ctx); rep.Due != 0 {
					b.Fatalf("%d due", rep.Due)
				}
			}
		})
	}
	b.Run("due/entries=100", func(b *testing.B) {
		clock := &fakeClock{now: t0}
		c := benchCache(b, 100, clock)
		b.ReportAllocs()
		for b.Loop() {
			clock.advance(5 * time.Minute) // every entry is past its refresh point
			if rep := c.RefreshDue(ctx); rep.Refreshed != 100 {
				b.Fatalf("refreshed %d of 100", rep.Refreshed)
			}
		}
	})
}
