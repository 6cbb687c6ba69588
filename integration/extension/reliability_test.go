package extension_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
	"github.com/secrets-prefetch/secrets-prefetch/lifecycle"
)

// waitBlockedIn waits until a goroutine's stack includes fn (a read blocked
// in the cache, say), failing the test after a generous bound. It is how a
// test knows a request has got past the server into the cache, which
// e.Accepted (the connection's arrival) does not tell.
func waitBlockedIn(t *testing.T, fn string) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	bound := time.After(30 * time.Second)
	for goroutinesIn(fn) == 0 {
		select {
		case <-tick.C:
		case <-bound:
			t.Fatalf("no goroutine reached %s", fn)
		}
	}
}

// goroutinesIn counts the goroutines whose stacks include fn, from the
// goroutine profile: groups of identical stacks, each headed "N @ ...".
func goroutinesIn(fn string) int {
	var b strings.Builder
	pprof.Lookup("goroutine").WriteTo(&b, 1)
	n, count, counted := 0, 0, false
	for _, line := range strings.Split(b.String(), "\n") {
		if c, _, ok := strings.Cut(line, " @ "); ok {
			count, counted = 0, false
			fmt.Sscan(c, &count)
			continue
		}
		if !counted && strings.Contains(line, fn) {
			n += count
			counted = true
		}
	}
	return n
}

// TestPathLargerThanTheCache: five listed secrets and a path holding more
// parameters than CACHE_SIZE. Every configured item stays cached (none is
// evicted to make room for another), the log says they don't fit, naming
// the variable; under SECRETS_PREFETCH_REQUIRED=true, Init fails saying so.
func TestPathLargerThanTheCache(t *testing.T) {
	secrets := exttest.Names("big-secret-", 5)
	params := exttest.Names("/big/p", 60)
	env := func(required string) map[string]string {
		return map[string]string{
			"SECRETS_PREFETCH_SECRETS":                strings.Join(secrets, ","),
			"SECRETS_PREFETCH_PARAMETERS":             "/big/*",
			"PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE": "50",
			"SECRETS_PREFETCH_REQUIRED":               required,
		}
	}
	seed := func(ctx context.Context, a *awstest.AWS) {
		for _, s := range secrets {
			exttest.Must[string](t)(a.PutSecretString(ctx, s, "v-"+s))
		}
		for _, p := range params {
			exttest.Must[int64](t)(a.PutParameter(ctx, p, "v-"+p, "String"))
		}
	}

	t.Run("best effort", func(t *testing.T) {
		e := exttest.Start(t, exttest.Setup{Env: env("false"), Seed: seed})
		e.WaitReady(t)
		out := e.Out.String()
		if !strings.Contains(out, "do not fit the cache") || !strings.Contains(out, "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE") || !strings.Contains(out, "configured=65") {
			t.Errorf("the log does not say the 65 configured items don't fit CACHE_SIZE=50:\n%s", out)
		}
		e.AWS.ResetCalls()
		for _, s := range secrets {
			if r := e.Get(t, exttest.SecretPath(s)); r.Status != http.StatusOK || r.XCache != "hit" {
				t.Errorf("%s: %v, want a hit", s, r)
			}
		}
		for _, p := range params {
			if r := e.Get(t, exttest.ParamPath(p)); r.Status != http.StatusOK || r.XCache != "hit" {
				t.Errorf("%s: %v, want a hit", p, r)
			}
		}
		if calls := e.AWS.AllCalls(); len(calls) != 0 {
			t.Errorf("reads of configured items called AWS: %v", calls)
		}
	})

	t.Run("required", func(t *testing.T) {
		e := exttest.Start(t, exttest.Setup{Env: env("true"), Seed: seed})
		if err := e.Wait(t, 30*time.Second); err == nil {
			t.Fatal("Run = nil, want Init to fail")
		}
		errs := e.Rec.InitErrors()
		if len(errs) != 1 || errs[0].Type != lifecycle.ErrorTypePrefetchFailed {
			t.Fatalf("init errors = %+v, want one %s", errs, lifecycle.ErrorTypePrefetchFailed)
		}
		for _, want := range []string{"PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE=50", "65"} {
			if !strings.Contains(errs[0].Message, want) {
				t.Errorf("init/error %q does not say %s", errs[0].Message, want)
			}
		}
	})
}

// TestReadDuringPathPrefetchGetsItsOwnPage: while a listed path is still
// being listed (its later pages held back), a read of a parameter the first
// page brought is a hit at once; one a later page would bring is fetched on
// its own once the path proves slow; a name the path does not hold is 404.
// None waits for the whole path.
func TestReadDuringPathPrefetchGetsItsOwnPage(t *testing.T) {
	params := exttest.Names("/pp/p", 25) // three pages of GetParametersByPath
	var (
		pages   atomic.Int32
		second  = make(chan struct{}) // closed when the second page is asked for
		release = make(chan struct{})
	)
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_PARAMETERS":        "/pp/*",
			"SSM_PARAMETER_STORE_TIMEOUT_MILLIS": "3000",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			for _, p := range params {
				exttest.Must[int64](t)(a.PutParameter(ctx, p, "v-"+p, "String"))
			}
		},
		Endpoint: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-Amz-Target") == "AmazonSSM.GetParametersByPath" && pages.Add(1) == 2 {
					close(second)
					select {
					case <-release:
					case <-r.Context().Done():
						return
					}
				}
				next.ServeHTTP(w, r)
			})
		},
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	select { // the first page is in; the second is held
	case <-second:
	case <-e.Done():
		t.Fatalf("the extension stopped: %v\n%s", e.Err(), e.Out)
	case <-time.After(30 * time.Second):
		t.Fatalf("the second page was never asked for\n%s", e.Out)
	}
	type answer struct {
		name string
		r    exttest.Response
	}
	answers := make(chan answer, len(params)+1)
	for _, p := range append(slices.Clone(params), "/pp/not-there") {
		go func() { answers <- answer{p, e.Get(t, exttest.ParamPath(p))} }()
	}
	hits, misses := 0, 0
	for range len(params) + 1 {
		a := <-answers
		switch {
		case a.name == "/pp/not-there":
			if a.r.Status != http.StatusNotFound || a.r.Code() != awstest.CodeParameterNotFound {
				t.Errorf("%s: %v, want 404 %s", a.name, a.r, awstest.CodeParameterNotFound)
			}
		case a.r.Status == http.StatusOK && a.r.XCache == "hit":
			hits++
		case a.r.Status == http.StatusOK && a.r.XCache == "miss":
			misses++
		default:
			t.Errorf("%s during the path prefetch: %v, want 200", a.name, a.r)
		}
	}
	if hits != 10 || misses != len(params)-10 {
		t.Errorf("%d hits (the first page) and %d misses (fetched alone), want 10 and %d", hits, misses, len(params)-10)
	}
	if n := e.AWS.Calls(awstest.OpGetParameter); n != len(params)-10+1 {
		t.Errorf("%d GetParameter calls, want one per name the first page did not bring (%d)", n, len(params)-10+1)
	}
	close(release)
	e.WaitReady(t)
}
