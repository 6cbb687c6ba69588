package cache

import (
	"context"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// RefreshWithin fetches, in one batch, what is due and what falls due
// within the window; NextDue says when to wake; DueSooner fires when a read
// brings that point forward.
func TestRefreshWithinAndNextDue(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.ParametersTTL = 40 * time.Second })
	ctx := context.Background()
	a, b, p := source.SecretKey("a"), source.SecretKey("b"), source.ParameterKey("/p")
	if due := h.c.NextDue(); !due.IsZero() {
		t.Fatalf("NextDue of a new cache = %v, want the zero time (scan at once)", due)
	}
	h.mustGet(a, Miss) // due at 50 s
	h.clock.set(5 * time.Second)
	h.mustGet(b, Miss) // due at 55 s
	if rep := h.c.RefreshWithin(ctx, 0.1); counts(rep) != (refreshCounts{}) {
		t.Fatalf("at 5 s: %+v", rep)
	}
	if due := h.c.NextDue(); !due.Equal(t0.Add(50 * time.Second)) {
		t.Fatalf("NextDue = %v, want a's point (t0+50s)", due.Sub(t0))
	}
	select {
	case <-h.c.DueSooner():
	default:
	}
	h.clock.set(6 * time.Second)
	h.mustGet(p, Miss) // due at 26 s: sooner
	select {
	case <-h.c.DueSooner():
	default:
		t.Fatal("a value due sooner than NextDue did not signal DueSooner")
	}
	if due := h.c.NextDue(); !due.Equal(t0.Add(26 * time.Second)) {
		t.Fatalf("NextDue = %v, want p's point (t0+26s)", due.Sub(t0))
	}

	// At a's point, b (5 s later, within 10% of 100 s) comes along; p,
	// refreshed at 26 s, is not due until 46 s.
	h.clock.set(26 * time.Second)
	if rep := h.c.RefreshWithin(ctx, 0.1); counts(rep) != (refreshCounts{Due: 1, Refreshed: 1}) {
		t.Fatalf("at p's point: %+v", rep)
	}
	h.clock.set(50 * time.Second)
	if rep := h.c.RefreshWithin(ctx, 0.1); counts(rep) != (refreshCounts{Due: 3, Refreshed: 3}) {
		t.Fatalf("at a's point: %+v (p at 46 s, b at 55 s within the window)", rep)
	}
	h.wantBatches([]source.Key{p}, []source.Key{a, b, p})
	if due := h.c.NextDue(); !due.Equal(t0.Add(70 * time.Second)) {
		t.Fatalf("NextDue = %v, want p's next point (t0+70s)", due.Sub(t0))
	}
	// RefreshDue, the INVOKE refresh, takes no window.
	h.clock.set(70 * time.Second)
	if rep := h.c.RefreshDue(ctx); counts(rep) != (refreshCounts{Due: 1, Refreshed: 1}) {
		t.Fatalf("RefreshDue at p's point: %+v", rep)
	}
}

// The entries one prefetch stored share the jitter of their refresh point,
// and so do those of one refresh round: a wake-up brought forward by
// another entry (here a parameter prefetched before them) takes all of them
// or none, never part of a batch. Drawn one each, their points would spread
// over 5 s of the 10 s window, and the wake-up at /p's point would take a
// and leave b to a call of its own.
func TestRefreshPointsOfARoundComeDueTogether(t *testing.T) {
	n := 0
	h := newHarness(t, func(o *Options) {
		o.Rand = func() float64 { // 0, 0.9, 0, 0.9, ...
			n++
			if n%2 == 0 {
				return 0.9
			}
			return 0
		}
	})
	ctx := context.Background()
	a, b, p := source.SecretKey("a"), source.SecretKey("b"), source.ParameterKey("/p")
	h.c.Prefetch(ctx, []source.Key{p}, nil) // jitter 0: due at 50 s
	h.clock.set(12 * time.Second)
	h.c.Prefetch(ctx, []source.Key{a, b}, nil) // jitter 0.9: both due at 57.5 s
	h.clock.set(50 * time.Second)
	if rep := h.c.RefreshWithin(ctx, 0.1); counts(rep) != (refreshCounts{Due: 3, Refreshed: 3}) {
		t.Fatalf("at /p's point: %+v, want a and b (57.5 s, within 60 s) along", rep)
	}
	// The round's jitter (0) places all three points at 100 s.
	if due := h.c.NextDue(); !due.Equal(t0.Add(100 * time.Second)) {
		t.Fatalf("NextDue = %v, want the round's point (t0+100s)", due.Sub(t0))
	}
	h.clock.set(100 * time.Second)
	if rep := h.c.RefreshWithin(ctx, 0.1); counts(rep) != (refreshCounts{Due: 3, Refreshed: 3}) {
		t.Fatalf("at the round's point: %+v", rep)
	}
	h.wantBatches([]source.Key{p}, []source.Key{a, b}, []source.Key{a, b, p}, []source.Key{a, b, p})
}
