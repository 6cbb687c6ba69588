package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// RegisterResponse is the body of a successful register call.
type RegisterResponse struct {
	FunctionName    string `json:"functionName"`
	FunctionVersion string `json:"functionVersion"`
	Handler         string `json:"handler"`
	// AccountID is sent only to extensions that ask for the accountId feature.
	AccountID string `json:"accountId,omitempty"`
}

// registerBody subscribes to both events: INVOKE drives refreshes, SHUTDOWN
// the drain and wipe.
var registerBody = []byte(`{"events":["INVOKE","SHUTDOWN"]}`)

// Register registers the extension under name, which for an external
// extension must be the executable's base name, and keeps the identifier
// Lambda assigns for all later calls.
func (c *Client) Register(ctx context.Context, name string) (RegisterResponse, error) {
	const op = "register"
	if name == "" {
		return RegisterResponse{}, errors.New("lifecycle: register: empty extension name")
	}
	hdr, body, err := c.do(ctx, call{
		op:     op,
		method: http.MethodPost,
		path:   "register",
		header: http.Header{headerName: {name}},
		body:   registerBody,
		want:   []int{http.StatusOK},
	})
	if err != nil {
		return RegisterResponse{}, err
	}
	id := hdr.Get(headerIdentifier)
	if id == "" {
		return RegisterResponse{}, fmt.Errorf("lifecycle: register: response has no %s header", headerIdentifier)
	}
	var resp RegisterResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return RegisterResponse{}, fmt.Errorf("lifecycle: register: decoding response: %w", err)
	}

	c.mu.Lock()
	c.id = id
	c.mu.Unlock()
	return resp, nil
}
