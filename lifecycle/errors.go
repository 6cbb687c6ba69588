package lifecycle

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrNotRegistered is returned by calls that need the extension identifier
// when Register has not succeeded yet.
var ErrNotRegistered = errors.New("extension not registered")

// APIError is an answer from the Extensions API with an unexpected status.
// Lambda answers 403 for protocol errors (unknown identifier, invalid state)
// and 500 for its own failures.
type APIError struct {
	Op     string // the call, e.g. "register" or "next"
	Status int    // HTTP status code
	Type   string // errorType of Lambda's JSON error body, if there was one
	Body   string // the start of the response body (at most 1 KiB)
}

func newAPIError(op string, status int, body []byte) *APIError {
	e := &APIError{Op: op, Status: status, Body: string(body)}
	var lambdaErr struct {
		ErrorType string `json:"errorType"`
	}
	if json.Unmarshal(body, &lambdaErr) == nil {
		e.Type = lambdaErr.ErrorType
	}
	return e
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lifecycle: %s: unexpected status %d %s", e.Op, e.Status, http.StatusText(e.Status))
	if body := strings.TrimSpace(e.Body); body != "" {
		fmt.Fprintf(&b, ": %q", body)
	}
	return b.String()
}

// transportError marks a failure to exchange a request and response at all
// (refused, reset, closed mid-body): the kind NextWithRetry retries.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }
