package zerocode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

const (
	testToken   = "session-token-for-wrapper-tests"
	valueAPIKey = "api-key-5d2f-must-not-leak"
	valueURL    = "https://internal.example/api-url-must-not-leak"
)

// fakeExtension stands in for the extension's HTTP API: what it serves, in
// the API's shapes, and a record of the requests.
type fakeExtension struct {
	mu       sync.Mutex // protects the fields below
	secrets  map[string]string
	binary   map[string]bool
	params   map[string]string // by name with selector, e.g. "/app/x:3"
	notReady int               // answer 503 to this many more requests
	pingWait int               // answer /ping 503 this many more times
	requests []string
}

func newFakeExtension() *fakeExtension {
	return &fakeExtension{
		secrets: map[string]string{
			"prod/db":  `{"username":"admin","password":"` + valueDB + `","port":5432}`,
			"api-key":  valueAPIKey,
			"keystore": "",
		},
		binary: map[string]bool{"keystore": true},
		params: map[string]string{"/app/api-url": valueURL, "/app/x:3": "three"},
	}
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (f *fakeExtension) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.URL.RequestURI())
	if f.notReady > 0 {
		f.notReady--
		apiError(w, http.StatusServiceUnavailable, "NotReady", "not ready")
		return
	}
	if r.URL.Path == "/ping" {
		if f.pingWait != 0 {
			f.pingWait--
			apiError(w, http.StatusServiceUnavailable, "NotReady", "prefetch is still running")
			return
		}
		w.Write([]byte("ready"))
		return
	}
	if r.Header.Get("X-Aws-Parameters-Secrets-Token") != testToken {
		apiError(w, http.StatusForbidden, "InvalidToken", "bad token")
		return
	}
	q := r.URL.Query()
	switch r.URL.Path {
	case "/secretsmanager/get":
		id := q.Get("secretId")
		v, ok := f.secrets[id]
		if !ok {
			apiError(w, http.StatusNotFound, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
			return
		}
		body := map[string]any{"Name": id, "SecretString": v, "SecretBinary": nil}
		if f.binary[id] {
			body["SecretString"], body["SecretBinary"] = nil, []byte{0, 1, 2}
		}
		json.NewEncoder(w).Encode(body)
	case "/systemsmanager/parameters/get":
		if q.Get("withDecryption") != "true" {
			apiError(w, http.StatusBadRequest, "Test", "want withDecryption=true")
			return
		}
		v, ok := f.params[q.Get("name")]
		if !ok {
			apiError(w, http.StatusNotFound, "ParameterNotFound", "no such parameter")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{"Name": q.Get("name"), "Value": v}})
	default:
		apiError(w, http.StatusNotFound, "UnknownPath", "no")
	}
}

func (f *fakeExtension) requestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// execRecord is what the injected exec saw.
type execRecord struct {
	called     bool
	argv0      string
	argv, envv []string
}

func (r *execRecord) env(name string) (string, bool) {
	v := ""
	found := false
	for _, kv := range r.envv {
		if k, val, _ := strings.Cut(kv, "="); k == name {
			if found {
				return "DUPLICATE", true
			}
			v, found = val, true
		}
	}
	return v, found
}

type wrapperRun struct {
	code   int
	stderr string
	exec   execRecord
}

// runWrapper runs RunWrapper against srv with env (port and token added).
func runWrapper(t *testing.T, srv *httptest.Server, env map[string]string, opts ...func(*WrapperOptions)) wrapperRun {
	t.Helper()
	full := map[string]string{
		"AWS_SESSION_TOKEN":                      testToken,
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL": "debug",
		"KEEP":                                   "kept",
	}
	if srv != nil {
		full["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"] = fmt.Sprint(srv.Listener.Addr().(*net.TCPAddr).Port)
	}
	for k, v := range env {
		full[k] = v
	}
	var environ []string
	for k, v := range full {
		environ = append(environ, k+"="+v)
	}
	var run wrapperRun
	var stderr bytes.Buffer
	o := WrapperOptions{
		Args:    []string{"/var/lang/bin/python3", "-m", "awslambdaric", "app.handler", "with space"},
		Getenv:  func(k string) string { return full[k] },
		Environ: environ,
		Stderr:  &stderr,
		LookPath: func(file string) (string, error) {
			return file, nil
		},
		Exec: func(argv0 string, argv, envv []string) error {
			run.exec = execRecord{true, argv0, argv, envv}
			return errors.New("exec recorded (test)")
		},
	}
	for _, opt := range opts {
		opt(&o)
	}
	run.code = RunWrapper(t.Context(), o)
	run.stderr = stderr.String()
	for _, v := range []string{valueDB, valueAPIKey, valueURL} {
		if strings.Contains(run.stderr, v) {
			t.Errorf("a value reached the wrapper's output:\n%s", run.stderr)
		}
	}
	return run
}

func startFake(t *testing.T) (*fakeExtension, *httptest.Server) {
	t.Helper()
	f := newFakeExtension()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func TestWrapperSetsVariablesAndExecs(t *testing.T) {
	fake, srv := startFake(t)
	run := runWrapper(t, srv, map[string]string{
		"SECRETS_PREFETCH_ENV": "DB_PASSWORD=secret:prod/db#password, DB_PORT=secret:prod/db#port, API_KEY=secret:api-key," +
			"API_URL=param:/app/api-url, OLD=param:/app/x:3, MISSING?=secret:nope, KEEP?=param:/nope, DB_JSON=secret:prod/db",
		"MISSING": "", // set by the user, and left alone
	})
	if !run.exec.called {
		t.Fatalf("runtime not exec'd (exit %d):\n%s", run.code, run.stderr)
	}
	if want := []string{"/var/lang/bin/python3", "-m", "awslambdaric", "app.handler", "with space"}; run.exec.argv0 != want[0] || !slices.Equal(run.exec.argv, want) {
		t.Errorf("exec %q %q, want the arguments unchanged %q", run.exec.argv0, run.exec.argv, want)
	}
	for name, want := range map[string]string{
		"DB_PASSWORD": valueDB, "DB_PORT": "5432", "API_KEY": valueAPIKey, "API_URL": valueURL, "OLD": "three",
		"KEEP": "kept", "MISSING": "", "AWS_SESSION_TOKEN": testToken,
		"DB_JSON": `{"username":"admin","password":"` + valueDB + `","port":5432}`,
	} {
		if got, ok := run.exec.env(name); !ok || got != want {
			t.Errorf("%s = %q (set %v), want %q", name, got, ok, want)
		}
	}
	if run.code != 126 {
		t.Errorf("exit code after a failed exec = %d, want 126", run.code)
	}
	for _, want := range []string{"optional variable not set: MISSING", "element=6", "ResourceNotFoundException", "environment set"} {
		if !strings.Contains(run.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, run.stderr)
		}
	}
	if n := fake.requestCount(); n != 8 {
		t.Errorf("%d requests, want one per entry (8)", n)
	}
}

func TestWrapperRequiredFailure(t *testing.T) {
	tests := []struct {
		mapping string
		want    []string
	}{
		{"OK=secret:api-key, DB_PASSWORD=secret:prod/nope", []string{"DB_PASSWORD", "element=2", "DB_PASSWORD=secret:prod/nope", "status=404", "code=ResourceNotFoundException"}},
		{"P=param:/app/nope", []string{"element=1", "status=404", "ParameterNotFound"}},
		{"DB=secret:prod/db#nokey", []string{"element=1", "JSONKeyNotFound"}},
		{"DB=secret:api-key#k", []string{"element=1", "ValueNotJSON"}},
		{"KS=secret:keystore", []string{"element=1", "BinaryValue", "SECRETS_PREFETCH_FILES"}},
	}
	for _, tc := range tests {
		t.Run(tc.mapping, func(t *testing.T) {
			_, srv := startFake(t)
			run := runWrapper(t, srv, map[string]string{"SECRETS_PREFETCH_ENV": tc.mapping})
			if run.exec.called || run.code != 1 {
				t.Fatalf("exec called %v, exit %d; want exit 1 without exec\n%s", run.exec.called, run.code, run.stderr)
			}
			for _, want := range append(tc.want, "not starting the runtime") {
				if !strings.Contains(run.stderr, want) {
					t.Errorf("output lacks %q:\n%s", want, run.stderr)
				}
			}
		})
	}
}

func TestWrapperBadMapping(t *testing.T) {
	fake, srv := startFake(t)
	run := runWrapper(t, srv, map[string]string{"SECRETS_PREFETCH_ENV": "A=secret:a, AWS_REGION=param:/r, B=sekret:b"})
	if run.exec.called || run.code != 1 {
		t.Fatalf("exec %v, exit %d; want exit 1\n%s", run.exec.called, run.code, run.stderr)
	}
	for _, want := range []string{"SECRETS_PREFETCH_ENV: element 2", "AWS_REGION=param:/r", "element 3", "B=sekret:b"} {
		if !strings.Contains(run.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, run.stderr)
		}
	}
	if n := fake.requestCount(); n != 0 {
		t.Errorf("%d requests with a bad mapping, want none", n)
	}
}

// TestWrapperWaitsForTheExtension: refused connections (nothing listening
// yet) and 503s are retried within the bound.
func TestWrapperWaitsForTheExtension(t *testing.T) {
	fake, srv := startFake(t)
	fake.notReady = 2
	var dials int
	var mu sync.Mutex
	refusing := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		dials++
		n := dials
		mu.Unlock()
		if n <= 3 {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	run := runWrapper(t, srv, map[string]string{"SECRETS_PREFETCH_ENV": "K=secret:api-key"}, func(o *WrapperOptions) {
		o.Client = refusing
		o.Retry = func(ctx context.Context, attempt int) error { return ctx.Err() }
	})
	if !run.exec.called {
		t.Fatalf("not exec'd, exit %d\n%s", run.code, run.stderr)
	}
	if v, _ := run.exec.env("K"); v != valueAPIKey {
		t.Errorf("K = %q", v)
	}
	if dials != 6 {
		t.Errorf("%d attempts, want 3 refused + 2 not ready + 1 good", dials)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestWrapperGivesUp: with no extension, the wait is bounded and the
// message says what to check.
func TestWrapperGivesUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens here now
	attempts := 0
	run := runWrapper(t, nil, map[string]string{
		"SECRETS_PREFETCH_ENV":                   "K=secret:api-key, O?=secret:other",
		"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": fmt.Sprint(port),
	}, func(o *WrapperOptions) {
		var mu sync.Mutex
		o.Retry = func(ctx context.Context, attempt int) error {
			mu.Lock()
			defer mu.Unlock()
			attempts++
			if attempt >= 3 {
				return context.DeadlineExceeded
			}
			return nil
		}
	})
	if run.exec.called || run.code != 1 {
		t.Fatalf("exec %v, exit %d; want 1\n%s", run.exec.called, run.code, run.stderr)
	}
	for _, want := range []string{"did not answer", "/opt/extensions/secrets-prefetch", "required variable could not be read: K", "optional variable not set: O"} {
		if !strings.Contains(run.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, run.stderr)
		}
	}
	if attempts != 6 {
		t.Errorf("%d retry waits, want 3 per entry", attempts)
	}
}

func TestWrapperBoundedByInitTimeout(t *testing.T) {
	// The real backoff against a closed port: the wait ends with the
	// budget (1 ms + the slack), not before and not much after.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if testing.Short() {
		t.Skip("waits about 2 s")
	}
	run := runWrapper(t, nil, map[string]string{
		"SECRETS_PREFETCH_ENV":                   "K=secret:api-key",
		"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": fmt.Sprint(port),
		"SECRETS_PREFETCH_INIT_TIMEOUT_MILLIS":   "1",
	})
	if run.code != 1 || !strings.Contains(run.stderr, "did not answer") {
		t.Fatalf("exit %d\n%s", run.code, run.stderr)
	}
}

// TestWrapperWaitsForFiles: with SECRETS_PREFETCH_FILES set, the runtime
// starts only once /ping says the extension is ready (files written).
func TestWrapperWaitsForFiles(t *testing.T) {
	fake, srv := startFake(t)
	fake.pingWait = 3
	pings := func() int {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		return strings.Count(strings.Join(fake.requests, " "), "/ping")
	}
	run := runWrapper(t, srv, map[string]string{"SECRETS_PREFETCH_FILES": "/tmp/x/key.pem=secret:api-key"})
	if !run.exec.called {
		t.Fatalf("not exec'd, exit %d\n%s", run.code, run.stderr)
	}
	if n := pings(); n != 4 {
		t.Errorf("%d pings, want 3 not ready + 1 ready", n)
	}

	// Never ready within the wait: the runtime starts all the same (the
	// extension fails Init itself if a required file is missing).
	fake.pingWait = -1
	run = runWrapper(t, srv, map[string]string{
		"SECRETS_PREFETCH_FILES": "/tmp/x/key.pem=secret:api-key",
		"SECRETS_PREFETCH_ENV":   "K=secret:api-key",
	}, func(o *WrapperOptions) {
		o.Retry = func(ctx context.Context, attempt int) error {
			if attempt >= 2 {
				return context.DeadlineExceeded
			}
			return nil
		}
	})
	if !run.exec.called || !strings.Contains(run.stderr, "before the extension finished writing SECRETS_PREFETCH_FILES") {
		t.Errorf("exec %v, exit %d\n%s", run.exec.called, run.code, run.stderr)
	}
	if v, _ := run.exec.env("K"); v != valueAPIKey {
		t.Errorf("K = %q", v)
	}
}

func TestWrapperNoMappingExecsDirectly(t *testing.T) {
	fake, srv := startFake(t)
	run := runWrapper(t, srv, nil)
	if !run.exec.called || fake.requestCount() != 0 {
		t.Fatalf("exec %v, %d requests; want a direct exec", run.exec.called, fake.requestCount())
	}
	if v, _ := run.exec.env("KEEP"); v != "kept" {
		t.Errorf("KEEP = %q: the environment must pass through", v)
	}
}

func TestWrapperUsage(t *testing.T) {
	run := runWrapper(t, nil, nil, func(o *WrapperOptions) { o.Args = nil })
	if run.code != 2 || !strings.Contains(run.stderr, "AWS_LAMBDA_EXEC_WRAPPER") {
		t.Errorf("exit %d\n%s", run.code, run.stderr)
	}
	run = runWrapper(t, nil, nil, func(o *WrapperOptions) {
		o.LookPath = exec.LookPath
		o.Args = []string{"no-such-runtime-binary-zz"}
	})
	if run.code != 127 || !strings.Contains(run.stderr, "no-such-runtime-binary-zz") {
		t.Errorf("exit %d\n%s", run.code, run.stderr)
	}
	// An invalid configuration fails the wrapper too, naming the variable.
	run = runWrapper(t, nil, map[string]string{"SECRETS_MANAGER_TTL": "5m"})
	if run.code != 1 || run.exec.called || !strings.Contains(run.stderr, "SECRETS_MANAGER_TTL") {
		t.Errorf("exit %d\n%s", run.code, run.stderr)
	}
}

func TestWrapperJSONLogs(t *testing.T) {
	_, srv := startFake(t)
	run := runWrapper(t, srv, map[string]string{"SECRETS_PREFETCH_ENV": "X=secret:nope", "AWS_LAMBDA_LOG_FORMAT": "JSON"})
	for line := range strings.Lines(run.stderr) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not a JSON line: %q", line)
		}
	}
}

// printArg makes the test binary, for TestWrapperRealExec, print its
// arguments and the variables ZEROCODE_TEST_PRINT names, and exit.
const printArg = "--zerocode-test-print"

func TestMain(m *testing.M) {
	switch {
	case len(os.Args) > 1 && os.Args[1] == printArg:
		out := map[string]any{"args": os.Args[1:]}
		for _, name := range strings.Split(os.Getenv("ZEROCODE_TEST_PRINT"), ",") {
			if v, ok := os.LookupEnv(name); ok {
				out[name] = v
			}
		}
		json.NewEncoder(os.Stdout).Encode(out)
		os.Exit(0)
	case os.Getenv("ZEROCODE_TEST_WRAP") != "":
		// Run as the wrapper, with the real exec, of this binary.
		os.Exit(RunWrapper(context.Background(), WrapperOptions{
			Args:   append([]string{os.Args[0]}, strings.Split(os.Getenv("ZEROCODE_TEST_WRAP"), "|")...),
			Getenv: os.Getenv, Environ: os.Environ(), Stderr: os.Stderr,
		}))
	}
	os.Exit(m.Run())
}

// TestWrapperRealExec runs the wrapper in a child process with the real
// syscall.Exec: the exec'd program sees the variables and its arguments.
func TestWrapperRealExec(t *testing.T) {
	_, srv := startFake(t)
	cmd := exec.Command(os.Args[0], "ignored")
	cmd.Env = append(os.Environ(),
		"ZEROCODE_TEST_WRAP="+printArg+"|first arg|--flag|",
		"ZEROCODE_TEST_PRINT=DB_PASSWORD,API_URL,ZEROCODE_TEST_WRAP_UNSET",
		"AWS_SESSION_TOKEN="+testToken,
		"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="+fmt.Sprint(srv.Listener.Addr().(*net.TCPAddr).Port),
		"SECRETS_PREFETCH_ENV=DB_PASSWORD=secret:prod/db#password, API_URL=param:/app/api-url",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var got struct {
		Args       []string
		DBPassword string `json:"DB_PASSWORD"`
		APIURL     string `json:"API_URL"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.DBPassword != valueDB || got.APIURL != valueURL {
		t.Errorf("exec'd program saw %+v", got)
	}
	if !slices.Equal(got.Args, []string{printArg, "first arg", "--flag", ""}) {
		t.Errorf("args = %q, want them unchanged", got.Args)
	}
	if strings.Contains(stderr.String(), valueDB) {
		t.Errorf("value in stderr: %s", stderr.String())
	}
}
