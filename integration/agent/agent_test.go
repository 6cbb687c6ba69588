package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/localserver"
)

const token = "agent-test-token"

func secretPath(id string) string { return "/secretsmanager/get?secretId=" + id }

func paramPath(name string) string {
	return "/systemsmanager/parameters/get?withDecryption=true&name=" + name
}

// value is the SecretString or Parameter.Value of a 200 answer.
func value(t testing.TB, r response) string {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("want 200, got %d %s", r.status, r.body)
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

func seed(t testing.TB, f *front, secrets map[string]string, params map[string]string) {
	t.Helper()
	ctx := context.Background()
	for k, v := range secrets {
		if _, err := f.AWS.PutSecretString(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range params {
		if _, err := f.AWS.PutParameter(ctx, k, v, "String"); err != nil {
			t.Fatal(err)
		}
	}
}

// The agent is not ready before its prefetch is done; then it serves every
// listed item with no AWS call; a value changed in AWS is refreshed by the
// timer, in batches, with no read at all, and is then served as a hit.
func TestPrefetchServeAndTimerRefresh(t *testing.T) {
	f := newFront(t)
	seed(t, f, map[string]string{"db": "db-v1", "api": "api-v1"}, map[string]string{"/app/flag": "flag-v1", "/app/size": "10"})
	addr := freeAddr(t)
	env := append(baseEnv(f.URL),
		"AWS_TOKEN="+token,
		"SECRETS_PREFETCH_LISTEN="+addr,
		"SECRETS_PREFETCH_SECRETS=db,api",
		"SECRETS_PREFETCH_PARAMETERS=/app/flag,/app/size",
		// 10 s: a round falls 7.2–8 s after the last.
		"SECRETS_MANAGER_TTL=10",
		"SSM_PARAMETER_STORE_TTL=10",
		// The test holds calls at the front: budgets no loaded machine
		// runs out of while it does.
		"SECRETS_MANAGER_TIMEOUT_MILLIS=120000",
		"SSM_PARAMETER_STORE_TIMEOUT_MILLIS=120000",
		"SECRETS_PREFETCH_INIT_TIMEOUT_MILLIS=120000",
	)
	release := f.hold(t, awstest.OpBatchGetSecretValue)
	p := start(t, env, "agent")
	f.waitArrived(t, awstest.OpBatchGetSecretValue)

	// Prefetch in flight: /ping and the healthcheck say not ready.
	if r := p.get(t, "/ping"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("/ping during the prefetch: %d, want 503", r.status)
	}
	if code := start(t, env, "healthcheck").exitCode(t); code != 1 {
		t.Fatalf("healthcheck during the prefetch: exit %d, want 1", code)
	}
	release()
	p.waitReady(t)
	if r := p.get(t, "/ping"); r.status != http.StatusOK {
		t.Fatalf("/ping once ready: %d, want 200", r.status)
	}
	if code := start(t, env, "healthcheck").exitCode(t); code != 0 {
		t.Fatalf("healthcheck once ready: exit %d, want 0", code)
	}

	// Served from memory: no AWS call.
	mark := f.mark()
	for path, want := range map[string]string{secretPath("db"): "db-v1", secretPath("api"): "api-v1", paramPath("/app/flag"): "flag-v1"} {
		r := p.get(t, path, withToken(token)...)
		if got := value(t, r); got != want || r.xcache != "hit" {
			t.Errorf("%s: %q (X-Cache %s), want %q from the cache", path, got, r.xcache, want)
		}
	}
	// (A timer round may fall in between, in batches: only single-item
	// calls would be the reads'.)
	for _, c := range f.since(mark) {
		if c.op == awstest.OpGetSecretValue || c.op == awstest.OpGetParameter {
			t.Fatalf("reads of prefetched items called AWS: %v", c)
		}
	}

	// Changed in AWS; no read at all until the timer has refreshed both.
	// Each service in turn: the next timer round's batch call is held at
	// the front, the value changed in AWS meanwhile, and the call let go;
	// the round (the timer runs one at a time) logs once it has stored
	// what the call brought. Holding it orders the change before the fetch
	// and tells which log line ends the round, whatever the machine's pace.
	ctx := context.Background()
	batchOf := map[string][]string{
		awstest.OpBatchGetSecretValue: {`"db"`, `"api"`},
		awstest.OpGetParameters:       {`"/app/flag"`, `"/app/size"`},
	}
	refreshRound := func(op string, change func()) {
		t.Helper()
		release := f.hold(t, op)
		f.waitArrived(t, op)
		change()
		// The agent writes its log in order: once the line of a request
		// made now is in, so are those of the rounds before this one, and
		// the next "refreshed" line is this round's.
		pings := p.out.count("msg=request", "path=/ping")
		p.get(t, "/ping")
		p.out.waitLines(t, pings+1, "msg=request", "path=/ping")
		before := p.out.count("msg=refreshed")
		mark := f.mark()
		release()
		p.out.waitLines(t, before+1, "msg=refreshed")
		calls := f.since(mark)
		batched := false
		for _, c := range calls {
			items, ok := batchOf[c.op]
			if !ok {
				t.Errorf("a timer refresh made a %s call (want the batched calls only): %s", c.op, c.body)
				continue
			}
			for _, item := range items {
				if !strings.Contains(c.body, item) {
					t.Errorf("a timer refresh left %s out of its batch: %s", item, c.body)
				}
			}
			batched = batched || c.op == op
		}
		if !batched {
			t.Fatalf("no %s call for the refresh: %v", op, calls)
		}
	}
	refreshRound(awstest.OpBatchGetSecretValue, func() {
		if _, err := f.AWS.UpdateSecret(ctx, "db", "db-v2"); err != nil {
			t.Fatal(err)
		}
	})
	refreshRound(awstest.OpGetParameters, func() {
		if _, err := f.AWS.PutParameter(ctx, "/app/flag", "flag-v2", "String"); err != nil {
			t.Fatal(err)
		}
	})
	for path, want := range map[string]string{secretPath("db"): "db-v2", paramPath("/app/flag"): "flag-v2"} {
		r := p.get(t, path, withToken(token)...)
		if got := value(t, r); got != want || r.xcache != "hit" {
			t.Errorf("%s after the refresh: %q (X-Cache %s), want %q as a hit", path, got, r.xcache, want)
		}
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0\n%s", code, p.out)
	}
}

// Through an AWS outage the last value is served, past its TTL as stale;
// once AWS is back the timer's next retry brings the new value.
func TestStaleIfErrorThroughOutage(t *testing.T) {
	f := newFront(t)
	seed(t, f, map[string]string{"db": "db-v1"}, nil)
	addr := freeAddr(t)
	env := append(baseEnv(f.URL),
		"AWS_TOKEN="+token,
		"SECRETS_PREFETCH_LISTEN="+addr,
		"SECRETS_PREFETCH_SECRETS=db",
		"SECRETS_MANAGER_TTL=2",
		"SECRETS_PREFETCH_STALE_IF_ERROR_SECONDS=600",
	)
	p := start(t, env, "agent")
	p.waitReady(t)
	if _, err := f.AWS.UpdateSecret(context.Background(), "db", "db-v2"); err != nil {
		t.Fatal(err)
	}
	f.AWS.Inject(awstest.OpAll, awstest.InternalError())

	// Each failed refresh round is a chance for the TTL to have run out;
	// the value stays the last good one throughout, and turns stale.
	stale := false
	for i := 1; i <= 20 && !stale; i++ {
		p.out.waitLines(t, i, "refresh failed")
		r := p.get(t, secretPath("db"), withToken(token)...)
		if got := value(t, r); got != "db-v1" {
			t.Fatalf("during the outage: %q, want the last good value", got)
		}
		stale = r.xcache == "stale"
	}
	if !stale {
		t.Fatalf("never served as stale through 20 failed refreshes\n%s", p.out)
	}

	f.AWS.ClearFaults()
	n := p.out.count("msg=refreshed", "refreshed=1", "failed=0")
	p.out.waitLines(t, n+1, "msg=refreshed", "refreshed=1", "failed=0")
	r := p.get(t, secretPath("db"), withToken(token)...)
	if got := value(t, r); got != "db-v2" || r.xcache != "hit" {
		t.Fatalf("after the outage: %q (X-Cache %s), want db-v2 as a hit", got, r.xcache)
	}
}

// The token comes from a file named by AWS_TOKEN=file://, and a new token
// written to it (by rename, or in place) replaces the old one; it is
// accepted in X-Vault-Token too, and the /v1/ route serves secrets.
func TestTokenFileVaultHeaderAndPathRoute(t *testing.T) {
	f := newFront(t)
	seed(t, f, map[string]string{"db": "db-v1", "app/key": "key-v1"}, nil)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("first-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := start(t, append(baseEnv(f.URL),
		"AWS_TOKEN=file://"+tokenFile,
		"AWS_SESSION_TOKEN=not-the-token",
		"SECRETS_PREFETCH_LISTEN="+addr,
		"SECRETS_PREFETCH_SECRETS=db,app/key",
	), "agent")
	p.waitReady(t)

	if r := p.get(t, secretPath("db"), withToken("first-token")...); r.status != http.StatusOK {
		t.Fatalf("the file's token: %d %s", r.status, r.body)
	}
	if r := p.get(t, secretPath("db"), withToken("not-the-token")...); r.status != http.StatusForbidden {
		t.Fatalf("AWS_SESSION_TOKEN when AWS_TOKEN is set: %d, want 403", r.status)
	}
	if r := p.get(t, secretPath("db"), localserver.VaultTokenHeader, "first-token"); r.status != http.StatusOK {
		t.Fatalf("X-Vault-Token: %d %s", r.status, r.body)
	}
	query := p.get(t, secretPath("app/key"), withToken("first-token")...)
	route := p.get(t, "/v1/app/key", localserver.VaultTokenHeader, "first-token")
	if route.status != http.StatusOK || route.body != query.body || route.xcache != "hit" {
		t.Fatalf("/v1/app/key: %d %q %s, want the body of /secretsmanager/get as a hit", route.status, route.body, route.xcache)
	}
	if r := p.get(t, "/v1/db"); r.status != http.StatusUnauthorized {
		t.Fatalf("/v1/ without a token: %d, want 401", r.status)
	}

	// Replaced by rename, as atomic writers and Kubernetes do.
	tmp := filepath.Join(dir, ".token.tmp")
	if err := os.WriteFile(tmp, []byte("  second-token  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, tokenFile); err != nil {
		t.Fatal(err)
	}
	p.out.waitLines(t, 1, "token file changed")
	if r := p.get(t, secretPath("db"), withToken("second-token")...); r.status != http.StatusOK {
		t.Fatalf("the renamed-in token: %d", r.status)
	}
	if r := p.get(t, secretPath("db"), withToken("first-token")...); r.status != http.StatusForbidden {
		t.Fatalf("the old token after the rename: %d, want 403", r.status)
	}
	// Rewritten in place.
	if err := os.WriteFile(tokenFile, []byte("third-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.out.waitLines(t, 2, "token file changed")
	if r := p.get(t, secretPath("db"), withToken("third-token")...); r.status != http.StatusOK {
		t.Fatalf("the token written in place: %d", r.status)
	}
	if strings.Contains(p.out.String(), "second-token") || strings.Contains(p.out.String(), "first-token") {
		t.Fatalf("a token is in the log:\n%s", p.out)
	}
}

// Exit codes: 2 for bad configuration (naming the variable or key), 1 for
// a failure while running (the address taken), 3 for a required prefetch
// that failed, 0 for SIGTERM.
func TestExitCodes(t *testing.T) {
	f := newFront(t)
	seed(t, f, map[string]string{"db": "db-v1"}, nil)

	p := start(t, baseEnv(f.URL), "agent")
	if code := p.exitCode(t); code != 2 || !strings.Contains(p.out.String(), "AWS_TOKEN, AWS_SESSION_TOKEN, AWS_CONTAINER_AUTHORIZATION_TOKEN") {
		t.Errorf("no token: exit %d, want 2 naming the variables\n%s", code, p.out)
	}

	file := filepath.Join(t.TempDir(), "agent.toml")
	if err := os.WriteFile(file, []byte("ttl_seconds = 100000\nnot_a_key = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p = start(t, append(baseEnv(f.URL), "AWS_TOKEN="+token), "agent", "--config", file)
	if code := p.exitCode(t); code != 2 || !strings.Contains(p.out.String(), "ttl_seconds") || !strings.Contains(p.out.String(), "not_a_key: unknown key") {
		t.Errorf("bad config file: exit %d, want 2 naming both keys\n%s", code, p.out)
	}
	p = start(t, nil, "agent", "--no-such-flag")
	if code := p.exitCode(t); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	p = start(t, append(baseEnv(f.URL), "AWS_TOKEN="+token, "SECRETS_PREFETCH_LISTEN="+taken.Addr().String()), "agent")
	if code := p.exitCode(t); code != 1 {
		t.Errorf("address in use: exit %d, want 1\n%s", code, p.out)
	}

	p = start(t, append(baseEnv(f.URL), "AWS_TOKEN="+token, "SECRETS_PREFETCH_LISTEN="+freeAddr(t),
		"SECRETS_PREFETCH_SECRETS=db,missing", "SECRETS_PREFETCH_REQUIRED=true"), "agent")
	if code := p.exitCode(t); code != 3 || !strings.Contains(p.out.String(), "missing") {
		t.Errorf("required item missing: exit %d, want 3 naming it\n%s", code, p.out)
	}

	p = start(t, append(baseEnv(f.URL), "AWS_TOKEN="+token, "SECRETS_PREFETCH_LISTEN="+freeAddr(t), "SECRETS_PREFETCH_SECRETS=db"), "agent")
	p.waitReady(t)
	p.signal(t, syscall.SIGINT)
	if code := p.exitCode(t); code != 0 || p.out.count("msg=stopped") != 1 {
		t.Errorf("SIGINT: exit %d, want 0 after a clean stop\n%s", code, p.out)
	}

	if code := start(t, nil, "version").exitCode(t); code != 0 {
		t.Errorf("version: exit %d", code)
	}
	for _, cmd := range []string{"agent", "healthcheck", "version"} {
		p := start(t, nil, cmd, "--help")
		if code := p.exitCode(t); code != 0 || !strings.Contains(p.out.String(), "Usage: secrets-prefetch "+cmd) {
			t.Errorf("%s --help: exit %d\n%s", cmd, code, p.out)
		}
	}
}

// SIGTERM stops accepting, answers the read still waiting for AWS, wipes
// and exits 0.
func TestSIGTERMAnswersReadsInFlight(t *testing.T) {
	f := newFront(t)
	seed(t, f, map[string]string{"db": "db-v1", "slow": "slow-v1"}, nil)
	addr := freeAddr(t)
	p := start(t, append(baseEnv(f.URL),
		"AWS_TOKEN="+token,
		"SECRETS_PREFETCH_LISTEN="+addr,
		"SECRETS_PREFETCH_SECRETS=db",
		"SECRETS_PREFETCH_SHUTDOWN_TIMEOUT_MILLIS=30000",
	), "agent")
	p.waitReady(t)
	release := f.hold(t, awstest.OpGetSecretValue)
	got := make(chan response, 1)
	go func() {
		r, err := doGet(context.Background(), "http://"+addr+secretPath("slow"), withToken(token)...)
		if err != nil {
			r.body = err.Error()
		}
		got <- r
	}()
	f.waitArrived(t, awstest.OpGetSecretValue)
	p.signal(t, syscall.SIGTERM)
	p.out.waitLines(t, 1, "msg=stopping")
	release()
	r := <-got
	if r.status != http.StatusOK || !strings.Contains(r.body, "slow-v1") {
		t.Fatalf("the read in flight at SIGTERM: %d %s, want its value", r.status, r.body)
	}
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d, want 0\n%s", code, p.out)
	}
	if _, err := doGet(context.Background(), "http://"+addr+"/ping"); err == nil {
		t.Fatal("the agent still answers after it exited")
	}
	fmt.Fprint(os.Stderr) // keep fmt for helpers that print
}

// A parameter path is listed again on the timer: a parameter added under
// it joins with no read, and is then served from memory.
func TestPathListedAgainOnTimer(t *testing.T) {
	f := newFront(t)
	seed(t, f, nil, map[string]string{"/app/a": "a-v1"})
	addr := freeAddr(t)
	p := start(t, append(baseEnv(f.URL),
		"AWS_TOKEN="+token,
		"SECRETS_PREFETCH_LISTEN="+addr,
		"SECRETS_PREFETCH_PARAMETERS=/app/*",
		"SECRETS_PREFETCH_LAZY=false",
		"SSM_PARAMETER_STORE_TTL=2",
	), "agent")
	p.waitReady(t)
	if _, err := f.AWS.PutParameter(context.Background(), "/app/new", "new-v1", "String"); err != nil {
		t.Fatal(err)
	}
	p.out.waitLines(t, 1, "msg=\"listed again\"", "joined=1")
	mark := f.mark()
	r := p.get(t, paramPath("/app/new"), withToken(token)...)
	if got := value(t, r); got != "new-v1" || r.xcache != "hit" {
		t.Fatalf("/app/new after the path was listed again: %q (X-Cache %s), want a hit", got, r.xcache)
	}
	// (A timer round may fall in between: only a single-item call is the read's.)
	for _, c := range f.since(mark) {
		if c.op == awstest.OpGetParameter {
			t.Fatalf("the read called AWS: %v", c)
		}
	}
}
