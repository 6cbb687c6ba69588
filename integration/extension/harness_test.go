// Package extension_test runs the whole extension (app.Run) in-process with
// the real AWS SDK clients against the emulated AWS (awstest: kumo behind a
// fault-injecting front), driven through the Lambda lifecycle by a fake
// Extensions API. The end-to-end suite under AWS's Runtime Interface
// Emulator is in ../rie.
package extension_test

import (
	"bytes"
	"context"
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

const token = "integration-session-token"

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
	// accepted receives a value each time the extension's server accepts
	// a connection, so a test knows its request has arrived.
	accepted chan struct{}
}

type setup struct {
	env map[string]string
	// endpoint, if set, wraps the emulator's handler (to gate calls).
	endpoint func(http.Handler) http.Handler
	seed     func(ctx context.Context, a *awstest.AWS)
	faults   func(a *awstest.AWS)
}

func start(t *testing.T, s setup) *ext {
	t.Helper()
	ctx := t.Context()
	e := &ext{
		aws:      awstest.Start(t),
		clock:    &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		out:      &syncBuffer{},
		ready:    make(chan struct{}),
		result:   make(chan error, 1),
		accepted: make(chan struct{}, 64),
	}
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
		e.result <- app.Run(runCtx, app.Options{
			Getenv:   func(k string) string { return env[k] },
			Stdout:   e.out,
			Name:     "secrets-prefetch",
			Version:  "integration",
			Listener: &signalListener{Listener: l, accepted: e.accepted},
			Ready:    func() { close(e.ready) },
			Now:      e.clock.Now,
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-e.result:
		case <-time.After(10 * time.Second):
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
	case err := <-e.result:
		t.Fatalf("the extension stopped during Init: %v\n%s", err, e.out)
	case <-time.After(30 * time.Second):
		t.Fatalf("prefetch did not finish\n%s", e.out)
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
		t.Fatalf("the extension did not finish the INVOKE: %v", err)
	}
}

type response struct {
	status int
	xcache string
	age    string
	body   string
}

func (e *ext) get(t *testing.T, path string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+e.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(localserver.TokenHeader, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header.Get("X-Cache"), resp.Header.Get("Age"), string(b)}
}

// value reads a secret's or parameter's value through jsonKey-free text:
// the secretString or Parameter.Value field of the body.
func secretPath(id string) string { return "/secretsmanager/get?secretId=" + id }
func paramPath(name string) string {
	return "/systemsmanager/parameters/get?withDecryption=true&name=" + name
}

type signalListener struct {
	net.Listener
	accepted chan struct{}
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

type syncBuffer struct {
	mu sync.Mutex
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
