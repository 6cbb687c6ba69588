package cache

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

var (
	secret = source.SecretKey("db-password")
	param  = source.ParameterKey("/app/config")
)

// plain is k read without decryption.
func plain(k source.Key) source.Key {
	k.Decrypt = false
	return k
}

func TestGetHitMissAge(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  source.Key
		ttl  time.Duration // the key's service's TTL, differing per service
	}{
		{"secret", secret, 100 * time.Second},
		{"parameter", param, 20 * time.Second},
	} {
		bubble(t, tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) {
				o.SecretsTTL, o.ParametersTTL = 100*time.Second, 20*time.Second
			})
			r := h.mustGet(tc.key, Miss)
			if r.Age != 0 || text(r) != itemText(tc.key, 1) {
				t.Fatalf("first read: age %v item %q", r.Age, text(r))
			}
			first := r.Item

			h.clock.advance(tc.ttl - time.Millisecond)
			r = h.mustGet(tc.key, Hit)
			if r.Age != tc.ttl-time.Millisecond || r.Item != first {
				t.Fatalf("read before the TTL: age %v item %q, want %v and the first item", r.Age, text(r), tc.ttl-time.Millisecond)
			}
			h.wantOnes(tc.key)

			h.clock.advance(time.Millisecond) // exactly the TTL: expired
			r = h.mustGet(tc.key, Miss)
			if r.Age != 0 || text(r) != itemText(tc.key, 2) {
				t.Fatalf("read at the TTL: age %v item %q, want a new fetch", r.Age, text(r))
			}
			h.wantOnes(tc.key, tc.key)

			h.clock.advance(time.Second)
			if r = h.mustGet(tc.key, Hit); r.Age != time.Second || text(r) != itemText(tc.key, 2) {
				t.Fatalf("read after refetch: age %v item %q", r.Age, text(r))
			}
			if got, want := h.c.Stats(), (Stats{Hits: 2, Misses: 2}); got != want {
				t.Fatalf("Stats = %+v, want %+v", got, want)
			}
		})
	}
}

func TestGetTTLZeroFetchesEveryRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.SecretsTTL = 0 })
		for i := 1; i <= 3; i++ {
			if r := h.mustGet(secret, Miss); text(r) != itemText(secret, i) {
				t.Fatalf("read %d got %q", i, text(r))
			}
		}
		h.wantOnes(secret, secret, secret)
		// The parameter TTL is not zero: it is cached.
		h.mustGet(param, Miss)
		h.mustGet(param, Hit)
	})
}

func TestGetSingleflight(t *testing.T) {
	const readers = 10
	for _, tc := range []struct {
		name    string
		expired bool
	}{
		{"missing", false},
		{"expired", true},
	} {
		bubble(t, tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			var before []source.Key
			if tc.expired {
				h.mustGet(secret, Miss)
				h.clock.advance(100 * time.Second)
				before = []source.Key{secret}
			}
			release := h.hold("one")
			chs := make([]<-chan outcome, readers)
			for i := range chs {
				chs[i] = h.goGet(context.Background(), secret, false)
			}
			synctest.Wait()
			for _, ch := range chs {
				pending(t, ch)
			}
			h.wantOnes(append(before, secret)...)

			release()
			var item *source.Item
			for i, ch := range chs {
				o := <-ch
				if o.err != nil || o.r.Status != Miss {
					t.Fatalf("reader %d: %v, %s", i, o.err, o.r.Status)
				}
				if item == nil {
					item = o.r.Item
				}
				if o.r.Item != item {
					t.Fatalf("reader %d got %q, reader 0 %q", i, text(o.r), string(item.Text))
				}
			}
			if want := itemText(secret, len(before)+1); string(item.Text) != want {
				t.Fatalf("item %q, want %q", item.Text, want)
			}
			h.wantOnes(append(before, secret)...)
			if r := h.mustGet(secret, Hit); r.Item != item {
				t.Fatalf("later read got %q", text(r))
			}
			if got := h.c.Stats().Misses; got != uint64(readers+len(before)) {
				t.Fatalf("Misses = %d, want %d", got, readers+len(before))
			}
		})
	}
}

func TestGetJoinsPrefetchInFlight(t *testing.T) {
	const readers = 3
	other := source.SecretKey("other")
	for _, tc := range []struct {
		name      string
		setup     func(f *fakeFetcher)
		wantErr   bool
		wantClass source.Class
		wantOnes  int // FetchOne calls of the key, all readers together
		// The batch's failure was not the key's own: a later read fetches
		// the key alone (only joined reads don't, the failure not being
		// transient).
		laterFetches bool
	}{
		{name: "delivered", setup: func(*fakeFetcher) {}},
		{name: "batch failed transiently", setup: func(f *fakeFetcher) { f.failBatch(source.ClassTransient) }, wantOnes: 1},
		{name: "batch throttled", setup: func(f *fakeFetcher) { f.failBatch(source.ClassThrottled) }, wantOnes: 1},
		{name: "batch timed out", setup: func(f *fakeFetcher) { f.failBatch(source.ClassTimeout) }, wantOnes: 1},
		{name: "batch denied", setup: func(f *fakeFetcher) { f.failBatch(source.ClassAccessDenied) }, wantErr: true, wantClass: source.ClassAccessDenied, laterFetches: true},
		{name: "key not found", setup: func(f *fakeFetcher) { f.fail(secret, source.ClassNotFound) }, wantErr: true, wantClass: source.ClassNotFound},
		{name: "key throttled", setup: func(f *fakeFetcher) { f.fail(secret, source.ClassThrottled) }, wantErr: true, wantClass: source.ClassThrottled},
	} {
		bubble(t, tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			release := h.hold("fetch")
			repc := h.goPrefetch(context.Background(), []source.Key{secret, other}, nil)
			synctest.Wait()
			chs := make([]<-chan outcome, readers)
			for i := range chs {
				chs[i] = h.goGet(context.Background(), secret, false)
			}
			synctest.Wait()
			for _, ch := range chs {
				pending(t, ch)
			}
			h.wantOnes()

			tc.setup(h.f)
			// Readers that fetch the key alone meet here, so that all of
			// them, not only the first, are seen to share one fetch.
			releaseOne := h.hold("one")
			release()
			rep := <-repc
			synctest.Wait()
			want := make([]source.Key, tc.wantOnes)
			for i := range want {
				want[i] = secret
			}
			h.wantOnes(want...)
			releaseOne()
			if _, failed := rep.Failed[secret]; failed == (tc.name == "delivered") {
				t.Fatalf("report Failed = %v", rep.Failed)
			}
			var item *source.Item
			for i, ch := range chs {
				o := <-ch
				if tc.wantErr {
					if o.err == nil {
						t.Fatalf("reader %d: %s %q, want an error", i, o.r.Status, text(o.r))
					}
					if c := errClass(t, o.err); c != tc.wantClass {
						t.Fatalf("reader %d: class %s, want %s", i, c, tc.wantClass)
					}
					continue
				}
				if o.err != nil || o.r.Status != Miss {
					t.Fatalf("reader %d: %v, %s", i, o.err, o.r.Status)
				}
				if item == nil {
					item = o.r.Item
				}
				if o.r.Item != item || string(item.Text) != itemText(secret, 1) {
					t.Fatalf("reader %d got %q", i, text(o.r))
				}
			}
			h.wantOnes(want...)
			h.wantBatches([]source.Key{secret, other})

			if tc.laterFetches {
				h.mustGet(secret, Miss)
				h.wantOnes(secret)
				return
			}
			// A read right after gets the same answer without calling AWS.
			r, err := h.get(secret)
			if tc.wantErr != (err != nil) || !tc.wantErr && r.Item != item {
				t.Fatalf("read after: %v %q", err, text(r))
			}
			h.wantOnes(want...)
		})
	}
}

func TestPathMatches(t *testing.T) {
	for _, tc := range []struct {
		prefix    string
		recursive bool
		name      string
		want      bool
	}{
		{"/app", false, "/app/a", true},
		{"/app", false, "/app/a/b", false},
		{"/app", true, "/app/a/b", true},
		{"/app", true, "/app", false},
		{"/app", true, "/app/", false},
		{"/app", true, "/apple/a", false},
		{"/app", false, "/apple", false},
		{"/", false, "/a", true},
		{"/", false, "/a/b", false},
		{"/", true, "/a/b", true},
		{"/a/b", false, "/a/b/c", true},
		{"/a/b", false, "/a/c", false},
	} {
		p := &pathFetch{prefix: tc.prefix, recursive: tc.recursive}
		if got := p.matches(tc.name); got != tc.want {
			t.Errorf("path %q (recursive %t) matches %q = %t, want %t", tc.prefix, tc.recursive, tc.name, got, tc.want)
		}
	}
}

func TestGetWaitsForPathPrefetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		a, b := source.ParameterKey("/app/a"), source.ParameterKey("/app/b")
		h.f.setTree("/app", a.ID, b.ID)
		release := h.hold("path")
		repc := h.goPrefetch(context.Background(), nil, []Path{{Prefix: "/app"}})
		synctest.Wait()

		under := h.goGet(context.Background(), a, false)
		underPlain := h.goGet(context.Background(), plain(b), false)
		synctest.Wait()
		pending(t, under)
		pending(t, underPlain)

		// Names the path can't bring don't wait: were they to, this
		// goroutine would block too, and the fetch timeout would fire.
		notUnder := []source.Key{
			source.ParameterKey("/other/x"),
			source.ParameterKey("/app/sub/c"), // not recursive
			source.ParameterKey("/apple"),
			source.SecretKey("/app/a"),
			{Service: source.ParameterStore, ID: "/app/a", Selector: ":3", Decrypt: true},
		}
		for _, k := range notUnder {
			h.mustGet(k, Miss)
		}
		h.wantOnes(notUnder...)
		pending(t, under)

		release()
		rep := <-repc
		if rep.Paths[Path{Prefix: "/app"}] != 2 || rep.Fetched != 2 || len(rep.PathErrs) != 0 {
			t.Fatalf("report %+v", rep)
		}
		oa, ob := <-under, <-underPlain
		if oa.err != nil || oa.r.Status != Hit || text(oa.r) != itemText(a, 1) {
			t.Fatalf("read under the path: %v %s %q", oa.err, oa.r.Status, text(oa.r))
		}
		if ob.err != nil || ob.r.Status != Hit || text(ob.r) != itemText(b, 1) {
			t.Fatalf("plaintext read under the path: %v %s %q", ob.err, ob.r.Status, text(ob.r))
		}
		h.wantOnes(notUnder...)
	})
}

func TestGetPathWaitIsBounded(t *testing.T) {
	bubble(t, "a slow path: the read fetches alone", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.ParametersTimeout = 3 * time.Second })
		h.hold("path")
		h.goPrefetch(context.Background(), nil, []Path{{Prefix: "/app"}})
		synctest.Wait()

		start := time.Now() // the bubble's clock
		a := source.ParameterKey("/app/a")
		h.mustGet(a, Miss)
		if d := time.Since(start); d != time.Second {
			t.Fatalf("waited %v, want the default PathPatience, 1s", d)
		}
		h.wantOnes(a)
	})

	bubble(t, "and that fetch is bounded", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.ParametersTimeout = 3 * time.Second; o.PathPatience = 500 * time.Millisecond })
		h.hold("path")
		h.hold("one")
		h.goPrefetch(context.Background(), nil, []Path{{Prefix: "/app"}})
		synctest.Wait()

		start := time.Now()
		_, err := h.get(source.ParameterKey("/app/a"))
		if err == nil || errClass(t, err) != source.ClassTimeout {
			t.Fatalf("err = %v, want a timeout", err)
		}
		if d := time.Since(start); d != 3500*time.Millisecond {
			t.Fatalf("waited %v, want the patience and then the parameters timeout, 3.5s", d)
		}
		if got := h.c.Stats().Errors; got != 1 {
			t.Fatalf("Errors = %d, want 1", got)
		}
	})
}

func TestGetWaitIsBoundedByFetchTimeout(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  source.Key
		want time.Duration
	}{
		{"secret", secret, 2 * time.Second},
		{"parameter", param, 5 * time.Second},
	} {
		bubble(t, tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) {
				o.SecretsTimeout, o.ParametersTimeout = 2*time.Second, 5*time.Second
			})
			h.hold("one")
			start := time.Now()
			_, err := h.get(tc.key)
			if err == nil || errClass(t, err) != source.ClassTimeout {
				t.Fatalf("err = %v, want a timeout", err)
			}
			if d := time.Since(start); d != tc.want {
				t.Fatalf("waited %v, want %v", d, tc.want)
			}
		})
	}
}

func TestGetDuringRefresh(t *testing.T) {
	bubble(t, "fresh value served at once", func(t *testing.T) {
		h := newHarness(t, nil)
		first := h.mustGet(secret, Miss).Item
		h.clock.advance(50 * time.Second) // the refresh-ahead point
		release := h.hold("fetch")
		refc := h.goRefresh(context.Background())
		synctest.Wait()
		h.wantBatches([]source.Key{secret})

		// Blocking here would block the whole bubble until the fetch
		// timeout, and then not be a hit.
		if r := h.mustGet(secret, Hit); r.Item != first || r.Age != 50*time.Second {
			t.Fatalf("got %q age %v, want the first item, 50s old", text(r), r.Age)
		}
		release()
		if rep := <-refc; counts(rep) != (refreshCounts{Due: 1, Refreshed: 1}) {
			t.Fatalf("report %+v", rep)
		}
		if r := h.mustGet(secret, Hit); text(r) != itemText(secret, 2) || r.Age != 0 {
			t.Fatalf("after refresh got %q age %v", text(r), r.Age)
		}
		h.wantOnes(secret)
	})

	bubble(t, "expired value joins the refresh", func(t *testing.T) {
		h := newHarness(t, nil)
		h.mustGet(secret, Miss)
		h.clock.advance(50 * time.Second)
		release := h.hold("fetch")
		refc := h.goRefresh(context.Background())
		synctest.Wait()
		h.clock.advance(50 * time.Second) // expired while refreshing
		ch := h.goGet(context.Background(), secret, false)
		synctest.Wait()
		pending(t, ch)
		release()
		<-refc
		o := <-ch
		if o.err != nil || o.r.Status != Miss || text(o.r) != itemText(secret, 2) {
			t.Fatalf("got %v %s %q", o.err, o.r.Status, text(o.r))
		}
		h.wantOnes(secret)
	})

	bubble(t, "refresh batch failure: the reader fetches alone", func(t *testing.T) {
		h := newHarness(t, nil)
		h.mustGet(secret, Miss)
		h.clock.advance(100 * time.Second) // due and expired
		release := h.hold("fetch")
		refc := h.goRefresh(context.Background())
		synctest.Wait()
		chs := []<-chan outcome{
			h.goGet(context.Background(), secret, false),
			h.goGet(context.Background(), secret, false),
		}
		synctest.Wait()
		h.wantOnes(secret)
		h.f.failBatch(source.ClassTransient)
		releaseOne := h.hold("one")
		release()
		if rep := <-refc; counts(rep) != (refreshCounts{Due: 1, Failed: 1}) {
			t.Fatalf("report %+v", rep)
		}
		synctest.Wait()
		h.wantOnes(secret, secret) // one fetch for both readers
		releaseOne()
		for _, ch := range chs {
			o := <-ch
			if o.err != nil || o.r.Status != Miss || text(o.r) != itemText(secret, 2) {
				t.Fatalf("got %v %s %q", o.err, o.r.Status, text(o.r))
			}
		}
		h.wantOnes(secret, secret)
	})
}

func TestStaleIfError(t *testing.T) {
	// TTL 100 s; the value is fetched at 0 and fetching fails from then on.
	for _, tc := range []struct {
		name      string
		sie       time.Duration
		class     source.Class
		at        time.Duration
		wantStale bool
	}{
		{"transient within bound", 50 * time.Second, source.ClassTransient, 120 * time.Second, true},
		{"throttled at the TTL", 50 * time.Second, source.ClassThrottled, 100 * time.Second, true},
		{"timeout just before the bound", 50 * time.Second, source.ClassTimeout, 150*time.Second - time.Millisecond, true},
		{"other within bound", 50 * time.Second, source.ClassOther, 120 * time.Second, true},
		{"transient at the bound", 50 * time.Second, source.ClassTransient, 150 * time.Second, false},
		{"transient past the bound", 50 * time.Second, source.ClassTransient, time.Hour, false},
		{"not found", 50 * time.Second, source.ClassNotFound, 120 * time.Second, false},
		{"access denied", 50 * time.Second, source.ClassAccessDenied, 120 * time.Second, false},
		{"invalid", 50 * time.Second, source.ClassInvalid, 120 * time.Second, false},
		{"stale-if-error off", 0, source.ClassTransient, 100 * time.Second, false},
	} {
		bubble(t, tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.StaleIfError = tc.sie })
			first := h.mustGet(secret, Miss).Item
			h.f.fail(secret, tc.class)
			h.clock.set(tc.at)
			r, err := h.get(secret)
			h.wantOnes(secret, secret)
			if !tc.wantStale {
				if err == nil {
					t.Fatalf("got %s %q, want an error", r.Status, text(r))
				}
				if c := errClass(t, err); c != tc.class {
					t.Fatalf("class %s, want %s", c, tc.class)
				}
				if s := h.c.Stats(); s.Errors != 1 || s.Stale != 0 {
					t.Fatalf("Stats %+v", s)
				}
				return
			}
			if err != nil || r.Status != Stale || r.Item != first || r.Age != tc.at {
				t.Fatalf("got %v %s %q age %v, want the first item, stale, %v old", err, r.Status, text(r), r.Age, tc.at)
			}
			if s := h.c.Stats(); s.Errors != 0 || s.Stale != 1 {
				t.Fatalf("Stats %+v", s)
			}
		})
	}

	bubble(t, "not found drops the value for good", func(t *testing.T) {
		h := newHarness(t, nil)
		h.mustGet(secret, Miss)
		h.clock.set(110 * time.Second)
		h.f.fail(secret, source.ClassNotFound)
		if _, err := h.get(secret); err == nil {
			t.Fatal("want not found")
		}
		// Later failures are transient, within the bound: nothing to serve.
		h.f.fail(secret, source.ClassTransient)
		h.clock.advance(time.Second) // past the backoff
		_, err := h.get(secret)
		if err == nil || errClass(t, err) != source.ClassTransient {
			t.Fatalf("err = %v, want the transient error, no stale value", err)
		}
		h.wantOnes(secret, secret, secret)
	})
}

func TestBackoff(t *testing.T) {
	bubble(t, "no value", func(t *testing.T) {
		h := newHarness(t, nil)
		h.f.fail(secret, source.ClassTransient)
		steps := []struct {
			advance    time.Duration
			refreshNow bool
			ones       int
		}{
			{0, false, 1},                      // fails: backoff 500 ms
			{499 * time.Millisecond, false, 1}, // backing off
			{time.Millisecond, false, 2},       // fails again: backoff 1 s
			{999 * time.Millisecond, false, 2}, // backing off
			{0, true, 3},                       // refreshNow goes through; a failure within the round counts no more
			{time.Millisecond, false, 4},       // the round's end: fails, backoff 2 s
			{1999 * time.Millisecond, false, 4},
		}
		for i, s := range steps {
			h.clock.advance(s.advance)
			_, err := h.c.Get(context.Background(), secret, s.refreshNow)
			if err == nil || errClass(t, err) != source.ClassTransient {
				t.Fatalf("step %d: err = %v", i, err)
			}
			if n := len(h.f.oneCalls()); n != s.ones {
				t.Fatalf("step %d: %d FetchOne calls, want %d", i, n, s.ones)
			}
		}
		h.f.heal(secret)
		h.clock.advance(time.Millisecond)
		h.mustGet(secret, Miss)
		h.mustGet(secret, Hit)
		if n := len(h.f.oneCalls()); n != 5 {
			t.Fatalf("%d FetchOne calls, want 5", n)
		}
		if got, want := h.c.Stats(), (Stats{Errors: 7, Misses: 1, Hits: 1}); got != want {
			t.Fatalf("Stats = %+v, want %+v", got, want)
		}
	})

	bubble(t, "stale value", func(t *testing.T) {
		h := newHarness(t, nil)
		first := h.mustGet(secret, Miss).Item
		h.clock.advance(100 * time.Second)
		h.f.fail(secret, source.ClassTransient)
		for i, ones := range []int{2, 2} {
			if r := h.mustGet(secret, Stale); r.Item != first {
				t.Fatalf("read %d got %q", i, text(r))
			}
			if n := len(h.f.oneCalls()); n != ones {
				t.Fatalf("read %d: %d FetchOne calls, want %d", i, n, ones)
			}
		}
		h.clock.advance(500 * time.Millisecond)
		h.mustGet(secret, Stale)
		if n := len(h.f.oneCalls()); n != 3 {
			t.Fatalf("%d FetchOne calls after the backoff, want 3", n)
		}
	})
}

func TestBackoffDuration(t *testing.T) {
	for _, tc := range []struct {
		n    int
		rand float64
		want time.Duration
	}{
		{1, 0, 500 * time.Millisecond},
		{1, 0.5, 750 * time.Millisecond},
		{2, 0, time.Second},
		{3, 0, 2 * time.Second},
		{8, 0, 64 * time.Second},
		{9, 0, 150 * time.Second},
		{9, 0.5, 225 * time.Second},
		{1000, 0, 150 * time.Second},
	} {
		c := New(Options{Rand: func() float64 { return tc.rand }})
		if got := c.backoff(tc.n); got != tc.want {
			t.Errorf("backoff(%d) with rand %v = %v, want %v", tc.n, tc.rand, got, tc.want)
		}
	}
}

func TestLazy(t *testing.T) {
	listed := source.SecretKey("listed")
	unlisted := source.SecretKey("unlisted")
	for _, tc := range []struct {
		name    string
		lazy    bool
		key     source.Key
		wantErr error
	}{
		{"off, unlisted", false, unlisted, ErrNotConfigured},
		{"off, listed", false, listed, nil},
		{"on, unlisted", true, unlisted, nil},
		{"on, listed", true, listed, nil},
	} {
		bubble(t, tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) {
				o.Lazy = tc.lazy
				o.Listed = func(k source.Key) bool { return k == listed }
			})
			r, err := h.get(tc.key)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				h.wantOnes()
				if h.c.Len() != 0 {
					t.Fatalf("Len = %d, want 0", h.c.Len())
				}
				return
			}
			if r.Status != Miss {
				t.Fatalf("status %s", r.Status)
			}
			h.wantOnes(tc.key)
		})
	}
}

func TestPlaintextAlias(t *testing.T) {
	for _, tc := range []struct {
		name    string
		secure  bool
		advance time.Duration // between the decrypted read and the plain one
		alias   bool
	}{
		{"plain string", false, 99 * time.Second, true},
		{"secure string", true, 0, false},
		{"decrypted value expired", false, 100 * time.Second, false},
	} {
		bubble(t, tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			if tc.secure {
				h.f.setSecure(param.ID)
			}
			dec := h.mustGet(param, Miss).Item
			h.clock.advance(tc.advance)
			if !tc.alias {
				r := h.mustGet(plain(param), Miss)
				if r.Item == dec || r.Item.Key.Decrypt {
					t.Fatalf("plain read served %q, want its own fetch", text(r))
				}
				h.wantOnes(param, plain(param))
				return
			}
			r := h.mustGet(plain(param), Hit)
			if r.Item != dec || r.Age != tc.advance {
				t.Fatalf("plain read got %q age %v, want the decrypted item", text(r), r.Age)
			}
			h.wantOnes(param)
			// refreshNow fetches the plain key itself.
			if r, err := h.c.Get(context.Background(), plain(param), true); err != nil || r.Status != Miss {
				t.Fatalf("refreshNow: %v %s", err, r.Status)
			}
			h.wantOnes(param, plain(param))
		})
	}

	for _, tc := range []struct {
		name   string
		secure bool
	}{
		{"prefetch in flight, plain string", false},
		{"prefetch in flight, secure string", true},
	} {
		bubble(t, tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			if tc.secure {
				h.f.setSecure(param.ID)
			}
			release := h.hold("fetch")
			repc := h.goPrefetch(context.Background(), []source.Key{param}, nil)
			synctest.Wait()
			ch := h.goGet(context.Background(), plain(param), false)
			synctest.Wait()
			pending(t, ch)
			h.wantOnes()
			release()
			<-repc
			o := <-ch
			if o.err != nil || o.r.Status != Miss {
				t.Fatalf("got %v %s", o.err, o.r.Status)
			}
			if tc.secure {
				if o.r.Item.Key.Decrypt {
					t.Fatalf("secure string: plain read served the decrypted item")
				}
				h.wantOnes(plain(param))
				return
			}
			if text(o.r) != itemText(param, 1) {
				t.Fatalf("got %q, want the prefetched item", text(o.r))
			}
			h.wantOnes()
		})
	}
}

func TestGetReaderGivesUp(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stale bool
	}{
		{"no value", false},
		{"stale value", true},
	} {
		bubble(t, tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			var first *source.Item
			if tc.stale {
				first = h.mustGet(secret, Miss).Item
				h.clock.advance(100 * time.Second)
			}
			release := h.hold("one")
			ctx, cancel := context.WithCancel(context.Background())
			quitter := h.goGet(ctx, secret, false)
			stayer := h.goGet(context.Background(), secret, false)
			synctest.Wait()
			pending(t, quitter)
			pending(t, stayer)

			cancel()
			synctest.Wait()
			o := ready(t, quitter)
			if tc.stale {
				if o.err != nil || o.r.Status != Stale || o.r.Item != first {
					t.Fatalf("quitter: %v %s %q, want the stale value", o.err, o.r.Status, text(o.r))
				}
			} else if o.err == nil || errClass(t, o.err) != source.ClassTimeout {
				t.Fatalf("quitter: %v, want a timeout error", o.err)
			}
			pending(t, stayer)

			release()
			o = <-stayer
			if o.err != nil || o.r.Status != Miss || o.r.Item == first {
				t.Fatalf("stayer: %v %s %q", o.err, o.r.Status, text(o.r))
			}
			h.mustGet(secret, Hit)
			if n := len(h.f.oneCalls()); n != 1+btoi(tc.stale) {
				t.Fatalf("%d FetchOne calls", n)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestSizeBound(t *testing.T) {
	a, b, c := source.SecretKey("a"), source.SecretKey("b"), source.SecretKey("c")

	bubble(t, "least recently read goes", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.Size = 2 })
		h.mustGet(a, Miss)
		h.clock.advance(time.Second)
		h.mustGet(b, Miss)
		h.clock.advance(time.Second)
		h.mustGet(a, Hit) // b is now the least recently read
		h.clock.advance(time.Second)
		h.mustGet(c, Miss)
		if h.c.Len() != 2 || !h.has(a) || h.has(b) || !h.has(c) {
			t.Fatalf("Len %d, a %t b %t c %t; want a and c", h.c.Len(), h.has(a), h.has(b), h.has(c))
		}
		h.clock.advance(time.Second)
		h.mustGet(a, Hit)
		h.clock.advance(time.Second)
		h.mustGet(b, Miss) // fetched again; evicts c
		if h.has(c) {
			t.Fatal("c kept")
		}
	})

	bubble(t, "entries in flight stay", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.Size = 1 })
		release := h.hold("one " + a.ID)
		ach := h.goGet(context.Background(), a, false)
		synctest.Wait()
		h.clock.advance(time.Second)
		h.mustGet(b, Miss)
		if !h.has(a) || !h.has(b) {
			t.Fatalf("a %t b %t, want both (a is in flight)", h.has(a), h.has(b))
		}
		release()
		if o := <-ach; o.err != nil || o.r.Status != Miss {
			t.Fatalf("a: %v %s", o.err, o.r.Status)
		}
		// Back under the bound at the next insertion.
		h.clock.advance(time.Second)
		h.mustGet(c, Miss)
		if h.c.Len() != 1 || !h.has(c) {
			t.Fatalf("Len %d, a %t b %t c %t; want only c", h.c.Len(), h.has(a), h.has(b), h.has(c))
		}
	})
}

func TestStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		a, b := source.SecretKey("a"), source.SecretKey("b")
		h.mustGet(a, Miss)
		h.mustGet(a, Hit)
		h.f.fail(b, source.ClassNotFound)
		h.get(b)
		h.get(b) // backing off: an error without a fetch
		h.clock.set(50 * time.Second)
		if rep := h.c.RefreshDue(context.Background()); counts(rep) != (refreshCounts{Due: 1, Refreshed: 1}) {
			t.Fatalf("refresh: %+v", rep) // b is neither listed nor has a value
		}
		h.clock.set(150 * time.Second) // a expired
		h.f.fail(a, source.ClassTransient)
		h.mustGet(a, Stale)
		h.clock.advance(time.Second) // past the backoff; a is due
		if rep := h.c.RefreshDue(context.Background()); counts(rep) != (refreshCounts{Due: 1, Failed: 1}) {
			t.Fatalf("refresh: %+v", rep)
		}
		want := Stats{Hits: 1, Misses: 1, Stale: 1, Errors: 2, Refreshes: 1, RefreshErrors: 1}
		if got := h.c.Stats(); got != want {
			t.Fatalf("Stats = %+v, want %+v", got, want)
		}
	})
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{Hit: "hit", Miss: "miss", Stale: "stale", 0: "unknown"} {
		if got := s.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", s, got, want)
		}
	}
}

func BenchmarkGetHit(b *testing.B) {
	c := New(Options{Fetcher: newFakeFetcher(), SecretsTTL: time.Hour, Size: 16, Lazy: true})
	ctx := context.Background()
	if _, err := c.Get(ctx, secret, false); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := c.Get(ctx, secret, false)
			if err != nil || r.Status != Hit {
				b.Errorf("Get: %v %s", err, r.Status)
				return
			}
		}
	})
}
