package extapitest

import (
	"encoding/json"
	"time"
)

// Identity of the fake function, as the register call reports it.
const (
	FunctionName    = "test-function"
	FunctionVersion = "$LATEST"
	Handler         = "bootstrap"
	FunctionARN     = "arn:aws:lambda:us-east-1:123456789012:function:" + FunctionName
)

// Event types and shutdown reasons as Lambda spells them.
const (
	TypeInvoke   = "INVOKE"
	TypeShutdown = "SHUTDOWN"

	ReasonSpindown = "spindown"
	ReasonTimeout  = "timeout"
	ReasonFailure  = "failure"
)

// traceIDType is the tracing type of every INVOKE event.
const traceIDType = "X-Amzn-Trace-Id"

// Event is one answer of event/next. Build it with Invoke or Shutdown and
// adjust fields as needed; a Type other than INVOKE or SHUTDOWN is sent with
// only eventType and deadlineMs, to test how a client takes the unexpected.
type Event struct {
	Type     string
	Deadline time.Time // sent as deadlineMs; the zero Time sends 0

	// INVOKE only.
	RequestID          string
	InvokedFunctionARN string
	TraceID            string // value of the X-Amzn-Trace-Id tracing header; "" omits tracing

	// SHUTDOWN only.
	ShutdownReason string
}

// Invoke returns an INVOKE event for the fake function.
func Invoke(requestID string, deadline time.Time) Event {
	return Event{
		Type:               TypeInvoke,
		Deadline:           deadline,
		RequestID:          requestID,
		InvokedFunctionARN: FunctionARN,
		TraceID:            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
	}
}

// Shutdown returns a SHUTDOWN event with reason (e.g. ReasonSpindown).
func Shutdown(reason string, deadline time.Time) Event {
	return Event{Type: TypeShutdown, Deadline: deadline, ShutdownReason: reason}
}

func (e Event) deadlineMs() int64 {
	if e.Deadline.IsZero() {
		return 0
	}
	return e.Deadline.UnixMilli()
}

// MarshalJSON renders the event in the shape Lambda sends for its type.
func (e Event) MarshalJSON() ([]byte, error) {
	switch e.Type {
	case TypeInvoke:
		type tracing struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		}
		v := struct {
			EventType          string   `json:"eventType"`
			DeadlineMs         int64    `json:"deadlineMs"`
			RequestID          string   `json:"requestId"`
			InvokedFunctionARN string   `json:"invokedFunctionArn"`
			Tracing            *tracing `json:"tracing,omitempty"`
		}{e.Type, e.deadlineMs(), e.RequestID, e.InvokedFunctionARN, nil}
		if e.TraceID != "" {
			v.Tracing = &tracing{Type: traceIDType, Value: e.TraceID}
		}
		return json.Marshal(v)
	case TypeShutdown:
		return json.Marshal(struct {
			EventType      string `json:"eventType"`
			ShutdownReason string `json:"shutdownReason"`
			DeadlineMs     int64  `json:"deadlineMs"`
		}{e.Type, e.ShutdownReason, e.deadlineMs()})
	default:
		return json.Marshal(struct {
			EventType  string `json:"eventType"`
			DeadlineMs int64  `json:"deadlineMs"`
		}{e.Type, e.deadlineMs()})
	}
}
