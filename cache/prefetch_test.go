package cache

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

func TestPrefetchReport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		s1, s2 := source.SecretKey("s1"), source.SecretKey("s2")
		p1, missing := source.ParameterKey("/p1"), source.ParameterKey("/missing")
		h.f.fail(missing, source.ClassNotFound)
		h.f.setTree("/app", "/app/a", "/app/b")
		pathErr := &source.Error{Class: source.ClassAccessDenied, Code: "AccessDeniedException", Key: source.Key{Service: source.ParameterStore, ID: "/bad"}}
		h.f.failPath("/bad", pathErr)
		app, bad := Path{Prefix: "/app"}, Path{Prefix: "/bad", Recursive: true}

		rep := h.c.Prefetch(context.Background(), []source.Key{s1, s2, s1, p1, missing, p1}, []Path{app, bad})

		if rep.Fetched != 5 { // s1, s2, p1 and two under /app
			t.Errorf("Fetched = %d, want 5", rep.Fetched)
		}
		if len(rep.Failed) != 1 || rep.Failed[missing] == nil || rep.Failed[missing].Class != source.ClassNotFound {
			t.Errorf("Failed = %v, want only %s, not found", rep.Failed, missing)
		}
		if len(rep.Paths) != 2 || rep.Paths[app] != 2 || rep.Paths[bad] != 0 {
			t.Errorf("Paths = %v", rep.Paths)
		}
		if len(rep.PathErrs) != 1 || !errors.Is(rep.PathErrs[bad], pathErr) {
			t.Errorf("PathErrs = %v", rep.PathErrs)
		}
		h.wantBatches([]source.Key{s1, s2, p1, missing}) // each key once
		if got := h.f.pathCalls(); len(got) != 2 {
			t.Errorf("FetchPath calls = %v", got)
		}

		for _, k := range []source.Key{s1, s2, p1, source.ParameterKey("/app/a"), source.ParameterKey("/app/b")} {
			if r := h.mustGet(k, Hit); text(r) != itemText(k, 1) {
				t.Errorf("%s: got %q", k, text(r))
			}
		}
		if _, err := h.get(missing); err == nil || errClass(t, err) != source.ClassNotFound {
			t.Errorf("missing: err = %v", err)
		}
		h.wantOnes() // all from the prefetch
	})
}

func TestPrefetchDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		release := h.hold("fetch")
		repc := h.goPrefetch(context.Background(), []source.Key{secret}, nil)
		synctest.Wait()
		h.clock.advance(1500 * time.Millisecond)
		release()
		if rep := <-repc; rep.Duration != 1500*time.Millisecond {
			t.Fatalf("Duration = %v", rep.Duration)
		}
	})
}

func TestPrefetchBudgetRunsOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		a, b := source.SecretKey("a"), source.SecretKey("b")
		h.hold("fetch")
		ctx, cancel := context.WithCancel(context.Background())
		repc := h.goPrefetch(ctx, []source.Key{a, b}, nil)
		synctest.Wait()
		cancel()
		rep := <-repc
		if rep.Fetched != 0 || len(rep.Failed) != 2 {
			t.Fatalf("report %+v", rep)
		}
		for k, err := range rep.Failed {
			if !err.Batch {
				t.Errorf("%s: %v not marked as the batch's failure", k, err)
			}
		}
		// Not the keys' own failures: reads fetch them at once, no backoff.
		h.mustGet(a, Miss)
		h.mustGet(b, Miss)
		h.wantOnes(a, b)
	})
}

func TestPrefetchReportsFetchAlreadyInFlight(t *testing.T) {
	a, b := source.SecretKey("a"), source.SecretKey("b")
	for _, tc := range []struct {
		name string
		fail bool
	}{
		{"succeeds", false},
		{"fails", true},
	} {
		bubble(t, tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			if tc.fail {
				h.f.fail(a, source.ClassAccessDenied)
			}
			release := h.hold("one")
			readc := h.goGet(context.Background(), a, false)
			synctest.Wait()
			repc := h.goPrefetch(context.Background(), []source.Key{a, b}, nil)
			synctest.Wait()
			pending(t, repc) // waits for the read's fetch of a
			h.wantBatches([]source.Key{b})
			release()
			rep := <-repc
			<-readc
			if tc.fail {
				if rep.Fetched != 1 || rep.Failed[a] == nil || rep.Failed[a].Class != source.ClassAccessDenied {
					t.Fatalf("report %+v, want a failed", rep)
				}
				return
			}
			if rep.Fetched != 2 || len(rep.Failed) != 0 {
				t.Fatalf("report %+v, want both fetched", rep)
			}
			h.wantOnes(a)
		})
	}
}

func TestRefreshDuePoint(t *testing.T) {
	// TTL 100 s, refresh ahead at half: due at 50 s, up to 10% (5 s)
	// earlier by the jitter drawn when the value was stored.
	for _, tc := range []struct {
		name string
		rand float64
		due  time.Duration
	}{
		{"no jitter", 0, 50 * time.Second},
		{"half jitter", 0.5, 47500 * time.Millisecond},
		{"most jitter", 0.9, 45500 * time.Millisecond},
	} {
		bubble(t, tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.rand.set(tc.rand)
			a, b := source.SecretKey("a"), source.ParameterKey("/b")
			h.mustGet(a, Miss)
			h.clock.advance(10 * time.Second)
			h.mustGet(b, Miss)

			h.clock.set(tc.due - time.Millisecond)
			if rep := h.c.RefreshDue(context.Background()); counts(rep) != (refreshCounts{}) {
				t.Fatalf("before the point: %+v", rep)
			}
			h.wantBatches()

			h.clock.set(tc.due)
			if rep := h.c.RefreshDue(context.Background()); counts(rep) != (refreshCounts{Due: 1, Refreshed: 1}) {
				t.Fatalf("at the point: %+v", rep)
			}
			h.wantBatches([]source.Key{a})
			if r := h.mustGet(a, Hit); text(r) != itemText(a, 2) || r.Age != 0 {
				t.Fatalf("a after refresh: %q age %v", text(r), r.Age)
			}

			h.clock.set(10*time.Second + tc.due)
			if rep := h.c.RefreshDue(context.Background()); counts(rep) != (refreshCounts{Due: 1, Refreshed: 1}) {
				t.Fatalf("b's point: %+v", rep)
			}
			h.wantBatches([]source.Key{a}, []source.Key{b})
			h.wantOnes(a, b)
		})
	}
}

func TestRefreshDueBatchesAllDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		keys := []source.Key{source.SecretKey("a"), source.SecretKey("b"), source.ParameterKey("/c"), plain(source.ParameterKey("/d"))}
		h.f.setSecure("/d") // so the plain read is an entry of its own
		for _, k := range keys {
			h.mustGet(k, Miss)
		}
		h.clock.advance(30 * time.Second)
		fresh := source.SecretKey("fresh")
		h.mustGet(fresh, Miss)
		h.clock.advance(20 * time.Second)
		if rep := h.c.RefreshDue(context.Background()); counts(rep) != (refreshCounts{Due: 4, Refreshed: 4}) {
			t.Fatalf("report %+v", rep)
		}
		h.wantBatches(keys)
		if got := h.c.Stats().Refreshes; got != 4 {
			t.Fatalf("Refreshes = %d", got)
		}
	})
}

func TestRefreshDueSkipsTTLZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.SecretsTTL = 0 })
		h.mustGet(secret, Miss)
		h.clock.advance(time.Hour)
		if rep := h.c.RefreshDue(context.Background()); counts(rep) != (refreshCounts{}) {
			t.Fatalf("report %+v", rep)
		}
		h.wantBatches()
	})
}

func TestRefreshDueRetriesFailedListed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		listed, unlisted := source.SecretKey("listed"), source.SecretKey("unlisted")
		h := newHarness(t, func(o *Options) {
			o.Listed = func(k source.Key) bool { return k == listed }
		})
		h.f.fail(listed, source.ClassThrottled)
		h.f.fail(unlisted, source.ClassThrottled)
		if rep := h.c.Prefetch(context.Background(), []source.Key{listed}, nil); len(rep.Failed) != 1 {
			t.Fatalf("prefetch %+v", rep)
		}
		if _, err := h.get(unlisted); err == nil {
			t.Fatal("unlisted: want an error")
		}

		if rep := h.c.RefreshDue(context.Background()); counts(rep) != (refreshCounts{}) {
			t.Fatalf("within the backoff: %+v", rep)
		}
		h.clock.advance(500 * time.Millisecond)
		if rep := h.c.RefreshDue(context.Background()); counts(rep) != (refreshCounts{Due: 1, Failed: 1}) {
			t.Fatalf("after the backoff: %+v", rep)
		}
		h.f.heal(listed)
		h.clock.advance(999 * time.Millisecond) // second backoff: 1 s
		if rep := h.c.RefreshDue(context.Background()); counts(rep) != (refreshCounts{}) {
			t.Fatalf("within the second backoff: %+v", rep)
		}
		h.clock.advance(time.Millisecond)
		if rep := h.c.RefreshDue(context.Background()); counts(rep) != (refreshCounts{Due: 1, Refreshed: 1}) {
			t.Fatalf("after the second backoff: %+v", rep)
		}
		h.wantBatches([]source.Key{listed}, []source.Key{listed}, []source.Key{listed})
		h.mustGet(listed, Hit)
		if s := h.c.Stats(); s.RefreshErrors != 1 || s.Refreshes != 1 {
			t.Fatalf("Stats %+v", s)
		}
	})
}

func TestRefreshDueBatchFailureBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		a, b := source.SecretKey("a"), source.SecretKey("b")
		h.mustGet(a, Miss)
		h.mustGet(b, Miss)
		h.clock.advance(50 * time.Second)
		h.f.failBatch(source.ClassTransient)
		if rep := h.c.RefreshDue(context.Background()); counts(rep) != (refreshCounts{Due: 2, Failed: 2}) {
			t.Fatalf("report %+v", rep)
		}
		// The next INVOKE right after does not call AWS again.
		if rep := h.c.RefreshDue(context.Background()); counts(rep) != (refreshCounts{}) {
			t.Fatalf("right after: %+v", rep)
		}
		h.wantBatches([]source.Key{a, b})
		// The values are still fresh.
		h.mustGet(a, Hit)
		h.clock.advance(500 * time.Millisecond)
		h.f.healBatch()
		if rep := h.c.RefreshDue(context.Background()); counts(rep) != (refreshCounts{Due: 2, Refreshed: 2}) {
			t.Fatalf("after the backoff: %+v", rep)
		}
		h.wantBatches([]source.Key{a, b}, []source.Key{a, b})
		h.wantOnes(a, b)
	})
}

func TestRefreshDueCanceledKeepsValues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		first := h.mustGet(secret, Miss).Item
		h.clock.advance(50 * time.Second)
		h.hold("fetch")
		ctx, cancel := context.WithCancel(context.Background())
		refc := h.goRefresh(ctx)
		synctest.Wait()
		cancel()
		if rep := <-refc; counts(rep) != (refreshCounts{Due: 1, Failed: 1}) {
			t.Fatalf("report %+v", rep)
		}
		if r := h.mustGet(secret, Hit); r.Item != first {
			t.Fatalf("got %q, want the first value", text(r))
		}
		if string(first.Text) != itemText(secret, 1) {
			t.Fatalf("value damaged: %q", first.Text)
		}
		// Past the TTL, AWS failing: the value stands in.
		h.clock.advance(50 * time.Second)
		h.f.fail(secret, source.ClassTransient)
		if r := h.mustGet(secret, Stale); r.Item != first || r.Age != 100*time.Second {
			t.Fatalf("got %q age %v", text(r), r.Age)
		}
		if s := h.c.Stats(); s.RefreshErrors != 1 {
			t.Fatalf("Stats %+v", s)
		}
	})
}

// allZero reports whether b is non-empty and all zeros.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return len(b) > 0
}

func TestWipe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.f.setTree("/app", "/app/a")
		h.c.Prefetch(context.Background(), []source.Key{secret}, []Path{{Prefix: "/app"}})
		h.mustGet(param, Miss)
		items := h.f.handedOut()
		if len(items) != 3 {
			t.Fatalf("%d items fetched, want 3", len(items))
		}

		h.c.Wipe()
		for _, it := range items {
			if !allZero(it.Body) || !allZero(it.Text) {
				t.Errorf("%s not wiped: body %q text %q", it.Key, it.Body, it.Text)
			}
		}
		if h.c.Len() != 0 {
			t.Errorf("Len = %d", h.c.Len())
		}
		for _, k := range []source.Key{secret, param, source.ParameterKey("/app/a"), source.SecretKey("new")} {
			if _, err := h.get(k); !errors.Is(err, ErrClosed) {
				t.Errorf("Get(%s) after Wipe: %v, want ErrClosed", k, err)
			}
		}
		h.clock.advance(time.Hour)
		if rep := h.c.RefreshDue(context.Background()); counts(rep) != (refreshCounts{}) {
			t.Errorf("RefreshDue after Wipe: %+v", rep)
		}
		rep := h.c.Prefetch(context.Background(), []source.Key{secret}, []Path{{Prefix: "/app"}})
		if rep.Fetched != 0 || len(rep.Failed) != 0 || len(rep.Paths) != 0 || len(rep.PathErrs) != 0 {
			t.Errorf("Prefetch after Wipe: %+v", rep)
		}
		h.wantBatches([]source.Key{secret})
		h.wantOnes(param)
		if got := h.f.pathCalls(); len(got) != 1 {
			t.Errorf("FetchPath calls = %v", got)
		}
	})
}

func TestWipeDuringFetch(t *testing.T) {
	bubble(t, "read", func(t *testing.T) {
		h := newHarness(t, nil)
		release := h.hold("one")
		ch := h.goGet(context.Background(), secret, false)
		synctest.Wait()
		h.c.Wipe()
		release()
		o := <-ch
		if !errors.Is(o.err, ErrClosed) || o.r.Item != nil {
			t.Fatalf("got %v %q, want ErrClosed", o.err, text(o.r))
		}
		items := h.f.handedOut()
		if len(items) != 1 || !allZero(items[0].Text) || !allZero(items[0].Body) {
			t.Fatalf("the late value was not wiped: %v", items)
		}
	})

	bubble(t, "prefetch", func(t *testing.T) {
		h := newHarness(t, nil)
		h.f.setTree("/app", "/app/a")
		releaseFetch, releasePath := h.hold("fetch"), h.hold("path")
		repc := h.goPrefetch(context.Background(), []source.Key{secret}, []Path{{Prefix: "/app"}})
		synctest.Wait()
		h.c.Wipe()
		releaseFetch()
		releasePath()
		rep := <-repc
		if rep.Failed[secret] == nil {
			t.Errorf("report %+v: a value that arrived after Wipe counted as fetched", rep)
		}
		for _, it := range h.f.handedOut() {
			if !allZero(it.Text) || !allZero(it.Body) {
				t.Errorf("%s arrived after Wipe and was not wiped", it.Key)
			}
		}
		if h.c.Len() != 0 {
			t.Errorf("Len = %d", h.c.Len())
		}
	})
}
