package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// EventType tells an INVOKE from a SHUTDOWN event.
type EventType string

// The event types the client subscribes to.
const (
	Invoke   EventType = "INVOKE"
	Shutdown EventType = "SHUTDOWN"
)

// ShutdownReason is why Lambda is shutting the environment down.
type ShutdownReason string

// Shutdown reasons Lambda documents.
const (
	ShutdownSpindown ShutdownReason = "spindown" // normal end of the environment
	ShutdownTimeout  ShutdownReason = "timeout"  // an invoke or extension timed out
	ShutdownFailure  ShutdownReason = "failure"  // the runtime or an extension failed
)

// Event is one answer of event/next. RequestID, InvokedFunctionARN and
// Tracing are set for INVOKE, ShutdownReason for SHUTDOWN.
type Event struct {
	EventType          EventType      `json:"eventType"`
	DeadlineMs         int64          `json:"deadlineMs"` // Unix milliseconds
	RequestID          string         `json:"requestId,omitempty"`
	InvokedFunctionARN string         `json:"invokedFunctionArn,omitempty"`
	ShutdownReason     ShutdownReason `json:"shutdownReason,omitempty"`
	Tracing            Tracing        `json:"tracing,omitzero"`
}

// Tracing is the trace header of the invocation (Type "X-Amzn-Trace-Id").
type Tracing struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Deadline is the time by which the work for this event must be done: the
// invoke's timeout for INVOKE, the end of the shutdown phase for SHUTDOWN.
// It is the zero Time when Lambda sent no deadline.
func (e Event) Deadline() time.Time {
	if e.DeadlineMs == 0 {
		return time.Time{}
	}
	return time.UnixMilli(e.DeadlineMs)
}

// Next blocks until Lambda sends the next event. It makes one request and
// does not retry (see NextWithRetry). Lambda considers the extension done
// with the previous event when Next is called, and may freeze the
// environment while Next waits.
func (c *Client) Next(ctx context.Context) (Event, error) {
	const op = "next"
	id, err := c.registeredID(op)
	if err != nil {
		return Event{}, err
	}
	_, body, err := c.do(ctx, call{
		op:     op,
		method: http.MethodGet,
		path:   "event/next",
		header: http.Header{headerIdentifier: {id}},
		want:   []int{http.StatusOK},
	})
	if err != nil {
		return Event{}, err
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return Event{}, fmt.Errorf("lifecycle: next: decoding event: %w", err)
	}
	switch ev.EventType {
	case Invoke, Shutdown:
		return ev, nil
	default:
		// Lambda only sends the types we registered for.
		return Event{}, fmt.Errorf("lifecycle: next: unexpected event type %q", ev.EventType)
	}
}
