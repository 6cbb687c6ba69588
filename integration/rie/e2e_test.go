package rie

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/testfunc"
)

// The end-to-end scenarios: the real extension and a real function under
// RIE, against awstest. Each test has its own AWS and execution environment
// (its own ports), so they run in parallel.

// world is one scenario's AWS and execution environment.
type world struct {
	aws *awstest.AWS
	env *Env
}

// seed is what a scenario puts into AWS before the environment starts.
type seed struct {
	secrets    map[string]string
	parameters map[string]string // SecureString values
}

func newWorld(t *testing.T, s seed, env ...string) *world {
	t.Helper()
	requireSupported(t)
	a := awstest.Start(t)
	ctx := t.Context()
	for name, v := range s.secrets {
		if _, err := a.PutSecretString(ctx, name, v); err != nil {
			t.Fatal(err)
		}
	}
	for name, v := range s.parameters {
		if _, err := a.PutParameter(ctx, name, v, "SecureString"); err != nil {
			t.Fatal(err)
		}
	}
	e := Start(t, Options{Env: append(a.Env(), append([]string{"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug"}, env...)...)})
	return &world{aws: a, env: e}
}

// invoke runs one invocation that must succeed and decodes the function's
// report of its reads.
func (w *world) invoke(t *testing.T, req testfunc.Request) testfunc.Response {
	t.Helper()
	payload, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	status, body, _, err := w.env.Invoke(ctx, payload)
	if err != nil || status != 200 {
		t.Fatalf("invoke %s: status %d, err %v, body %s", payload, status, err, body)
	}
	var resp testfunc.Response
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return resp
}

// invokeUntil invokes with req until done accepts a response, and fails the
// test after limit. The invokes are the signal (each one lets the extension
// refresh); the short pause between them only keeps the log readable.
func (w *world) invokeUntil(t *testing.T, req testfunc.Request, limit time.Duration, done func(testfunc.Response) bool) testfunc.Response {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp := w.invoke(t, req)
		if done(resp) {
			return resp
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v; last response %+v", limit, resp)
		}
		<-tick.C
	}
}

// failInit invokes an environment whose Init must fail: 502, as Lambda answers.
func (w *world) failInit(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	status, body, _, err := w.env.Invoke(ctx, []byte(`{}`))
	if err != nil || status != 502 {
		t.Fatalf("invoke: status %d, err %v, body %s; want 502 (Init failed)", status, err, body)
	}
}

// checkRead checks one read: 200, want as value, and X-Cache one of xcache.
func checkRead(t *testing.T, r testfunc.Read, want string, xcache ...string) {
	t.Helper()
	if r.Status != 200 || r.Value != want || !slices.Contains(xcache, r.XCache) {
		t.Errorf("%s: status %d, X-Cache %q, value %q (%s); want 200, X-Cache in %q, value %q",
			r.Path, r.Status, r.XCache, r.Value, r.TransportError, xcache, want)
	}
}

func TestE2EPrefetchBeforeFirstInvoke(t *testing.T) {
	t.Parallel()
	w := newWorld(t, seed{
		secrets: map[string]string{"app/db": `{"user":"u1","password":"p1"}`, "app/key": "k1"},
		parameters: map[string]string{
			"/app/a": "a1", "/app/b": "b1", "/app/c": "c1",
		},
	},
		"SECRETS_PREFETCH_SECRETS=app/db, app/key",
		"SECRETS_PREFETCH_PARAMETERS=/app/a,/app/b,/app/c",
		"FUNC_READ_SECRETS=app/key",
		"FUNC_READ_PARAMETERS=/app/a",
	)

	resp := w.invoke(t, testfunc.Request{
		Secrets: []string{"app/db", "app/key"}, Parameters: []string{"/app/a", "/app/b", "/app/c"}, Paths: []string{"/ping"},
	})

	// The function's Init read the values: served from the prefetch (a hit,
	// or a miss that joined the fetch in flight — never a fetch of its own,
	// as the call counts below show).
	if len(resp.Init) != 2 {
		t.Fatalf("init reads = %+v", resp.Init)
	}
	checkRead(t, resp.Init[0], "k1", "hit", "miss")
	checkRead(t, resp.Init[1], "a1", "hit", "miss")
	// At the first invoke everything is cached already.
	for i, want := range []string{`{"user":"u1","password":"p1"}`, "k1", "a1", "b1", "c1"} {
		checkRead(t, resp.Reads[i], want, "hit")
	}
	if ping := resp.Reads[5]; ping.Status != 200 {
		t.Errorf("/ping at the first invoke: %d %s, want 200 (prefetch done)", ping.Status, ping.Value)
	}
	wantCalls := map[string]int{awstest.OpBatchGetSecretValue: 1, awstest.OpGetParameters: 1}
	if got := w.aws.AllCalls(); !mapsEqual(got, wantCalls) {
		t.Errorf("AWS calls = %v, want %v: one batch per service", got, wantCalls)
	}
	if n := w.aws.Items(awstest.OpBatchGetSecretValue); n != 2 {
		t.Errorf("BatchGetSecretValue asked for %d ids, want 2", n)
	}
	if n := w.aws.Items(awstest.OpGetParameters); n != 3 {
		t.Errorf("GetParameters asked for %d names, want 3", n)
	}

	// Later invokes cost AWS nothing while the TTL (default 300 s) runs.
	resp = w.invoke(t, testfunc.Request{Secrets: []string{"app/db"}, JSONKey: "password"})
	checkRead(t, resp.Reads[0], "p1", "hit")
	if got := w.aws.AllCalls(); !mapsEqual(got, wantCalls) {
		t.Errorf("AWS calls after the second invoke = %v, want %v", got, wantCalls)
	}
	if r := InitReports(w.env.Output()); len(r) != 1 || r[0].Status != "success" {
		t.Errorf("InitReports = %+v, want one success", r)
	}
}

// TestE2EInitReadJoinsPrefetch slows the prefetch so that the function's
// Init reads while it is in flight: the read waits for it and gets the value,
// with no fetch of its own.
func TestE2EInitReadJoinsPrefetch(t *testing.T) {
	t.Parallel()
	a := seed{secrets: map[string]string{"slow": "s1"}}
	w := newWorld(t, a, "SECRETS_PREFETCH_SECRETS=slow", "FUNC_READ_SECRETS=slow",
		"SECRETS_MANAGER_TIMEOUT_MILLIS=30000", "SECRETS_PREFETCH_INIT_TIMEOUT_MILLIS=30000")
	// Init starts at the first invoke, so this slows the prefetch. Long
	// enough that the function's Init surely reads before it ends, even on a
	// loaded machine running the other end-to-end tests beside it.
	w.aws.Inject(awstest.OpAll, awstest.Latency(4*time.Second))

	resp := w.invoke(t, testfunc.Request{Secrets: []string{"slow"}})
	// A miss (it waited) and, below, no call of its own: it joined.
	checkRead(t, resp.Init[0], "s1", "miss")
	checkRead(t, resp.Reads[0], "s1", "hit")
	// One secret: one GetSecretValue (a batch would do too), nothing more.
	if got := w.aws.AllCalls(); total(got) != 1 {
		t.Errorf("AWS calls = %v, want a single call", got)
	}
}

func TestE2ERefreshNow(t *testing.T) {
	t.Parallel()
	w := newWorld(t, seed{
		secrets:    map[string]string{"s": "v1"},
		parameters: map[string]string{"/p": "v1"},
	}, "SECRETS_PREFETCH_SECRETS=s", "SECRETS_PREFETCH_PARAMETERS=/p")
	req := testfunc.Request{Secrets: []string{"s"}, Parameters: []string{"/p"}}

	resp := w.invoke(t, req)
	checkRead(t, resp.Reads[0], "v1", "hit")
	checkRead(t, resp.Reads[1], "v1", "hit")

	ctx := t.Context()
	if _, err := w.aws.UpdateSecret(ctx, "s", "v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.aws.PutParameter(ctx, "/p", "v2", "SecureString"); err != nil {
		t.Fatal(err)
	}
	// Within the TTL the cached value stands...
	resp = w.invoke(t, req)
	checkRead(t, resp.Reads[0], "v1", "hit")
	checkRead(t, resp.Reads[1], "v1", "hit")
	// ...unless the caller asks for a fresh one, which is then cached.
	resp = w.invoke(t, testfunc.Request{Secrets: req.Secrets, Parameters: req.Parameters, RefreshNow: true})
	checkRead(t, resp.Reads[0], "v2", "miss")
	checkRead(t, resp.Reads[1], "v2", "miss")
	resp = w.invoke(t, req)
	checkRead(t, resp.Reads[0], "v2", "hit")
	checkRead(t, resp.Reads[1], "v2", "hit")
}

func TestE2ETTLExpiry(t *testing.T) {
	t.Parallel()
	w := newWorld(t, seed{
		secrets:    map[string]string{"s": "v1"},
		parameters: map[string]string{"/p": "v1"},
	}, "SECRETS_PREFETCH_SECRETS=s", "SECRETS_PREFETCH_PARAMETERS=/p",
		"SECRETS_MANAGER_TTL=1", "SSM_PARAMETER_STORE_TTL=1")
	req := testfunc.Request{Secrets: []string{"s"}, Parameters: []string{"/p"}}
	resp := w.invoke(t, req)
	checkRead(t, resp.Reads[0], "v1", "hit")
	checkRead(t, resp.Reads[1], "v1", "hit")

	ctx := t.Context()
	if _, err := w.aws.UpdateSecret(ctx, "s", "v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.aws.PutParameter(ctx, "/p", "v2", "SecureString"); err != nil {
		t.Fatal(err)
	}
	w.invokeUntil(t, req, 20*time.Second, func(resp testfunc.Response) bool {
		for _, r := range resp.Reads {
			if r.Status != 200 || (r.Value != "v1" && r.Value != "v2") {
				t.Fatalf("%s: status %d, value %q; want 200 with v1 or v2", r.Path, r.Status, r.Value)
			}
		}
		return resp.Reads[0].Value == "v2" && resp.Reads[1].Value == "v2"
	})
}

func TestE2EStaleIfError(t *testing.T) {
	t.Parallel()
	w := newWorld(t, seed{secrets: map[string]string{"s": "v1"}},
		"SECRETS_PREFETCH_SECRETS=s", "SECRETS_MANAGER_TTL=1", "SECRETS_PREFETCH_STALE_IF_ERROR_SECONDS=60")
	req := testfunc.Request{Secrets: []string{"s"}}
	checkRead(t, w.invoke(t, req).Reads[0], "v1", "hit")

	remove := w.aws.Inject(awstest.OpAll, awstest.InternalError())
	resp := w.invokeUntil(t, req, 20*time.Second, func(resp testfunc.Response) bool {
		r := resp.Reads[0]
		if r.Status != 200 || r.Value != "v1" {
			t.Fatalf("while AWS fails: status %d, value %q; want the old value", r.Status, r.Value)
		}
		return r.XCache == "stale"
	})
	if resp.Reads[0].Age == "" || resp.Reads[0].Age == "0" {
		t.Errorf("stale read has Age %q, want its age in seconds", resp.Reads[0].Age)
	}
	if w.aws.Calls(awstest.OpGetSecretValue)+w.aws.Calls(awstest.OpBatchGetSecretValue) < 2 {
		t.Errorf("AWS calls = %v: the stale value was served without trying AWS", w.aws.AllCalls())
	}

	// Once AWS answers again, fresh values come back.
	remove()
	w.invokeUntil(t, req, 20*time.Second, func(resp testfunc.Response) bool { return resp.Reads[0].XCache != "stale" })
}

func TestE2EShutdown(t *testing.T) {
	t.Parallel()
	w := newWorld(t, seed{secrets: map[string]string{"s": "v1"}}, "SECRETS_PREFETCH_SECRETS=s")
	checkRead(t, w.invoke(t, testfunc.Request{Secrets: []string{"s"}}).Reads[0], "v1", "hit")

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := w.env.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// RIE gives extensions ~2 s after SHUTDOWN, then kills them: the
	// SIGKILL check below is what proves the deadline was met; this bound,
	// loose for loaded CI machines, only catches a hang in between.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	out := w.env.Output()
	if types := ErrorTypes(out); len(types) != 0 {
		t.Errorf("error types after shutdown: %v", types)
	}
	// RIE logs "Sending SIGKILL to ..." for what did not exit in time.
	if strings.Contains(out, "SIGKILL") {
		t.Errorf("RIE had to kill a process at shutdown:\n%s", out)
	}
	if !strings.Contains(out, "extension=secrets-prefetch reason=SandboxTerminated") {
		t.Errorf("the extension did not log the SHUTDOWN it handled:\n%s", out)
	}
}

func TestE2EBadConfig(t *testing.T) {
	t.Parallel()
	w := newWorld(t, seed{}, "SECRETS_MANAGER_TTL=abc")
	w.failInit(t)
	out := w.env.Output()
	if !strings.Contains(out, "SECRETS_MANAGER_TTL") || !strings.Contains(out, "Extension.ConfigInvalid") {
		t.Errorf("output does not name SECRETS_MANAGER_TTL and Extension.ConfigInvalid:\n%s", out)
	}
	if r := InitReports(out); len(r) == 0 || r[0].Status != "error" {
		t.Errorf("InitReports = %+v, want a failed Init first", r)
	}
}

func TestE2ERequiredItemMissing(t *testing.T) {
	t.Parallel()
	w := newWorld(t, seed{secrets: map[string]string{"present": "v1"}},
		"SECRETS_PREFETCH_SECRETS=present,absent-secret-42", "SECRETS_PREFETCH_REQUIRED=true")
	w.failInit(t)
	out := w.env.Output()
	if !strings.Contains(out, "absent-secret-42") || !strings.Contains(out, "Extension.PrefetchFailed") {
		t.Errorf("output does not name absent-secret-42 and Extension.PrefetchFailed:\n%s", out)
	}
}

// TestE2ENoValuesInLogs seeds distinctive values, exercises every read path
// at debug log level, and scans everything RIE, the extension and the
// function printed for them.
func TestE2ENoValuesInLogs(t *testing.T) {
	t.Parallel()
	v := func() string {
		b := make([]byte, 8)
		rand.Read(b)
		return "sekrit-" + hex.EncodeToString(b)
	}
	jsonPart, plain, param, updated, lazy := v(), v(), v(), v(), v()
	w := newWorld(t, seed{
		secrets:    map[string]string{"db": `{"password":"` + jsonPart + `"}`, "key": plain, "lazy": lazy},
		parameters: map[string]string{"/app/p": param},
	}, "SECRETS_PREFETCH_SECRETS=db,key", "SECRETS_PREFETCH_PARAMETERS=/app/*",
		"SECRETS_PREFETCH_LAZY=true", "SECRETS_MANAGER_TTL=1",
		"FUNC_READ_SECRETS=db,key", "FUNC_READ_PARAMETERS=/app/p")

	resp := w.invoke(t, testfunc.Request{Secrets: []string{"key"}, Parameters: []string{"/app/p"}})
	checkRead(t, resp.Reads[0], plain, "hit")
	checkRead(t, resp.Reads[1], param, "hit")
	checkRead(t, w.invoke(t, testfunc.Request{Secrets: []string{"db"}, JSONKey: "password"}).Reads[0], jsonPart, "hit")
	checkRead(t, w.invoke(t, testfunc.Request{Secrets: []string{"lazy"}}).Reads[0], lazy, "miss")
	if _, err := w.aws.UpdateSecret(t.Context(), "key", updated); err != nil {
		t.Fatal(err)
	}
	checkRead(t, w.invoke(t, testfunc.Request{Secrets: []string{"key"}, RefreshNow: true}).Reads[0], updated, "miss")
	// A TTL expiry, so a refresh on INVOKE is in the log too.
	calls := func() int {
		return w.aws.Calls(awstest.OpBatchGetSecretValue) + w.aws.Calls(awstest.OpGetSecretValue)
	}
	before := calls()
	w.invokeUntil(t, testfunc.Request{}, 20*time.Second, func(testfunc.Response) bool { return calls() > before })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := w.env.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	out := w.env.Output()
	if !strings.Contains(out, `"level":"DEBUG"`) && !strings.Contains(out, "level=DEBUG") {
		t.Fatalf("no debug lines in the output: is PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL honoured?\n%s", out)
	}
	for _, secret := range []string{jsonPart, plain, param, updated, lazy} {
		if strings.Contains(out, secret) {
			t.Errorf("a secret value appears in the output:\n%s", out)
		}
	}
}

func total(calls map[string]int) int {
	n := 0
	for _, c := range calls {
		n += c
	}
	return n
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
