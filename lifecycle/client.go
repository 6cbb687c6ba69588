package lifecycle

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
)

// Header names and the API version of the Extensions API.
const (
	headerName       = "Lambda-Extension-Name"
	headerIdentifier = "Lambda-Extension-Identifier"
	headerErrorType  = "Lambda-Extension-Function-Error-Type"

	apiVersion = "2020-01-01"
)

// Body size limits. Extensions API bodies are small JSON documents; the limits
// only stop a misbehaving peer from making us buffer without bound.
const (
	maxBodyBytes      = 1 << 20 // a successful response body
	maxErrorBodyBytes = 1 << 10 // the snippet of an error body kept in APIError
)

// Client talks to the Extensions API of one execution environment.
// It is safe for concurrent use.
type Client struct {
	baseURL string // http://{AWS_LAMBDA_RUNTIME_API}/2020-01-01/extension/
	hc      *http.Client

	mu sync.Mutex // protects id
	id string     // Lambda-Extension-Identifier from Register
}

// NewClient returns a client for the Extensions API at runtimeAPI, the value
// of AWS_LAMBDA_RUNTIME_API (host:port, no scheme).
//
// If hc is nil the client uses one with no overall Timeout: the event/next
// long poll blocks until Lambda has the next event, which may be hours away
// (the environment is frozen between invokes), so any client-wide timeout
// would cut it off. Bound individual calls with their ctx instead. A caller
// passing its own hc must not set Timeout either, for the same reason.
func NewClient(runtimeAPI string, hc *http.Client) *Client {
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// The Runtime API is local to the sandbox; a function's HTTP_PROXY
		// settings are for its own outbound traffic, never for this.
		t.Proxy = nil
		hc = &http.Client{Transport: t} // no Timeout: see above
	}
	return &Client{
		baseURL: "http://" + runtimeAPI + "/" + apiVersion + "/extension/",
		hc:      hc,
	}
}

// ExtensionID returns the Lambda-Extension-Identifier that Register kept,
// or "" before a successful Register.
func (c *Client) ExtensionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// registeredID returns the identifier or ErrNotRegistered, so that calls
// which Lambda would refuse with 403 fail here with a clearer error.
func (c *Client) registeredID(op string) (string, error) {
	id := c.ExtensionID()
	if id == "" {
		return "", fmt.Errorf("lifecycle: %s: %w", op, ErrNotRegistered)
	}
	return id, nil
}

// call is one Extensions API request.
type call struct {
	op     string // for errors, e.g. "register"
	method string
	path   string // relative to baseURL
	header http.Header
	body   []byte // nil for none
	want   []int  // acceptable statuses
}

// do sends the request and returns the response headers and body when the
// status is one of c.want. Every other status becomes an *APIError.
func (c *Client) do(ctx context.Context, r call) (http.Header, []byte, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.baseURL+r.path, body)
	if err != nil {
		return nil, nil, fmt.Errorf("lifecycle: %s: %w", r.op, err)
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, c.transportErr(ctx, r.op, err)
	}
	defer resp.Body.Close()

	if !slices.Contains(r.want, resp.StatusCode) {
		// A short read is fine here: the snippet is for humans.
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
		return nil, nil, newAPIError(r.op, resp.StatusCode, snippet)
	}

	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return nil, nil, c.transportErr(ctx, r.op, err)
	}
	if len(data) > maxBodyBytes {
		return nil, nil, fmt.Errorf("lifecycle: %s: response body larger than %d bytes", r.op, maxBodyBytes)
	}
	return resp.Header, data, nil
}

// transportErr reports ctx's own error when ctx has ended, so callers can
// test errors.Is(err, context.Canceled) without digging through url.Error.
func (c *Client) transportErr(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("lifecycle: %s: %w", op, ctxErr)
	}
	return fmt.Errorf("lifecycle: %s: %w", op, &transportError{err: err})
}
