package source

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// limiter bounds the AWS calls in flight, and adapts the bound to
// throttling: a throttled call halves it (once per generation of calls, so
// a burst of throttled answers to calls sent together halves it once), and
// every run of successes as long as the bound raises it by one, back up to
// its maximum. One environment under a throttled quota thus sends fewer
// calls at once instead of making the quota's overload worse. It is safe for
// concurrent use.
type limiter struct {
	max int // the configured bound

	mu       sync.Mutex // protects the fields below
	limit    int        // the current bound, 1..max
	inFlight int
	gen      uint64        // advanced each time limit is lowered
	streak   int           // successes since limit last changed
	waiters  []chan uint64 // each gets the generation its slot was handed over in
}

func newLimiter(n int) *limiter {
	return &limiter{max: n, limit: n}
}

// acquire waits for a slot, or for ctx to end. The returned generation is
// given back to release.
func (l *limiter) acquire(ctx context.Context) (uint64, error) {
	l.mu.Lock()
	if l.inFlight < l.limit && len(l.waiters) == 0 {
		l.inFlight++
		g := l.gen
		l.mu.Unlock()
		return g, nil
	}
	ch := make(chan uint64, 1)
	l.waiters = append(l.waiters, ch)
	l.mu.Unlock()
	select {
	case g := <-ch: // release handed this waiter its slot
		return g, nil
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, w := range l.waiters {
			if w == ch {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				return 0, ctx.Err()
			}
		}
		// The slot was handed over as ctx ended: give it back.
		l.inFlight--
		l.wakeLocked()
		return 0, ctx.Err()
	}
}

// release frees a slot taken at generation gen; throttled says whether AWS
// answered the call with throttling.
func (l *limiter) release(gen uint64, throttled bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	switch {
	case throttled && gen == l.gen:
		l.limit = max(1, l.limit/2)
		l.gen++
		l.streak = 0
	case !throttled && l.limit < l.max:
		l.streak++
		if l.streak >= l.limit {
			l.limit++
			l.streak = 0
		}
	}
	l.wakeLocked()
}

// wakeLocked hands free slots to waiters, first come first served.
// Requires mu held.
func (l *limiter) wakeLocked() {
	for l.inFlight < l.limit && len(l.waiters) > 0 {
		ch := l.waiters[0]
		l.waiters = l.waiters[1:]
		l.inFlight++
		ch <- l.gen
	}
}

// current returns the bound in force.
func (l *limiter) current() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit
}

// batchKey marks a context as a prefetch's or refresh's (Fetch, FetchPath):
// its calls take the batch limiter's slots.
type batchKey struct{}

func batchContext(ctx context.Context) context.Context {
	if inBatch(ctx) {
		return ctx
	}
	return context.WithValue(ctx, batchKey{}, true)
}

func inBatch(ctx context.Context) bool {
	v, _ := ctx.Value(batchKey{}).(bool)
	return v
}

func isThrottled(err error) bool {
	return classify(Key{}, err).Class == ClassThrottled
}

// Back-off between throttled attempts of one call, on top of the SDK's own
// retries: from throttleBase doubling to throttleCap, with full jitter.
const (
	throttleBase = 50 * time.Millisecond
	throttleCap  = time.Second
)

func throttleBackoff(attempt int) time.Duration {
	d := throttleCap
	if attempt < 5 {
		d = min(throttleCap, throttleBase<<attempt)
	}
	return d/2 + rand.N(d/2+1)
}

// sleepCtx waits for d, or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
