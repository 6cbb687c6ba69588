package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// TestRefusalStopsServingAtOnce: a refresh or a read answered with a refusal
// (access denied, KMS included, or not found) stops the value being served
// at once, though it was still within its TTL; a temporary failure does not.
func TestRefusalStopsServingAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		class source.Class
		keep  bool
	}{
		{"access denied", source.ClassAccessDenied, false},
		{"not found", source.ClassNotFound, false},
		{"invalid", source.ClassInvalid, false},
		{"throttled", source.ClassThrottled, true},
		{"transient", source.ClassTransient, true},
	} {
		bubble(t, tc.name+" at refresh", func(t *testing.T) {
			h := newHarness(t, nil)
			first := h.mustGet(secret, Miss).Item
			h.clock.advance(50 * time.Second) // the refresh point, well within the TTL
			h.f.fail(secret, tc.class)
			if rep := h.c.RefreshDue(context.Background()); rep.Failed != 1 {
				t.Fatalf("report %+v", rep)
			}
			r, err := h.get(secret)
			if tc.keep {
				if err != nil || r.Status != Hit || r.Item != first {
					t.Fatalf("got %v %s %q, want the cached value", err, r.Status, text(r))
				}
				return
			}
			if err == nil || errClass(t, err) != tc.class {
				t.Fatalf("got %s %q (err %v), want the %s error", r.Status, text(r), err, tc.class)
			}
			h.wantOnes(secret) // the read did not call AWS: the refusal is cached
		})
		bubble(t, tc.name+" at refreshNow", func(t *testing.T) {
			h := newHarness(t, nil)
			h.mustGet(secret, Miss)
			h.f.fail(secret, tc.class)
			h.clock.advance(time.Second)
			if _, err := h.c.Get(context.Background(), secret, true); err == nil && !tc.keep {
				t.Fatal("refreshNow: want the refusal")
			}
			_, err := h.get(secret)
			if (err == nil) != tc.keep {
				t.Fatalf("the read after: err %v, want served %t", err, tc.keep)
			}
		})
	}
}

// TestRefreshCutShortIsNoFailure: a refresh the caller's own deadline cuts
// short (ErrCutShort) records no failure and no backoff; its entries stay
// due for the next round and a read fetches them. Ended any other way, it
// is a failure as before.
func TestRefreshCutShortIsNoFailure(t *testing.T) {
	bubble(t, "cut short in flight", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.StaleIfError = 0 })
		a, b := source.SecretKey("a"), source.SecretKey("b")
		h.c.Prefetch(context.Background(), []source.Key{a, b}, nil)
		h.clock.advance(50 * time.Second)
		release := h.hold("fetch")
		ctx, cancel := context.WithCancelCause(context.Background())
		refc := h.goRefresh(ctx)
		synctest.Wait()
		cancel(ErrCutShort)
		rep := <-refc
		if rep.Due != 2 || rep.Deferred != 2 || rep.Failed != 0 || len(rep.Errors) != 0 {
			t.Fatalf("report %+v, want 2 due, 2 deferred, none failed", rep)
		}
		if s := h.c.Stats(); s.RefreshErrors != 0 {
			t.Fatalf("Stats %+v", s)
		}
		h.mustGet(a, Hit)
		// Still due: the next round fetches both at once, no backoff.
		release()
		if rep := h.c.RefreshDue(context.Background()); rep.Due != 2 || rep.Refreshed != 2 {
			t.Fatalf("next round %+v, want both refreshed", rep)
		}
	})

	bubble(t, "a read past the TTL fetches", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.StaleIfError = 0 })
		h.mustGet(secret, Miss)
		h.clock.advance(50 * time.Second)
		h.hold("fetch")
		ctx, cancel := context.WithCancelCause(context.Background())
		refc := h.goRefresh(ctx)
		synctest.Wait()
		cancel(ErrCutShort)
		<-refc
		h.clock.advance(50 * time.Second) // past the TTL, no stale-if-error
		if r := h.mustGet(secret, Miss); text(r) != itemText(secret, 2) {
			t.Fatalf("got %q", text(r))
		}
	})

	bubble(t, "no time left at all", func(t *testing.T) {
		h := newHarness(t, nil)
		h.mustGet(secret, Miss)
		h.clock.advance(50 * time.Second)
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(ErrCutShort)
		if rep := h.c.RefreshDue(ctx); rep.Due != 0 || rep.Failed != 0 {
			t.Fatalf("report %+v, want nothing attempted", rep)
		}
		h.wantBatches()
		if rep := h.c.RefreshDue(context.Background()); rep.Refreshed != 1 {
			t.Fatalf("next round %+v, want the entry still due", rep)
		}
	})

	bubble(t, "ended by another cause: a failure", func(t *testing.T) {
		h := newHarness(t, nil)
		h.mustGet(secret, Miss)
		h.clock.advance(50 * time.Second)
		h.hold("fetch")
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if rep := h.c.RefreshDue(ctx); rep.Failed != 1 || rep.Deferred != 0 {
			t.Fatalf("report %+v, want a failure", rep)
		}
	})
}

// TestConfiguredItemsAreNeverEvicted: a path larger than the cache does not
// push out the listed items, nor its own members; the report counts the
// configured entries so the caller can say they don't fit; reads of
// unlisted names evict only each other.
func TestConfiguredItemsAreNeverEvicted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		listed := []source.Key{source.SecretKey("s1"), source.SecretKey("s2"), source.ParameterKey("/p/1")}
		members := make([]string, 20)
		for i := range members {
			members[i] = fmt.Sprintf("/app/m%02d", i)
		}
		h := newHarness(t, func(o *Options) {
			o.Size = 10
			o.Listed = func(k source.Key) bool {
				return slices.Contains(listed, k) || strings.HasPrefix(k.ID, "/app/")
			}
		})
		h.f.setTree("/app", members...)
		rep := h.c.Prefetch(context.Background(), listed, []Path{{Prefix: "/app"}})
		if want := len(listed) + len(members); rep.Configured != want || h.c.Len() != want {
			t.Fatalf("Configured %d, Len %d; want %d (all kept, past Size 10)", rep.Configured, h.c.Len(), want)
		}
		for i := range 5 {
			h.clock.advance(time.Second)
			h.mustGet(source.SecretKey(fmt.Sprint("lazy-", i)), Miss)
		}
		for _, k := range listed {
			h.mustGet(k, Hit)
		}
		for _, m := range members {
			h.mustGet(source.ParameterKey(m), Hit)
		}
		h.wantOnes(source.SecretKey("lazy-0"), source.SecretKey("lazy-1"), source.SecretKey("lazy-2"), source.SecretKey("lazy-3"), source.SecretKey("lazy-4"))
		if n := h.c.Len(); n != len(listed)+len(members)+1 {
			t.Fatalf("Len %d, want the configured entries and one unlisted", n)
		}
	})
}

// TestEvictionOrder: with room for three, failed lookups go first, then the
// least recently read value; a hit counts as a read.
func TestEvictionOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.Size = 3 })
		a, b, c, d, gone := source.SecretKey("a"), source.SecretKey("b"), source.SecretKey("c"), source.SecretKey("d"), source.SecretKey("gone")
		h.mustGet(a, Miss)
		h.mustGet(b, Miss)
		h.f.fail(gone, source.ClassNotFound)
		if _, err := h.get(gone); err == nil {
			t.Fatal("gone: want not found")
		}
		h.mustGet(c, Miss) // evicts gone, though read after a and b
		if h.has(gone) || !h.has(a) || !h.has(b) {
			t.Fatalf("a %t b %t gone %t: want the failed lookup evicted", h.has(a), h.has(b), h.has(gone))
		}
		h.mustGet(a, Hit) // b is now the least recently read
		h.mustGet(d, Miss)
		if h.has(b) || !h.has(a) || !h.has(c) || !h.has(d) {
			t.Fatalf("a %t b %t c %t d %t: want b evicted", h.has(a), h.has(b), h.has(c), h.has(d))
		}
	})
}

// TestCachedFailureKeepsOnlyTheAnswer: the error a failed fetch leaves in
// the cache (and hands its readers) keeps class, code, message and key, not
// the error it wraps (for AWS, the SDK's response and signed request).
func TestCachedFailureKeepsOnlyTheAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		k := source.SecretKey("missing")
		h.f.mu.Lock()
		h.f.errs[k] = &source.Error{Class: source.ClassNotFound, Code: "ResourceNotFoundException", Message: "not here",
			Err: fmt.Errorf("the SDK's error: %s", strings.Repeat("x", 8<<10))}
		h.f.mu.Unlock()
		_, err := h.get(k)
		var serr *source.Error
		if !errors.As(err, &serr) || serr.Code != "ResourceNotFoundException" || serr.Message != "not here" || serr.Key != k || serr.Class != source.ClassNotFound {
			t.Fatalf("err %#v, want the code, message, class and key", err)
		}
		h.c.mu.Lock()
		cached := h.c.m[k].err
		h.c.mu.Unlock()
		if serr.Err != nil || cached.Err != nil {
			t.Fatalf("the answer (%t) or the cached error (%t) still wraps the SDK's error", serr.Err != nil, cached.Err != nil)
		}
	})
}

// TestReadUnderPathWaitsForItsOwnPage: during a path prefetch, a read of a
// name under it is answered as soon as the page bringing it arrives, not at
// the end of the path; once the listing is done, a name it did not bring is
// not found, without a call of its own.
func TestReadUnderPathWaitsForItsOwnPage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.PathPatience = time.Hour })
		a, b, missing := source.ParameterKey("/app/a"), source.ParameterKey("/app/b"), source.ParameterKey("/app/zz")
		h.f.setTree("/app", a.ID, b.ID)
		startPath := h.hold("path")
		restOfPath := h.hold("path after " + a.ID)
		repc := h.goPrefetch(context.Background(), nil, []Path{{Prefix: "/app"}})
		synctest.Wait()

		readA, readPlainA := h.goGet(context.Background(), a, false), h.goGet(context.Background(), plain(a), false)
		readB, readMissing := h.goGet(context.Background(), b, false), h.goGet(context.Background(), missing, false)
		synctest.Wait()
		for _, ch := range []<-chan outcome{readA, readPlainA, readB, readMissing} {
			pending(t, ch)
		}
		startPath() // the first page: a only
		synctest.Wait()
		for _, ch := range []<-chan outcome{readA, readPlainA} {
			if o := ready(t, ch); o.err != nil || o.r.Status != Hit || text(o.r) != itemText(a, 1) {
				t.Fatalf("read of a after its page: %v %s %q", o.err, o.r.Status, text(o.r))
			}
		}
		pending(t, readB)
		pending(t, readMissing)

		restOfPath()
		<-repc
		if o := <-readB; o.err != nil || o.r.Status != Hit {
			t.Fatalf("read of b: %v %s", o.err, o.r.Status)
		}
		o := <-readMissing
		if o.err == nil || errClass(t, o.err) != source.ClassNotFound {
			t.Fatalf("read of a name the path does not hold: %v %s, want not found", o.err, o.r.Status)
		}
		h.wantOnes() // no read called AWS
	})
}

// TestOutageRecovery: through a long outage, refreshes send one probe per
// pause (capped at outageCap) instead of every entry on its own clock;
// reads of values past their TTL call AWS no more (they get the stale
// value); and once AWS answers, the probe's success brings every entry
// back in the same round, in batches, within outageCap.
func TestOutageRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, func(o *Options) {
			o.SecretsTTL = time.Second
			o.StaleIfError = time.Hour
			o.Rand = seqRand()
		})
		keys := make([]source.Key, 30)
		for i := range keys {
			keys[i] = source.SecretKey(fmt.Sprintf("s%02d", i))
		}
		h.c.Prefetch(context.Background(), keys, nil)
		h.f.failBatch(source.ClassThrottled)
		h.f.mu.Lock()
		for _, k := range keys {
			h.f.errs[k] = &source.Error{Class: source.ClassThrottled, Code: "ThrottlingException", Message: "injected"}
		}
		h.f.mu.Unlock()
		step := func(i int) RefreshReport {
			h.clock.advance(100 * time.Millisecond)
			rep := h.c.RefreshDue(context.Background())
			for j := range 2 {
				// Stale during the outage, fresh once it is over.
				if r, err := h.get(keys[(2*i+j)%len(keys)]); err != nil || r.Status == Miss {
					t.Fatalf("read: %v %s, want the cached value", err, r.Status)
				}
			}
			return rep
		}
		h.clock.advance(time.Second)
		// Ten minutes of outage, an INVOKE and two reads every 100 ms.
		before := len(h.f.batchCalls())
		for i := range 6000 {
			step(i)
		}
		calls := h.f.batchCalls()[before:]
		if len(calls[0]) != len(keys) {
			t.Fatalf("the first round fetched %d keys, want all %d", len(calls[0]), len(keys))
		}
		calls = calls[1:] // the round that began the outage; then the probes
		for i, b := range calls {
			if len(b) > probeSize {
				t.Fatalf("call %d during the outage fetched %d keys, want a probe of at most %d", i, len(b), probeSize)
			}
		}
		if n := len(calls); n < 60 || n > 130 {
			t.Errorf("%d probes in ten minutes, want one every 5 to 10 s", n)
		}
		if n := len(h.f.oneCalls()); n != 0 {
			t.Errorf("reads during the outage made %d calls of their own", n)
		}
		if n := outageFailures(h.c, source.SecretKey("any")); n != len(calls)+1 {
			t.Errorf("the outage counted %d failures for %d probes", n, len(calls))
		}

		// AWS recovers.
		h.f.healBatch()
		h.f.mu.Lock()
		clear(h.f.errs)
		h.f.mu.Unlock()
		before = len(h.f.batchCalls())
		recovered := -1
		for i := range 200 {
			if rep := step(i); rep.Refreshed > 0 {
				if rep.Refreshed != len(keys) {
					t.Fatalf("the recovering round refreshed %d of %d", rep.Refreshed, len(keys))
				}
				recovered = i + 1
				break
			}
		}
		if recovered < 0 || time.Duration(recovered)*100*time.Millisecond > outageCap {
			t.Fatalf("recovered after %d steps of 100 ms, want within %v", recovered, outageCap)
		}
		if calls := h.f.batchCalls()[before:]; len(calls) != 2 || len(calls[0]) != probeSize || len(calls[1]) != len(keys)-probeSize {
			t.Errorf("recovery calls %d (%v), want the probe then the rest in one round", len(calls), calls)
		}
		for _, k := range keys {
			h.mustGet(k, Hit)
		}
		h.wantOnes()
		t.Logf("recovered %v after AWS did", time.Duration(recovered)*100*time.Millisecond)
	})
}

// TestOutageCountsOncePerRound: a refresh batch failing and a reader's own
// retry of its key right after are one failure of the outage, not two.
func TestOutageCountsOncePerRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.mustGet(secret, Miss)
		h.clock.advance(100 * time.Second) // due and expired
		release := h.hold("fetch")
		refc := h.goRefresh(context.Background())
		synctest.Wait()
		read := h.goGet(context.Background(), secret, false)
		synctest.Wait()
		h.f.failBatch(source.ClassThrottled)
		h.f.fail(secret, source.ClassThrottled)
		release()
		<-refc
		if o := <-read; o.err != nil || o.r.Status != Stale {
			t.Fatalf("read: %v %s, want the stale value", o.err, o.r.Status)
		}
		h.wantOnes(secret, secret) // the first read, and the reader's retry alone
		if n := outageFailures(h.c, source.SecretKey("any")); n != 1 {
			t.Fatalf("the outage counted %d failures, want 1", n)
		}
	})
}

// TestRefusedItemIsFetchedAlone: an item refused on its own (KMS, say) is
// kept out of its neighbours' batch once known, so that it no longer
// fails the whole batch call every round.
func TestRefusedItemIsFetchedAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		keys := []source.Key{source.ParameterKey("/p/a"), source.ParameterKey("/p/b"), source.ParameterKey("/p/denied")}
		denied := keys[2]
		h.c.Prefetch(context.Background(), keys, nil)
		h.f.fail(denied, source.ClassAccessDenied)
		h.clock.advance(50 * time.Second)
		if rep := h.c.RefreshDue(context.Background()); rep.Refreshed != 2 || rep.Failed != 1 {
			t.Fatalf("first round %+v", rep)
		}
		h.clock.advance(50 * time.Second) // the others due again, and the denied one's backoff over
		if rep := h.c.RefreshDue(context.Background()); rep.Refreshed != 2 || rep.Failed != 1 {
			t.Fatalf("second round %+v", rep)
		}
		calls := h.f.batchCalls()
		last := calls[len(calls)-2:]
		slices.SortFunc(last, func(a, b []source.Key) int { return len(a) - len(b) })
		if len(last[0]) != 1 || last[0][0] != denied || len(last[1]) != 2 || slices.Contains(last[1], denied) {
			t.Fatalf("second round's calls %v, want the denied item alone and the others together", last)
		}
		h.f.heal(denied)
		h.clock.advance(time.Hour)
		if rep := h.c.RefreshDue(context.Background()); rep.Refreshed != 3 {
			t.Fatalf("after the grant %+v", rep)
		}
		h.mustGet(denied, Hit)
	})
}

// outageFailures is the failed rounds of k's outage.
func outageFailures(c *Cache, k source.Key) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.outage(k).failures
}

// TestOutageIsPerRegionAndRole: another region (or role) failing does not
// hold back the home region's entries.
func TestOutageIsPerRegionAndRole(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		home := source.SecretKey("home")
		far := source.SecretKey("arn:aws:secretsmanager:eu-west-1:123456789012:secret:far-AbCdEf")
		role := source.Key{Service: source.SecretsManager, ID: "home", Role: "arn:aws:iam::210987654321:role/reader"}
		for _, k := range []source.Key{home, far, role} {
			h.mustGet(k, Miss)
		}
		h.clock.advance(100 * time.Second) // all expired
		h.f.fail(far, source.ClassThrottled)
		h.f.fail(role, source.ClassThrottled)
		h.mustGet(far, Stale)
		h.mustGet(role, Stale)
		if outageFailures(h.c, far) != 1 || outageFailures(h.c, role) != 1 || outageFailures(h.c, home) != 0 {
			t.Fatalf("outages: far %d, role %d, home %d", outageFailures(h.c, far), outageFailures(h.c, role), outageFailures(h.c, home))
		}
		h.mustGet(home, Miss) // not held back
	})
}

// TestProbeCutShortProbesAgain: a probe the caller's deadline cuts short
// neither ends nor lengthens the outage, and the next round probes again.
func TestProbeCutShortProbesAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.c.Prefetch(context.Background(), []source.Key{secret}, nil)
		h.clock.advance(50 * time.Second)
		h.f.failBatch(source.ClassThrottled)
		if rep := h.c.RefreshDue(context.Background()); rep.Failed != 1 {
			t.Fatalf("report %+v", rep)
		}
		h.clock.advance(time.Second) // past the outage's pause
		release := h.hold("fetch")
		ctx, cancel := context.WithCancelCause(context.Background())
		refc := h.goRefresh(ctx)
		synctest.Wait()
		cancel(ErrCutShort)
		if rep := <-refc; rep.Deferred != 1 {
			t.Fatalf("cut-short probe %+v", rep)
		}
		release()
		h.f.healBatch()
		if rep := h.c.RefreshDue(context.Background()); rep.Refreshed != 1 {
			t.Fatalf("the next round %+v, want a probe that succeeds", rep)
		}
		if n := outageFailures(h.c, secret); n != 0 {
			t.Fatalf("outage failures %d after recovery", n)
		}
	})
}
