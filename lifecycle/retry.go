package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"
)

// Backoff returns how long to wait before retry number attempt (1 for the
// wait after the first failure).
type Backoff func(attempt int) time.Duration

// ExponentialBackoff doubles the wait from base up to limit, and picks each
// wait at random in its upper half so that many environments hit by the
// same fault do not retry in step.
func ExponentialBackoff(base, limit time.Duration) Backoff {
	return func(attempt int) time.Duration {
		d := base
		for i := 1; i < attempt && d < limit; i++ {
			d *= 2
		}
		d = min(d, limit)
		if d <= 0 {
			return 0
		}
		half := d / 2
		return half + rand.N(d-half+1)
	}
}

// defaultBackoff is used by NextWithRetry when backoff is nil.
var defaultBackoff = ExponentialBackoff(50*time.Millisecond, 2*time.Second)

// NextWithRetry calls Next up to attempts times, waiting backoff(n) between
// tries. It retries only faults that may pass: transport errors (refused,
// reset) and 5xx answers. A 4xx answer is final — Lambda uses 403 for
// "unknown extension" or "invalid state", which no retry can fix — and so
// are undecodable events and the end of ctx.
//
// A retry after a transport error may lose an event Lambda sent on the
// broken connection; that beats failing the environment on a single reset.
func (c *Client) NextWithRetry(ctx context.Context, attempts int, backoff Backoff) (Event, error) {
	attempts = max(attempts, 1)
	if backoff == nil {
		backoff = defaultBackoff
	}
	for attempt := 1; ; attempt++ {
		ev, err := c.Next(ctx)
		if err == nil || !retryable(err) {
			return ev, err
		}
		if attempt >= attempts {
			return Event{}, fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		if err := wait(ctx, backoff(attempt)); err != nil {
			return Event{}, fmt.Errorf("lifecycle: next: waiting to retry: %w", err)
		}
	}
}

func retryable(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Status >= http.StatusInternalServerError
	}
	var tErr *transportError
	return errors.As(err, &tErr)
}

// wait returns after d, or earlier with ctx's error when ctx ends.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
