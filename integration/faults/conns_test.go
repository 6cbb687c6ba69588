package faults_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/localserver"
)

// TestIdleConnectionsUnderLambdaFDLimit runs the extension binary with
// Lambda's limit of 1,024 file descriptors and opens 1,100 idle connections
// to it, more than the limit. Without a cap on open connections the process
// runs out of descriptors, accept fails, and a new request waits unanswered;
// with the cap the idlest connections are closed, a new request is answered,
// the process keeps well under the limit, and the log warns that the cap bit.
func TestIdleConnectionsUnderLambdaFDLimit(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc to count descriptors")
	}
	p, api, _, port := startListening(t, func() *exec.Cmd {
		return exec.Command("sh", "-c", `ulimit -n 1024 && exec "$0"`, binary.Path(t))
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", p.cmd.Process.Pid)); !strings.Contains(string(b), "Max open files            1024") {
		t.Fatalf("the extension does not run with 1,024 descriptors:\n%s", b)
	}

	const idle = 1100
	for i := range idle {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer c.Close()
	}
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/ping")
	if err != nil {
		t.Fatalf("a request after %d idle connections: %v\n%s", idle, err, p.out)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/ping after %d idle connections: %s, want 200", idle, resp.Status)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(fds); n > localserver.DefaultMaxConns+32 {
		t.Errorf("%d descriptors open, want at most the cap (%d) and a few", n, localserver.DefaultMaxConns)
	}
	if !strings.Contains(p.out.String(), "too many open connections: closed the idlest") || !strings.Contains(p.out.String(), "limit="+strconv.Itoa(localserver.DefaultMaxConns)) {
		t.Errorf("no warning that the cap bit:\n%s", p.out)
	}
	api.Push(extapitest.Shutdown(extapitest.ReasonSpindown, time.Now().Add(2*time.Second)))
	if code := p.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0\n%s", code, p.out)
	}
}
