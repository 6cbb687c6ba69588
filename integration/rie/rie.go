// Package rie runs the real Lambda lifecycle (Init, Invoke, Shutdown) for the
// secrets-prefetch extension and a test function under AWS's Runtime Interface
// Emulator (RIE), for end-to-end tests and the local demo.
//
// RIE launches every file in the hard-coded /opt/extensions, so each Env runs
// RIE in a private mount namespace (`unshare -m`) with a temp dir bind-mounted
// over /opt: nothing on the host changes. That needs root; see Supported.
package rie

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Options configure one execution environment.
type Options struct {
	// Env is added to the environment of RIE, the extension and the function:
	// the AWS endpoint variables (awstest's Env), SECRETS_PREFETCH_* and the
	// like. It overrides the defaults set by Launch.
	Env []string
	// FunctionTimeout is AWS_LAMBDA_FUNCTION_TIMEOUT; it bounds Init plus one
	// invoke. Default 10 s.
	FunctionTimeout time.Duration
	// Binaries to run; zero fields are filled from the per-process build
	// (Start) — Launch requires them.
	Binaries Binaries
}

// Env is one running execution environment: RIE with the extension and the
// function. Its methods are safe for concurrent use; invokes are serialized
// because concurrent invokes crash RIE.
type Env struct {
	// URL is RIE's invoke endpoint base (http://127.0.0.1:P).
	URL string
	// ExtensionURL is where the extension listens (from the test process too:
	// only the mount namespace is private).
	ExtensionURL string
	// SessionToken is AWS_SESSION_TOKEN, the extension's auth token.
	SessionToken string
	// Dir holds opt/, task/ and rie.log.
	Dir string

	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when RIE has exited
	waitErr error         // valid after exited is closed

	invokeMu   sync.Mutex // serializes Invoke
	stopCalled atomic.Bool
	stopOnce   sync.Once
	stopErr    error
}

// Start launches an Env for a test and shuts it down at cleanup. It skips the
// test when RIE cannot run here (fails under CI=true instead), builds the
// binaries once per test process, and logs RIE's output if the test failed
// (or always, with RIE_VERBOSE=1).
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	requireSupported(t)
	if opts.Binaries.RIE == "" || opts.Binaries.Extension == "" || opts.Binaries.Function == "" {
		built, err := sharedBinaries(opts.Binaries.Extension == "")
		if err != nil {
			t.Fatalf("rie: %v", err)
		}
		opts.Binaries = fill(opts.Binaries, built)
	}
	env, err := Launch(context.Background(), t.TempDir(), opts)
	if err != nil {
		t.Fatalf("rie: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		// A test that shut down itself has seen the result.
		called := env.stopCalled.Load()
		if err := env.Shutdown(ctx); err != nil && !called {
			t.Errorf("rie: shutdown: %v", err)
		}
		if t.Failed() || os.Getenv("RIE_VERBOSE") == "1" {
			t.Logf("RIE output:\n%s", env.Output())
		}
	})
	return env
}

func fill(b, with Binaries) Binaries {
	if b.RIE == "" {
		b.RIE = with.RIE
	}
	if b.Extension == "" {
		b.Extension = with.Extension
	}
	if b.Function == "" {
		b.Function = with.Function
	}
	return b
}

// Launch starts RIE in dir (which it populates) and returns once RIE accepts
// connections. Nothing inside starts until the first invoke: that is Lambda's
// Init. The caller must call Shutdown. Check Supported first for a clear
// reason when it cannot run.
func Launch(ctx context.Context, dir string, opts Options) (*Env, error) {
	// The ports are picked free, but another process may bind one before
	// RIE does (RIE then exits); start again on other ports a few times.
	for attempt := 1; ; attempt++ {
		e, err := launch(ctx, dir, opts)
		if err == nil || !errors.Is(err, errPortTaken) || attempt == 3 {
			return e, err
		}
	}
}

// errPortTaken is a start that failed because a port picked for RIE was
// bound by another process first.
var errPortTaken = errors.New("a port picked for RIE was taken by another process")

func launch(ctx context.Context, dir string, opts Options) (*Env, error) {
	b := opts.Binaries
	if b.RIE == "" || b.Extension == "" || b.Function == "" {
		return nil, errors.New("rie: Options.Binaries must name RIE, the extension and the function (see Build)")
	}
	opt, task := filepath.Join(dir, "opt"), filepath.Join(dir, "task")
	if err := install(b.Extension, filepath.Join(opt, "extensions", filepath.Base(b.Extension))); err != nil {
		return nil, err
	}
	if err := install(b.Function, filepath.Join(task, "bootstrap")); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	runtimeAPI := "127.0.0.1:" + strconv.Itoa(ports[0])
	emulator := "127.0.0.1:" + strconv.Itoa(ports[1])

	timeout := opts.FunctionTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	environ := mergeEnv(append([]string{
		"PATH=" + os.Getenv("PATH"),
		// A fresh HOME: no ~/.aws of the developer leaks into the SDK.
		"HOME=" + dir,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_SESSION_TOKEN=" + randomToken(),
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(int((timeout+time.Second-1)/time.Second)),
		// Not the default 2773, so environments can run side by side.
		"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT=" + strconv.Itoa(ports[2]),
	}, opts.Env...))

	logPath := filepath.Join(dir, "rie.log")
	// A file, not a pipe: extensions that outlive a killed RIE keep it open,
	// and a pipe would then block Wait.
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()

	script := fmt.Sprintf("mount --bind %s /opt && cd %s && exec %s --runtime-api-address %s --runtime-interface-emulator-address %s %s",
		quote(opt), quote(task), quote(b.RIE), runtimeAPI, emulator, quote(filepath.Join(task, "bootstrap")))
	// No --fork: after the execs this pid is RIE's own, so SIGTERM reaches it.
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "bash", "-c", script)
	cmd.Env = environ
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the test process dies, RIE gets SIGTERM and shuts its children down.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start RIE: %w", err)
	}
	e := &Env{
		URL:          "http://" + emulator,
		ExtensionURL: "http://127.0.0.1:" + lookupEnv(environ, "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"),
		SessionToken: lookupEnv(environ, "AWS_SESSION_TOKEN"),
		Dir:          dir,
		cmd:          cmd,
		logPath:      logPath,
		exited:       make(chan struct{}),
	}
	go func() {
		e.waitErr = cmd.Wait()
		close(e.exited)
	}()
	if err := e.waitReady(ctx, ports[1], 30*time.Second); err != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Shutdown(sctx)
		return nil, fmt.Errorf("%w\nRIE output:\n%s", err, e.Output())
	}
	return e, nil
}

// waitReady waits until RIE's own process listens on the emulator port, RIE
// exits, or the deadline passes. Building and exec'ing take a moment; there
// is no signal to wait on but the listening socket itself. A socket that
// accepts is not enough: another process may have bound the port first
// (then RIE exits, and errPortTaken says to start again elsewhere), and an
// invoke would reach that process instead.
func (e *Env) waitReady(ctx context.Context, port int, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			conn.Close()
			if listensOn(e.cmd.Process.Pid, port) {
				return nil
			}
			err = errors.New("the port accepts, but not through RIE's socket")
		}
		select {
		case <-e.exited:
			if strings.Contains(e.Output(), "address already in use") {
				return fmt.Errorf("RIE exited before listening: %w", errPortTaken)
			}
			return fmt.Errorf("RIE exited before listening: %v", e.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("RIE not listening on %s after %v: %w", addr, limit, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Invoke sends one invocation and returns RIE's status and body. duration is
// the round trip; note RIE holds the reply until every extension has called
// `next` again, so it includes the extension's post-invoke work.
func (e *Env) Invoke(ctx context.Context, payload []byte) (status int, body []byte, duration time.Duration, err error) {
	e.invokeMu.Lock()
	defer e.invokeMu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL+"/2015-03-31/functions/function/invocations", bytes.NewReader(payload))
	if err != nil {
		return 0, nil, 0, err
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, time.Since(start), fmt.Errorf("invoke: %w", err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	duration = time.Since(start)
	if err != nil {
		return resp.StatusCode, body, duration, fmt.Errorf("invoke: read body: %w", err)
	}
	return resp.StatusCode, body, duration, nil
}

// Output returns everything RIE, the extension and the function have printed.
func (e *Env) Output() string {
	b, err := os.ReadFile(e.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", e.logPath, err)
	}
	return string(b)
}

// Shutdown sends SIGTERM to RIE, which delivers SHUTDOWN to the extension
// (deadline ~2 s), and waits for RIE to exit. If ctx ends first it SIGKILLs
// RIE and then, by pid, whatever RIE had started. Later calls return the first
// result. An exit caused by the SIGTERM is not an error.
func (e *Env) Shutdown(ctx context.Context) error {
	e.stopCalled.Store(true)
	e.stopOnce.Do(func() { e.stopErr = e.shutdown(ctx) })
	return e.stopErr
}

func (e *Env) shutdown(ctx context.Context) error {
	select {
	case <-e.exited:
		return e.exitError()
	default:
	}
	pid := e.cmd.Process.Pid
	children := descendants(pid) // before RIE dies: orphans lose their parent link
	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGTERM RIE: %w", err)
	}
	select {
	case <-e.exited:
		return e.exitError()
	case <-ctx.Done():
	}
	for _, c := range descendants(pid) {
		if !slices.Contains(children, c) {
			children = append(children, c)
		}
	}
	e.cmd.Process.Kill()
	<-e.exited // SIGKILL cannot be ignored; the log is a file, so Wait returns
	for _, c := range children {
		if p, err := os.FindProcess(c); err == nil {
			p.Signal(syscall.SIGKILL)
		}
	}
	return fmt.Errorf("RIE did not exit after SIGTERM (%w); killed it and %d descendant(s)", ctx.Err(), len(children))
}

func (e *Env) exitError() error {
	var exit *exec.ExitError
	if errors.As(e.waitErr, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return e.waitErr
}

// descendants lists the pids below pid, from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	for _, ent := range entries {
		p, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parens.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(fields[1]); err == nil {
			parent[p] = pp
		}
	}
	var out []int
	below := map[int]bool{pid: true}
	for changed := true; changed; {
		changed = false
		for p, pp := range parent {
			if below[pp] && !below[p] {
				below[p], changed = true, true
				out = append(out, p)
			}
		}
	}
	return out
}

func install(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	// No fork while the file is open for writing: a child forked by another
	// test meanwhile would hold the descriptor until it execs, and an exec
	// of dst in that window fails with "text file busy" (ETXTBSY, seen
	// under load). ForkLock is what fork takes for this.
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	return os.WriteFile(dst, data, 0o755)
}

// listensOn reports whether process pid holds the socket listening on
// 127.0.0.1:port: /proc/net/tcp gives the listening socket's inode, and one
// of the process's descriptors must be that socket.
func listensOn(pid, port int) bool {
	tab, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	inode := ""
	for _, line := range strings.Split(string(tab), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && f[1] == local && f[3] == "0A" { // 0A: LISTEN
			inode = f[9]
			break
		}
	}
	if inode == "" {
		return false
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && l == "socket:["+inode+"]" {
			return true
		}
	}
	return false
}

// freePorts returns n distinct free loopback ports. Another process could take
// one before RIE binds it; RIE then fails to start, and Launch starts again.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are picked, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// mergeEnv keeps the last value of each variable, in first-seen order.
func mergeEnv(env []string) []string {
	idx := map[string]int{}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

func lookupEnv(env []string, key string) string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// quote single-quotes s for bash.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
