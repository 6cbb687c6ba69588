package cache

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// RefreshDue skips its scan until the earliest refresh point it has seen;
// values stored and failures recorded after a scan must bring that point
// forward, or an INVOKE would miss what fell due in between.
func TestRefreshDueAfterSkippedScans(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.ParametersTTL = 20 * time.Second })
		ctx := context.Background()
		s, p := source.SecretKey("s"), source.ParameterKey("/p")
		h.mustGet(s, Miss) // due at 50 s
		h.clock.set(time.Second)
		if rep := h.c.RefreshDue(ctx); counts(rep) != (refreshCounts{}) {
			t.Fatalf("at 1 s: %+v", rep)
		}

		// Stored after that scan, due before s: at 12 s.
		h.clock.set(2 * time.Second)
		h.mustGet(p, Miss)
		h.clock.set(12 * time.Second)
		h.f.fail(p, source.ClassTransient)
		if rep := h.c.RefreshDue(ctx); counts(rep) != (refreshCounts{Due: 1, Failed: 1}) {
			t.Fatalf("at p's point: %+v", rep)
		}

		// Failed while s was the only other entry: due again when the
		// backoff (500 ms) ends, long before s.
		h.f.heal(p)
		h.clock.set(12*time.Second + 499*time.Millisecond)
		if rep := h.c.RefreshDue(ctx); counts(rep) != (refreshCounts{}) {
			t.Fatalf("within the backoff: %+v", rep)
		}
		h.clock.set(12*time.Second + 500*time.Millisecond)
		if rep := h.c.RefreshDue(ctx); counts(rep) != (refreshCounts{Due: 1, Refreshed: 1}) {
			t.Fatalf("after the backoff: %+v", rep)
		}
		// Refreshed at 12.5 s: due at 22.5 s, still before s.
		h.clock.set(22*time.Second + 499*time.Millisecond)
		if rep := h.c.RefreshDue(ctx); counts(rep) != (refreshCounts{}) {
			t.Fatalf("before p's next point: %+v", rep)
		}
		h.clock.set(22*time.Second + 500*time.Millisecond)
		if rep := h.c.RefreshDue(ctx); counts(rep) != (refreshCounts{Due: 1, Refreshed: 1}) {
			t.Fatalf("at p's next point: %+v", rep)
		}
		h.clock.set(50 * time.Second)
		if rep := h.c.RefreshDue(ctx); counts(rep) != (refreshCounts{Due: 2, Refreshed: 2}) {
			t.Fatalf("at s's point: %+v", rep)
		}
		h.wantBatches([]source.Key{p}, []source.Key{p}, []source.Key{p}, []source.Key{s, p})
	})
}

// refreshCounts is a RefreshReport's numbers, comparable.
type refreshCounts struct{ Due, Refreshed, Failed int }

// counts is a report's numbers; a failure without its error fails the
// comparison.
func counts(r RefreshReport) refreshCounts {
	if len(r.Errors) != r.Failed {
		r.Failed = -1
	}
	return refreshCounts{r.Due, r.Refreshed, r.Failed}
}
