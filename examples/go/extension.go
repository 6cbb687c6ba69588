package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Client reads secrets and parameters from the secrets-prefetch extension
// (or AWS's Parameters and Secrets extension: the API is the same) on
// 127.0.0.1. It is safe for concurrent use.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a Client for the port the extension listens on
// (PARAMETERS_SECRETS_EXTENSION_HTTP_PORT, default 2773).
func NewClient() *Client {
	port := os.Getenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")
	if port == "" {
		port = "2773"
	}
	// Longer than the extension's own AWS timeouts (5 s by default), so a
	// slow AWS comes back as the extension's 504 rather than our timeout.
	return &Client{base: "http://127.0.0.1:" + port, http: &http.Client{Timeout: 10 * time.Second}}
}

// Secret is the part of the GetSecretValue response the example uses.
type Secret struct {
	ARN          string
	Name         string
	VersionId    string
	SecretString string
}

// Parameter is the part of the GetParameter response the example uses.
type Parameter struct {
	Name    string
	Type    string
	Value   string
	Version int64
}

// Secret reads a secret's current version.
func (c *Client) Secret(ctx context.Context, id string) (*Secret, error) {
	body, err := c.get(ctx, "/secretsmanager/get", url.Values{"secretId": {id}})
	if err != nil {
		return nil, err
	}
	var s Secret
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("secret %s: decoding the response: %w", id, err)
	}
	return &s, nil
}

// SecretJSONKey reads one top-level key of a secret whose value is JSON.
func (c *Client) SecretJSONKey(ctx context.Context, id, key string) (string, error) {
	body, err := c.get(ctx, "/secretsmanager/get", url.Values{"secretId": {id}, "jsonKey": {key}})
	return string(body), err
}

// Parameter reads a parameter, SecureStrings decrypted.
func (c *Client) Parameter(ctx context.Context, name string) (*Parameter, error) {
	body, err := c.get(ctx, "/systemsmanager/parameters/get", url.Values{"name": {name}, "withDecryption": {"true"}})
	if err != nil {
		return nil, err
	}
	var out struct{ Parameter Parameter }
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("parameter %s: decoding the response: %w", name, err)
	}
	return &out.Parameter, nil
}

func (c *Client) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Aws-Parameters-Secrets-Token", token())
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &ExtensionUnavailableError{Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, &ExtensionUnavailableError{Err: err}
	}
	if resp.StatusCode == http.StatusOK {
		return body, nil
	}
	return nil, statusError(resp.StatusCode, q, body)
}

// token is the extension's auth token: the session token, or under SnapStart
// the container authorization token. Read per request: cheap, and right
// after a SnapStart restore.
func token() string {
	if t := os.Getenv("AWS_SESSION_TOKEN"); t != "" {
		return t
	}
	return os.Getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
}

// The errors a read can end with, one type per way it can fail, so the
// function (and Lambda's errorType, which is the type's name) tells them
// apart. Temporary reports whether trying again later may help.

// NotFoundError: the secret or parameter (or that version of it) does not
// exist, or the extension is told not to serve it (NotConfigured). Fix the
// name or the configuration; retrying won't help.
type NotFoundError struct{ Code, Message string }

// AccessDeniedError: the function's role may not read the item
// (AccessDeniedException; kms:Decrypt for a customer managed key), or the
// token was refused. Fix the IAM policy; retrying won't help.
type AccessDeniedError struct{ Code, Message string }

// UpstreamError: AWS failed (throttling, 5xx, connection) and the extension
// had no value to serve in its place. Temporary.
type UpstreamError struct{ Code, Message string }

// UpstreamTimeoutError: AWS did not answer within the extension's timeout.
// Temporary.
type UpstreamTimeoutError struct{ Code, Message string }

// ExtensionError: any other answer (400 for a bad request, 503 while the
// extension shuts down...).
type ExtensionError struct {
	Status        int
	Code, Message string
}

// ExtensionUnavailableError: no answer from the extension at all (not in
// the function's layers, or on another port).
type ExtensionUnavailableError struct{ Err error }

func (e *NotFoundError) Error() string        { return "not found: " + e.Code + ": " + e.Message }
func (e *AccessDeniedError) Error() string    { return "access denied: " + e.Code + ": " + e.Message }
func (e *UpstreamError) Error() string        { return "AWS failed: " + e.Code + ": " + e.Message }
func (e *UpstreamTimeoutError) Error() string { return "AWS timed out: " + e.Code + ": " + e.Message }
func (e *ExtensionError) Error() string {
	return fmt.Sprintf("extension answered %d: %s: %s", e.Status, e.Code, e.Message)
}
func (e *ExtensionUnavailableError) Error() string {
	return "secrets-prefetch extension unreachable (is the layer attached?): " + e.Err.Error()
}
func (e *ExtensionUnavailableError) Unwrap() error { return e.Err }

func (*NotFoundError) Temporary() bool        { return false }
func (*AccessDeniedError) Temporary() bool    { return false }
func (*UpstreamError) Temporary() bool        { return true }
func (*UpstreamTimeoutError) Temporary() bool { return true }
func (e *ExtensionError) Temporary() bool {
	return e.Status == http.StatusServiceUnavailable || e.Status == http.StatusTooManyRequests
}
func (*ExtensionUnavailableError) Temporary() bool { return true }

// statusError maps an error answer to its type. The body is
// {"error":{"code":...,"message":...}} from secrets-prefetch; AWS's own
// extension answers every failure with 400 and a plain text body, which
// lands in ExtensionError.
func statusError(status int, q url.Values, body []byte) error {
	var e struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		e.Error.Code, e.Error.Message = http.StatusText(status), strings.TrimSpace(string(body))
	}
	code, msg := e.Error.Code, e.Error.Message+" ("+describe(q)+")"
	switch status {
	case http.StatusNotFound:
		return &NotFoundError{code, msg}
	case http.StatusUnauthorized, http.StatusForbidden:
		return &AccessDeniedError{code, msg}
	case http.StatusBadGateway:
		return &UpstreamError{code, msg}
	case http.StatusGatewayTimeout:
		return &UpstreamTimeoutError{code, msg}
	}
	return &ExtensionError{status, code, msg}
}

// describe names what was asked for, for messages: names, never values.
func describe(q url.Values) string {
	if id := q.Get("secretId"); id != "" {
		return "secret " + id
	}
	return "parameter " + q.Get("name")
}

// temporary reports whether err says trying again later may help.
func temporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
