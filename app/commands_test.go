package app

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func runMain(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(context.Background(), Process{
		Args:    append([]string{"/opt/extensions/secrets-prefetch"}, args...),
		Getenv:  func(k string) string { return env[k] },
		Stdout:  &out,
		Stderr:  &errOut,
		Version: "v9.9.9",
	})
	return code, out.String(), errOut.String()
}

func TestMainCommands(t *testing.T) {
	if code, out, _ := runMain(t, nil, "version"); code != 0 || out != "secrets-prefetch v9.9.9\n" {
		t.Errorf("version: %d %q", code, out)
	}
	if code, out, _ := runMain(t, nil, "--help"); code != 0 || !strings.Contains(out, "secrets-prefetch agent") {
		t.Errorf("--help: %d %q", code, out)
	}
	if code, _, errOut := runMain(t, nil, "agnet"); code != ExitConfig || !strings.Contains(errOut, `unknown command "agnet"`) {
		t.Errorf("a mistyped command: %d %q, want 2 naming it", code, errOut)
	}
	if code, _, _ := runMain(t, nil, "version", "extra"); code != ExitConfig {
		t.Errorf("version with an argument: %d, want 2", code)
	}
	if code, _, errOut := runMain(t, nil, "agent", "--config", "/no/such/file.toml"); code != ExitConfig {
		t.Errorf("agent with a missing config file: %d %q, want 2", code, errOut)
	}
	// No command: the Lambda extension, which needs its Runtime API.
	// (GOGC set: Main leaves the test process's collector alone.)
	if code, _, errOut := runMain(t, map[string]string{"GOGC": "100"}); code != 1 || !strings.Contains(errOut, "AWS_LAMBDA_RUNTIME_API") {
		t.Errorf("no command outside Lambda: %d %q, want 1 naming AWS_LAMBDA_RUNTIME_API", code, errOut)
	}
}

func TestHealthcheck(t *testing.T) {
	status := http.StatusServiceUnavailable
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ping" {
			t.Errorf("healthcheck asked %s", r.URL.Path)
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, env := range []map[string]string{
		{"SECRETS_PREFETCH_LISTEN": srv.Listener.Addr().String()},
		{"SECRETS_PREFETCH_LISTEN": "0.0.0.0:" + port}, // a wildcard is asked on loopback
		{"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": port},
	} {
		status = http.StatusServiceUnavailable
		if code, _, _ := runMain(t, env, "healthcheck"); code != 1 {
			t.Errorf("%v, /ping 503: exit %d, want 1", env, code)
		}
		status = http.StatusOK
		if code, _, errOut := runMain(t, env, "healthcheck"); code != 0 {
			t.Errorf("%v, /ping 200: exit %d (%s), want 0", env, code, errOut)
		}
	}
	if code, _, errOut := runMain(t, map[string]string{"SECRETS_PREFETCH_LISTEN": "nonsense"}, "healthcheck"); code != 1 || !strings.Contains(errOut, "SECRETS_PREFETCH_LISTEN") {
		t.Errorf("a bad address: %d %q, want 1 naming the variable", code, errOut)
	}
	for in, want := range map[string]string{"0.0.0.0:1": "127.0.0.1:1", ":1": "127.0.0.1:1", "[::]:1": "[::1]:1", "10.1.2.3:1": "10.1.2.3:1"} {
		if got := dialAddress(in); got != want {
			t.Errorf("dialAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
