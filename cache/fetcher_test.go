package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// The tests run in synctest bubbles: synctest.Wait tells when every reader
// and fetch has reached the point where it blocks, and the timers behind the
// fetch timeouts run on the bubble's clock, so a wait that should not happen
// shows up as a timeout (or a deadlock) rather than a hang. The cache's own
// notion of time (TTLs, refresh points, backoff) is the injected fakeClock,
// which only moves when a test advances it.

// fakeFetcher is a Fetcher that records its calls, makes a new item on every
// successful fetch of a key (so tests can tell fetches apart), fails keys,
// batches or paths on demand and holds calls at gates until released.
type fakeFetcher struct {
	mu       sync.Mutex // protects everything below
	ones     []source.Key
	batches  [][]source.Key
	paths    []Path
	count    map[source.Key]int           // successful fetches per key
	errs     map[source.Key]*source.Error // sticky per-key failures
	batchErr *source.Error                // sticky whole-batch failure of Fetch
	secure   map[string]bool              // parameter IDs that are SecureStrings
	tree     map[string][]string          // path prefix -> parameter names under it
	pathErrs map[string]error
	gates    map[string]chan struct{} // "fetch", "path", "path after <name>", "one" or "one <ID>"
	items    []*source.Item           // every item handed out
}

func newFakeFetcher() *fakeFetcher {
	return &fakeFetcher{
		count:    map[source.Key]int{},
		errs:     map[source.Key]*source.Error{},
		secure:   map[string]bool{},
		tree:     map[string][]string{},
		pathErrs: map[string]error{},
		gates:    map[string]chan struct{}{},
	}
}

// hold makes calls that start from now on wait at the named gate (see
// gates) until release is called, or their context ends.
func (f *fakeFetcher) hold(gate string) (release func()) {
	g := make(chan struct{})
	f.mu.Lock()
	f.gates[gate] = g
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			if f.gates[gate] == g {
				delete(f.gates, gate)
			}
			f.mu.Unlock()
			close(g)
		})
	}
}

func (f *fakeFetcher) pass(ctx context.Context, names ...string) error {
	f.mu.Lock()
	var g chan struct{}
	for _, n := range names {
		if g = f.gates[n]; g != nil {
			break
		}
	}
	f.mu.Unlock()
	if g == nil {
		return nil
	}
	select {
	case <-g:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeFetcher) fail(k source.Key, class source.Class) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[k] = &source.Error{Class: class, Code: class.String(), Message: "injected"}
}

func (f *fakeFetcher) heal(k source.Key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.errs, k)
}

func (f *fakeFetcher) failBatch(class source.Class) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batchErr = &source.Error{Class: class, Code: class.String(), Message: "injected batch failure", Batch: true}
}

func (f *fakeFetcher) healBatch() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batchErr = nil
}

func (f *fakeFetcher) setSecure(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secure[id] = true
}

func (f *fakeFetcher) setTree(prefix string, names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tree[prefix] = names
}

func (f *fakeFetcher) failPath(prefix string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pathErrs[prefix] = err
}

// outcome is the result of fetching k now. Requires f.mu.
func (f *fakeFetcher) outcome(k source.Key) (*source.Item, error) {
	if e := f.errs[k]; e != nil {
		c := *e
		c.Key = k
		return nil, &c
	}
	f.count[k]++
	v := fmt.Sprintf("%s decrypt=%t #%d", k.ID, k.Decrypt, f.count[k])
	it := &source.Item{
		Key:    k,
		Body:   []byte(`{"Value":"` + v + `"}`),
		Text:   []byte(v),
		Name:   k.ID,
		Secure: k.Service == source.ParameterStore && f.secure[k.ID],
	}
	f.items = append(f.items, it)
	return it, nil
}

func canceled(k source.Key, err error) *source.Error {
	// What source reports for a single call cut short: not marked Batch,
	// so the cache's own marking of budget overruns is exercised.
	return &source.Error{Class: source.ClassTimeout, Code: "Canceled", Message: "the fetch was canceled", Key: k, Err: err}
}

func (f *fakeFetcher) Fetch(ctx context.Context, keys []source.Key, deliver source.Deliver) {
	f.mu.Lock()
	f.batches = append(f.batches, slices.Clone(keys))
	f.mu.Unlock()
	if err := f.pass(ctx, "fetch"); err != nil {
		for _, k := range keys {
			deliver(k, nil, canceled(k, err))
		}
		return
	}
	for _, k := range keys {
		f.mu.Lock()
		var (
			item *source.Item
			err  error
		)
		if f.batchErr != nil {
			c := *f.batchErr
			c.Key = k
			err = &c
		} else {
			item, err = f.outcome(k)
		}
		f.mu.Unlock()
		deliver(k, item, err)
	}
}

func (f *fakeFetcher) FetchOne(ctx context.Context, k source.Key) (*source.Item, error) {
	f.mu.Lock()
	f.ones = append(f.ones, k)
	f.mu.Unlock()
	if err := f.pass(ctx, "one "+k.ID, "one"); err != nil {
		return nil, canceled(k, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.outcome(k)
}

func (f *fakeFetcher) FetchPath(ctx context.Context, prefix string, recursive bool, deliver source.Deliver) (int, error) {
	f.mu.Lock()
	f.paths = append(f.paths, Path{Prefix: prefix, Recursive: recursive})
	f.mu.Unlock()
	if err := f.pass(ctx, "path"); err != nil {
		return 0, canceled(source.Key{Service: source.ParameterStore, ID: prefix}, err)
	}
	f.mu.Lock()
	err := f.pathErrs[prefix]
	names := f.tree[prefix]
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	for i, n := range names {
		k := source.ParameterKey(n)
		f.mu.Lock()
		item, err := f.outcome(k)
		f.mu.Unlock()
		deliver(k, item, err)
		if err := f.pass(ctx, "path after "+n); err != nil {
			return i + 1, canceled(source.Key{Service: source.ParameterStore, ID: prefix}, err)
		}
	}
	return len(names), nil
}

func (f *fakeFetcher) oneCalls() []source.Key {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ones)
}

func (f *fakeFetcher) batchCalls() [][]source.Key {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]source.Key, len(f.batches))
	for i, b := range f.batches {
		out[i] = slices.Clone(b)
		slices.SortFunc(out[i], func(a, b source.Key) int { return strings.Compare(a.String(), b.String()) })
	}
	return out
}

func (f *fakeFetcher) pathCalls() []Path {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.paths)
}

func (f *fakeFetcher) handedOut() []*source.Item {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.items)
}

// t0 is when every test starts, on the fake clock.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// set puts the clock at t0+d.
func (c *fakeClock) set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t0.Add(d)
}

type fakeRand struct {
	mu sync.Mutex
	v  float64
}

func (r *fakeRand) Float64() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.v
}

func (r *fakeRand) set(v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.v = v
}

// harness is a cache over a fakeFetcher, a fakeClock and a fakeRand.
//
// Defaults: TTLs 100 s, refresh ahead at half the TTL, stale-if-error 50 s,
// room for 100 entries, lazy, Rand 0 (so the first backoff is 500 ms and a
// refresh is due exactly at TTL × RefreshAhead).
type harness struct {
	t     *testing.T
	c     *Cache
	f     *fakeFetcher
	clock *fakeClock
	rand  *fakeRand
}

func newHarness(t *testing.T, edit func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, f: newFakeFetcher(), clock: &fakeClock{now: t0}, rand: &fakeRand{}}
	o := Options{
		Fetcher:       h.f,
		SecretsTTL:    100 * time.Second,
		ParametersTTL: 100 * time.Second,
		RefreshAhead:  0.5,
		StaleIfError:  50 * time.Second,
		Size:          100,
		Lazy:          true,
		Now:           h.clock.Now,
		Rand:          h.rand.Float64,
	}
	if edit != nil {
		edit(&o)
	}
	h.c = New(o)
	return h
}

// hold is f.hold, released at the end of the test at the latest, so that a
// failing test ends with a report rather than a deadlocked bubble.
func (h *harness) hold(gate string) (release func()) {
	release = h.f.hold(gate)
	h.t.Cleanup(release)
	return release
}

func (h *harness) get(k source.Key) (Result, error) {
	return h.c.Get(context.Background(), k, false)
}

// mustGet reads k and fails the test unless it is answered with want.
func (h *harness) mustGet(k source.Key, want Status) Result {
	h.t.Helper()
	r, err := h.get(k)
	if err != nil {
		h.t.Fatalf("Get(%s): %v, want %s", k, err, want)
	}
	if r.Status != want {
		h.t.Fatalf("Get(%s) status = %s, want %s", k, r.Status, want)
	}
	if r.Item == nil {
		h.t.Fatalf("Get(%s) returned no item", k)
	}
	return r
}

// has reports whether the cache holds an entry for k.
func (h *harness) has(k source.Key) bool {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	return h.c.m[k] != nil
}

func (h *harness) wantOnes(want ...source.Key) {
	h.t.Helper()
	got := h.f.oneCalls()
	if want == nil {
		want = []source.Key{}
	}
	if got == nil {
		got = []source.Key{}
	}
	if !slices.Equal(got, want) {
		h.t.Fatalf("FetchOne calls = %v, want %v", got, want)
	}
}

func (h *harness) wantBatches(want ...[]source.Key) {
	h.t.Helper()
	got := h.f.batchCalls()
	if len(got) != len(want) {
		h.t.Fatalf("Fetch calls = %v, want %v", got, want)
	}
	for i := range want {
		w := slices.Clone(want[i])
		slices.SortFunc(w, func(a, b source.Key) int { return strings.Compare(a.String(), b.String()) })
		if !slices.Equal(got[i], w) {
			h.t.Fatalf("Fetch call %d = %v, want %v", i, got[i], w)
		}
	}
}

type outcome struct {
	r   Result
	err error
}

// goGet reads k in a new goroutine; the answer arrives on the channel.
func (h *harness) goGet(ctx context.Context, k source.Key, refreshNow bool) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		r, err := h.c.Get(ctx, k, refreshNow)
		ch <- outcome{r, err}
	}()
	return ch
}

// goPrefetch runs Prefetch in a new goroutine.
func (h *harness) goPrefetch(ctx context.Context, keys []source.Key, paths []Path) <-chan PrefetchReport {
	ch := make(chan PrefetchReport, 1)
	go func() { ch <- h.c.Prefetch(ctx, keys, paths) }()
	return ch
}

// goRefresh runs RefreshDue in a new goroutine.
func (h *harness) goRefresh(ctx context.Context) <-chan RefreshReport {
	ch := make(chan RefreshReport, 1)
	go func() { ch <- h.c.RefreshDue(ctx) }()
	return ch
}

// ready returns what ch holds, failing the test if nothing is there yet.
// Call it after synctest.Wait, when whatever could finish has.
func ready[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	default:
		t.Fatalf("still waiting, want done")
		panic("unreachable")
	}
}

// pending fails the test if ch already holds a value. Call it after
// synctest.Wait.
func pending[T any](t *testing.T, ch <-chan T) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("done with %+v, want still waiting", v)
	default:
	}
}

// bubble runs f in a synctest bubble as a subtest.
func bubble(t *testing.T, name string, f func(t *testing.T)) {
	t.Run(name, func(t *testing.T) { synctest.Test(t, f) })
}

func text(r Result) string {
	if r.Item == nil {
		return "<nil>"
	}
	return string(r.Item.Text)
}

func itemText(k source.Key, n int) string {
	return fmt.Sprintf("%s decrypt=%t #%d", k.ID, k.Decrypt, n)
}

func errClass(t *testing.T, err error) source.Class {
	t.Helper()
	var serr *source.Error
	if !errors.As(err, &serr) {
		t.Fatalf("error %v (%T) is not a *source.Error", err, err)
	}
	return serr.Class
}
