package faults_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
)

// sdkAttempts is the most attempts the extension's SDK retryer makes for one
// call (app.loadAWS).
const sdkAttempts = 3

// outcome is what a read is expected to get.
type outcome struct {
	status int
	code   string // error code, for errors
	xcache string // for successes
}

func (o outcome) String() string {
	if o.status == http.StatusOK {
		return fmt.Sprintf("200 X-Cache=%s", o.xcache)
	}
	return fmt.Sprintf("%d %s", o.status, o.code)
}

func (o outcome) check(t *testing.T, what string, r exttest.Response) {
	t.Helper()
	if r.Err != nil {
		t.Errorf("%s: %v, want %v (an answer, not a broken connection)", what, r.Err, o)
		return
	}
	if r.Status != o.status {
		t.Errorf("%s: %v, want %v", what, r, o)
		return
	}
	if o.status == http.StatusOK {
		if r.XCache != o.xcache {
			t.Errorf("%s: X-Cache %q, want %q", what, r.XCache, o.xcache)
		}
		return
	}
	if r.ContentType != "application/json" || r.Code() != o.code {
		t.Errorf("%s: %s %q, want a JSON error with code %s", what, r.ContentType, r.Body, o.code)
	}
}

// TestAWSFaultMatrix injects each kind of AWS failure and checks, for a
// read of an item that is not cached and for concurrent reads of a cached
// item past its TTL: what the function receives, that the extension stays
// up, that the concurrent readers made one fetch (its SDK retries aside),
// that reads during the failure backoff call AWS no more, and that the
// extension recovers once AWS does.
func TestAWSFaultMatrix(t *testing.T) {
	var (
		ok      = outcome{status: http.StatusOK, xcache: "miss"}
		stale   = outcome{status: http.StatusOK, xcache: "stale"}
		timeout = outcome{status: http.StatusGatewayTimeout, code: "UpstreamTimeout"}
		reset   = outcome{status: http.StatusBadGateway, code: "UpstreamUnavailable"}
	)
	tests := []struct {
		name    string
		inject  func(a *awstest.AWS)
		timeout string // SECRETS_MANAGER_ and SSM_PARAMETER_STORE_TIMEOUT_MILLIS
		// cold: a read of an item not cached; expired: a cached one past its TTL.
		coldSecret, coldParam, expired outcome
		// expiredParam, if set, differs from expired for the parameter.
		expiredParam *outcome
		// oneAttempt: the failure is not retried, so the readers' fetch
		// is exactly one call.
		oneAttempt bool
	}{
		{
			name:       "latency within the timeout",
			inject:     func(a *awstest.AWS) { a.Inject(awstest.OpAll, awstest.Latency(200*time.Millisecond)) },
			timeout:    "3000",
			coldSecret: ok, coldParam: ok, expired: ok,
			oneAttempt: true,
		},
		{
			name:       "latency past the timeout",
			inject:     func(a *awstest.AWS) { a.Inject(awstest.OpAll, awstest.Latency(time.Minute)) },
			timeout:    "500",
			coldSecret: timeout, coldParam: timeout, expired: stale,
			oneAttempt: true,
		},
		{
			name:       "ThrottlingException",
			inject:     func(a *awstest.AWS) { a.Inject(awstest.OpAll, awstest.Throttling()) },
			timeout:    "5000",
			coldSecret: outcome{status: http.StatusBadGateway, code: awstest.CodeThrottling},
			coldParam:  outcome{status: http.StatusBadGateway, code: awstest.CodeThrottling},
			expired:    stale,
		},
		{
			name:       "5xx",
			inject:     func(a *awstest.AWS) { a.Inject(awstest.OpAll, awstest.InternalError()) },
			timeout:    "5000",
			coldSecret: outcome{status: http.StatusBadGateway, code: awstest.CodeSMInternal},
			coldParam:  outcome{status: http.StatusBadGateway, code: awstest.CodeSSMInternal},
			expired:    stale,
		},
		{
			name:       "connection reset",
			inject:     func(a *awstest.AWS) { a.Inject(awstest.OpAll, awstest.ConnReset()) },
			timeout:    "5000",
			coldSecret: reset, coldParam: reset, expired: stale,
		},
		{
			name:       "black hole",
			inject:     func(a *awstest.AWS) { a.Inject(awstest.OpAll, awstest.BlackHole()) },
			timeout:    "500",
			coldSecret: timeout, coldParam: timeout, expired: stale,
			oneAttempt: true,
		},
		{
			// Access revoked: no stale value stands in for it.
			name:       "AccessDenied",
			inject:     func(a *awstest.AWS) { a.Inject(awstest.OpAll, awstest.AccessDenied()) },
			timeout:    "3000",
			coldSecret: outcome{status: http.StatusForbidden, code: awstest.CodeAccessDenied},
			coldParam:  outcome{status: http.StatusForbidden, code: awstest.CodeAccessDenied},
			expired:    outcome{status: http.StatusForbidden, code: awstest.CodeAccessDenied},
			oneAttempt: true,
		},
		{
			name: "KMS refuses to decrypt",
			inject: func(a *awstest.AWS) {
				a.Inject(awstest.OpGetSecretValue, awstest.ErrorFault(awstest.CodeDecryptionFailure, http.StatusBadRequest))
				a.Inject(awstest.OpGetParameter, awstest.KMSAccessDenied())
			},
			timeout:      "3000",
			coldSecret:   outcome{status: http.StatusForbidden, code: awstest.CodeDecryptionFailure},
			coldParam:    outcome{status: http.StatusForbidden, code: awstest.CodeAccessDenied},
			expired:      outcome{status: http.StatusForbidden, code: awstest.CodeDecryptionFailure},
			expiredParam: &outcome{status: http.StatusForbidden, code: awstest.CodeAccessDenied},
			oneAttempt:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := exttest.Start(t, exttest.Setup{
				Env: map[string]string{
					"SECRETS_PREFETCH_SECRETS":                "cached-secret",
					"SECRETS_PREFETCH_PARAMETERS":             "/cached/param",
					"SECRETS_MANAGER_TTL":                     "60",
					"SSM_PARAMETER_STORE_TTL":                 "60",
					"SECRETS_PREFETCH_STALE_IF_ERROR_SECONDS": "120",
					"SECRETS_MANAGER_TIMEOUT_MILLIS":          tt.timeout,
					"SSM_PARAMETER_STORE_TIMEOUT_MILLIS":      tt.timeout,
				},
				Seed: func(ctx context.Context, a *awstest.AWS) {
					exttest.Must[string](t)(a.PutSecretString(ctx, "cached-secret", "cached-secret-value"))
					exttest.Must[string](t)(a.PutSecretString(ctx, "cold-secret", "cold-secret-value"))
					exttest.Must[int64](t)(a.PutParameter(ctx, "/cached/param", "cached-param-value", "SecureString"))
					exttest.Must[int64](t)(a.PutParameter(ctx, "/cold/param", "cold-param-value", "SecureString"))
				},
			})
			e.WaitReady(t)
			tt.inject(e.AWS)

			tt.coldSecret.check(t, "uncached secret", e.Get(t, exttest.SecretPath("cold-secret")))
			tt.coldParam.check(t, "uncached parameter", e.Get(t, exttest.ParamPath("/cold/param")))

			// The cold reads' fetches may outlive the reads (a timeout): let
			// them end first, so that the outage they begin is over by the
			// clock's next reading and the expired reads below probe.
			waitNoGoroutineIn(t, "cache.(*Cache).fetchOne")
			e.Clock.Advance(90 * time.Second) // past the TTL, within the stale bound
			items := []struct {
				path, op, value string
				want            outcome
			}{
				{exttest.SecretPath("cached-secret"), awstest.OpGetSecretValue, "cached-secret-value", tt.expired},
				{exttest.ParamPath("/cached/param"), awstest.OpGetParameter, "cached-param-value", tt.expired},
			}
			if tt.expiredParam != nil {
				items[1].want = *tt.expiredParam
			}
			for _, it := range items {
				e.AWS.ResetCalls()
				const readers = 20
				rs := make([]exttest.Response, readers)
				var wg sync.WaitGroup
				for i := range readers {
					wg.Go(func() { rs[i] = e.Get(t, it.path) })
				}
				wg.Wait()
				for i, r := range rs {
					it.want.check(t, fmt.Sprintf("expired %s, reader %d", it.path, i), r)
					if r.Status == http.StatusOK && exttest.ValueOf(t, r) != it.value {
						t.Errorf("expired %s: value %q, want %q", it.path, exttest.ValueOf(t, r), it.value)
					}
					if it.want.xcache == "stale" && r.Age != "90" {
						t.Errorf("stale %s: Age %q, want 90", it.path, r.Age)
					}
				}
				calls := e.AWS.Calls(it.op)
				switch {
				case tt.oneAttempt && calls != 1:
					t.Errorf("%d concurrent readers of expired %s made %d %s calls, want 1", readers, it.path, calls, it.op)
				case calls < 1 || calls > sdkAttempts:
					t.Errorf("%d concurrent readers of expired %s made %d %s calls, want one fetch (1 to %d attempts)", readers, it.path, calls, it.op, sdkAttempts)
				}
				if other := len(e.AWS.AllCalls()) - 1; other > 0 {
					t.Errorf("reads of %s called other operations too: %v", it.path, e.AWS.AllCalls())
				}
				if it.want.xcache == "miss" {
					continue
				}
				// During the failure backoff reads call AWS no more.
				e.AWS.ResetCalls()
				for range 5 {
					it.want.check(t, "read during the backoff of "+it.path, e.Get(t, it.path))
				}
				if calls := e.AWS.AllCalls(); len(calls) != 0 {
					t.Errorf("reads during the failure backoff called AWS: %v", calls)
				}
			}

			select {
			case <-e.Done():
				t.Fatalf("the extension stopped: %v\n%s", e.Err(), e.Out)
			default:
			}
			if r := e.Do(t.Context(), http.MethodGet, "/ping"); r.Status != http.StatusOK {
				t.Errorf("ping after the Faults: %v", r)
			}

			// AWS recovers; once the backoff has passed, reads fetch again.
			e.AWS.ClearFaults()
			e.Clock.Advance(10 * time.Minute)
			for _, it := range items {
				if r := e.Get(t, it.path); exttest.ValueOf(t, r) != it.value || r.XCache != "miss" {
					t.Errorf("after recovery %s: %v, want the value fetched again", it.path, r)
				}
			}
		})
	}
}

// TestOutageDoesNotMakeEveryInvokeCallAWS: during an outage the INVOKE
// refresh of due entries fails and backs off, so a run of INVOKEs makes a
// few rounds of calls (doubling pauses), not one round per INVOKE; cached
// values are served all along.
func TestOutageDoesNotMakeEveryInvokeCallAWS(t *testing.T) {
	secrets := exttest.Names("fleet-secret-", 25)
	params := exttest.Names("/fleet/p", 15)
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":                strings.Join(secrets, ","),
			"SECRETS_PREFETCH_PARAMETERS":             strings.Join(params, ","),
			"SECRETS_MANAGER_TTL":                     "60",
			"SSM_PARAMETER_STORE_TTL":                 "60",
			"SECRETS_PREFETCH_REFRESH_AHEAD":          "0.5",
			"SECRETS_PREFETCH_STALE_IF_ERROR_SECONDS": "3600",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			for _, s := range secrets {
				exttest.Must[string](t)(a.PutSecretString(ctx, s, "v-"+s))
			}
			for _, p := range params {
				exttest.Must[int64](t)(a.PutParameter(ctx, p, "v-"+p, "String"))
			}
		},
	})
	e.WaitReady(t)
	e.AWS.Inject(awstest.OpAll, awstest.InternalError())
	e.AWS.ResetCalls()

	e.Clock.Advance(40 * time.Second) // past the refresh point (30 s, up to 10% earlier)
	e.Invoke(t)
	first := e.AWS.AllCalls()
	wantFirst := map[string]int{awstest.OpBatchGetSecretValue: 2 * sdkAttempts, awstest.OpGetParameters: 2 * sdkAttempts}
	for op, n := range first {
		if n > wantFirst[op] {
			t.Errorf("first INVOKE of the outage: %d %s calls, want at most %d (one batched round)", n, op, wantFirst[op])
		}
	}
	if len(first) == 0 {
		t.Fatal("the INVOKE past the refresh point called nothing")
	}

	// INVOKEs in quick succession: all within the backoff.
	e.AWS.ResetCalls()
	for range 10 {
		e.Invoke(t)
	}
	if calls := e.AWS.AllCalls(); len(calls) != 0 {
		t.Errorf("INVOKEs during the refresh backoff called AWS: %v", calls)
	}

	// One INVOKE a second for two minutes of outage: the refresh backs
	// off 1 s, 2 s, 4 s... up to 10 s, and then sends one probe per
	// service, not the whole round, so few of the 120 INVOKEs call AWS,
	// each with one call per service.
	e.AWS.ResetCalls()
	rounds, before := 0, 0
	for range 120 {
		e.Clock.Advance(time.Second)
		e.Invoke(t)
		if n := e.AWS.Calls(awstest.OpBatchGetSecretValue); n > before {
			rounds++
			if n-before > sdkAttempts {
				t.Errorf("a round during the outage made %d BatchGetSecretValue calls, want one probe (%d attempts at most)", n-before, sdkAttempts)
			}
			before = n
		}
	}
	if rounds < 2 || rounds > 30 {
		t.Errorf("%d of 120 INVOKEs during an outage called AWS, want one every 5 to 10 s at most (exponential backoff, capped)", rounds)
	}
	t.Logf("outage: %d of 120 INVOKEs called AWS; calls %v", rounds, e.AWS.AllCalls())

	// Cached values are served all along: fresh, then stale.
	for _, p := range []string{exttest.SecretPath(secrets[0]), exttest.ParamPath(params[0])} {
		r := e.Get(t, p)
		if r.Status != http.StatusOK || r.XCache != "stale" {
			t.Errorf("%s during the outage: %v, want the cached value as stale", p, r)
		}
	}
}

// TestRefreshUnderPartialBatchFailures: an INVOKE refresh whose batches
// fail for some items refreshes the others, keeps the old value of an item
// whose failure is transient, and stops serving one AWS reports missing.
func TestRefreshUnderPartialBatchFailures(t *testing.T) {
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":       "rs-1,rs-2,rs-3",
			"SECRETS_PREFETCH_PARAMETERS":    "/rp/1,/rp/2,/rp/3",
			"SECRETS_MANAGER_TTL":            "60",
			"SSM_PARAMETER_STORE_TTL":        "60",
			"SECRETS_PREFETCH_REFRESH_AHEAD": "0.5",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			for _, n := range []string{"1", "2", "3"} {
				exttest.Must[string](t)(a.PutSecretString(ctx, "rs-"+n, "old-"+n))
				exttest.Must[int64](t)(a.PutParameter(ctx, "/rp/"+n, "old-"+n, "String"))
			}
		},
	})
	e.WaitReady(t)
	for _, n := range []string{"1", "2", "3"} {
		exttest.Must[string](t)(e.AWS.UpdateSecret(t.Context(), "rs-"+n, "new-"+n))
		exttest.Must[int64](t)(e.AWS.PutParameter(t.Context(), "/rp/"+n, "new-"+n, "String"))
	}
	e.AWS.Inject(awstest.OpBatchGetSecretValue, awstest.PartialFailure(awstest.CodeSMInternal, "rs-2").Times(1))
	e.AWS.Inject(awstest.OpGetParameters, awstest.PartialFailure("", "/rp/2").Times(1))
	e.AWS.ResetCalls()
	e.Clock.Advance(40 * time.Second)
	e.Invoke(t)
	if got := e.AWS.Calls(awstest.OpBatchGetSecretValue) + e.AWS.Calls(awstest.OpGetParameters); got != 2 {
		t.Errorf("refresh made %d batch calls, want 2: %v", got, e.AWS.AllCalls())
	}
	want := map[string]outcome{
		exttest.SecretPath("rs-1"): {status: http.StatusOK, xcache: "hit"},
		exttest.SecretPath("rs-2"): {status: http.StatusOK, xcache: "hit"}, // transient: the old value, still within its TTL
		exttest.SecretPath("rs-3"): {status: http.StatusOK, xcache: "hit"},
		exttest.ParamPath("/rp/1"): {status: http.StatusOK, xcache: "hit"},
		exttest.ParamPath("/rp/2"): {status: http.StatusNotFound, code: awstest.CodeParameterNotFound}, // reported missing
		exttest.ParamPath("/rp/3"): {status: http.StatusOK, xcache: "hit"},
	}
	values := map[string]string{exttest.SecretPath("rs-1"): "new-1", exttest.SecretPath("rs-2"): "old-2", exttest.SecretPath("rs-3"): "new-3", exttest.ParamPath("/rp/1"): "new-1", exttest.ParamPath("/rp/3"): "new-3"}
	e.AWS.ResetCalls()
	for _, p := range slices.Sorted(maps.Keys(want)) {
		r := e.Get(t, p)
		want[p].check(t, p, r)
		if v, ok := values[p]; ok && r.Status == http.StatusOK && exttest.ValueOf(t, r) != v {
			t.Errorf("%s = %q, want %q", p, exttest.ValueOf(t, r), v)
		}
	}
	if calls := e.AWS.AllCalls(); len(calls) != 0 {
		t.Errorf("reads after the partial refresh called AWS: %v", calls)
	}
}

// TestSDKRetriesBackOffWithJitter times the attempts of throttled calls: at
// most three per fetch, spaced by pauses up to the SDK's one-second cap and
// not all alike.
func TestSDKRetriesBackOffWithJitter(t *testing.T) {
	var (
		mu       sync.Mutex // protects arrivals
		arrivals []time.Time
	)
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{"SECRETS_MANAGER_TIMEOUT_MILLIS": "10000"},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[string](t)(a.PutSecretString(ctx, "throttled", "v"))
		},
		Endpoint: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if opOf(r) == awstest.OpGetSecretValue {
					mu.Lock()
					arrivals = append(arrivals, time.Now())
					mu.Unlock()
				}
				next.ServeHTTP(w, r)
			})
		},
	})
	e.WaitReady(t)
	e.AWS.Inject(awstest.OpGetSecretValue, awstest.Throttling())
	const fetches = 4
	var gaps []time.Duration
	for i := range fetches {
		mu.Lock()
		arrivals = arrivals[:0]
		mu.Unlock()
		// refreshNow skips the cache's own failure backoff.
		r := e.Get(t, exttest.SecretPath("throttled")+"&refreshNow=true")
		if r.Status != http.StatusBadGateway || r.Code() != awstest.CodeThrottling {
			t.Fatalf("fetch %d: %v, want 502 ThrottlingException", i, r)
		}
		mu.Lock()
		if len(arrivals) != sdkAttempts {
			t.Errorf("fetch %d made %d attempts, want %d", i, len(arrivals), sdkAttempts)
		}
		for j := 1; j < len(arrivals); j++ {
			gaps = append(gaps, arrivals[j].Sub(arrivals[j-1]))
		}
		mu.Unlock()
	}
	if len(gaps) == 0 {
		t.Fatal("no retries observed")
	}
	lo, hi := slices.Min(gaps), slices.Max(gaps)
	if hi > time.Second+500*time.Millisecond {
		t.Errorf("a retry waited %v, past the one-second cap", hi)
	}
	if hi-lo < 20*time.Millisecond {
		t.Errorf("retry pauses %v are all alike: no jitter", gaps)
	}
	t.Logf("retry pauses: %v", gaps)
}

// TestBatchRefusedAtRefreshFallsBack: when BatchGetSecretValue is refused
// (AccessDenied: the role lacks it) at an INVOKE refresh rather than during
// Init, the refresh falls back to GetSecretValue per secret, and later
// refreshes don't ask for the batch API again.
func TestBatchRefusedAtRefreshFallsBack(t *testing.T) {
	secrets := exttest.Names("refused-", 3)
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":       strings.Join(secrets, ","),
			"SECRETS_MANAGER_TTL":            "60",
			"SECRETS_PREFETCH_REFRESH_AHEAD": "0.5",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			for _, s := range secrets {
				exttest.Must[string](t)(a.PutSecretString(ctx, s, "old"))
			}
		},
	})
	e.WaitReady(t)
	if n := e.AWS.Calls(awstest.OpBatchGetSecretValue); n != 1 {
		t.Fatalf("prefetch made %d BatchGetSecretValue calls, want 1", n)
	}
	e.AWS.Inject(awstest.OpBatchGetSecretValue, awstest.AccessDenied())
	for _, s := range secrets {
		exttest.Must[string](t)(e.AWS.UpdateSecret(t.Context(), s, "new"))
	}
	for round := range 2 {
		e.AWS.ResetCalls()
		e.Clock.Advance(40 * time.Second)
		e.Invoke(t)
		wantBatch := 1 - round // refused once, then not asked again
		if b, g := e.AWS.Calls(awstest.OpBatchGetSecretValue), e.AWS.Calls(awstest.OpGetSecretValue); b != wantBatch || g != len(secrets) {
			t.Errorf("refresh %d: %d BatchGetSecretValue and %d GetSecretValue calls, want %d and %d", round, b, g, wantBatch, len(secrets))
		}
		for _, s := range secrets {
			if r := e.Get(t, exttest.SecretPath(s)); r.XCache != "hit" || exttest.ValueOf(t, r) != "new" {
				t.Errorf("refresh %d: %s = %v, want the new value as a hit", round, s, r)
			}
		}
	}
}
