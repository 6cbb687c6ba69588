package agent_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
	"github.com/secrets-prefetch/secrets-prefetch/localserver"
)

// waitFor bounds every wait for an event (a log line, a call, an exit): a
// failure is reported then rather than at the suite's timeout. Nothing
// waits for time to pass.
const waitFor = 60 * time.Second

// binary is the secrets-prefetch binary the tests run.
var binary exttest.Binary

func TestMain(m *testing.M) {
	code := m.Run()
	binary.Remove()
	os.Exit(code)
}

// logBuf is a process's output, safe for concurrent use, that a test can
// wait on for a line.
type logBuf struct {
	mu      sync.Mutex // protects b and changed
	b       bytes.Buffer
	changed chan struct{} // closed and replaced at each write
}

func newLogBuf() *logBuf { return &logBuf{changed: make(chan struct{})} }

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.changed)
	l.changed = make(chan struct{})
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count is how many lines hold every one of subs.
func (l *logBuf) count(subs ...string) int {
	n := 0
	for line := range strings.Lines(l.String()) {
		if containsAll(line, subs) {
			n++
		}
	}
	return n
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// waitLines waits until n lines hold every one of subs.
func (l *logBuf) waitLines(t testing.TB, n int, subs ...string) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		l.mu.Lock()
		changed := l.changed
		l.mu.Unlock()
		if l.count(subs...) >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no %d log lines with %q within %v:\n%s", n, subs, waitFor, l)
		}
	}
}

// proc is the agent running as a process.
type proc struct {
	cmd    *exec.Cmd
	out    *logBuf // stdout and stderr
	addr   string  // its API's host:port
	exited chan struct{}
	err    error // Wait's result, set before exited is closed
}

// freeAddr is a loopback address nothing listens on, for an agent to bind
// (see exttest.FreeAddr: not one another process is soon handed).
func freeAddr(t testing.TB) string { return exttest.FreeAddr(t) }

// baseEnv is the environment every agent starts with: the emulated AWS's
// endpoint and credentials, no developer configuration, debug logs.
func baseEnv(endpoint string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIAAWSTESTEXAMPLE01",
		"AWS_SECRET_ACCESS_KEY=awstest/secret/access/key/for/tests/only",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + endpoint,
		"AWS_ENDPOINT_URL_SSM=" + endpoint,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug",
	}
}

// start runs the binary with args and env (on top of nothing: the test
// gives the whole environment) and kills it at the end of the test if it
// is still running.
func start(t testing.TB, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{out: newLogBuf(), exited: make(chan struct{})}
	p.cmd = exec.Command(binary.Path(t), args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "SECRETS_PREFETCH_LISTEN="); ok {
			p.addr = v
		}
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// exitCode waits for the process to exit and returns its code.
func (p *proc) exitCode(t testing.TB) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(waitFor):
		t.Fatalf("the agent did not exit within %v\n%s", waitFor, p.out)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

func (p *proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// waitReady waits for the agent's "ready" log line.
func (p *proc) waitReady(t testing.TB) {
	t.Helper()
	p.out.waitLines(t, 1, "msg=ready")
}

// response is one answer of the agent.
type response struct {
	status int
	xcache string
	body   string
}

// get sends GET path with the header pairs given.
func (p *proc) get(t testing.TB, path string, header ...string) response {
	t.Helper()
	r, err := doGet(t.Context(), "http://"+p.addr+path, header...)
	if err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, p.out)
	}
	return r
}

func doGet(ctx context.Context, url string, header ...string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return response{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header.Get("X-Cache"), string(b)}, err
}

// withToken is the header pair of the default token header.
func withToken(token string) []string { return []string{localserver.TokenHeader, token} }

// front is the emulated AWS behind a recorder: each call, once answered,
// is logged with its operation and the ids it named, and a gate may hold
// calls of one operation until released.
type front struct {
	AWS *awstest.AWS
	URL string

	// arrived receives the operation of each call a gate holds.
	arrived chan string

	mu      sync.Mutex // protects calls, changed, gates
	calls   []call
	changed chan struct{}
	gates   map[string]chan struct{}
}

type call struct {
	op   string
	body string
}

func newFront(t testing.TB) *front {
	f := &front{AWS: awstest.Start(t), arrived: make(chan string, 64), changed: make(chan struct{}), gates: map[string]chan struct{}{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *front) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	op := opName(r.Header.Get("X-Amz-Target"))
	f.mu.Lock()
	gate := f.gates[op]
	f.mu.Unlock()
	if gate != nil {
		select {
		case f.arrived <- op:
		default:
		}
		select {
		case <-gate:
		case <-r.Context().Done():
		}
	}
	f.AWS.ServeHTTP(w, r)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{op, string(body)})
	close(f.changed)
	f.changed = make(chan struct{})
}

// hold holds calls of op until the returned release is called.
func (f *front) hold(t testing.TB, op string) (release func()) {
	gate := make(chan struct{})
	f.mu.Lock()
	f.gates[op] = gate
	f.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.gates, op)
			f.mu.Unlock()
			close(gate)
		})
	}
	t.Cleanup(release)
	return release
}

// waitArrived waits for a held call of op.
func (f *front) waitArrived(t testing.TB, op string) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case got := <-f.arrived:
			if got == op {
				return
			}
		case <-deadline:
			t.Fatalf("no %s call arrived within %v", op, waitFor)
		}
	}
}

func opName(target string) string {
	if a, ok := strings.CutPrefix(target, "AmazonSSM."); ok {
		return "ssm." + a
	}
	return target
}

// mark is the number of calls so far, for since.
func (f *front) mark() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// since returns the calls answered after mark.
func (f *front) since(mark int) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls[mark:]...)
}

// waitCall waits for a call of op after mark whose body holds every one
// of subs, and returns it.
func (f *front) waitCall(t testing.TB, mark int, op string, subs ...string) call {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		f.mu.Lock()
		changed := f.changed
		calls := f.calls[mark:]
		for _, c := range calls {
			if c.op == op && containsAll(c.body, subs) {
				f.mu.Unlock()
				return c
			}
		}
		f.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no %s call with %q within %v; calls: %v", op, subs, waitFor, f.since(mark))
		}
	}
}
