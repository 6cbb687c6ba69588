package source

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

func TestLimiterAdapts(t *testing.T) {
	l := newLimiter(8)
	ctx := t.Context()
	// Eight calls sent together, all throttled: the bound halves once.
	var gens []uint64
	for range 8 {
		g, err := l.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		gens = append(gens, g)
	}
	for _, g := range gens {
		l.release(g, true)
	}
	if got := l.current(); got != 4 {
		t.Fatalf("after one burst of throttled calls the bound is %d, want 4", got)
	}
	// A call sent after the halving and throttled halves it again.
	g, _ := l.acquire(ctx)
	l.release(g, true)
	if got := l.current(); got != 2 {
		t.Fatalf("bound %d, want 2", got)
	}
	for range 5 {
		g, _ := l.acquire(ctx)
		l.release(g, true)
	}
	if got := l.current(); got != 1 {
		t.Fatalf("bound %d, want 1 (never below)", got)
	}
	// Successes raise it by one per run as long as the bound, up to max.
	steps := []int{}
	for range 200 {
		g, _ := l.acquire(ctx)
		l.release(g, false)
		if c := l.current(); len(steps) == 0 || steps[len(steps)-1] != c {
			steps = append(steps, c)
		}
	}
	if want := []int{2, 3, 4, 5, 6, 7, 8}; !equalInts(steps, want) {
		t.Errorf("bound while AWS answers: %v, want %v", steps, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLimiterBoundsAndCancels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(2)
		g1, _ := l.acquire(t.Context())
		g2, _ := l.acquire(t.Context())
		ctx, cancel := context.WithCancel(t.Context())
		gotErr := make(chan error, 1)
		go func() {
			_, err := l.acquire(ctx)
			gotErr <- err
		}()
		var third atomic.Bool
		go func() {
			g, err := l.acquire(t.Context())
			if err == nil {
				third.Store(true)
				l.release(g, false)
			}
		}()
		synctest.Wait()
		if third.Load() {
			t.Fatal("a third call got a slot of two")
		}
		cancel()
		if err := <-gotErr; err == nil {
			t.Fatal("a canceled wait got a slot")
		}
		l.release(g1, false)
		synctest.Wait()
		if !third.Load() {
			t.Fatal("the waiting call did not get the freed slot")
		}
		l.release(g2, false)
		if l.inFlight != 0 || len(l.waiters) != 0 {
			t.Errorf("left %d in flight, %d waiting", l.inFlight, len(l.waiters))
		}
	})
}

// A prefetch has its own bound: with reads bounded to one call, a Fetch
// still sends PrefetchConcurrency calls at once, and a read meanwhile still
// gets its own slot.
func TestPrefetchConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newCallGate()
		sm := &fakeSM{gate: g}
		src := New(Options{SecretsManager: sm, SSM: &fakeSSM{gate: g}, MaxConcurrency: 1, PrefetchConcurrency: 4})
		keys := parameterKeys("/p/", 60, true) // 6 GetParameters
		d := newDeliveries()
		done := make(chan struct{})
		go func() {
			defer close(done)
			src.Fetch(t.Context(), keys, d.deliver)
		}()
		synctest.Wait()
		if inflight, _ := g.counts(); inflight != 4 {
			t.Fatalf("%d prefetch calls in flight, want 4", inflight)
		}
		read := make(chan error, 1)
		go func() {
			_, err := src.FetchOne(t.Context(), SecretKey("r"))
			read <- err
		}()
		synctest.Wait()
		if inflight, _ := g.counts(); inflight != 5 {
			t.Fatalf("%d calls in flight with a read, want 5", inflight)
		}
		for range 7 {
			g.release <- struct{}{}
			synctest.Wait()
		}
		<-done
		if err := <-read; err != nil {
			t.Fatal(err)
		}
		d.once(t, keys)
	})
}

// With RetryThrottled, a throttled BatchGetSecretValue falls back to
// GetSecretValue per secret, and a throttled GetParameters is made again
// until AWS answers: no item is lost, and the only extra calls are the
// ones throttling forced.
func TestRetryThrottled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		paramsCalls := 0
		sm := &fakeSM{batch: func(*secretsmanager.BatchGetSecretValueInput) (*secretsmanager.BatchGetSecretValueOutput, error) {
			return nil, apiError(400, "ThrottlingException")
		}}
		ps := &fakeSSM{}
		ps.params = func(in *ssm.GetParametersInput) (*ssm.GetParametersOutput, error) {
			mu.Lock()
			paramsCalls++
			n := paramsCalls
			mu.Unlock()
			if n <= 3 {
				return nil, apiError(400, "ThrottlingException")
			}
			out := &ssm.GetParametersOutput{}
			for _, name := range in.Names {
				out.Parameters = append(out.Parameters, *param(name, "v"))
			}
			return out, nil
		}
		src := New(Options{SecretsManager: sm, SSM: ps, MaxConcurrency: 1, PrefetchConcurrency: 4, RetryThrottled: true})
		keys := append(secretKeys("s", 5), parameterKeys("/p/", 20, true)...)
		d := newDeliveries()
		src.Fetch(t.Context(), keys, d.deliver)
		for k, dl := range d.once(t, keys) {
			if dl.err != nil {
				t.Errorf("%v: %v", k, dl.err)
			}
		}
		if got := sm.batchCount(); got != 1 {
			t.Errorf("%d BatchGetSecretValue, want 1", got)
		}
		if got := len(sm.getIDs()); got != 5 {
			t.Errorf("%d GetSecretValue, want 5 (one per secret of the throttled batch)", got)
		}
		if paramsCalls != 2+3 {
			t.Errorf("%d GetParameters, want 5 (2 batches + 3 throttled)", paramsCalls)
		}
	})
}

// Without RetryThrottled (and for reads always) a throttled call fails at
// once, as the callers' own back-off expects.
func TestThrottledReadNotRetried(t *testing.T) {
	calls := 0
	ps := &fakeSSM{param: func(*ssm.GetParameterInput) (*ssm.GetParameterOutput, error) {
		calls++
		return nil, apiError(400, "ThrottlingException")
	}}
	src := New(Options{SecretsManager: &fakeSM{}, SSM: ps, MaxConcurrency: 1, RetryThrottled: true})
	_, err := src.FetchOne(t.Context(), Key{Service: ParameterStore, ID: "/a", Decrypt: true})
	if err == nil || calls != 1 {
		t.Errorf("read: err %v after %d calls; want a throttling error after 1", err, calls)
	}
}
