// Package exttest runs the whole extension (app.Run) in-process for the
// integration suites: with the real AWS SDK clients against the emulated AWS
// (awstest), driven through the Lambda lifecycle by the fake Extensions API
// (internal/extapitest), and with the cache's clock injected so that tests
// move time on instead of waiting for it.
//
// The suites that use it (../extension for behaviour, ../faults for faults
// and hostile input, ../soak for load) each had their own copy of this
// harness, and the copies had begun to differ: one waited for the first
// event/next after Ready and the others did not, only one could tell when a
// read had reached the server, only one reported transport errors instead
// of failing from a reader's goroutine. A fix made in one copy was missing
// from the others. There is now one harness, with what each suite needs.
//
// It is a normal package rather than a _test file so that the suites, each
// an external test package of its own, can share it; it is test-only all
// the same, and nothing outside this module imports it.
package exttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/app"
	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/localserver"
)

// Token is the session token the extension is started with, and so the one
// its server wants in the X-Aws-Parameters-Secrets-Token header. Get sends
// it; tests that build their own requests use it too, and the hygiene scan
// looks for it in the output.
const Token = "exttest-session-token"

// stopWithin is how long a test's cleanup waits for Run to return once its
// context is cancelled before it reports the extension did not stop. The
// slowest stop measured across the three suites under -race is about 2 s.
const stopWithin = 10 * time.Second

// Clock is the extension's cache clock (app.Options.Now). Tests advance it
// instead of sleeping past TTLs and backoffs. It starts at a fixed instant.
type Clock struct {
	mu sync.Mutex // protects t
	t  time.Time
}

// NewClock returns a Clock at the fixed instant the suites start from.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Setup is what a test asks of the extension and its world. The zero Setup
// starts an extension with nothing to prefetch against an empty AWS.
type Setup struct {
	// Env is the extension's configuration, on top of the defaults: the
	// fake Extensions API's address, Token, debug logging and at most 3
	// connections to AWS. An entry here replaces a default.
	Env map[string]string
	// Endpoint, if set, wraps the emulator's handler, so that a test can
	// gate or time the extension's AWS calls; the extension is pointed at
	// the wrapped handler.
	Endpoint func(http.Handler) http.Handler
	// Seed, if set, writes what AWS holds before the extension starts.
	Seed func(ctx context.Context, a *awstest.AWS)
	// Faults, if set, injects AWS faults after Seed (so that seeding is not
	// hit by them) and before the extension starts.
	Faults func(a *awstest.AWS)
	// Before, if set, runs once the fake Extensions API exists and before
	// Run, to inject Lambda faults from the first call.
	Before func(api *extapitest.Server)
	// LambdaClient, if set, is the extension's Extensions API client
	// (app.Options.HTTPClient), for faults below the HTTP layer.
	LambdaClient *http.Client
	// Clocks, if set, are the clocks SnapStart restore detection compares.
	Clocks app.Clocks
	// SelfEndpoints sets AWS_ENDPOINT_URL_SECRETS_MANAGER and
	// AWS_ENDPOINT_URL_SSM to the extension's own address, as a function
	// using the AWS API endpoint sets them for its whole environment, and
	// AWS_ENDPOINT_URL to the emulated AWS.
	SelfEndpoints bool
}

// Ext is one running extension and its world. Start stops it when the test
// ends, if it has not stopped by then.
type Ext struct {
	AWS   *awstest.AWS       // the emulated AWS it talks to
	API   *extapitest.Server // the fake Extensions API driving it
	Rec   *extapitest.Record // what it sent to the Extensions API
	Clock *Clock             // its cache clock
	Addr  string             // its server's host:port
	Out   *SyncBuffer        // its log (stdout)
	// Client is the function's HTTP client, with connections of its own so
	// that one test's idle connections do not serve another's requests.
	Client *http.Client
	// Accepted receives a value each time the extension's server accepts a
	// connection (while the buffer has room), so that a test knows its
	// request has arrived.
	Accepted <-chan struct{}

	ready chan struct{} // closed by Ready, at the end of prefetch
	done  chan struct{} // closed when Run has returned
	err   error         // Run's result, set before done is closed
}

// Start seeds an emulated AWS, starts the fake Extensions API and runs the
// extension against both in a goroutine. It returns without waiting for
// prefetch (see WaitReady), so that a test may act during Init. The AWS
// settings the SDK reads from the process environment are set with
// t.Setenv, as Lambda sets them, so tests using Start cannot be parallel.
func Start(t testing.TB, s Setup) *Ext {
	t.Helper()
	ctx := t.Context()
	accepted := make(chan struct{}, 64)
	e := &Ext{
		AWS:      awstest.Start(t),
		Clock:    NewClock(),
		Out:      &SyncBuffer{},
		Client:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		Accepted: accepted,
		ready:    make(chan struct{}),
		done:     make(chan struct{}),
	}
	t.Cleanup(e.Client.CloseIdleConnections)
	if s.Seed != nil {
		s.Seed(ctx, e.AWS)
	}
	if s.Faults != nil {
		s.Faults(e.AWS)
	}
	endpoint := e.AWS.URL
	if s.Endpoint != nil {
		srv := &http.Server{Handler: s.Endpoint(e.AWS)}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		endpoint = "http://" + l.Addr().String()
	}
	// The SDK reads these from the process environment, as in Lambda.
	for _, kv := range e.AWS.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.Addr = l.Addr().String()
	if s.SelfEndpoints {
		t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://"+e.Addr)
		t.Setenv("AWS_ENDPOINT_URL_SSM", "http://"+e.Addr)
		t.Setenv("AWS_ENDPOINT_URL", endpoint)
	} else {
		t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint)
		t.Setenv("AWS_ENDPOINT_URL_SSM", endpoint)
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	// Nor a developer's own AWS configuration (profiles, credentials).
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)

	e.API, e.Rec = extapitest.NewServer(t)
	if s.Before != nil {
		s.Before(e.API)
	}
	env := map[string]string{
		"AWS_LAMBDA_RUNTIME_API":                       e.API.Addr(),
		"AWS_SESSION_TOKEN":                            Token,
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL":       "debug",
		"PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS": "3",
	}
	for k, v := range s.Env {
		env[k] = v
	}
	runCtx, cancel := context.WithCancel(context.Background())
	go func() {
		e.err = app.Run(runCtx, app.Options{
			Getenv:     func(k string) string { return env[k] },
			Stdout:     e.Out,
			Name:       "secrets-prefetch",
			Version:    "exttest",
			Listener:   &signalListener{Listener: l, accepted: accepted},
			Ready:      func() { close(e.ready) },
			Now:        e.Clock.Now,
			HTTPClient: s.LambdaClient,
			Clocks:     s.Clocks,
		})
		close(e.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-e.done:
		case <-time.After(stopWithin):
			t.Error("the extension did not stop")
		}
	})
	return e
}

// WaitReady waits for the end of prefetch and then for the extension's first
// event/next, failing the test if Run returns first. Ready comes just before
// that first event/next; waiting for it too means an Invoke that follows
// counts from it rather than racing it.
func (e *Ext) WaitReady(t testing.TB) {
	t.Helper()
	select {
	case <-e.ready:
	case <-e.done:
		t.Fatalf("the extension stopped during Init: %v\n%s", e.err, e.Out)
	case <-time.After(30 * time.Second):
		t.Fatalf("prefetch did not finish\n%s", e.Out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := e.Rec.WaitNext(ctx, 1); err != nil {
		t.Fatalf("the extension did not ask for an event: %v\n%s", err, e.Out)
	}
}

// Wait waits for Run to return and returns its error, failing the test if
// that takes longer than within.
func (e *Ext) Wait(t testing.TB, within time.Duration) error {
	t.Helper()
	select {
	case <-e.done:
		return e.err
	case <-time.After(within):
		t.Fatalf("Run did not return within %v\n%s", within, e.Out)
		return nil
	}
}

// Done is closed when Run has returned; Err then tells what it returned.
func (e *Ext) Done() <-chan struct{} { return e.done }

// Err is what Run returned. Call it only once Done is closed.
func (e *Ext) Err() error { return e.err }

// Invoke sends an INVOKE and waits until the extension asks for the next
// event, that is until its refresh on the INVOKE is done.
func (e *Ext) Invoke(t testing.TB) {
	t.Helper()
	n := e.Rec.NextCalls()
	e.API.Push(extapitest.Invoke(fmt.Sprintf("req-%d", n), time.Now().Add(10*time.Second)))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := e.Rec.WaitNext(ctx, n+1); err != nil {
		t.Fatalf("the extension did not finish the INVOKE: %v\n%s", err, e.Out)
	}
}

// Response is one answer of the extension's server, or the transport error
// that took its place. It carries no testing.TB, so that reads made from
// other goroutines report through it instead of failing the test there.
type Response struct {
	Status      int
	XCache      string // the X-Cache header: hit, miss or stale
	Age         string // the Age header
	Region      string // the X-Secrets-Prefetch-Region header: the failover region that answered
	ContentType string
	Body        string
	Err         error // a transport error: no answer at all
}

// Code returns the error code of a JSON error body, or "" when the body is
// not one.
func (r Response) Code() string {
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(r.Body), &b) != nil || b.Error.Message == "" {
		return ""
	}
	return b.Error.Code
}

func (r Response) String() string {
	if r.Err != nil {
		return "transport error: " + r.Err.Error()
	}
	return fmt.Sprintf("%d X-Cache=%q %s", r.Status, r.XCache, r.Body)
}

// Get reads path (SecretPath, ParamPath, or any other) with the token, as the
// function would. It is safe to call from any goroutine.
func (e *Ext) Get(t testing.TB, path string) Response {
	return e.Do(t.Context(), http.MethodGet, path, localserver.TokenHeader, Token)
}

// Do sends one request with the given header name/value pairs (none means
// no token) and reads the whole answer.
func (e *Ext) Do(ctx context.Context, method, path string, header ...string) Response {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+e.Addr+path, nil)
	if err != nil {
		return Response{Err: err}
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.Client.Do(req)
	if err != nil {
		return Response{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{Err: err}
	}
	return Response{
		Status:      resp.StatusCode,
		XCache:      resp.Header.Get("X-Cache"),
		Age:         resp.Header.Get("Age"),
		Region:      resp.Header.Get(localserver.RegionHeader),
		ContentType: resp.Header.Get("Content-Type"),
		Body:        string(b),
	}
}

// SecretPath is the extension's path for reading secret id.
func SecretPath(id string) string { return "/secretsmanager/get?secretId=" + id }

// ParamPath is the extension's path for reading parameter name, decrypted.
func ParamPath(name string) string {
	return "/systemsmanager/parameters/get?withDecryption=true&name=" + name
}

// ValueOf returns the SecretString or Parameter.Value of a success body,
// failing the test if r is not one.
func ValueOf(t testing.TB, r Response) string {
	t.Helper()
	if r.Err != nil || r.Status != http.StatusOK {
		t.Fatalf("want 200, got %v", r)
	}
	var b struct {
		SecretString *string
		Parameter    *struct{ Value *string }
	}
	if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	switch {
	case b.SecretString != nil:
		return *b.SecretString
	case b.Parameter != nil && b.Parameter.Value != nil:
		return *b.Parameter.Value
	}
	t.Fatalf("body has no value: %s", r.Body)
	return ""
}

// Names returns n names: prefix followed by 00, 01, and so on.
func Names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// signalListener tells Ext.Accepted of each connection it accepts.
type signalListener struct {
	net.Listener
	accepted chan<- struct{}
}

func (l *signalListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		select {
		case l.accepted <- struct{}{}:
		default:
		}
	}
	return c, err
}

// SyncBuffer is a bytes.Buffer safe for concurrent use: the extension
// writes its log from many goroutines while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Must fails the test on a non-nil error and otherwise returns the value,
// for seeding in one line: Must[string](t)(a.PutSecretString(ctx, id, v)).
func Must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
