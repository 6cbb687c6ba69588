package lifecycle_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/lifecycle"
)

func TestNext(t *testing.T) {
	deadline := time.UnixMilli(1_767_225_600_123) // ms precision, as on the wire
	invoke := extapitest.Invoke("req-1", deadline)

	tests := []struct {
		name  string
		event extapitest.Event
		want  lifecycle.Event
	}{
		{
			name:  "invoke",
			event: invoke,
			want: lifecycle.Event{
				EventType:          lifecycle.Invoke,
				DeadlineMs:         deadline.UnixMilli(),
				RequestID:          "req-1",
				InvokedFunctionARN: extapitest.FunctionARN,
				Tracing:            lifecycle.Tracing{Type: "X-Amzn-Trace-Id", Value: invoke.TraceID},
			},
		},
		{
			name:  "shutdown spindown",
			event: extapitest.Shutdown(extapitest.ReasonSpindown, deadline),
			want: lifecycle.Event{
				EventType:      lifecycle.Shutdown,
				DeadlineMs:     deadline.UnixMilli(),
				ShutdownReason: lifecycle.ShutdownSpindown,
			},
		},
		{
			name:  "shutdown timeout",
			event: extapitest.Shutdown(extapitest.ReasonTimeout, deadline),
			want: lifecycle.Event{
				EventType:      lifecycle.Shutdown,
				DeadlineMs:     deadline.UnixMilli(),
				ShutdownReason: lifecycle.ShutdownTimeout,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, rec := registered(t, tt.event)
			got, err := c.Next(testContext(t))
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if got != tt.want {
				t.Errorf("event = %+v\nwant    %+v", got, tt.want)
			}
			if !got.Deadline().Equal(deadline) {
				t.Errorf("Deadline() = %v, want %v", got.Deadline(), deadline)
			}
			if id := rec.Calls()[1].ID; id != c.ExtensionID() {
				t.Errorf("identifier sent = %q, want %q", id, c.ExtensionID())
			}
		})
	}
}

func TestEventDeadlineUnset(t *testing.T) {
	if d := (lifecycle.Event{}).Deadline(); !d.IsZero() {
		t.Errorf("Deadline() without deadlineMs = %v, want zero", d)
	}
}

func TestNextErrors(t *testing.T) {
	tests := []struct {
		name       string
		client     func(t *testing.T) *lifecycle.Client
		wantIs     error
		wantStatus int
		wantType   string
		wantText   string
	}{
		{
			name: "not registered",
			client: func(t *testing.T) *lifecycle.Client {
				return lifecycle.NewClient(rawServer(t, nil), nil)
			},
			wantIs: lifecycle.ErrNotRegistered,
		},
		{
			name: "unexpected event type",
			client: func(t *testing.T) *lifecycle.Client {
				c, _, _ := registered(t, extapitest.Event{Type: "RESTORE"})
				return c
			},
			wantText: `unexpected event type "RESTORE"`,
		},
		{
			name: "undecodable event",
			client: func(t *testing.T) *lifecycle.Client {
				return rawClient(t, map[string]http.HandlerFunc{"event/next": respond(200, `{"eventType":`)})
			},
			wantText: "decoding event",
		},
		{
			name: "after an exit error",
			client: func(t *testing.T) *lifecycle.Client {
				c, _, _ := registered(t)
				if err := c.ExitError(testContext(t), lifecycle.ErrorTypeRuntimeError, errors.New("x")); err != nil {
					t.Fatal(err)
				}
				return c
			},
			wantStatus: 403,
			wantType:   "Extension.InvalidExtensionState",
		},
		{
			name: "unknown identifier",
			client: func(t *testing.T) *lifecycle.Client {
				return rawClient(t, map[string]http.HandlerFunc{"event/next": respond(403,
					`{"errorMessage":"Unknown extension raw-id","errorType":"Extension.UnknownExtensionIdentifier"}`)})
			},
			wantStatus: 403,
			wantType:   "Extension.UnknownExtensionIdentifier",
			wantText:   "Unknown extension raw-id",
		},
		{
			name: "error body is cut",
			client: func(t *testing.T) *lifecycle.Client {
				return rawClient(t, map[string]http.HandlerFunc{"event/next": respond(500, strings.Repeat("x", 5000))})
			},
			wantStatus: 500,
			wantText:   `"` + strings.Repeat("x", 1024) + `"`,
		},
		{
			name: "oversized event",
			client: func(t *testing.T) *lifecycle.Client {
				return rawClient(t, map[string]http.HandlerFunc{"event/next": respond(200, strings.Repeat(" ", 2<<20))})
			},
			wantText: "larger than",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client(t).Next(testContext(t))
			if err == nil {
				t.Fatal("Next succeeded, want error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error = %v, want %v", err, tt.wantIs)
			}
			checkErr(t, err, tt.wantStatus, tt.wantType, tt.wantText)
			var apiErr *lifecycle.APIError
			if errors.As(err, &apiErr) && len(apiErr.Body) > 1024 {
				t.Errorf("APIError.Body holds %d bytes, want at most 1024", len(apiErr.Body))
			}
		})
	}
}

// TestNextContextEnds checks that the long poll, which has no client
// timeout, still returns promptly when its context ends.
func TestNextContextEnds(t *testing.T) {
	tests := []struct {
		name   string
		ctx    func(parent context.Context) (context.Context, context.CancelFunc)
		cancel bool // cancel once the poll is waiting
		wantIs error
	}{
		{
			name:   "canceled",
			ctx:    context.WithCancel,
			cancel: true,
			wantIs: context.Canceled,
		},
		{
			name: "deadline",
			ctx: func(parent context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(parent, 50*time.Millisecond)
			},
			wantIs: context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, rec := registered(t) // no events: event/next blocks
			ctx, cancel := tt.ctx(t.Context())
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				_, err := c.Next(ctx)
				errc <- err
			}()
			if err := rec.WaitNext(testContext(t), 1); err != nil {
				t.Fatalf("waiting for the poll: %v", err)
			}
			if tt.cancel {
				cancel()
			}
			err := receive(t, errc)
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("Next error = %v, want %v", err, tt.wantIs)
			}
		})
	}
}
