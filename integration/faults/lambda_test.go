package faults_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/lifecycle"
)

// nextAttempts is how many times the extension asks event/next before it
// gives up on a failing Extensions API (app.nextAttempts).
const nextAttempts = 5

// checkStopped checks that the extension's server no longer accepts
// connections.
func checkStopped(t *testing.T, e *exttest.Ext) {
	t.Helper()
	if c, err := net.Dial("tcp", e.Addr); err == nil {
		c.Close()
		t.Error("the server still accepts connections after the extension stopped")
	}
}

// TestNextFailingIsRetriedThenExitError: event/next answering 500 is asked
// again a bounded number of times, then reported with exit/error, and Run
// returns the error (main exits non-zero).
func TestNextFailingIsRetriedThenExitError(t *testing.T) {
	e := exttest.Start(t, exttest.Setup{
		Before: func(api *extapitest.Server) {
			api.Inject(extapitest.RouteNext, extapitest.Fault{Status: http.StatusInternalServerError}, extapitest.Always)
		},
	})
	err := e.Wait(t, 20*time.Second)
	if err == nil || !strings.Contains(err.Error(), "gave up after 5 attempts") {
		t.Fatalf("Run = %v, want the event/next error after %d attempts", err, nextAttempts)
	}
	if n := e.Rec.NextCalls(); n != nextAttempts {
		t.Errorf("event/next was asked %d times, want %d", n, nextAttempts)
	}
	errs := e.Rec.ExitErrors()
	if len(errs) != 1 || errs[0].Type != lifecycle.ErrorTypeRuntimeError || !strings.Contains(errs[0].Message, "500") {
		t.Errorf("exit errors = %+v, want one %s naming the 500", errs, lifecycle.ErrorTypeRuntimeError)
	}
	if !strings.Contains(e.Out.String(), "event/next failed") {
		t.Errorf("the log does not say event/next failed:\n%s", e.Out)
	}
	checkStopped(t, e)
}

// TestExtensionsAPIDisappears: the API going away while the extension waits
// for an event (its connection dropped, later ones refused) ends Run with an
// error after bounded retries, and the server is stopped.
func TestExtensionsAPIDisappears(t *testing.T) {
	e := exttest.Start(t, exttest.Setup{})
	e.WaitReady(t)
	start := time.Now()
	e.API.Close()
	err := e.Wait(t, 20*time.Second)
	if err == nil || !strings.Contains(err.Error(), "next") {
		t.Fatalf("Run = %v, want the event/next error", err)
	}
	// Five attempts with backoff 50 ms doubling to 2 s: well under 10 s.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("giving up took %v", d)
	}
	if out := e.Out.String(); !strings.Contains(out, "event/next failed") || !strings.Contains(out, "reporting exit error failed") {
		t.Errorf("the log does not tell what happened:\n%s", out)
	}
	checkStopped(t, e)
}

// blockingTransport holds the requests to one Extensions API route until
// their context ends: an API that accepts a report and never answers.
type blockingTransport struct {
	route string
	held  chan struct{}
}

func (b *blockingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, b.route) {
		b.held <- struct{}{}
		<-r.Context().Done()
		return nil, r.Context().Err()
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestErrorReportsAreBounded: an init/error or exit/error report that Lambda
// never answers does not keep the extension from exiting.
func TestErrorReportsAreBounded(t *testing.T) {
	for _, tt := range []struct {
		name   string
		route  string
		env    map[string]string
		before func(api *extapitest.Server)
	}{
		{
			name:  "init/error",
			route: "/init/error",
			env:   map[string]string{"SECRETS_MANAGER_TTL": "not-a-number"},
		},
		{
			name:  "exit/error",
			route: "/exit/error",
			before: func(api *extapitest.Server) {
				api.Inject(extapitest.RouteNext, extapitest.Fault{Status: http.StatusForbidden}, extapitest.Always)
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bt := &blockingTransport{route: tt.route, held: make(chan struct{}, 1)}
			e := exttest.Start(t, exttest.Setup{Env: tt.env, Before: tt.before, LambdaClient: &http.Client{Transport: bt}})
			recv(t, bt.held, "the error report")
			if err := e.Wait(t, 10*time.Second); err == nil {
				t.Fatal("Run = nil, want the error")
			}
			if !strings.Contains(e.Out.String(), "reporting") {
				t.Errorf("the log does not say the report failed:\n%s", e.Out)
			}
		})
	}
}

// TestShutdownDrainsInFlightReads: reads waiting for AWS when SHUTDOWN
// comes are answered before the deadline: with their value when AWS answers
// in time, else with a JSON 503 rather than a dropped connection.
func TestShutdownDrainsInFlightReads(t *testing.T) {
	const readers = 10
	for _, tt := range []struct {
		name     string
		answered bool // AWS answers before the deadline
	}{
		{name: "AWS answers in time", answered: true},
		{name: "AWS never answers"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newGate(awstest.OpGetSecretValue)
			e := exttest.Start(t, exttest.Setup{
				Env: map[string]string{
					"SECRETS_MANAGER_TIMEOUT_MILLIS":               "60000",
					"PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS": fmt.Sprint(readers),
				},
				Endpoint: g.wrap,
				Seed: func(ctx context.Context, a *awstest.AWS) {
					for i := range readers {
						exttest.Must[string](t)(a.PutSecretString(ctx, fmt.Sprint("slow-", i), fmt.Sprint("slow-value-", i)))
					}
				},
			})
			t.Cleanup(g.open)
			e.WaitReady(t)
			rs := make([]exttest.Response, readers)
			var wg sync.WaitGroup
			for i := range readers {
				wg.Go(func() { rs[i] = e.Get(t, exttest.SecretPath(fmt.Sprint("slow-", i))) })
			}
			// Each read's own fetch reaching AWS shows the read is being
			// handled (a request net/http has not read by SHUTDOWN is
			// dropped unanswered, as net/http's Shutdown does).
			for range readers {
				recv(t, g.arrived, "a read's fetch to reach AWS")
			}

			deadline := time.Now().Add(1500 * time.Millisecond)
			e.API.Push(extapitest.Shutdown(extapitest.ReasonSpindown, deadline))
			if tt.answered {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				if err := e.Rec.WaitFor(ctx, func() bool { return len(e.Rec.Delivered()) > 0 }); err != nil {
					t.Fatal(err)
				}
				g.open()
			}
			if err := e.Wait(t, 10*time.Second); err != nil {
				t.Fatalf("Run after SHUTDOWN = %v, want nil", err)
			}
			// Only a Run that ignores the deadline fails here; a loaded
			// machine may overrun it by a scheduling delay.
			if over := time.Since(deadline); over > time.Second {
				t.Errorf("Run returned %v after the SHUTDOWN deadline", over)
			}
			wg.Wait()
			for i, r := range rs {
				switch {
				case tt.answered && (r.Status != http.StatusOK || exttest.ValueOf(t, r) != fmt.Sprint("slow-value-", i)):
					t.Errorf("read %d in flight at SHUTDOWN: %v, want its value", i, r)
				case !tt.answered && (r.Status != http.StatusServiceUnavailable || r.Code() != "ShuttingDown"):
					t.Errorf("read %d in flight at SHUTDOWN: %v, want 503 ShuttingDown", i, r)
				}
			}
			checkStopped(t, e)
		})
	}
}

// TestInitBudgetRunsOut: when the prefetch outlasts
// SECRETS_PREFETCH_INIT_TIMEOUT_MILLIS, a required prefetch fails Init
// naming what is missing; a best-effort one serves what it has and fetches
// the rest on first read.
func TestInitBudgetRunsOut(t *testing.T) {
	env := func(required string) map[string]string {
		return map[string]string{
			"SECRETS_PREFETCH_SECRETS":    "slow-1,slow-2",
			"SECRETS_PREFETCH_PARAMETERS": "/fast/p,/tree/*",
			// The black holes never answer, so the budget runs out however
			// long it is; it is long enough that /fast/p, which must be in,
			// is fetched within it on a loaded machine too.
			"SECRETS_PREFETCH_INIT_TIMEOUT_MILLIS": "2000",
			"SECRETS_PREFETCH_REQUIRED":            required,
		}
	}
	seed := func(ctx context.Context, a *awstest.AWS) {
		exttest.Must[string](t)(a.PutSecretString(ctx, "slow-1", "s1"))
		exttest.Must[string](t)(a.PutSecretString(ctx, "slow-2", "s2"))
		exttest.Must[int64](t)(a.PutParameter(ctx, "/fast/p", "fast", "String"))
		exttest.Must[int64](t)(a.PutParameter(ctx, "/tree/leaf", "leaf", "String"))
	}
	faults := func(a *awstest.AWS) {
		a.Inject(awstest.OpBatchGetSecretValue, awstest.BlackHole())
		a.Inject(awstest.OpGetParametersByPath, awstest.BlackHole())
	}

	t.Run("required", func(t *testing.T) {
		begin := time.Now()
		e := exttest.Start(t, exttest.Setup{Env: env("true"), Seed: seed, Faults: faults})
		if err := e.Wait(t, 20*time.Second); err == nil {
			t.Fatal("Run = nil, want the prefetch failure")
		}
		if d := time.Since(begin); d > 5*time.Second {
			t.Errorf("Init took %v with a 2 s budget", d)
		}
		errs := e.Rec.InitErrors()
		if len(errs) != 1 || errs[0].Type != lifecycle.ErrorTypePrefetchFailed {
			t.Fatalf("init errors = %+v, want one %s", errs, lifecycle.ErrorTypePrefetchFailed)
		}
		for _, want := range []string{"slow-1", "slow-2", "/tree/*"} {
			if !strings.Contains(errs[0].Message, want) {
				t.Errorf("init/error %q does not name %s", errs[0].Message, want)
			}
		}
		if strings.Contains(errs[0].Message, "/fast/p") {
			t.Errorf("init/error %q names /fast/p, which was fetched", errs[0].Message)
		}
		if !strings.Contains(e.Out.String(), "prefetch budget ran out") {
			t.Errorf("the log does not say the budget ran out:\n%s", e.Out)
		}
	})

	t.Run("best effort", func(t *testing.T) {
		begin := time.Now()
		e := exttest.Start(t, exttest.Setup{Env: env("false"), Seed: seed, Faults: faults})
		e.WaitReady(t)
		if d := time.Since(begin); d > 5*time.Second {
			t.Errorf("Init took %v with a 2 s budget", d)
		}
		if r := e.Get(t, exttest.ParamPath("/fast/p")); r.XCache != "hit" || exttest.ValueOf(t, r) != "fast" {
			t.Errorf("/fast/p, fetched within the budget: %v, want a hit", r)
		}
		e.AWS.ResetCalls()
		for path, want := range map[string]string{exttest.SecretPath("slow-1"): "s1", exttest.SecretPath("slow-2"): "s2", exttest.ParamPath("/tree/leaf"): "leaf"} {
			if r := e.Get(t, path); r.XCache != "miss" || exttest.ValueOf(t, r) != want {
				t.Errorf("%s, not fetched within the budget: %v, want %q fetched on read", path, r, want)
			}
		}
		if got := e.AWS.Calls(awstest.OpGetSecretValue); got != 2 {
			t.Errorf("GetSecretValue calls = %d, want 2 (one per item the budget missed)", got)
		}
		if r := e.Get(t, exttest.SecretPath("slow-1")); r.XCache != "hit" {
			t.Errorf("slow-1 read again: %v, want a hit", r)
		}
	})
}

// TestServiceTimeoutsHonoured: SECRETS_MANAGER_TIMEOUT_MILLIS and
// SSM_PARAMETER_STORE_TIMEOUT_MILLIS bound a read's wait for an AWS that
// never answers, each for its own service, and an INVOKE's refresh too.
func TestServiceTimeoutsHonoured(t *testing.T) {
	const smTimeout, ssmTimeout = 300 * time.Millisecond, 1200 * time.Millisecond
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":           "listed",
			"SECRETS_MANAGER_TTL":                "60",
			"SECRETS_MANAGER_TIMEOUT_MILLIS":     "300",
			"SSM_PARAMETER_STORE_TIMEOUT_MILLIS": "1200",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[string](t)(a.PutSecretString(ctx, "listed", "l"))
			exttest.Must[string](t)(a.PutSecretString(ctx, "s", "v"))
			exttest.Must[int64](t)(a.PutParameter(ctx, "/p", "v", "String"))
		},
	})
	e.WaitReady(t)
	e.AWS.Inject(awstest.OpAll, awstest.BlackHole())
	const slack = 1500 * time.Millisecond // scheduling under -race
	for _, tt := range []struct {
		path    string
		timeout time.Duration
	}{
		{exttest.SecretPath("s"), smTimeout},
		{exttest.ParamPath("/p"), ssmTimeout},
	} {
		begin := time.Now()
		r := e.Get(t, tt.path)
		d := time.Since(begin)
		if r.Status != http.StatusGatewayTimeout || r.Code() != "UpstreamTimeout" {
			t.Errorf("%s: %v, want 504 UpstreamTimeout", tt.path, r)
		}
		if d < tt.timeout || d > tt.timeout+slack {
			t.Errorf("%s answered after %v, want about its timeout %v", tt.path, d, tt.timeout)
		}
	}
	// The INVOKE refresh of a due secret is bounded by the timeout too.
	e.Clock.Advance(59 * time.Second)
	begin := time.Now()
	e.Invoke(t)
	if d := time.Since(begin); d < smTimeout || d > ssmTimeout+slack {
		t.Errorf("the INVOKE refresh took %v, want it bounded by the service timeout", d)
	}
	if e.AWS.Calls(awstest.OpGetSecretValue)+e.AWS.Calls(awstest.OpBatchGetSecretValue) == 0 {
		t.Error("the INVOKE refreshed nothing")
	}
}
