package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// Error types reported with InitError and ExitError. Lambda shows the type
// (not the message) in the function's error, so each names a distinct cause.
const (
	ErrorTypeConfigInvalid  = "Extension.ConfigInvalid"
	ErrorTypePrefetchFailed = "Extension.PrefetchFailed"
	ErrorTypeRuntimeError   = "Extension.RuntimeError"
)

// errorReport is the JSON body of init/error and exit/error, in the shape
// Lambda uses for function errors.
type errorReport struct {
	ErrorMessage string   `json:"errorMessage"`
	ErrorType    string   `json:"errorType"`
	StackTrace   []string `json:"stackTrace"`
}

// InitError tells Lambda that Init failed; Lambda then fails the Init phase
// with errorType and the extension should exit. err's message is sent as
// the errorMessage (empty for a nil err), so it must hold no secret values.
func (c *Client) InitError(ctx context.Context, errorType string, err error) error {
	return c.reportError(ctx, "init error", "init/error", errorType, err)
}

// ExitError tells Lambda the extension is about to exit because of an
// unrecoverable error, so Lambda resets the environment instead of waiting.
// err's message is sent as the errorMessage, so it must hold no secret values.
func (c *Client) ExitError(ctx context.Context, errorType string, err error) error {
	return c.reportError(ctx, "exit error", "exit/error", errorType, err)
}

func (c *Client) reportError(ctx context.Context, op, path, errorType string, cause error) error {
	if errorType == "" {
		return fmt.Errorf("lifecycle: %s: empty error type", op)
	}
	id, err := c.registeredID(op)
	if err != nil {
		return err
	}
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	body, err := json.Marshal(errorReport{ErrorMessage: msg, ErrorType: errorType, StackTrace: []string{}})
	if err != nil {
		return fmt.Errorf("lifecycle: %s: %w", op, err)
	}
	_, _, err = c.do(ctx, call{
		op:     op,
		method: http.MethodPost,
		path:   path,
		header: http.Header{headerIdentifier: {id}, headerErrorType: {errorType}},
		body:   body,
		// Lambda answers 202 Accepted; 200 is accepted too as it means the same.
		want: []int{http.StatusAccepted, http.StatusOK},
	})
	return err
}
