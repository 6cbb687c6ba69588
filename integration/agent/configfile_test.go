package agent_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/localserver"
)

// A Secrets Manager Agent config file with every key, ours included,
// drives the agent; a variable that is set wins over the file.
func TestConfigFileWithEveryKey(t *testing.T) {
	f := newFront(t)
	seed(t, f, map[string]string{"db": `{"user":"u","password":"p"}`, "api": "api-v1"}, map[string]string{"/app/a": "a-v1", "/app/b": "b-v1"})
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	out := filepath.Join("/tmp", fmt.Sprintf("secrets-prefetch-agent-test-%d-%d.txt", os.Getpid(), time.Now().UnixNano()))
	t.Cleanup(func() { os.Remove(out) })
	file := filepath.Join(t.TempDir(), "config.toml")
	text := fmt.Sprintf(`
log_level = "DEBUG"
log_to_file = true
http_address = "127.0.0.1"
http_port = "2999"
ignore_transient_errors = true
validate_credentials = true
region = "us-east-1"
ttl_seconds = 600
cache_size = 10
ssrf_headers = ["X-Custom-Token"]
ssrf_env_variables = ["MY_AGENT_TOKEN", "AWS_TOKEN"]
path_prefix = "/secrets/"
max_conn = 4

[prefetch]
secrets = ["db", "api"]
parameters = ["/app/*"]
required = true
init_timeout_millis = 20000
refresh_ahead = 0.5
stale_if_error_seconds = 60
lazy = false
files = "%s=secret:db#user"
listen = "%s"
metrics_listen = "%s"
shutdown_timeout_millis = 8000
concurrency = 4
max_roles = 3
failover_region = "us-west-2"
`, out, addr, metricsAddr)
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := baseEnv(f.URL)
	// region comes from the file: no AWS_REGION.
	for i, kv := range env {
		if strings.HasPrefix(kv, "AWS_REGION=") {
			env = append(env[:i], env[i+1:]...)
			break
		}
	}
	// The file's token variable, and AWS_TOKEN set as well: the first wins.
	env = append(env, "MY_AGENT_TOKEN="+token, "AWS_TOKEN=other-token",
		// A variable overrides its key: the parameters' TTL stays the file's.
		"SECRETS_MANAGER_TTL=900")
	p := start(t, env, "agent", "--config", file)
	p.addr = addr
	p.waitReady(t)

	log := p.out.String()
	for _, want := range []string{"level=DEBUG", "log_to_file = true is ignored", `secrets_ttl=15m0s`, `parameters_ttl=10m0s`,
		"cache_size=10", "refresh_ahead=0.5", "stale_if_error=1m0s", "lazy=false", "required=true", "init_timeout=20s",
		"shutdown_timeout=8s", "max_conn=4", "path_prefix=/secrets/", "token_variable=MY_AGENT_TOKEN"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	if strings.Contains(log, token) {
		t.Errorf("the token is in the log")
	}

	// ssrf_headers replaced the default headers; path_prefix the route.
	if r := p.get(t, "/secrets/api", "X-Custom-Token", token); r.status != http.StatusOK || !strings.Contains(r.body, "api-v1") {
		t.Errorf("/secrets/api with X-Custom-Token: %d %s", r.status, r.body)
	}
	if r := p.get(t, secretPath("api"), withToken(token)...); r.status != http.StatusUnauthorized {
		t.Errorf("the default header once ssrf_headers replaced it: %d, want 401", r.status)
	}
	if r := p.get(t, "/secrets/api", "X-Custom-Token", "other-token"); r.status != http.StatusForbidden {
		t.Errorf("AWS_TOKEN's value, listed after MY_AGENT_TOKEN: %d, want 403", r.status)
	}
	if r := p.get(t, "/v1/api", "X-Custom-Token", token); r.status != http.StatusNotFound {
		t.Errorf("/v1/ once path_prefix replaced it: %d, want 404", r.status)
	}
	// parameters' path, prefetched; lazy = false refuses an unlisted name.
	if r := p.get(t, paramPath("/app/b"), "X-Custom-Token", token); value(t, r) != "b-v1" || r.xcache != "hit" {
		t.Errorf("/app/b: %s %s", r.body, r.xcache)
	}
	if r := p.get(t, secretPath("unlisted"), "X-Custom-Token", token); r.status != http.StatusNotFound {
		t.Errorf("an unlisted secret with lazy = false: %d, want 404", r.status)
	}
	// files wrote its file.
	if b, err := os.ReadFile(out); err != nil || string(b) != "u" {
		t.Errorf("the files mapping's file: %q, %v", b, err)
	}
	// metrics_listen serves /metrics.
	m, err := doGet(t.Context(), "http://"+metricsAddr+"/metrics")
	if err != nil || m.status != http.StatusOK {
		t.Fatalf("/metrics: %v %d", err, m.status)
	}
	// Three hits: the two reads above and the files mapping's own read of db.
	for _, want := range []string{"secrets_prefetch_cache_hits_total 3", "secrets_prefetch_cache_entries 4", "secrets_prefetch_ready 1",
		"# TYPE secrets_prefetch_aws_calls_total counter", "secrets_prefetch_batch_get_secret_value_calls_total 1"} {
		if !strings.Contains(m.body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, m.body)
		}
	}
	for _, leak := range []string{"/app/", "api-v1", "a-v1", "b-v1"} {
		if strings.Contains(m.body, leak) {
			t.Errorf("/metrics shows %q: it must carry counts only", leak)
		}
	}
	// The healthcheck reads the address from the same file.
	if code := start(t, env, "healthcheck", "--config", file).exitCode(t); code != 0 {
		t.Errorf("healthcheck --config: exit %d, want 0", code)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d, want 0\n%s", code, p.out)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the files mapping's file is still there after the stop: %v", err)
	}
}

// max_conn bounds the requests served at once: past it, 429.
func TestMaxConn(t *testing.T) {
	f := newFront(t)
	seed(t, f, map[string]string{"slow": "v"}, nil)
	addr := freeAddr(t)
	file := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(file, []byte("max_conn = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, append(baseEnv(f.URL), "AWS_TOKEN="+token, "SECRETS_PREFETCH_LISTEN="+addr), "agent", "--config", file)
	p.waitReady(t)
	release := f.hold(t, "secretsmanager.GetSecretValue")
	first := make(chan response, 1)
	go func() {
		r, _ := doGet(t.Context(), "http://"+addr+secretPath("slow"), withToken(token)...)
		first <- r
	}()
	f.waitArrived(t, "secretsmanager.GetSecretValue")
	r := p.get(t, secretPath("other"), localserver.VaultTokenHeader, token)
	if r.status != http.StatusTooManyRequests {
		t.Errorf("a second read while max_conn = 1 is taken: %d, want 429", r.status)
	}
	release()
	if r := <-first; r.status != http.StatusOK {
		t.Errorf("the first read: %d %s", r.status, r.body)
	}
}

// An idle agent uses no CPU between refreshes: its CPU time over a window
// with nothing due stays within a generous bound (a polling loop, or a
// timer re-armed at once, would exceed it).
func TestIdleCPU(t *testing.T) {
	f := newFront(t)
	seed(t, f, map[string]string{"a": "1", "b": "2", "c": "3"}, map[string]string{"/p": "4"})
	addr := freeAddr(t)
	p := start(t, append(baseEnv(f.URL), "AWS_TOKEN="+token, "SECRETS_PREFETCH_LISTEN="+addr,
		"SECRETS_PREFETCH_SECRETS=a,b,c", "SECRETS_PREFETCH_PARAMETERS=/p"), "agent")
	p.waitReady(t)
	window := 5 * time.Second
	if v := os.Getenv("AGENT_IDLE_WINDOW"); v != "" { // e.g. 60s, for the README's figure
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("AGENT_IDLE_WINDOW=%q: want a duration such as 60s", v)
		}
		window = d
	}
	before := cpuTicks(t, p.cmd.Process.Pid)
	time.Sleep(window) // a measurement window, not a wait for an event
	used := cpuTicks(t, p.cmd.Process.Pid) - before
	// 100 ticks a second (USER_HZ): 25 ticks is 0.25 s of CPU in 5 s, far
	// above an idle process's 0–2 and far below a 1 ms polling loop's.
	if used > 25*int(window/(5*time.Second)) {
		t.Fatalf("the idle agent used %d ticks of CPU in %v", used, window)
	}
	t.Logf("idle agent: %d ticks (1/100 s) of CPU in %v", used, window)
}

// cpuTicks is a process's user plus system CPU time, in clock ticks, from
// /proc/PID/stat.
func cpuTicks(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces): state is 3rd,
	// utime 14th and stime 15th of the whole line.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	utime, err1 := strconv.Atoi(f[11])
	stime, err2 := strconv.Atoi(f[12])
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	return utime + stime
}
