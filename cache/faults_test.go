package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// seqRand returns 0, 0.25, 0.5, 0.75, 0, ... one value per call.
func seqRand() func() float64 {
	var (
		mu sync.Mutex
		n  int
	)
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		n++
		return float64((n-1)%4) / 4
	}
}

// TestRefreshRoundRetriedTogether: the entries one refresh round fetched
// together share its backoff, so after a failure they are retried together,
// in one batch, rather than each on its own jittered schedule (many small
// batches over many INVOKEs during an outage).
func TestRefreshRoundRetriedTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.Rand = seqRand() })
		keys := []source.Key{source.SecretKey("a"), source.SecretKey("b"), source.SecretKey("c"), source.SecretKey("d")}
		rep := h.c.Prefetch(context.Background(), keys, nil)
		if rep.Fetched != len(keys) {
			t.Fatalf("prefetch %+v", rep)
		}
		h.clock.advance(60 * time.Second) // past every refresh point
		h.f.failBatch(source.ClassTransient)
		if rep := h.c.RefreshDue(context.Background()); rep.Failed != len(keys) {
			t.Fatalf("failed round: %+v", rep)
		}
		// Step through the backoff (500 ms to 1 s after one failure): the
		// first refresh that fetches anything fetches all four.
		for range 20 {
			h.clock.advance(50 * time.Millisecond)
			rep := h.c.RefreshDue(context.Background())
			if rep.Due == 0 {
				continue
			}
			if rep.Due != len(keys) {
				t.Fatalf("the failed round came back split: %d of %d entries due together", rep.Due, len(keys))
			}
			return
		}
		t.Fatal("no refresh after the backoff")
	})
}

func TestEvictionSparesValuesAndListedItems(t *testing.T) {
	listed, other := source.SecretKey("listed"), source.SecretKey("other")
	isListed := func(k source.Key) bool { return k == listed }

	bubble(t, "failed lookups go before values", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.Size = 2 })
		missing := source.SecretKey("missing")
		h.f.fail(missing, source.ClassNotFound)
		h.mustGet(other, Miss)
		h.clock.advance(time.Second)
		if _, err := h.get(missing); err == nil {
			t.Fatal("missing: no error")
		}
		h.clock.advance(time.Second)
		h.mustGet(source.SecretKey("new"), Miss)
		if !h.has(other) || h.has(missing) {
			t.Fatalf("other %t missing %t: want the failed lookup evicted, though read later", h.has(other), h.has(missing))
		}
	})

	bubble(t, "unlisted reads never evict listed items", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.Size = 2; o.Listed = isListed })
		if rep := h.c.Prefetch(context.Background(), []source.Key{listed}, nil); rep.Fetched != 1 {
			t.Fatalf("prefetch %+v", rep)
		}
		for i := range 10 {
			h.clock.advance(time.Second)
			h.mustGet(source.SecretKey(fmt.Sprint("lazy-", i)), Miss)
		}
		if !h.has(listed) || h.c.Len() != 2 {
			t.Fatalf("listed %t, Len %d: want the listed item kept within the bound", h.has(listed), h.c.Len())
		}
		h.mustGet(listed, Hit)
	})
}

func TestMaxLazyFetches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		listed := source.SecretKey("listed")
		h := newHarness(t, func(o *Options) {
			o.MaxLazyFetches = 2
			o.Listed = func(k source.Key) bool { return k == listed }
		})
		release := h.hold("one")
		// Two readers start fetches and give up; the fetches go on.
		for _, id := range []string{"a", "b"} {
			ctx, cancel := context.WithCancel(context.Background())
			ch := h.goGet(ctx, source.SecretKey(id), false)
			synctest.Wait()
			cancel()
			if o := <-ch; o.err == nil {
				t.Fatalf("%s: read given up, but no error", id)
			}
		}
		// A third unlisted name is refused at once, and leaves no entry.
		if _, err := h.get(source.SecretKey("c")); !errors.Is(err, ErrBusy) {
			t.Fatalf("third lazy fetch: %v, want ErrBusy", err)
		}
		if h.has(source.SecretKey("c")) {
			t.Fatal("the refused read left an entry")
		}
		// A listed key is not bound by it.
		lch := h.goGet(context.Background(), listed, false)
		synctest.Wait()
		pending(t, lch)
		release()
		synctest.Wait()
		if o := ready(t, lch); o.err != nil {
			t.Fatalf("listed: %v", o.err)
		}
		// Once the fetches are done, lazy reads fetch again.
		h.mustGet(source.SecretKey("c"), Miss)
	})
}

// TestBusyReadEvictsNothing: a read refused for MaxLazyFetches is refused
// before it takes a place in the cache, so a flood of new names can't push
// cached values out; nor can made-up versions of a listed item dodge the bound.
func TestBusyReadEvictsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		listed := source.SecretKey("listed")
		h := newHarness(t, func(o *Options) {
			o.MaxLazyFetches = 1
			o.Size = 2
			o.Listed = func(k source.Key) bool { return k.ID == listed.ID }
		})
		h.mustGet(source.SecretKey("cached"), Miss)
		release := h.hold("one")
		ctx, cancel := context.WithCancel(context.Background())
		ch := h.goGet(ctx, source.SecretKey("slow"), false)
		synctest.Wait()
		cancel()
		<-ch
		if _, err := h.get(source.SecretKey("new")); !errors.Is(err, ErrBusy) {
			t.Fatalf("read past the bound: %v, want ErrBusy", err)
		}
		other := listed
		other.VersionStage = "made-up"
		if _, err := h.get(other); !errors.Is(err, ErrBusy) {
			t.Fatalf("a made-up version of a listed secret: %v, want ErrBusy", err)
		}
		if !h.has(source.SecretKey("cached")) {
			t.Fatal("a refused read evicted a cached value")
		}
		release()
		synctest.Wait()
	})
}

// A lazy fetch frees its place among MaxLazyFetches before its readers
// wake: the next read, straight after, is not refused for it.
func TestLazyPlaceFreedBeforeReadersWake(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxLazyFetches = 1 })
	for i := range 100 {
		h.mustGet(source.SecretKey(fmt.Sprintf("k%d", i)), Miss)
	}
}
