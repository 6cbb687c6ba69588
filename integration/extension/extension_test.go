package extension_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
)

// valueOf returns SecretString or Parameter.Value from a success body.
func valueOf(t *testing.T, r response) string {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.status, r.body)
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

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

func TestPrefetchIsBatchedAndServedFromMemory(t *testing.T) {
	secrets := names("svc-secret-", 25)
	params := names("/cfg/flat/p", 15)
	direct := names("/cfg/dir/d", 12) // 2 pages of GetParametersByPath
	deep := []string{"/cfg/deep/a/x", "/cfg/deep/b/c/y"}
	e := start(t, setup{
		env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":    strings.Join(secrets, ","),
			"SECRETS_PREFETCH_PARAMETERS": strings.Join(params, ",") + ",/cfg/dir/*,/cfg/deep/**",
			"SECRETS_PREFETCH_REQUIRED":   "true",
		},
		seed: func(ctx context.Context, a *awstest.AWS) {
			for _, s := range secrets {
				must[string](t)(a.PutSecretString(ctx, s, "value-of-"+s))
			}
			for _, p := range append(append(append([]string{}, params...), direct...), deep...) {
				must[int64](t)(a.PutParameter(ctx, p, "value-of-"+p, "SecureString"))
			}
			must[int64](t)(a.PutParameter(ctx, "/cfg/dir/sub/not-direct", "x", "String"))
		},
	})
	e.waitReady(t)

	want := map[string]int{
		awstest.OpBatchGetSecretValue: 2, // 20 + 5
		awstest.OpGetParameters:       2, // 10 + 5
		awstest.OpGetParametersByPath: 3, // /cfg/dir/*: 2 pages; /cfg/deep/**: 1
		awstest.OpGetSecretValue:      0,
		awstest.OpGetParameter:        0,
	}
	for op, n := range want {
		if got := e.aws.Calls(op); got != n {
			t.Errorf("%s calls during Init = %d, want %d", op, got, n)
		}
	}
	e.aws.ResetCalls()

	for _, s := range secrets {
		r := e.get(t, secretPath(s))
		if v := valueOf(t, r); v != "value-of-"+s || r.xcache != "hit" {
			t.Errorf("%s: %q X-Cache %q, want its value as a hit", s, v, r.xcache)
		}
	}
	for _, p := range append(append(append([]string{}, params...), direct...), deep...) {
		r := e.get(t, paramPath(p))
		if v := valueOf(t, r); v != "value-of-"+p || r.xcache != "hit" {
			t.Errorf("%s: %q X-Cache %q, want its value as a hit", p, v, r.xcache)
		}
	}
	if calls := e.aws.AllCalls(); len(calls) != 0 {
		t.Errorf("reads of prefetched items called AWS: %v", calls)
	}
	// Not under /cfg/dir/* (a grandchild): fetched on demand, as lazy is on.
	if r := e.get(t, paramPath("/cfg/dir/sub/not-direct")); r.xcache != "miss" {
		t.Errorf("grandchild of a /* path: X-Cache %q, want miss", r.xcache)
	}
}

func TestBatchRefusedFallsBackToGetSecretValue(t *testing.T) {
	secrets := names("fallback-", 4)
	e := start(t, setup{
		env: map[string]string{"SECRETS_PREFETCH_SECRETS": strings.Join(secrets, ",")},
		seed: func(ctx context.Context, a *awstest.AWS) {
			for _, s := range secrets {
				must[string](t)(a.PutSecretString(ctx, s, "v-"+s))
			}
		},
		faults: func(a *awstest.AWS) { a.Inject(awstest.OpBatchGetSecretValue, awstest.AccessDenied()) },
	})
	e.waitReady(t)
	if got := e.aws.Calls(awstest.OpGetSecretValue); got != len(secrets) {
		t.Errorf("GetSecretValue calls = %d, want %d (one per secret after the batch was refused)", got, len(secrets))
	}
	for _, s := range secrets {
		if r := e.get(t, secretPath(s)); valueOf(t, r) != "v-"+s || r.xcache != "hit" {
			t.Errorf("%s not served from the fallback prefetch: %+v", s, r)
		}
	}
}

func TestPartialBatchFailuresAreReportedPerItem(t *testing.T) {
	e := start(t, setup{
		env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":    "ok-1,ok-2,broken",
			"SECRETS_PREFETCH_PARAMETERS": "/p/ok-1,/p/ok-2,/p/broken",
		},
		seed: func(ctx context.Context, a *awstest.AWS) {
			for _, n := range []string{"ok-1", "ok-2", "broken"} {
				must[string](t)(a.PutSecretString(ctx, n, "v-"+n))
				must[int64](t)(a.PutParameter(ctx, "/p/"+n, "v-"+n, "String"))
			}
		},
		faults: func(a *awstest.AWS) {
			a.Inject(awstest.OpBatchGetSecretValue, awstest.PartialFailure(awstest.CodeDecryptionFailure, "broken").Times(1))
			a.Inject(awstest.OpGetParameters, awstest.PartialFailure("", "/p/broken").Times(1))
		},
	})
	e.waitReady(t)
	for _, p := range []string{secretPath("ok-1"), secretPath("ok-2"), paramPath("/p/ok-1"), paramPath("/p/ok-2")} {
		if r := e.get(t, p); r.status != http.StatusOK || r.xcache != "hit" {
			t.Errorf("%s: %d %q, want a hit despite a sibling's failure", p, r.status, r.xcache)
		}
	}
	// The failed items answer with their own error class, without a new
	// AWS call during the failure backoff.
	e.aws.ResetCalls()
	if r := e.get(t, secretPath("broken")); r.status != http.StatusForbidden || !strings.Contains(r.body, awstest.CodeDecryptionFailure) {
		t.Errorf("secret whose batch entry failed: %d %s, want 403 %s", r.status, r.body, awstest.CodeDecryptionFailure)
	}
	if r := e.get(t, paramPath("/p/broken")); r.status != http.StatusNotFound || !strings.Contains(r.body, "ParameterNotFound") {
		t.Errorf("parameter in InvalidParameters: %d %s, want 404 ParameterNotFound", r.status, r.body)
	}
	if calls := e.aws.AllCalls(); len(calls) != 0 {
		t.Errorf("reads during the failure backoff called AWS: %v", calls)
	}
	if strings.Contains(e.out.String(), "v-ok-1") {
		t.Error("a value reached the logs")
	}
}

func TestSelectorsAreDistinctEntries(t *testing.T) {
	var v2ID string
	e := start(t, setup{
		env: map[string]string{"SECRETS_PREFETCH_PARAMETERS": "/sel/p"},
		seed: func(ctx context.Context, a *awstest.AWS) {
			must[int64](t)(a.PutParameter(ctx, "/sel/p", "one", "String"))
			must[int64](t)(a.PutParameter(ctx, "/sel/p", "two", "String"))
			must[int64](t)(a.PutParameter(ctx, "/sel/p", "three", "String"))
			if err := a.LabelParameterVersion(ctx, "/sel/p", 1, "prod"); err != nil {
				t.Fatal(err)
			}
			must[string](t)(a.PutSecretString(ctx, "sel-secret", "first"))
			v2ID = must[string](t)(a.UpdateSecret(ctx, "sel-secret", "second"))
		},
	})
	e.waitReady(t)
	tests := []struct {
		path, value, selector string
	}{
		{paramPath("/sel/p"), "three", "null"},
		{paramPath("/sel/p:2"), "two", `":2"`},
		{paramPath("/sel/p") + "&version=1", "one", `":1"`},
		{paramPath("/sel/p") + "&label=prod", "one", `":prod"`},
		{paramPath("/sel/p:prod"), "one", `":prod"`},
		{secretPath("sel-secret"), "second", ""},
		{secretPath("sel-secret") + "&versionStage=AWSPREVIOUS", "first", ""},
		{secretPath("sel-secret") + "&versionId=" + v2ID, "second", ""},
	}
	for _, tt := range tests {
		r := e.get(t, tt.path)
		if got := valueOf(t, r); got != tt.value {
			t.Errorf("%s = %q, want %q", tt.path, got, tt.value)
		}
		if tt.selector != "" && !strings.Contains(r.body, `"Selector":`+tt.selector) {
			t.Errorf("%s: body %s lacks Selector %s", tt.path, r.body, tt.selector)
		}
		if r2 := e.get(t, tt.path); r2.xcache != "hit" {
			t.Errorf("%s read again: X-Cache %q, want hit (each selector is its own entry)", tt.path, r2.xcache)
		}
	}
	// /sel/p:2 and version=2 are the same entry.
	e.aws.ResetCalls()
	if r := e.get(t, paramPath("/sel/p")+"&version=2"); r.xcache != "hit" {
		t.Errorf("version=2 after :2: X-Cache %q, want hit", r.xcache)
	}
}

func TestRefreshAheadOnInvokeAndExpiryAfterIdle(t *testing.T) {
	e := start(t, setup{
		env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":       "rot-a,rot-b",
			"SECRETS_MANAGER_TTL":            "300",
			"SECRETS_PREFETCH_REFRESH_AHEAD": "0.5",
		},
		seed: func(ctx context.Context, a *awstest.AWS) {
			must[string](t)(a.PutSecretString(ctx, "rot-a", "a1"))
			must[string](t)(a.PutSecretString(ctx, "rot-b", "b1"))
		},
	})
	e.waitReady(t)
	must[string](t)(e.aws.UpdateSecret(t.Context(), "rot-a", "a2"))
	must[string](t)(e.aws.UpdateSecret(t.Context(), "rot-b", "b2"))
	e.aws.ResetCalls()

	// Before the refresh-ahead point (150 s, up to 10% earlier): nothing due.
	e.clock.Advance(100 * time.Second)
	e.invoke(t)
	if calls := e.aws.AllCalls(); len(calls) != 0 {
		t.Fatalf("INVOKE before the refresh point called AWS: %v", calls)
	}
	if v := valueOf(t, e.get(t, secretPath("rot-a"))); v != "a1" {
		t.Fatalf("before refresh: %q, want the cached a1", v)
	}

	// Past it: the INVOKE refreshes both in one batch, before asking for the next event.
	e.clock.Advance(60 * time.Second)
	e.invoke(t)
	if got := e.aws.Calls(awstest.OpBatchGetSecretValue); got != 1 {
		t.Errorf("BatchGetSecretValue calls on INVOKE = %d, want 1", got)
	}
	for id, want := range map[string]string{"rot-a": "a2", "rot-b": "b2"} {
		r := e.get(t, secretPath(id))
		if v := valueOf(t, r); v != want || r.xcache != "hit" {
			t.Errorf("%s after refresh = %q (%s), want %q as a hit", id, v, r.xcache, want)
		}
	}

	// An idle gap past the TTL with no INVOKE: the read fetches again.
	must[string](t)(e.aws.UpdateSecret(t.Context(), "rot-a", "a3"))
	e.aws.ResetCalls()
	e.clock.Advance(301 * time.Second)
	r := e.get(t, secretPath("rot-a"))
	if v := valueOf(t, r); v != "a3" || r.xcache != "miss" {
		t.Errorf("read past the TTL = %q (%s), want a3 as a miss", v, r.xcache)
	}
	if got := e.aws.Calls(awstest.OpGetSecretValue); got != 1 {
		t.Errorf("GetSecretValue calls for the expired read = %d, want 1", got)
	}
}

func TestStaleIfErrorWithinBound(t *testing.T) {
	e := start(t, setup{
		env: map[string]string{
			"SECRETS_PREFETCH_PARAMETERS":             "/stale/p",
			"SSM_PARAMETER_STORE_TTL":                 "60",
			"SECRETS_PREFETCH_STALE_IF_ERROR_SECONDS": "120",
		},
		seed: func(ctx context.Context, a *awstest.AWS) {
			must[int64](t)(a.PutParameter(ctx, "/stale/p", "good", "String"))
		},
	})
	e.waitReady(t)
	e.aws.Inject(awstest.OpAll, awstest.InternalError())

	e.clock.Advance(90 * time.Second) // past the TTL, within the stale bound
	r := e.get(t, paramPath("/stale/p"))
	if v := valueOf(t, r); v != "good" || r.xcache != "stale" {
		t.Errorf("during an outage = %q (%s), want the cached value as stale", v, r.xcache)
	}
	if r.age != "90" {
		t.Errorf("Age = %q, want 90", r.age)
	}
	// Many readers during the outage and backoff add no AWS calls.
	before := e.aws.Calls(awstest.OpGetParameter)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if r := e.get(t, paramPath("/stale/p")); r.xcache != "stale" {
				t.Errorf("concurrent read during outage: %d %q", r.status, r.xcache)
			}
		})
	}
	wg.Wait()
	if got := e.aws.Calls(awstest.OpGetParameter); got != before {
		t.Errorf("reads during the backoff made %d more calls, want 0", got-before)
	}

	e.clock.Advance(100 * time.Second) // 190 s: past TTL + stale bound
	if r := e.get(t, paramPath("/stale/p")); r.status != http.StatusBadGateway {
		t.Errorf("past the stale bound: %d %s, want 502", r.status, r.body)
	}
}

func TestLazyOnAndOff(t *testing.T) {
	seed := func(ctx context.Context, a *awstest.AWS) {
		must[string](t)(a.PutSecretString(ctx, "listed", "l"))
		must[string](t)(a.PutSecretString(ctx, "unlisted", "u"))
	}
	t.Run("off", func(t *testing.T) {
		e := start(t, setup{env: map[string]string{"SECRETS_PREFETCH_SECRETS": "listed", "SECRETS_PREFETCH_LAZY": "false"}, seed: seed})
		e.waitReady(t)
		e.aws.ResetCalls()
		r := e.get(t, secretPath("unlisted"))
		if r.status != http.StatusNotFound || !strings.Contains(r.body, "NotConfigured") {
			t.Errorf("unlisted with lazy off: %d %s, want 404 NotConfigured", r.status, r.body)
		}
		if calls := e.aws.AllCalls(); len(calls) != 0 {
			t.Errorf("an unlisted read called AWS with lazy off: %v", calls)
		}
		if r := e.get(t, secretPath("listed")); r.xcache != "hit" {
			t.Errorf("listed with lazy off: %+v, want a hit", r)
		}
	})
	t.Run("on", func(t *testing.T) {
		e := start(t, setup{env: map[string]string{"SECRETS_PREFETCH_SECRETS": "listed"}, seed: seed})
		e.waitReady(t)
		if r := e.get(t, secretPath("unlisted")); valueOf(t, r) != "u" || r.xcache != "miss" {
			t.Errorf("unlisted first read: %+v, want u as a miss", r)
		}
		if r := e.get(t, secretPath("unlisted")); r.xcache != "hit" {
			t.Errorf("unlisted second read: %+v, want a hit", r)
		}
		if r := e.get(t, secretPath("never-created")); r.status != http.StatusNotFound || !strings.Contains(r.body, "ResourceNotFoundException") {
			t.Errorf("missing secret: %d %s, want 404 ResourceNotFoundException", r.status, r.body)
		}
	})
}

func TestReadDuringPrefetchJoinsIt(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e := start(t, setup{
		env: map[string]string{"SECRETS_PREFETCH_SECRETS": "early-1,early-2"},
		seed: func(ctx context.Context, a *awstest.AWS) {
			must[string](t)(a.PutSecretString(ctx, "early-1", "e1"))
			must[string](t)(a.PutSecretString(ctx, "early-2", "e2"))
		},
		endpoint: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-Amz-Target") == awstest.OpBatchGetSecretValue {
					once.Do(func() { close(arrived) })
					<-release
				}
				next.ServeHTTP(w, r)
			})
		},
	})
	<-arrived // the prefetch batch is in flight
	got := make(chan response, 1)
	go func() { got <- e.get(t, secretPath("early-2")) }()
	<-e.accepted // the read has reached the extension
	close(release)
	r := <-got
	if v := valueOf(t, r); v != "e2" || r.xcache != "miss" {
		t.Errorf("read during prefetch = %q (%s), want e2 from the joined batch (miss)", v, r.xcache)
	}
	e.waitReady(t)
	if n := e.aws.Calls(awstest.OpGetSecretValue); n != 0 {
		t.Errorf("the read made its own GetSecretValue call (%d) instead of joining the batch", n)
	}
}

func TestSignaturesAreVerified(t *testing.T) {
	// The front checks every SigV4 signature; a prefetch that succeeds
	// proves the extension's requests are signed with the configured keys.
	e := start(t, setup{
		env: map[string]string{"SECRETS_PREFETCH_SECRETS": "signed", "SECRETS_PREFETCH_REQUIRED": "true"},
		seed: func(ctx context.Context, a *awstest.AWS) {
			must[string](t)(a.PutSecretString(ctx, "signed", "s"))
		},
	})
	e.waitReady(t)
	if r := e.get(t, secretPath("signed")); r.xcache != "hit" {
		t.Errorf("signed prefetch not served: %+v", r)
	}
}
