// Package faults_test holds the extension up against faults: AWS failing in
// every way the emulator's front can inject (aws_test.go), Lambda's
// Extensions API failing or cutting the extension short (lambda_test.go, and
// process_test.go for the built binary), hostile input through the real
// server (hostile_test.go), and a scan of every output for secret values
// (hygiene_test.go). Each test runs the whole extension (app.Run) in-process
// with the real AWS SDK clients against awstest, driven by the fake
// Extensions API, with the cache's clock injected — the harness of
// ../extension, copied so the two suites can grow apart.
package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/app"
	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/localserver"
)

const token = "faults-session-token"

// clock is the extension's cache clock, advanced by tests instead of waiting.
type clock struct {
	mu sync.Mutex // protects t
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// ext is one running extension.
type ext struct {
	aws    *awstest.AWS
	api    *extapitest.Server
	rec    *extapitest.Record
	clock  *clock
	addr   string
	out    *syncBuffer
	ready  chan struct{}
	result chan error
	done   chan struct{} // closed when Run has returned
	err    error         // Run's result, set before done is closed
	client *http.Client  // the function's client, with its own connections
}

type setup struct {
	env map[string]string
	// endpoint, if set, wraps the emulator's handler (to gate or time calls).
	endpoint func(http.Handler) http.Handler
	seed     func(ctx context.Context, a *awstest.AWS)
	faults   func(a *awstest.AWS)
	// before runs after the fake Extensions API exists and before Run.
	before func(api *extapitest.Server)
	// lambdaClient, if set, is the extension's Extensions API client.
	lambdaClient *http.Client
}

func start(t *testing.T, s setup) *ext {
	t.Helper()
	ctx := t.Context()
	e := &ext{
		aws:    awstest.Start(t),
		clock:  &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		out:    &syncBuffer{},
		ready:  make(chan struct{}),
		result: make(chan error, 1),
		done:   make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	t.Cleanup(e.client.CloseIdleConnections)
	if s.seed != nil {
		s.seed(ctx, e.aws)
	}
	if s.faults != nil {
		s.faults(e.aws)
	}
	endpoint := e.aws.URL
	if s.endpoint != nil {
		srv := &http.Server{Handler: s.endpoint(e.aws)}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		endpoint = "http://" + l.Addr().String()
	}
	// The SDK reads these from the process environment, as in Lambda.
	for _, kv := range e.aws.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint)
	t.Setenv("AWS_ENDPOINT_URL_SSM", endpoint)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	e.api, e.rec = extapitest.NewServer(t)
	if s.before != nil {
		s.before(e.api)
	}
	env := map[string]string{
		"AWS_LAMBDA_RUNTIME_API":                       e.api.Addr(),
		"AWS_SESSION_TOKEN":                            token,
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL":       "debug",
		"PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS": "3",
	}
	for k, v := range s.env {
		env[k] = v
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	runCtx, cancel := context.WithCancel(context.Background())
	go func() {
		err := app.Run(runCtx, app.Options{
			Getenv:     func(k string) string { return env[k] },
			Stdout:     e.out,
			Name:       "secrets-prefetch",
			Version:    "faults",
			Listener:   l,
			Ready:      func() { close(e.ready) },
			Now:        e.clock.Now,
			HTTPClient: s.lambdaClient,
		})
		e.err = err
		close(e.done)
		e.result <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-e.done:
		case <-time.After(20 * time.Second):
			t.Error("the extension did not stop")
		}
	})
	return e
}

// waitReady waits for the end of prefetch, failing the test if Run ends first.
func (e *ext) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-e.ready:
	case <-e.done:
		t.Fatalf("the extension stopped during Init: %v\n%s", e.err, e.out)
	case <-time.After(30 * time.Second):
		t.Fatalf("prefetch did not finish\n%s", e.out)
	}
	// Ready comes just before the first event/next; wait for that too, so
	// that invoke counts from it.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := e.rec.WaitNext(ctx, 1); err != nil {
		t.Fatalf("the extension did not ask for an event: %v\n%s", err, e.out)
	}
}

// wait waits for Run to return and returns its error.
func (e *ext) wait(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case <-e.done:
		return e.err
	case <-time.After(within):
		t.Fatalf("Run did not return within %v\n%s", within, e.out)
		return nil
	}
}

// invoke sends an INVOKE and waits until the extension asks for the next
// event, that is until its refresh is done.
func (e *ext) invoke(t *testing.T) {
	t.Helper()
	n := e.rec.NextCalls()
	e.api.Push(extapitest.Invoke(fmt.Sprintf("req-%d", n), time.Now().Add(10*time.Second)))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := e.rec.WaitNext(ctx, n+1); err != nil {
		t.Fatalf("the extension did not finish the INVOKE: %v\n%s", err, e.out)
	}
}

// response is one answer of the extension's server.
type response struct {
	status      int
	xcache      string
	age         string
	contentType string
	body        string
	err         error // a transport error: no answer at all
}

// code returns the error code of a JSON error body, or "" when the body is
// not one.
func (r response) code() string {
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(r.body), &b) != nil || b.Error.Message == "" {
		return ""
	}
	return b.Error.Code
}

func (r response) String() string {
	if r.err != nil {
		return "transport error: " + r.err.Error()
	}
	return fmt.Sprintf("%d X-Cache=%q %s", r.status, r.xcache, r.body)
}

// get reads path with the token.
func (e *ext) get(t *testing.T, path string) response {
	t.Helper()
	return e.do(t.Context(), http.MethodGet, path, localserver.TokenHeader, token)
}

// do sends one request with the given header pairs (none means no token).
func (e *ext) do(ctx context.Context, method, path string, header ...string) response {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+e.addr+path, nil)
	if err != nil {
		return response{err: err}
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{err: err}
	}
	return response{resp.StatusCode, resp.Header.Get("X-Cache"), resp.Header.Get("Age"), resp.Header.Get("Content-Type"), string(b), nil}
}

func secretPath(id string) string { return "/secretsmanager/get?secretId=" + id }
func paramPath(name string) string {
	return "/systemsmanager/parameters/get?withDecryption=true&name=" + name
}

// valueOf returns SecretString or Parameter.Value from a success body.
func valueOf(t *testing.T, r response) string {
	t.Helper()
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("want 200, got %v", r)
	}
	var b struct {
		SecretString *string
		Parameter    *struct{ Value *string }
	}
	if err := json.Unmarshal([]byte(r.body), &b); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	switch {
	case b.SecretString != nil:
		return *b.SecretString
	case b.Parameter != nil && b.Parameter.Value != nil:
		return *b.Parameter.Value
	}
	t.Fatalf("body has no value: %s", r.body)
	return ""
}

// gate holds the calls of one operation at the endpoint until released,
// telling the test when one has arrived.
type gate struct {
	op      string
	arrived chan struct{} // receives once per held call
	release chan struct{}
	once    sync.Once
}

func newGate(op string) *gate {
	return &gate{op: op, arrived: make(chan struct{}, 1024), release: make(chan struct{})}
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if opOf(r) == g.op {
			g.arrived <- struct{}{}
			select {
			case <-g.release:
			case <-r.Context().Done():
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// opOf names a request's operation as awstest does.
func opOf(r *http.Request) string {
	target := r.Header.Get("X-Amz-Target")
	if action, ok := strings.CutPrefix(target, "AmazonSSM."); ok {
		return "ssm." + action
	}
	return target
}

func recv(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

type syncBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
