package rie

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/testfunc"
)

// The zero-code modes end to end: a function started through the layer's
// exec wrapper (layer/secrets-prefetch-env, installed at /opt as the layer
// ships it) finds SECRETS_PREFETCH_ENV's variables and SECRETS_PREFETCH_FILES'
// files on the first line of its Init, without an HTTP call of its own.
//
// RIE does not implement AWS_LAMBDA_EXEC_WRAPPER: in Lambda it is the managed
// runtimes' bootstrap scripts that honour it (OS-only runtimes, provided.*,
// don't). So the function's bootstrap here is a stand-in for a managed
// runtime's: it execs "$AWS_LAMBDA_EXEC_WRAPPER" with the runtime command and
// its arguments, as Lambda's do.

// zeroCodeBootstrap stands in for a managed runtime's bootstrap.
const zeroCodeBootstrap = `#!/bin/sh
runtime="$(dirname "$0")/zerocode-func"
if [ -n "$AWS_LAMBDA_EXEC_WRAPPER" ]; then
	exec "$AWS_LAMBDA_EXEC_WRAPPER" "$runtime" --handler "app.handler with space" ""
fi
exec "$runtime" --handler "app.handler with space" ""
`

// The values seeded into AWS: none may appear in RIE's output.
const (
	zcPassword = "zc-db-password-4f1d9e"
	zcAPIKey   = "zc-api-key-8b2c71"
	zcURL      = "https://zc.example/api-6a0e33"
	zcToken    = "zc-secure-token-13d5aa"
)

var zcBinary = []byte{0x00, 0x01, 0xfe, 0xff, 'z', 'c'}

// zeroCodeFunc is ../testfunc/zerocode, built once per test process.
var zeroCodeFunc = testFunction{pkg: "./testfunc/zerocode", file: "zerocode-func"}

// startZeroCode launches RIE with the extension, the layer's wrapper script
// at /opt/secrets-prefetch-env and the zero-code function behind the
// stand-in bootstrap.
func startZeroCode(t *testing.T, env ...string) *Env {
	t.Helper()
	requireSupported(t)
	bins, err := sharedBinaries(true)
	if err != nil {
		t.Fatal(err)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Launch populates dir; what it does not know of goes in first.
	if err := install(filepath.Join(root, "layer", "secrets-prefetch-env"), filepath.Join(dir, "opt", "secrets-prefetch-env")); err != nil {
		t.Fatal(err)
	}
	if err := install(zeroCodeFunc.path(t), filepath.Join(dir, "task", "zerocode-func")); err != nil {
		t.Fatal(err)
	}
	bins.Function = filepath.Join(t.TempDir(), "bootstrap")
	if err := os.WriteFile(bins.Function, []byte(zeroCodeBootstrap), 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := Launch(t.Context(), dir, Options{
		Binaries: bins,
		Env: append([]string{
			"AWS_LAMBDA_EXEC_WRAPPER=/opt/secrets-prefetch-env",
			"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug",
		}, env...),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		called := e.stopCalled.Load()
		if err := e.Shutdown(ctx); err != nil && !called {
			t.Errorf("rie: shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("RIE output:\n%s", e.Output())
		}
	})
	return e
}

func seedZeroCode(t *testing.T) *awstest.AWS {
	t.Helper()
	a := awstest.Start(t)
	ctx := t.Context()
	for name, v := range map[string]string{
		"prod/db": `{"username":"admin","password":"` + zcPassword + `"}`,
		"api-key": zcAPIKey,
	} {
		if _, err := a.PutSecretString(ctx, name, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.PutSecretBinary(ctx, "keystore", zcBinary); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutParameter(ctx, "/app/api-url", zcURL, "String"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutParameter(ctx, "/app/token", zcToken, "SecureString"); err != nil {
		t.Fatal(err)
	}
	return a
}

// filesDir is a fresh directory under /tmp (the only place files may be
// mapped). /tmp is not private to RIE's mount namespace, so the test sees
// the files too.
func filesDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "secrets-prefetch-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func zeroCodeInvoke(t *testing.T, e *Env) testfunc.ZeroCodeResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	status, body, _, err := e.Invoke(ctx, []byte(`{}`))
	if err != nil || status != 200 {
		t.Fatalf("invoke: status %d, err %v, body %s", status, err, body)
	}
	var resp testfunc.ZeroCodeResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return resp
}

func assertNoZeroCodeValues(t *testing.T, out string) {
	t.Helper()
	for _, v := range []string{zcPassword, zcAPIKey, zcURL, zcToken, "rotated-" + zcPassword} {
		if strings.Contains(out, v) {
			t.Errorf("value %q appears in RIE's output", v)
		}
	}
}

func TestE2EZeroCode(t *testing.T) {
	t.Parallel()
	a := seedZeroCode(t)
	dir := filesDir(t)
	dbFile, keyFile, urlFile := filepath.Join(dir, "db.json"), filepath.Join(dir, "tls", "keystore.p12"), filepath.Join(dir, "url")
	vars := []string{"DB_PASSWORD", "DB_USER", "API_KEY", "API_URL", "TOKEN", "MAYBE"}
	e := startZeroCode(t, append(a.Env(),
		"SECRETS_PREFETCH_ENV=DB_PASSWORD=secret:prod/db#password, DB_USER=secret:prod/db#username, API_KEY=secret:api-key,"+
			" API_URL=param:/app/api-url, TOKEN=param:/app/token, MAYBE?=secret:not-there",
		"SECRETS_PREFETCH_FILES="+dbFile+"=secret:prod/db, "+keyFile+"=secret:keystore, "+urlFile+"=param:/app/api-url",
		// Mapped items count as listed: nothing else is fetched on demand.
		"SECRETS_PREFETCH_LAZY=false",
		// A short TTL, refreshed on every INVOKE: rotation reaches the files.
		"SECRETS_MANAGER_TTL=1",
		"SECRETS_PREFETCH_REFRESH_AHEAD=0.001",
		"FUNC_REPORT_ENV="+strings.Join(vars, ","),
		"FUNC_REPORT_FILES="+strings.Join([]string{dbFile, keyFile, urlFile}, ","),
	)...)

	resp := zeroCodeInvoke(t, e)
	init := resp.Init
	if want := []string{"--handler", "app.handler with space", ""}; !slices.Equal(init.Args, want) {
		t.Errorf("runtime args = %q, want them unchanged: %q", init.Args, want)
	}
	for name, want := range map[string]string{
		"DB_PASSWORD": zcPassword, "DB_USER": "admin", "API_KEY": zcAPIKey, "API_URL": zcURL, "TOKEN": zcToken,
	} {
		if got := init.Env[name]; got == nil || *got != want {
			t.Errorf("on the first line of Init %s = %v, want %q", name, deref(got), want)
		}
	}
	if got := init.Env["MAYBE"]; got != nil {
		t.Errorf("MAYBE (optional, missing) = %q, want unset", *got)
	}
	for p, want := range map[string][]byte{
		dbFile:  []byte(`{"username":"admin","password":"` + zcPassword + `"}`),
		keyFile: zcBinary,
		urlFile: []byte(zcURL),
	} {
		f := init.Files[p]
		if !f.Exists || f.Mode != 0o600 || string(f.Content) != string(want) {
			t.Errorf("on the first line of Init %s: exists %v, mode %o, content %q (%s); want 0600 and %q", p, f.Exists, f.Mode, f.Content, f.Error, want)
		}
	}
	if fi, err := os.Stat(filepath.Dir(keyFile)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("created directory: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}

	// Rotation: the file follows on a later INVOKE; the variable, set once
	// before the runtime started, does not (the README says so).
	if _, err := a.UpdateSecret(t.Context(), "prod/db", `{"username":"admin","password":"rotated-`+zcPassword+`"}`); err != nil {
		t.Fatal(err)
	}
	rotated := false
	for range 10 { // each invoke lets the extension refresh (TTL 1 s, refresh ahead at 1 ms)
		resp = zeroCodeInvoke(t, e)
		if strings.Contains(string(resp.Now.Files[dbFile].Content), "rotated-") {
			rotated = true
			break
		}
	}
	if !rotated {
		t.Errorf("the file was not rewritten after the secret rotated: %q", resp.Now.Files[dbFile].Content)
	}
	if f := resp.Now.Files[dbFile]; f.Mode != 0o600 {
		t.Errorf("rewritten file mode %o, want 0600", f.Mode)
	}
	if got := resp.Init.Env["DB_PASSWORD"]; got == nil || *got != zcPassword {
		t.Errorf("DB_PASSWORD = %v; the environment keeps the value of Init", deref(got))
	}

	if err := e.Shutdown(t.Context()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for _, p := range []string{dbFile, keyFile, urlFile, filepath.Dir(keyFile)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists after SHUTDOWN (%v)", p, err)
		}
	}
	out := e.Output()
	assertNoZeroCodeValues(t, out)
	if !strings.Contains(out, "environment set") || !strings.Contains(out, "optional variable not set: MAYBE") {
		t.Errorf("the wrapper's log lines are missing:\n%s", out)
	}
	if r := InitReports(out); len(r) == 0 || r[0].Status != "success" {
		t.Errorf("InitReports = %+v", r)
	}
}

// TestE2EZeroCodeBadMapping: a mistake in a mapping fails Init, and the
// output names the entry. The extension and the wrapper validate the same
// mapping; under RIE the extension's init/error comes first and the runtime
// (so the wrapper) is never started, so the extension is the one that says so.
func TestE2EZeroCodeBadMapping(t *testing.T) {
	t.Parallel()
	a := seedZeroCode(t)
	e := startZeroCode(t, append(a.Env(),
		"SECRETS_PREFETCH_ENV=DB_PASSWORD=secret:prod/db#password, BROKEN=sekret:prod/db",
		"FUNC_REPORT_ENV=DB_PASSWORD",
	)...)
	zeroCodeFailInit(t, e)
	out := e.Output()
	if !strings.Contains(out, `SECRETS_PREFETCH_ENV: element 2 \"BROKEN=sekret:prod/db\" is not valid`) {
		t.Errorf("the bad entry is not named:\n%s", out)
	}
	if !strings.Contains(out, "Extension.ConfigInvalid") {
		t.Errorf("output lacks the extension's init error:\n%s", out)
	}
	assertNoZeroCodeValues(t, out)
}

// TestE2EZeroCodeRequiredMissing: a required value that can't be read stops
// the wrapper, which fails Init naming the entry and the error code.
func TestE2EZeroCodeRequiredMissing(t *testing.T) {
	t.Parallel()
	a := seedZeroCode(t)
	e := startZeroCode(t, append(a.Env(),
		"SECRETS_PREFETCH_ENV=API_KEY=secret:api-key, DB_PASSWORD=secret:prod/missing#password",
	)...)
	zeroCodeFailInit(t, e)
	out := e.Output()
	for _, want := range []string{
		"required variable could not be read: DB_PASSWORD", "element=2", `entry="DB_PASSWORD=secret:prod/missing#password"`,
		"status=404", "code=ResourceNotFoundException", "not starting the runtime",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	assertNoZeroCodeValues(t, out)
}

func zeroCodeFailInit(t *testing.T, e *Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	status, body, _, err := e.Invoke(ctx, []byte(`{}`))
	if err != nil || status != 502 {
		t.Fatalf("invoke: status %d, err %v, body %s; want 502 (Init failed)", status, err, body)
	}
	if r := InitReports(e.Output()); len(r) == 0 || r[0].Status != "error" {
		t.Errorf("InitReports = %+v, want a first one with status error", r)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<unset>"
	}
	return *s
}
