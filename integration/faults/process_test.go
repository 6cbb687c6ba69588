package faults_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
)

// binary is the secrets-prefetch binary the tests run.
var binary exttest.Binary

func TestMain(m *testing.M) {
	code := m.Run()
	binary.Remove()
	os.Exit(code)
}

// proc is the extension running as a process.
type proc struct {
	cmd    *exec.Cmd
	out    *exttest.SyncBuffer // stdout and stderr
	exited chan struct{}
	err    error // Wait's result, set before exited is closed
}

func startProc(t *testing.T, env ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command(binary.Path(t)), env...)
}

// startCmd starts cmd, which runs the extension, with env.
func startCmd(t *testing.T, cmd *exec.Cmd, env ...string) *proc {
	t.Helper()
	p := &proc{out: &exttest.SyncBuffer{}, exited: make(chan struct{}), cmd: cmd}
	p.cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDPROCESS",
		"AWS_SECRET_ACCESS_KEY=process-secret",
		"AWS_EC2_METADATA_DISABLED=true",
	}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
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

// exitCode waits for the process to exit and returns its exit code.
func (p *proc) exitCode(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("the extension did not exit within %v\n%s", within, p.out)
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

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startListening starts the extension (newCmd's command, with env) on a
// free loopback port with an Extensions API of its own, and waits until its
// Init is done (its first /next). The port is found free and then bound by
// the extension, so another process may take it in between: if the
// extension's Init fails because the address is in use, it starts again on
// another port. That fixes the race at its cause, at startup; nothing the
// test checks is tried twice.
func startListening(t *testing.T, newCmd func() *exec.Cmd, env ...string) (p *proc, api *extapitest.Server, rec *extapitest.Record, port int) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		api, rec = extapitest.NewServer(t)
		_, portStr, _ := net.SplitHostPort(closedAddr(t))
		port, _ = strconv.Atoi(portStr)
		p = startCmd(t, newCmd(), append([]string{
			"AWS_LAMBDA_RUNTIME_API=" + api.Addr(),
			"AWS_SESSION_TOKEN=" + exttest.Token,
			"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT=" + portStr,
		}, env...)...)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		err := rec.WaitFor(ctx, func() bool { return rec.NextCalls() >= 1 || len(rec.InitErrors()) > 0 })
		cancel()
		if err != nil {
			t.Fatalf("the extension did not finish Init: %v\n%s", err, p.out)
		}
		if rec.NextCalls() >= 1 {
			return p, api, rec, port
		}
		p.exitCode(t, 20*time.Second)
		if !strings.Contains(p.out.String(), "address already in use") || attempt == 5 {
			t.Fatalf("the extension's Init failed: %+v\n%s", rec.InitErrors(), p.out)
		}
		t.Logf("port %d was taken before the extension bound it: starting again on another", port)
	}
}

// TestProcessRegisterFailures: the extension binary exits non-zero, saying
// why in its output, when the Extensions API is missing, unreachable or
// refuses the registration.
func TestProcessRegisterFailures(t *testing.T) {
	unreachable := closedAddr(t)
	refusing, _ := extapitest.NewServer(t)
	refusing.Inject(extapitest.RouteRegister, extapitest.Fault{Status: http.StatusForbidden}, extapitest.Always)
	for _, tt := range []struct {
		name string
		env  []string
		want []string
	}{
		{"no runtime API", nil, []string{"AWS_LAMBDA_RUNTIME_API is not set"}},
		{"unreachable", []string{"AWS_LAMBDA_RUNTIME_API=" + unreachable}, []string{"register failed", unreachable, "connection refused"}},
		{"refused", []string{"AWS_LAMBDA_RUNTIME_API=" + refusing.Addr()}, []string{"register failed", "403"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := startProc(t, tt.env...)
			if code := p.exitCode(t, 20*time.Second); code == 0 {
				t.Errorf("exit code 0, want non-zero\n%s", p.out)
			}
			for _, want := range tt.want {
				if !strings.Contains(p.out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, p.out)
				}
			}
		})
	}
}

// TestProcessListensOnLoopbackOnly runs the extension binary through Init,
// checks the socket it listens on is bound to 127.0.0.1 and nothing else,
// then stops it with SHUTDOWN (exit 0) — and, in a second run, with SIGTERM.
func TestProcessListensOnLoopbackOnly(t *testing.T) {
	for _, stop := range []string{"SHUTDOWN", "SIGTERM"} {
		t.Run(stop, func(t *testing.T) {
			// Asking for an event means Init is done and the server is up.
			p, api, rec, port := startListening(t, func() *exec.Cmd { return exec.Command(binary.Path(t)) })
			portStr := strconv.Itoa(port)
			if r, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ping", port)); err != nil || r.StatusCode != http.StatusOK {
				t.Fatalf("ping on loopback: %v %v", r, err)
			} else {
				r.Body.Close()
			}
			checkBound(t, p.cmd.Process.Pid, port)
			for _, ip := range nonLoopbackIPs(t) {
				if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), portStr), 2*time.Second); err == nil {
					c.Close()
					t.Errorf("the extension answers on %s:%d", ip, port)
				}
			}

			if stop == "SHUTDOWN" {
				api.Push(extapitest.Shutdown(extapitest.ReasonSpindown, time.Now().Add(2*time.Second)))
			} else {
				p.cmd.Process.Signal(syscall.SIGTERM)
			}
			if code := p.exitCode(t, 10*time.Second); code != 0 {
				t.Errorf("exit code %d after %s, want 0\n%s", code, stop, p.out)
			}
			if len(rec.ExitErrors()) != 0 {
				t.Errorf("exit/error reported: %+v", rec.ExitErrors())
			}
		})
	}
}

// checkBound reads the listening TCP sockets of pid from /proc and wants
// port bound to 127.0.0.1 only.
func checkBound(t *testing.T, pid, port int) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Log("not Linux: the bound address is checked by dialling only")
		return
	}
	found := 0
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" { // LISTEN
				continue
			}
			host, hexPort, ok := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); !ok || err != nil || int(p) != port {
				continue
			}
			found++
			if table != "tcp" || host != "0100007F" { // 127.0.0.1, little-endian
				t.Errorf("listening on %s %s, want only 127.0.0.1:%d", table, fields[1], port)
			}
		}
		f.Close()
	}
	if found == 0 {
		t.Errorf("no listening socket on port %d in /proc/%d/net", port, pid)
	}
}

func nonLoopbackIPs(t *testing.T) []net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Logf("interface addresses: %v", err)
		return nil
	}
	var ips []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			ips = append(ips, n.IP)
		}
	}
	return ips
}
