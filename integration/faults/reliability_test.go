package faults_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
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

// waitNoGoroutineIn waits until no goroutine's stack includes fn (a fetch
// that outlived its read, say), failing the test after a generous bound.
func waitNoGoroutineIn(t *testing.T, fn string) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	bound := time.After(30 * time.Second)
	for goroutinesIn(fn) > 0 {
		select {
		case <-tick.C:
		case <-bound:
			t.Fatalf("goroutines still in %s", fn)
		}
	}
}

// quirk is a temporary AWS failure the SDK does not retry (an error code it
// does not know, 400): the cache treats it as it treats throttling and 5xx
// (a failure a later attempt may cure), and without the SDK's own retry
// pauses a long outage runs in little real time.
func quirk() awstest.Fault { return awstest.ErrorFault("ServiceQuirkException", http.StatusBadRequest) }

// TestRecoveryAfterOutageIsPromptAndBatched: 30 s of AWS failing under an
// INVOKE and two reads every 100 ms (TTL 1 s), then AWS recovers. Every
// item is fresh again within 10 s, refreshed in batches (no GetSecretValue
// per item), and the reads in between get the stale values.
func TestRecoveryAfterOutageIsPromptAndBatched(t *testing.T) {
	t.Run("30 s", func(t *testing.T) { recoveryAfterOutage(t, 300, 100*time.Millisecond) })
	// A long outage leaves no longer a stale tail: the probes' pause is
	// capped at 10 s (each item's own backoff reached 5 minutes).
	t.Run("10 min", func(t *testing.T) { recoveryAfterOutage(t, 600, time.Second) })
}

// recoveryAfterOutage runs an outage of the given steps, each of an
// INVOKE and two reads every interval, and then checks the recovery.
func recoveryAfterOutage(t *testing.T, steps int, interval time.Duration) {
	secrets := exttest.Names("outage-", 25)
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":                strings.Join(secrets, ","),
			"SECRETS_MANAGER_TTL":                     "1",
			"SECRETS_PREFETCH_STALE_IF_ERROR_SECONDS": "3600",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			for _, s := range secrets {
				exttest.Must[string](t)(a.PutSecretString(ctx, s, "v-"+s))
			}
		},
	})
	e.WaitReady(t)
	step, reads := 0, 0
	tick := func(readAll bool) (fresh int) {
		step++
		e.Clock.Advance(interval)
		e.Invoke(t)
		names := []string{secrets[reads%len(secrets)], secrets[(reads+1)%len(secrets)]}
		reads += 2
		if readAll {
			names = secrets
		}
		for _, s := range names {
			r := e.Get(t, exttest.SecretPath(s))
			if r.Status != http.StatusOK {
				t.Fatalf("step %d: %s = %v, want the value (stale or fresh)", step, s, r)
			}
			if r.XCache == "hit" {
				fresh++
			}
		}
		return fresh
	}
	e.AWS.Inject(awstest.OpAll, quirk())
	e.AWS.ResetCalls()
	for range steps {
		tick(false)
	}
	during := e.AWS.AllCalls()

	e.AWS.ClearFaults()
	e.AWS.ResetCalls()
	outage := time.Duration(steps) * interval
	interval = 100 * time.Millisecond // from now on
	recovered := 0
	for i := 1; i <= 4000 && recovered == 0; i++ {
		if tick(true) == len(secrets) {
			recovered = i
		}
	}
	after := e.AWS.AllCalls()
	t.Logf("outage of %v: calls %v; every item fresh again %v after AWS recovered, with calls %v", outage, during, time.Duration(recovered)*100*time.Millisecond, after)
	// The last failed probe was at most when AWS recovered, and the next
	// comes at most 10 s later, at the first INVOKE past it.
	if recovered == 0 || recovered > 101 {
		t.Errorf("every item fresh again %d steps of 100 ms after AWS recovered, want within 10 s (and a step)", recovered)
	}
	if n := after[awstest.OpGetSecretValue]; n != 0 {
		t.Errorf("recovery made %d GetSecretValue calls, want none: the items come back in batches", n)
	}
	if n := after[awstest.OpBatchGetSecretValue]; n > 3 {
		t.Errorf("recovery made %d BatchGetSecretValue calls, want a probe and the rest (2 or 3)", n)
	}
}

// TestKMSDeniedParameterKeptOutOfItsBatch: one parameter of ten is refused
// (KMS) on every call naming it, so a GetParameters batch holding it fails
// as a whole. Once it is known refused, refreshes fetch it alone: each
// cycle is one GetParameters for the nine and at most one GetParameter for
// it, not a failed batch and ten GetParameter calls.
func TestKMSDeniedParameterKeptOutOfItsBatch(t *testing.T) {
	params := exttest.Names("/kd/p", 10)
	denied := params[9]
	var (
		mu            sync.Mutex // protects batchesWithIt and singles
		batchesWithIt int
		singles       int // GetParameter calls for it (refused here: the front doesn't count them)
		refuse        = func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.Header().Set("X-Amzn-ErrorType", awstest.CodeAccessDenied)
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"__type":"AccessDeniedException","message":"The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access. (Service: AWSKMS; Status Code: 400; Error Code: AccessDeniedException)"}`)
		}
	)
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_PARAMETERS":    strings.Join(params, ","),
			"SSM_PARAMETER_STORE_TTL":        "60",
			"SECRETS_PREFETCH_REFRESH_AHEAD": "0.5",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			for _, p := range params {
				exttest.Must[int64](t)(a.PutParameter(ctx, p, "v-"+p, "SecureString"))
			}
		},
		Endpoint: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				switch target := r.Header.Get("X-Amz-Target"); {
				case target == "AmazonSSM.GetParameters" && bytes.Contains(body, []byte(`"`+denied+`"`)):
					mu.Lock()
					batchesWithIt++
					mu.Unlock()
					refuse(w)
					return
				case target == "AmazonSSM.GetParameter" && bytes.Contains(body, []byte(`"`+denied+`"`)):
					mu.Lock()
					singles++
					mu.Unlock()
					refuse(w)
					return
				}
				next.ServeHTTP(w, r)
			})
		},
	})
	e.WaitReady(t)
	mu.Lock()
	batchesWithIt, singles = 0, 0
	mu.Unlock()
	e.AWS.ResetCalls()
	const cycles = 6
	for range cycles {
		e.Clock.Advance(40 * time.Second) // past the refresh point, within the TTL
		e.Invoke(t)
	}
	mu.Lock()
	with := batchesWithIt
	calls := e.AWS.Calls(awstest.OpGetParameters) + e.AWS.Calls(awstest.OpGetParameter) + with + singles
	mu.Unlock()
	t.Logf("%d refresh cycles: %d calls (%v), %d batches naming the refused parameter", cycles, calls, e.AWS.AllCalls(), with)
	if with != 0 {
		t.Errorf("%d GetParameters calls named the refused parameter after Init, want none", with)
	}
	if n := e.AWS.Calls(awstest.OpGetParameters); n != cycles {
		t.Errorf("%d GetParameters calls in %d cycles, want one per cycle", n, cycles)
	}
	if calls > 2*cycles {
		t.Errorf("%d calls in %d cycles, want at most 2 per cycle", calls, cycles)
	}
	if r := e.Get(t, exttest.ParamPath(denied)); r.Status != http.StatusForbidden {
		t.Errorf("%s: %v, want 403", denied, r)
	}
	if r := e.Get(t, exttest.ParamPath(params[0])); r.Status != http.StatusOK || r.XCache != "hit" {
		t.Errorf("%s: %v, want a hit", params[0], r)
	}
}
