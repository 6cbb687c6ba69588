package faults_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
)

// invokeBy sends an INVOKE with the given deadline and waits until the
// extension asks for the next event.
func invokeBy(t *testing.T, e *exttest.Ext, deadline time.Time) {
	t.Helper()
	n := e.Rec.NextCalls()
	e.API.Push(extapitest.Invoke(fmt.Sprintf("req-%d", n), deadline))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := e.Rec.WaitNext(ctx, n+1); err != nil {
		t.Fatalf("the extension did not finish the INVOKE: %v\n%s", err, e.Out)
	}
}

// TestRevokedAccessStopsServing: once a refresh is refused (IAM, or KMS for
// a SecureString), the cached value is no longer served, though its TTL has
// not run out: the function gets 403 at once.
func TestRevokedAccessStopsServing(t *testing.T) {
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":       "revoked",
			"SECRETS_PREFETCH_PARAMETERS":    "/kms/denied",
			"SECRETS_MANAGER_TTL":            "60",
			"SSM_PARAMETER_STORE_TTL":        "60",
			"SECRETS_PREFETCH_REFRESH_AHEAD": "0.5",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[string](t)(a.PutSecretString(ctx, "revoked", "v"))
			exttest.Must[int64](t)(a.PutParameter(ctx, "/kms/denied", "v", "SecureString"))
		},
	})
	e.WaitReady(t)
	for _, p := range []string{exttest.SecretPath("revoked"), exttest.ParamPath("/kms/denied")} {
		if r := e.Get(t, p); r.Status != http.StatusOK || r.XCache != "hit" {
			t.Fatalf("%s before: %v", p, r)
		}
	}
	e.AWS.Inject(awstest.OpGetSecretValue, awstest.AccessDenied())
	e.AWS.Inject(awstest.OpGetParameter, awstest.KMSAccessDenied())
	e.Clock.Advance(40 * time.Second) // past the refresh point, within the TTL
	e.Invoke(t)
	e.AWS.ResetCalls()
	for _, p := range []string{exttest.SecretPath("revoked"), exttest.ParamPath("/kms/denied")} {
		r := e.Get(t, p)
		if r.Status != http.StatusForbidden || r.Code() != awstest.CodeAccessDenied {
			t.Errorf("%s after the refusal: %v, want 403 %s", p, r, awstest.CodeAccessDenied)
		}
	}
	if calls := e.AWS.AllCalls(); len(calls) != 0 {
		t.Errorf("reads after the refusal called AWS: %v (the refusal is cached within its backoff)", calls)
	}
}

// TestInvokeWithoutTimeLeftIsNoFailure: an INVOKE whose deadline has
// passed makes no AWS call and records no failure: nothing is logged as
// UpstreamTimeout, and a read just past the TTL (no stale-if-error) fetches
// the item rather than getting 504 from a backoff AWS never earned.
func TestInvokeWithoutTimeLeftIsNoFailure(t *testing.T) {
	secrets := exttest.Names("late-", 3)
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":                strings.Join(secrets, ","),
			"SECRETS_MANAGER_TTL":                     "60",
			"SECRETS_PREFETCH_REFRESH_AHEAD":          "0.5",
			"SECRETS_PREFETCH_STALE_IF_ERROR_SECONDS": "0",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			for _, s := range secrets {
				exttest.Must[string](t)(a.PutSecretString(ctx, s, "v"))
			}
		},
	})
	e.WaitReady(t)
	e.AWS.ResetCalls()
	e.Clock.Advance(59900 * time.Millisecond) // due, just before the TTL
	for _, late := range []time.Duration{-time.Second, 20 * time.Millisecond} {
		invokeBy(t, e, time.Now().Add(late))
	}
	if calls := e.AWS.AllCalls(); len(calls) != 0 {
		t.Errorf("INVOKEs without time left called AWS: %v", calls)
	}
	if out := e.Out.String(); strings.Contains(out, "UpstreamTimeout") || strings.Contains(out, "refresh failed") {
		t.Errorf("an INVOKE without time left logged a failure:\n%s", out)
	}
	e.Clock.Advance(200 * time.Millisecond) // past the TTL
	for _, s := range secrets {
		if r := e.Get(t, exttest.SecretPath(s)); r.Status != http.StatusOK || r.XCache != "miss" {
			t.Errorf("%s just past the TTL: %v, want a fetch (200 miss)", s, r)
		}
	}
	// And the next INVOKE with time refreshes normally.
	e.AWS.ResetCalls()
	e.Clock.Advance(40 * time.Second)
	e.Invoke(t)
	if n := e.AWS.Calls(awstest.OpBatchGetSecretValue); n != 1 {
		t.Errorf("the next INVOKE made %d BatchGetSecretValue calls, want 1: %v", n, e.AWS.AllCalls())
	}
}
