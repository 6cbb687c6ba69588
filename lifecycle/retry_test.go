package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/lifecycle"
)

// noWait is a Backoff that records the attempts it was asked about and
// never waits, so retry tests run without delay.
type noWait struct{ attempts []int }

func (b *noWait) backoff(attempt int) time.Duration {
	b.attempts = append(b.attempts, attempt)
	return 0
}

func TestNextWithRetry(t *testing.T) {
	shutdown := extapitest.Shutdown(extapitest.ReasonSpindown, time.Now().Add(time.Second))
	// A client that opens a connection per request: Go's Transport then never
	// retries a dropped connection by itself, so each Close fault costs
	// exactly one attempt.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	tests := []struct {
		name         string
		hc           *http.Client
		fault        extapitest.Fault
		times        int
		closeServer  bool // Lambda gone: connections refused
		attempts     int
		wantErr      bool
		wantStatus   int // of an *APIError in the error
		wantBackoffs []int
		wantNext     int // event/next calls the server saw; 0 to skip
	}{
		{
			name:         "5xx then success",
			fault:        extapitest.Fault{Status: 500},
			times:        2,
			attempts:     3,
			wantBackoffs: []int{1, 2},
			wantNext:     3,
		},
		{
			name:         "5xx past the bound",
			fault:        extapitest.Fault{Status: 503},
			times:        extapitest.Always,
			attempts:     3,
			wantErr:      true,
			wantStatus:   503,
			wantBackoffs: []int{1, 2},
			wantNext:     3,
		},
		{
			name:       "403 is final",
			fault:      extapitest.Fault{Status: 403},
			times:      1,
			attempts:   5,
			wantErr:    true,
			wantStatus: 403,
			wantNext:   1,
		},
		{
			name:       "one attempt",
			fault:      extapitest.Fault{Status: 500},
			times:      1,
			attempts:   1,
			wantErr:    true,
			wantStatus: 500,
			wantNext:   1,
		},
		{
			name:         "dropped connection then success",
			hc:           fresh,
			fault:        extapitest.Fault{Close: true},
			times:        2,
			attempts:     3,
			wantBackoffs: []int{1, 2},
			wantNext:     3,
		},
		{
			name:         "dropped connections past the bound",
			fault:        extapitest.Fault{Close: true},
			times:        extapitest.Always,
			attempts:     4,
			wantErr:      true,
			wantBackoffs: []int{1, 2, 3},
		},
		{
			name:         "connection refused",
			closeServer:  true,
			attempts:     2,
			wantErr:      true,
			wantBackoffs: []int{1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, rec := extapitest.NewServer(t, shutdown)
			c := lifecycle.NewClient(srv.Addr(), tt.hc)
			if _, err := c.Register(testContext(t), testName); err != nil {
				t.Fatal(err)
			}
			if tt.times != 0 {
				srv.Inject(extapitest.RouteNext, tt.fault, tt.times)
			}
			if tt.closeServer {
				srv.Close()
			}

			var b noWait
			ev, err := c.NextWithRetry(testContext(t), tt.attempts, b.backoff)

			if tt.wantErr {
				if err == nil {
					t.Fatalf("NextWithRetry = %+v, want error", ev)
				}
				checkErr(t, err, tt.wantStatus, "", "")
				if len(tt.wantBackoffs) > 0 && !strings.Contains(err.Error(), fmt.Sprintf("(gave up after %d attempts)", tt.attempts)) {
					t.Errorf("error %q does not say it gave up", err)
				}
			} else if err != nil || ev.EventType != lifecycle.Shutdown {
				t.Fatalf("NextWithRetry = %+v, %v; want the SHUTDOWN event", ev, err)
			}
			if !slices.Equal(b.attempts, tt.wantBackoffs) {
				t.Errorf("backoff asked for attempts %v, want %v", b.attempts, tt.wantBackoffs)
			}
			if n := rec.NextCalls(); tt.wantNext != 0 && n != tt.wantNext {
				t.Errorf("server saw %d event/next calls, want %d", n, tt.wantNext)
			}
		})
	}
}

func TestNextWithRetryNotRetried(t *testing.T) {
	tests := []struct {
		name   string
		client func(t *testing.T) *lifecycle.Client
	}{
		{"not registered", func(t *testing.T) *lifecycle.Client { return lifecycle.NewClient(rawServer(t, nil), nil) }},
		{"undecodable event", func(t *testing.T) *lifecycle.Client {
			return rawClient(t, map[string]http.HandlerFunc{"event/next": respond(200, "not json")})
		}},
		{"404", func(t *testing.T) *lifecycle.Client {
			return rawClient(t, map[string]http.HandlerFunc{"event/next": respond(404, "")})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b noWait
			if _, err := tt.client(t).NextWithRetry(testContext(t), 5, b.backoff); err == nil {
				t.Fatal("NextWithRetry succeeded, want error")
			}
			if len(b.attempts) != 0 {
				t.Errorf("retried (backoff asked for %v), want no retry", b.attempts)
			}
		})
	}
}

func TestNextWithRetryCanceledWhileWaiting(t *testing.T) {
	c, srv, _ := registered(t)
	srv.Inject(extapitest.RouteNext, extapitest.Fault{Status: 500}, extapitest.Always)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	waiting := make(chan struct{})
	backoff := func(int) time.Duration {
		close(waiting)
		return time.Hour
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.NextWithRetry(ctx, 3, backoff)
		errc <- err
	}()
	receive(t, waiting)
	cancel()
	if err := receive(t, errc); !errors.Is(err, context.Canceled) {
		t.Errorf("NextWithRetry error = %v, want context.Canceled", err)
	}
}

func TestExponentialBackoff(t *testing.T) {
	const base, limit = 100 * time.Millisecond, time.Second
	b := lifecycle.ExponentialBackoff(base, limit)
	for attempt := 1; attempt <= 40; attempt++ {
		ceiling := min(base<<min(attempt-1, 20), limit)
		for range 50 {
			d := b(attempt)
			if d < ceiling/2 || d > ceiling {
				t.Fatalf("attempt %d: wait %v outside [%v, %v]", attempt, d, ceiling/2, ceiling)
			}
		}
	}
	if d := lifecycle.ExponentialBackoff(0, 0)(3); d != 0 {
		t.Errorf("zero backoff waited %v", d)
	}
}
