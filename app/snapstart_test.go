package app

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// onceFetcher answers every key at once and counts the fetches.
type onceFetcher struct {
	mu sync.Mutex
	n  int
}

func (f *onceFetcher) item(k source.Key) *source.Item {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
	return &source.Item{Key: k, Body: []byte(`{"SecretString":"v"}`), Text: []byte("v")}
}

func (f *onceFetcher) Fetch(_ context.Context, keys []source.Key, deliver source.Deliver) {
	for _, k := range keys {
		deliver(k, f.item(k), nil)
	}
}

func (f *onceFetcher) FetchOne(_ context.Context, k source.Key) (*source.Item, error) {
	return f.item(k), nil
}

func (f *onceFetcher) FetchPath(context.Context, string, bool, source.Deliver) (int, error) {
	return 0, nil
}

func (f *onceFetcher) fetches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// fakeClocks is a wall and a monotonic clock a test moves.
type fakeClocks struct {
	mu   sync.Mutex
	wall time.Time
	mono time.Duration
}

func (c *fakeClocks) clocks() Clocks {
	return Clocks{
		Wall: func() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.wall },
		Mono: func() time.Duration { c.mu.Lock(); defer c.mu.Unlock(); return c.mono },
	}
}

func (c *fakeClocks) advance(wall, mono time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wall, c.mono = c.wall.Add(wall), c.mono+mono
}

func TestSnapGuardSeesRestores(t *testing.T) {
	f := &onceFetcher{}
	c := cache.New(cache.Options{Fetcher: f, SecretsTTL: time.Hour, ParametersTTL: time.Hour, Size: 10})
	k := source.SecretKey("a")
	refetches := 0
	clk := &fakeClocks{wall: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	g := newSnapGuard(c, clk.clocks(), false, func() { refetches++; c.StartPrefetch(context.Background(), []source.Key{k}, nil).Wait() }, func(string, ...any) {})
	c.Prefetch(context.Background(), []source.Key{k}, nil)
	g.mark()
	for _, step := range []struct {
		name       string
		wall, mono time.Duration
		restore    bool
	}{
		{"a freeze between invokes: both clocks move", 10 * time.Minute, 10 * time.Minute, false},
		{"an NTP step", 29 * time.Second, 0, false},
		{"a restore a week later", 7 * 24 * time.Hour, time.Second, true},
		{"the next read", time.Second, time.Second, false},
		{"a wall clock stepped back", -time.Hour, time.Second, false},
	} {
		before, fetched := refetches, f.fetches()
		clk.advance(step.wall, step.mono)
		r, err := g.Get(context.Background(), k, false)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := refetches > before; got != step.restore {
			t.Errorf("%s: restore seen = %v, want %v", step.name, got, step.restore)
		}
		if step.restore && (f.fetches() != fetched+1 || r.Status != cache.Hit) {
			t.Errorf("%s: %d fetches, status %s; want one refetch before the read, which it then serves", step.name, f.fetches()-fetched, r.Status)
		}
	}
	// exclude: the first check fetches, with no clock jump at all.
	g = newSnapGuard(c, clk.clocks(), true, func() { refetches++ }, func(string, ...any) {})
	g.mark()
	before := refetches
	g.check()
	g.check()
	if refetches != before+1 {
		t.Errorf("exclude: %d refetches, want one, at the first activity", refetches-before)
	}
}

// BenchmarkSnapGuardGet is the cost the guard adds to a cached read under
// SnapStart (two clock reads and a mutex), beside the same read without it.
func BenchmarkSnapGuardGet(b *testing.B) {
	f := &onceFetcher{}
	c := cache.New(cache.Options{Fetcher: f, SecretsTTL: time.Hour, ParametersTTL: time.Hour, Size: 10})
	k := source.SecretKey("a")
	c.Prefetch(context.Background(), []source.Key{k}, nil)
	g := newSnapGuard(c, Clocks{}, false, func() {}, func(string, ...any) {})
	ctx := context.Background()
	b.Run("cache", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Get(ctx, k, false)
		}
	})
	b.Run("guarded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.Get(ctx, k, false)
		}
	})
}
