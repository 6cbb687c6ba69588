// Package extension_test runs the whole extension (app.Run) in-process with
// the real AWS SDK clients against the emulated AWS (awstest: kumo behind a
// fault-injecting front), driven through the Lambda lifecycle by a fake
// Extensions API: the harness in ../exttest, shared with ../faults and
// ../soak. The end-to-end suite under AWS's Runtime Interface Emulator is in
// ../rie.
package extension_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
)

func TestPrefetchIsBatchedAndServedFromMemory(t *testing.T) {
	secrets := exttest.Names("svc-secret-", 25)
	params := exttest.Names("/cfg/flat/p", 15)
	direct := exttest.Names("/cfg/dir/d", 12) // 2 pages of GetParametersByPath
	deep := []string{"/cfg/deep/a/x", "/cfg/deep/b/c/y"}
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":    strings.Join(secrets, ","),
			"SECRETS_PREFETCH_PARAMETERS": strings.Join(params, ",") + ",/cfg/dir/*,/cfg/deep/**",
			"SECRETS_PREFETCH_REQUIRED":   "true",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			for _, s := range secrets {
				exttest.Must[string](t)(a.PutSecretString(ctx, s, "value-of-"+s))
			}
			for _, p := range append(append(append([]string{}, params...), direct...), deep...) {
				exttest.Must[int64](t)(a.PutParameter(ctx, p, "value-of-"+p, "SecureString"))
			}
			exttest.Must[int64](t)(a.PutParameter(ctx, "/cfg/dir/sub/not-direct", "x", "String"))
		},
	})
	e.WaitReady(t)

	want := map[string]int{
		awstest.OpBatchGetSecretValue: 2, // 20 + 5
		awstest.OpGetParameters:       2, // 10 + 5
		awstest.OpGetParametersByPath: 3, // /cfg/dir/*: 2 pages; /cfg/deep/**: 1
		awstest.OpGetSecretValue:      0,
		awstest.OpGetParameter:        0,
	}
	for op, n := range want {
		if got := e.AWS.Calls(op); got != n {
			t.Errorf("%s calls during Init = %d, want %d", op, got, n)
		}
	}
	e.AWS.ResetCalls()

	for _, s := range secrets {
		r := e.Get(t, exttest.SecretPath(s))
		if v := exttest.ValueOf(t, r); v != "value-of-"+s || r.XCache != "hit" {
			t.Errorf("%s: %q X-Cache %q, want its value as a hit", s, v, r.XCache)
		}
	}
	for _, p := range append(append(append([]string{}, params...), direct...), deep...) {
		r := e.Get(t, exttest.ParamPath(p))
		if v := exttest.ValueOf(t, r); v != "value-of-"+p || r.XCache != "hit" {
			t.Errorf("%s: %q X-Cache %q, want its value as a hit", p, v, r.XCache)
		}
	}
	if calls := e.AWS.AllCalls(); len(calls) != 0 {
		t.Errorf("reads of prefetched items called AWS: %v", calls)
	}
	// Not under /cfg/dir/* (a grandchild): fetched on demand, as lazy is on.
	if r := e.Get(t, exttest.ParamPath("/cfg/dir/sub/not-direct")); r.XCache != "miss" {
		t.Errorf("grandchild of a /* path: X-Cache %q, want miss", r.XCache)
	}
}

func TestBatchRefusedFallsBackToGetSecretValue(t *testing.T) {
	secrets := exttest.Names("fallback-", 4)
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{"SECRETS_PREFETCH_SECRETS": strings.Join(secrets, ",")},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			for _, s := range secrets {
				exttest.Must[string](t)(a.PutSecretString(ctx, s, "v-"+s))
			}
		},
		Faults: func(a *awstest.AWS) { a.Inject(awstest.OpBatchGetSecretValue, awstest.AccessDenied()) },
	})
	e.WaitReady(t)
	if got := e.AWS.Calls(awstest.OpGetSecretValue); got != len(secrets) {
		t.Errorf("GetSecretValue calls = %d, want %d (one per secret after the batch was refused)", got, len(secrets))
	}
	for _, s := range secrets {
		if r := e.Get(t, exttest.SecretPath(s)); exttest.ValueOf(t, r) != "v-"+s || r.XCache != "hit" {
			t.Errorf("%s not served from the fallback prefetch: %+v", s, r)
		}
	}
}

func TestPartialBatchFailuresAreReportedPerItem(t *testing.T) {
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":    "ok-1,ok-2,broken",
			"SECRETS_PREFETCH_PARAMETERS": "/p/ok-1,/p/ok-2,/p/broken",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			for _, n := range []string{"ok-1", "ok-2", "broken"} {
				exttest.Must[string](t)(a.PutSecretString(ctx, n, "v-"+n))
				exttest.Must[int64](t)(a.PutParameter(ctx, "/p/"+n, "v-"+n, "String"))
			}
		},
		Faults: func(a *awstest.AWS) {
			a.Inject(awstest.OpBatchGetSecretValue, awstest.PartialFailure(awstest.CodeDecryptionFailure, "broken").Times(1))
			a.Inject(awstest.OpGetParameters, awstest.PartialFailure("", "/p/broken").Times(1))
		},
	})
	e.WaitReady(t)
	for _, p := range []string{exttest.SecretPath("ok-1"), exttest.SecretPath("ok-2"), exttest.ParamPath("/p/ok-1"), exttest.ParamPath("/p/ok-2")} {
		if r := e.Get(t, p); r.Status != http.StatusOK || r.XCache != "hit" {
			t.Errorf("%s: %d %q, want a hit despite a sibling's failure", p, r.Status, r.XCache)
		}
	}
	// The failed items answer with their own error class, without a new
	// AWS call during the failure backoff.
	e.AWS.ResetCalls()
	if r := e.Get(t, exttest.SecretPath("broken")); r.Status != http.StatusForbidden || !strings.Contains(r.Body, awstest.CodeDecryptionFailure) {
		t.Errorf("secret whose batch entry failed: %d %s, want 403 %s", r.Status, r.Body, awstest.CodeDecryptionFailure)
	}
	if r := e.Get(t, exttest.ParamPath("/p/broken")); r.Status != http.StatusNotFound || !strings.Contains(r.Body, "ParameterNotFound") {
		t.Errorf("parameter in InvalidParameters: %d %s, want 404 ParameterNotFound", r.Status, r.Body)
	}
	if calls := e.AWS.AllCalls(); len(calls) != 0 {
		t.Errorf("reads during the failure backoff called AWS: %v", calls)
	}
	if strings.Contains(e.Out.String(), "v-ok-1") {
		t.Error("a value reached the logs")
	}
}

func TestSelectorsAreDistinctEntries(t *testing.T) {
	var v2ID string
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{"SECRETS_PREFETCH_PARAMETERS": "/sel/p"},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[int64](t)(a.PutParameter(ctx, "/sel/p", "one", "String"))
			exttest.Must[int64](t)(a.PutParameter(ctx, "/sel/p", "two", "String"))
			exttest.Must[int64](t)(a.PutParameter(ctx, "/sel/p", "three", "String"))
			if err := a.LabelParameterVersion(ctx, "/sel/p", 1, "prod"); err != nil {
				t.Fatal(err)
			}
			exttest.Must[string](t)(a.PutSecretString(ctx, "sel-secret", "first"))
			v2ID = exttest.Must[string](t)(a.UpdateSecret(ctx, "sel-secret", "second"))
		},
	})
	e.WaitReady(t)
	tests := []struct {
		path, value, selector string
	}{
		{exttest.ParamPath("/sel/p"), "three", "null"},
		{exttest.ParamPath("/sel/p:2"), "two", `":2"`},
		{exttest.ParamPath("/sel/p") + "&version=1", "one", `":1"`},
		{exttest.ParamPath("/sel/p") + "&label=prod", "one", `":prod"`},
		{exttest.ParamPath("/sel/p:prod"), "one", `":prod"`},
		{exttest.SecretPath("sel-secret"), "second", ""},
		{exttest.SecretPath("sel-secret") + "&versionStage=AWSPREVIOUS", "first", ""},
		{exttest.SecretPath("sel-secret") + "&versionId=" + v2ID, "second", ""},
	}
	for _, tt := range tests {
		r := e.Get(t, tt.path)
		if got := exttest.ValueOf(t, r); got != tt.value {
			t.Errorf("%s = %q, want %q", tt.path, got, tt.value)
		}
		if tt.selector != "" && !strings.Contains(r.Body, `"Selector":`+tt.selector) {
			t.Errorf("%s: body %s lacks Selector %s", tt.path, r.Body, tt.selector)
		}
		if r2 := e.Get(t, tt.path); r2.XCache != "hit" {
			t.Errorf("%s read again: X-Cache %q, want hit (each selector is its own entry)", tt.path, r2.XCache)
		}
	}
	// /sel/p:2 and version=2 are the same entry.
	e.AWS.ResetCalls()
	if r := e.Get(t, exttest.ParamPath("/sel/p")+"&version=2"); r.XCache != "hit" {
		t.Errorf("version=2 after :2: X-Cache %q, want hit", r.XCache)
	}
}

func TestRefreshAheadOnInvokeAndExpiryAfterIdle(t *testing.T) {
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":       "rot-a,rot-b",
			"SECRETS_MANAGER_TTL":            "300",
			"SECRETS_PREFETCH_REFRESH_AHEAD": "0.5",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[string](t)(a.PutSecretString(ctx, "rot-a", "a1"))
			exttest.Must[string](t)(a.PutSecretString(ctx, "rot-b", "b1"))
		},
	})
	e.WaitReady(t)
	exttest.Must[string](t)(e.AWS.UpdateSecret(t.Context(), "rot-a", "a2"))
	exttest.Must[string](t)(e.AWS.UpdateSecret(t.Context(), "rot-b", "b2"))
	e.AWS.ResetCalls()

	// Before the refresh-ahead point (150 s, up to 10% earlier): nothing due.
	e.Clock.Advance(100 * time.Second)
	e.Invoke(t)
	if calls := e.AWS.AllCalls(); len(calls) != 0 {
		t.Fatalf("INVOKE before the refresh point called AWS: %v", calls)
	}
	if v := exttest.ValueOf(t, e.Get(t, exttest.SecretPath("rot-a"))); v != "a1" {
		t.Fatalf("before refresh: %q, want the cached a1", v)
	}

	// Past it: the INVOKE refreshes both in one batch, before asking for the next event.
	e.Clock.Advance(60 * time.Second)
	e.Invoke(t)
	if got := e.AWS.Calls(awstest.OpBatchGetSecretValue); got != 1 {
		t.Errorf("BatchGetSecretValue calls on INVOKE = %d, want 1", got)
	}
	for id, want := range map[string]string{"rot-a": "a2", "rot-b": "b2"} {
		r := e.Get(t, exttest.SecretPath(id))
		if v := exttest.ValueOf(t, r); v != want || r.XCache != "hit" {
			t.Errorf("%s after refresh = %q (%s), want %q as a hit", id, v, r.XCache, want)
		}
	}

	// An idle gap past the TTL with no INVOKE: the read fetches again.
	exttest.Must[string](t)(e.AWS.UpdateSecret(t.Context(), "rot-a", "a3"))
	e.AWS.ResetCalls()
	e.Clock.Advance(301 * time.Second)
	r := e.Get(t, exttest.SecretPath("rot-a"))
	if v := exttest.ValueOf(t, r); v != "a3" || r.XCache != "miss" {
		t.Errorf("read past the TTL = %q (%s), want a3 as a miss", v, r.XCache)
	}
	if got := e.AWS.Calls(awstest.OpGetSecretValue); got != 1 {
		t.Errorf("GetSecretValue calls for the expired read = %d, want 1", got)
	}
}

func TestStaleIfErrorWithinBound(t *testing.T) {
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_PARAMETERS":             "/stale/p",
			"SSM_PARAMETER_STORE_TTL":                 "60",
			"SECRETS_PREFETCH_STALE_IF_ERROR_SECONDS": "120",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[int64](t)(a.PutParameter(ctx, "/stale/p", "good", "String"))
		},
	})
	e.WaitReady(t)
	e.AWS.Inject(awstest.OpAll, awstest.InternalError())

	e.Clock.Advance(90 * time.Second) // past the TTL, within the stale bound
	r := e.Get(t, exttest.ParamPath("/stale/p"))
	if v := exttest.ValueOf(t, r); v != "good" || r.XCache != "stale" {
		t.Errorf("during an outage = %q (%s), want the cached value as stale", v, r.XCache)
	}
	if r.Age != "90" {
		t.Errorf("Age = %q, want 90", r.Age)
	}
	// Many readers during the outage and backoff add no AWS calls.
	before := e.AWS.Calls(awstest.OpGetParameter)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if r := e.Get(t, exttest.ParamPath("/stale/p")); r.XCache != "stale" {
				t.Errorf("concurrent read during outage: %d %q", r.Status, r.XCache)
			}
		})
	}
	wg.Wait()
	if got := e.AWS.Calls(awstest.OpGetParameter); got != before {
		t.Errorf("reads during the backoff made %d more calls, want 0", got-before)
	}

	e.Clock.Advance(100 * time.Second) // 190 s: past TTL + stale bound
	if r := e.Get(t, exttest.ParamPath("/stale/p")); r.Status != http.StatusBadGateway {
		t.Errorf("past the stale bound: %d %s, want 502", r.Status, r.Body)
	}
}

func TestLazyOnAndOff(t *testing.T) {
	seed := func(ctx context.Context, a *awstest.AWS) {
		exttest.Must[string](t)(a.PutSecretString(ctx, "listed", "l"))
		exttest.Must[string](t)(a.PutSecretString(ctx, "unlisted", "u"))
	}
	t.Run("off", func(t *testing.T) {
		e := exttest.Start(t, exttest.Setup{Env: map[string]string{"SECRETS_PREFETCH_SECRETS": "listed", "SECRETS_PREFETCH_LAZY": "false"}, Seed: seed})
		e.WaitReady(t)
		e.AWS.ResetCalls()
		r := e.Get(t, exttest.SecretPath("unlisted"))
		if r.Status != http.StatusNotFound || !strings.Contains(r.Body, "NotConfigured") {
			t.Errorf("unlisted with lazy off: %d %s, want 404 NotConfigured", r.Status, r.Body)
		}
		if calls := e.AWS.AllCalls(); len(calls) != 0 {
			t.Errorf("an unlisted read called AWS with lazy off: %v", calls)
		}
		if r := e.Get(t, exttest.SecretPath("listed")); r.XCache != "hit" {
			t.Errorf("listed with lazy off: %+v, want a hit", r)
		}
	})
	t.Run("on", func(t *testing.T) {
		e := exttest.Start(t, exttest.Setup{Env: map[string]string{"SECRETS_PREFETCH_SECRETS": "listed"}, Seed: seed})
		e.WaitReady(t)
		if r := e.Get(t, exttest.SecretPath("unlisted")); exttest.ValueOf(t, r) != "u" || r.XCache != "miss" {
			t.Errorf("unlisted first read: %+v, want u as a miss", r)
		}
		if r := e.Get(t, exttest.SecretPath("unlisted")); r.XCache != "hit" {
			t.Errorf("unlisted second read: %+v, want a hit", r)
		}
		if r := e.Get(t, exttest.SecretPath("never-created")); r.Status != http.StatusNotFound || !strings.Contains(r.Body, "ResourceNotFoundException") {
			t.Errorf("missing secret: %d %s, want 404 ResourceNotFoundException", r.Status, r.Body)
		}
	})
}

func TestReadDuringPrefetchJoinsIt(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{"SECRETS_PREFETCH_SECRETS": "early-1,early-2"},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[string](t)(a.PutSecretString(ctx, "early-1", "e1"))
			exttest.Must[string](t)(a.PutSecretString(ctx, "early-2", "e2"))
		},
		Endpoint: func(next http.Handler) http.Handler {
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
	got := make(chan exttest.Response, 1)
	go func() { got <- e.Get(t, exttest.SecretPath("early-2")) }()
	<-e.Accepted                            // the read has reached the extension
	waitBlockedIn(t, "cache.(*Cache).wait") // and joined the batch in the cache
	close(release)
	r := <-got
	if v := exttest.ValueOf(t, r); v != "e2" || r.XCache != "miss" {
		t.Errorf("read during prefetch = %q (%s), want e2 from the joined batch (miss)", v, r.XCache)
	}
	e.WaitReady(t)
	if n := e.AWS.Calls(awstest.OpGetSecretValue); n != 0 {
		t.Errorf("the read made its own GetSecretValue call (%d) instead of joining the batch", n)
	}
}

func TestSignaturesAreVerified(t *testing.T) {
	// The front checks every SigV4 signature; a prefetch that succeeds
	// proves the extension's requests are signed with the configured keys.
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{"SECRETS_PREFETCH_SECRETS": "signed", "SECRETS_PREFETCH_REQUIRED": "true"},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[string](t)(a.PutSecretString(ctx, "signed", "s"))
		},
	})
	e.WaitReady(t)
	if r := e.Get(t, exttest.SecretPath("signed")); r.XCache != "hit" {
		t.Errorf("signed prefetch not served: %+v", r)
	}
}
