// Package cache holds fetched secrets and parameters in memory: per-service
// TTLs, refresh ahead of expiry on INVOKE, one in-flight fetch per key,
// stale-if-error within a bound, and a size bound. It knows nothing of HTTP.
package cache

import (
	"container/list"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/internal/names"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// Fetcher gets items from AWS. *source.Source implements it.
type Fetcher interface {
	Fetch(ctx context.Context, keys []source.Key, deliver source.Deliver)
	FetchOne(ctx context.Context, key source.Key) (*source.Item, error)
	FetchPath(ctx context.Context, prefix string, recursive bool, deliver source.Deliver) (int, error)
}

// Options configure a Cache.
type Options struct {
	Fetcher       Fetcher
	SecretsTTL    time.Duration // 0: every read fetches
	ParametersTTL time.Duration
	// RefreshAhead is the fraction of the TTL after which RefreshDue fetches
	// an entry again (0 < f <= 1).
	RefreshAhead float64
	// StaleIfError is how long past its TTL a value may still be served
	// while fetching it again fails.
	StaleIfError time.Duration
	// Size bounds the number of entries. The configured ones (the keys
	// given to a prefetch, the parameters found under its paths, and keys
	// Listed accepts once they hold a value) are never evicted, even past
	// Size: a flood of made-up names or a large path can't push them out.
	// Of the others, entries without a value go first, then the least
	// recently read; eviction costs O(1).
	Size int
	// MaxLazyFetches bounds the fetches of unlisted keys that reads have
	// started and that are still in flight (default 256): readers may give
	// up and leave them running, so without a bound a flood of distinct
	// names against a slow AWS would pile up goroutines and entries. Past
	// it, such reads get ErrBusy.
	MaxLazyFetches int
	// Lazy lets reads fetch keys that Listed does not accept.
	Lazy   bool
	Listed func(source.Key) bool
	// SecretsTimeout and ParametersTimeout bound a fetch that a read starts
	// and a read's wait for a fetch, per service; 0 means 30 s, since a
	// read must not hang however the extension is configured.
	SecretsTimeout, ParametersTimeout time.Duration
	// PathPatience is how long a read of a name under a path being
	// prefetched waits for the path to bring it before fetching it alone
	// (default 1 s). The read is answered as soon as its own page arrives.
	PathPatience time.Duration

	Now  func() time.Time // default time.Now
	Rand func() float64   // in [0, 1), for jitter; default math/rand/v2
}

// Status says how a read was answered.
type Status uint8

const (
	Hit   Status = iota + 1 // a fresh cached value
	Miss                    // fetched for this read (or joined a fetch in flight)
	Stale                   // a value past its TTL, served because fetching failed
)

func (s Status) String() string {
	switch s {
	case Hit:
		return "hit"
	case Miss:
		return "miss"
	case Stale:
		return "stale"
	}
	return "unknown"
}

// Result is an answered read. Item must not be modified.
type Result struct {
	Item   *source.Item
	Status Status
	Age    time.Duration // since the value was fetched
}

var (
	// ErrNotConfigured is returned for keys that are not listed when lazy
	// fetching is off.
	ErrNotConfigured = errors.New("not configured for prefetch and lazy fetching is off")
	// ErrClosed is returned after Wipe.
	ErrClosed = errors.New("cache closed: the extension is shutting down")
	// ErrBusy is returned for a read of an unlisted key that would start a
	// fetch while MaxLazyFetches are in flight.
	ErrBusy = errors.New("too many items are being fetched for reads")
)

// Stats counts what the cache did since it was made.
type Stats struct {
	Hits, Misses, Stale, Errors, Refreshes, RefreshErrors uint64
}

// Cache is safe for concurrent use.
type Cache struct {
	opts Options

	mu sync.Mutex // protects m, paths, closed, lazy, dueAt, the lists and every entry's fields
	m  map[source.Key]*entry
	// empty and valued hold the entries eviction may take, most recently
	// read first: those without a value, and those with one. Configured
	// entries and those with a fetch in flight are in neither (see place).
	empty, valued list.List
	configured    int          // entries with configured set
	paths         []*pathFetch // path prefetches in flight
	closed        bool
	lazy          int // read-started fetches of unlisted keys in flight
	// outages holds, per service, region and role (see outageOf), the
	// state of a run of temporary failures (throttling, 5xx, timeouts): one
	// clock for all their entries, rather than each entry's own. A few at
	// most (the regions and roles in use), kept for the cache's life.
	outages map[outageKey]*outage
	// dueAt is no later than the earliest moment an entry can become due
	// for RefreshDue (its refresh point, or the end of its backoff), so an
	// INVOKE before it skips the scan of every entry. Each scan sets it;
	// setting an entry's refresh point or backoff lowers it.
	dueAt time.Time
	// dueSooner receives (without blocking) when dueAt is brought forward,
	// for a timer sleeping until NextDue (see DueSooner).
	dueSooner chan struct{}

	hits, misses, stale, errs, refreshes, refreshErrs atomic.Uint64
}

type entry struct {
	key       source.Key
	item      *source.Item // last good value; nil if none
	fetched   time.Time    // when item was fetched
	refreshAt time.Time    // when RefreshDue should fetch it again (jittered)
	err       *source.Error
	failures  int       // consecutive failed fetches
	retryAt   time.Time // no new fetch after a failure of its own before this (backoff)
	// alone marks an entry refused on its own (access denied, not found,
	// invalid): refreshed by itself, so it doesn't fail its neighbours'
	// batch call every round.
	alone  bool
	call   *call // the fetch in flight, if any
	listed bool  // protected(key): not counted against MaxLazyFetches
	// configured marks an entry the configuration names (a prefetched key
	// or a parameter found under a prefetched path): never evicted.
	configured bool
	elem       *list.Element // in Cache.empty or Cache.valued, or nil
	in         *list.List    // the list elem is in
}

// call is one in-flight fetch of an entry; done is closed when it finished,
// after which item and err are set and immutable.
type call struct {
	e       *entry
	done    chan struct{}
	refresh bool // started by RefreshDue: a whole-batch failure backs off too
	lazy    bool // counted in Cache.lazy
	// jitter is a refresh round's backoff jitter, drawn once for the round
	// so that the entries it fetched together are retried together, in one
	// batch, rather than spread over many INVOKEs in small ones.
	jitter float64
	// together marks a fetch of a prefetch: like a refresh round's, its
	// jitter is drawn once for all the entries it fetches.
	together bool
	// probe marks the fetch that tests whether its service's outage is
	// over; spent, a fetch its caller's budget ended (a prefetch's), whose
	// failure tells nothing of AWS's health.
	probe, spent bool
	item         *source.Item
	err          *source.Error
}

// outage is a run of temporary failures of one service. Until until, no
// entry of the service that has been fetched before is fetched again, by a
// read or a refresh; then one probe goes (a refresh's first batch, or a
// read's fetch), and its success ends the outage, making every due entry
// due at once, to be refreshed in batches. Failures count once per round,
// however many readers and batches saw them. Requires Cache.mu.
type outage struct {
	failures int // rounds that failed in a row; 0: no outage
	until    time.Time
	probing  bool          // a probe is in flight
	err      *source.Error // the last failure, for reads that find no error of their own
}

// outageKey names what an outage is of: a service in a region (that of an
// ARN, "" for the home region) as a role.
type outageKey struct {
	svc          source.Service
	region, role string
}

// outage returns the outage state of k's service, region and role.
// Requires mu.
func (c *Cache) outage(k source.Key) *outage {
	ok := outageKey{k.Service, source.ARNRegion(k.ID), k.Role}
	o := c.outages[ok]
	if o == nil {
		if c.outages == nil {
			c.outages = map[outageKey]*outage{}
		}
		o = &outage{}
		c.outages[ok] = o
	}
	return o
}

// gated reports whether the outage holds back a fetch at now.
func (o *outage) gated(now time.Time) bool {
	return o.failures > 0 && (now.Before(o.until) || o.probing)
}

// outageCap bounds the pause between two probes, so that after a long
// outage values are fresh again within seconds of AWS's recovery, not
// minutes.
const outageCap = 10 * time.Second

type pathFetch struct {
	prefix    string
	recursive bool
	done      chan struct{} // closed when the listing has ended
	// ok is set, before done is closed, when the listing ended without an
	// error: a name under the path it did not bring does not exist.
	ok bool
	// waiters holds, per parameter, a channel closed when the listing
	// brings it, for the reads waiting for it. Protected by Cache.mu.
	waiters map[source.Key]chan struct{}
}

// waiter returns the channel closed when the listing brings name's
// parameter. Requires Cache.mu.
func (p *pathFetch) waiter(name string) chan struct{} {
	k := source.ParameterKey(name)
	ch := p.waiters[k]
	if ch == nil {
		if p.waiters == nil {
			p.waiters = map[source.Key]chan struct{}{}
		}
		ch = make(chan struct{})
		p.waiters[k] = ch
	}
	return ch
}

// brought wakes the reads waiting for k. Requires Cache.mu.
func (p *pathFetch) brought(k source.Key) {
	if ch := p.waiters[k]; ch != nil {
		close(ch)
		delete(p.waiters, k)
	}
}

func (p *pathFetch) matches(name string) bool {
	return names.UnderPath(name, p.prefix, p.recursive)
}

// New returns an empty cache.
func New(o Options) *Cache {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Listed == nil {
		o.Listed = func(source.Key) bool { return false }
	}
	if o.Size < 1 {
		o.Size = 1
	}
	if o.MaxLazyFetches < 1 {
		o.MaxLazyFetches = 256
	}
	if o.RefreshAhead <= 0 || o.RefreshAhead > 1 {
		o.RefreshAhead = 1
	}
	if o.PathPatience <= 0 {
		o.PathPatience = time.Second
	}
	return &Cache{opts: o, m: make(map[source.Key]*entry), dueSooner: make(chan struct{}, 1)}
}

func (c *Cache) ttl(svc source.Service) time.Duration {
	if svc == source.SecretsManager {
		return c.opts.SecretsTTL
	}
	return c.opts.ParametersTTL
}

func (c *Cache) fetchTimeout(svc source.Service) time.Duration {
	to := c.opts.ParametersTimeout
	if svc == source.SecretsManager {
		to = c.opts.SecretsTimeout
	}
	if to <= 0 {
		to = 30 * time.Second // a read must not hang however the extension is configured
	}
	return to
}

// MaxWait is the longest one wait of a read for a fetch may last: the larger
// service fetch timeout.
func (c *Cache) MaxWait() time.Duration {
	return max(c.fetchTimeout(source.SecretsManager), c.fetchTimeout(source.ParameterStore))
}

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	return Stats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Stale: c.stale.Load(), Errors: c.errs.Load(),
		Refreshes: c.refreshes.Load(), RefreshErrors: c.refreshErrs.Load(),
	}
}

// Len returns the number of entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// fresh reports whether e's value may be served without fetching. Requires mu.
func (c *Cache) fresh(e *entry, now time.Time) bool {
	return e.item != nil && now.Before(e.fetched.Add(c.ttl(e.key.Service)))
}

// usableStale reports whether e's value may stand in when fetching it failed
// with err: only for failures a later attempt may cure (not when the item is
// gone or access to it was revoked). Requires mu.
func (c *Cache) usableStale(e *entry, err *source.Error, now time.Time) bool {
	if e.item == nil || (err != nil && !err.Class.Temporary()) || c.ttl(e.key.Service) == 0 {
		return false // (TTL 0: caching is off, every read goes to AWS)
	}
	return now.Before(e.fetched.Add(c.ttl(e.key.Service) + c.opts.StaleIfError))
}

func (c *Cache) result(e *entry, st Status, now time.Time) Result {
	return Result{Item: e.item, Status: st, Age: max(now.Sub(e.fetched), 0)}
}

// Get answers a read of key: from the cache when fresh, else by joining the
// fetch in flight or starting one (one upstream call however many readers).
// refreshNow skips a fresh value. ctx bounds the wait; the fetch itself goes
// on for the other readers.
func (c *Cache) Get(ctx context.Context, key source.Key, refreshNow bool) (Result, error) {
	retried, aliasJoined := false, false
	var (
		alone  bool       // the path was slow to bring key: fetch it alone
		listed *pathFetch // the path whose listing ended while this read waited
	)
	for {
		now := c.opts.Now()
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			c.errs.Add(1)
			return Result{}, ErrClosed
		}
		if r, ok := c.plaintextAlias(key, now); ok && !refreshNow {
			c.mu.Unlock()
			c.hits.Add(1)
			return r, nil
		}
		if dc := c.aliasCall(key, now); dc != nil && !aliasJoined && !refreshNow {
			// The decrypted twin is being fetched (a prefetch, say): its
			// body serves this read too unless it is a SecureString.
			aliasJoined = true
			c.mu.Unlock()
			if err := c.wait(ctx, dc.done, key.Service); err != nil {
				c.errs.Add(1)
				return Result{}, c.timeoutErr(key)
			}
			if dc.err == nil && !dc.item.Secure {
				c.misses.Add(1)
				return Result{Item: dc.item, Status: Miss}, nil
			}
			continue
		}
		e := c.m[key]
		if e == nil {
			if p := c.pendingPath(key); p != nil && !alone {
				// Wait for the page that brings key, not the whole path;
				// if it is slow to come, fetch key alone.
				brought := p.waiter(key.ID)
				c.mu.Unlock()
				switch c.waitPath(ctx, p, brought, key.Service) {
				case pathEnded:
					listed = p
				case pathSlow:
					alone = true
				case pathGaveUp:
					c.errs.Add(1)
					return Result{}, c.timeoutErr(key)
				}
				continue // the path prefetch may have brought it
			}
			if listed != nil && listed.ok && c.m[source.ParameterKey(key.ID)] == nil {
				// The path's whole listing came without it: it does not exist.
				c.mu.Unlock()
				c.errs.Add(1)
				return Result{}, &source.Error{Class: source.ClassNotFound, Code: "ParameterNotFound",
					Message: "parameter not found (not under " + listed.prefix + " when it was listed)", Key: key}
			}
			if !c.opts.Lazy && !c.opts.Listed(key) {
				c.mu.Unlock()
				c.errs.Add(1)
				return Result{}, ErrNotConfigured
			}
			if !c.protected(key) && c.lazy >= c.opts.MaxLazyFetches {
				// Refused before inserting, so a flood evicts nothing.
				c.mu.Unlock()
				c.errs.Add(1)
				return Result{}, ErrBusy
			}
			e = c.insert(key, now)
		}
		c.touch(e)
		cl := e.call
		switch {
		case c.fresh(e, now) && !refreshNow:
			// Fresh, even if a refresh ahead of expiry is in flight.
			r := c.result(e, Hit, now)
			c.mu.Unlock()
			c.hits.Add(1)
			return r, nil
		case cl != nil:
			// join the fetch in flight
		case now.Before(e.retryAt) && !refreshNow && !retried:
			// Backing off after a failure: don't call AWS again yet. (A
			// read whose batch failed as a whole still fetches its key once.)
			r, err := c.failed(e, e.err, now)
			c.mu.Unlock()
			return r, err
		case (e.item != nil || e.err != nil) && c.outage(key).gated(now) && !refreshNow && !retried:
			// Its service is failing: wait for the next probe (a key
			// never fetched may still go, and be one).
			err := e.err
			if err == nil {
				err = c.outage(key).err
			}
			r, rerr := c.failed(e, err, now)
			c.mu.Unlock()
			return r, rerr
		case !e.listed && c.lazy >= c.opts.MaxLazyFetches:
			if e.item == nil && e.err == nil {
				c.remove(e) // inserted just now
			}
			c.mu.Unlock()
			c.errs.Add(1)
			return Result{}, ErrBusy
		default:
			cl = c.start(e, false)
			if !e.listed {
				cl.lazy = true
				c.lazy++
			}
			if o := c.outage(key); o.failures > 0 && !o.probing {
				cl.probe, o.probing = true, true
			}
			go c.fetchOne(cl)
		}
		c.mu.Unlock()

		if err := c.wait(ctx, cl.done, key.Service); err != nil {
			c.mu.Lock()
			r, err := c.failed(e, c.timeoutErr(key), c.opts.Now())
			c.mu.Unlock()
			return r, err
		}
		if cl.err == nil {
			c.misses.Add(1)
			return Result{Item: cl.item, Status: Miss}, nil
		}
		if cl.err.Batch && cl.err.Class.Temporary() && !retried {
			// The batch this key rode in failed as a whole: try it alone.
			retried = true
			continue
		}
		c.mu.Lock()
		r, err := c.failed(e, cl.err, c.opts.Now())
		c.mu.Unlock()
		return r, err
	}
}

// wait waits for done to close, bounded by ctx and by the service's fetch
// timeout.
func (c *Cache) wait(ctx context.Context, done <-chan struct{}, svc source.Service) error {
	t := time.NewTimer(c.fetchTimeout(svc))
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return context.DeadlineExceeded
	}
}

// The outcomes of a read's wait for a path prefetch.
const (
	pathBrought = iota // the listing brought the read's parameter
	pathEnded          // the listing ended
	pathSlow           // PathPatience passed first
	pathGaveUp         // the reader gave up, or the fetch timeout passed
)

// waitPath waits for a path prefetch to bring a parameter (brought closed),
// or for its end, bounded by PathPatience, ctx and the fetch timeout.
func (c *Cache) waitPath(ctx context.Context, p *pathFetch, brought <-chan struct{}, svc source.Service) int {
	bound := time.NewTimer(c.fetchTimeout(svc))
	defer bound.Stop()
	patience := time.NewTimer(c.opts.PathPatience)
	defer patience.Stop()
	select {
	case <-brought:
		return pathBrought
	case <-p.done:
		return pathEnded
	case <-patience.C:
		return pathSlow
	case <-ctx.Done():
		return pathGaveUp
	case <-bound.C:
		return pathGaveUp
	}
}

// failed answers a read whose fetch failed: the stale value within the
// bound, else the error. Requires mu.
func (c *Cache) failed(e *entry, err *source.Error, now time.Time) (Result, error) {
	if c.usableStale(e, err, now) {
		c.stale.Add(1)
		return c.result(e, Stale, now), nil
	}
	c.errs.Add(1)
	if err == nil {
		err = &source.Error{Class: source.ClassOther, Code: "Unavailable", Message: "no value available", Key: e.key}
	}
	return Result{}, err
}

func (c *Cache) timeoutErr(key source.Key) *source.Error {
	return &source.Error{Class: source.ClassTimeout, Code: "UpstreamTimeout", Message: "the value was not fetched in time", Key: key}
}

// plaintextAlias serves a read without decryption from the decrypted entry
// when the parameter is not a SecureString: the two bodies are identical, so
// a prefetched parameter needs no second fetch. Requires mu.
func (c *Cache) plaintextAlias(key source.Key, now time.Time) (Result, bool) {
	if key.Service != source.ParameterStore || key.Decrypt {
		return Result{}, false
	}
	dk := key
	dk.Decrypt = true
	e := c.m[dk]
	if e == nil || e.item == nil || e.item.Secure || !c.fresh(e, now) {
		return Result{}, false
	}
	c.touch(e)
	return c.result(e, Hit, now), true
}

// aliasCall returns the fetch in flight of the decrypted twin of key, a
// parameter read without decryption, when key's own entry can't answer and
// the twin isn't known to be a SecureString. Requires mu.
func (c *Cache) aliasCall(key source.Key, now time.Time) *call {
	if key.Service != source.ParameterStore || key.Decrypt {
		return nil
	}
	if e := c.m[key]; e != nil && (e.call != nil || c.fresh(e, now)) {
		return nil
	}
	dk := key
	dk.Decrypt = true
	d := c.m[dk]
	if d == nil || d.call == nil || d.item != nil && d.item.Secure {
		return nil
	}
	return d.call
}

// pendingPath returns the path prefetch in flight that may bring key, if any.
// Requires mu.
func (c *Cache) pendingPath(key source.Key) *pathFetch {
	if key.Service != source.ParameterStore || !key.Plain() {
		return nil
	}
	for _, p := range c.paths {
		if p.matches(key.ID) {
			return p
		}
	}
	return nil
}

// insert adds an empty entry for key, evicting while the cache is full: an
// entry without a value first, then the least recently read one with a
// value; never a configured entry or one with a fetch in flight, so those
// may push the cache past Size. Requires mu.
func (c *Cache) insert(key source.Key, now time.Time) *entry {
	for len(c.m) >= c.opts.Size {
		victim := c.empty.Back()
		if victim == nil {
			victim = c.valued.Back()
		}
		if victim == nil {
			break
		}
		c.remove(victim.Value.(*entry))
	}
	e := &entry{key: key, listed: c.protected(key)}
	c.m[key] = e
	c.place(e)
	return e
}

// remove drops e from the cache. Requires mu.
func (c *Cache) remove(e *entry) {
	if e.in != nil {
		e.in.Remove(e.elem)
		e.elem, e.in = nil, nil
	}
	if e.configured {
		c.configured--
	}
	delete(c.m, e.key)
}

// configure marks e as one the configuration names: never evicted.
// Requires mu.
func (c *Cache) configure(e *entry) {
	if !e.configured {
		e.configured = true
		c.configured++
		c.place(e)
	}
}

// place puts e where its state says, at the front (most recently used) of
// its list: in none while configured (or listed with a value) or while a
// fetch is in flight, else in empty or valued. Call it after any change to
// those. Requires mu.
func (c *Cache) place(e *entry) {
	var l *list.List
	switch {
	case c.m[e.key] != e:
		// Dropped (Invalidate) while a fetch was in flight: in no list, or
		// evicting it would drop the key's new entry.
	case e.call != nil || e.configured || e.listed && e.item != nil:
	case e.item == nil:
		l = &c.empty
	default:
		l = &c.valued
	}
	if e.in == l {
		if l != nil {
			l.MoveToFront(e.elem)
		}
		return
	}
	if e.in != nil {
		e.in.Remove(e.elem)
		e.elem, e.in = nil, nil
	}
	if l != nil {
		e.elem, e.in = l.PushFront(e), l
	}
}

// touch records a read of e for eviction. Requires mu.
func (c *Cache) touch(e *entry) {
	if e.in != nil {
		e.in.MoveToFront(e.elem)
	}
}

// protected reports whether key is a configured item itself (not another
// version of one): not counted against MaxLazyFetches, and never evicted
// once it holds a value. Requires nothing.
func (c *Cache) protected(key source.Key) bool {
	return key.Plain() && c.opts.Listed(key)
}

// start marks a fetch of e in flight. Requires mu.
func (c *Cache) start(e *entry, refresh bool) *call {
	cl := &call{e: e, done: make(chan struct{}), refresh: refresh}
	e.call = cl
	c.place(e)
	return cl
}

// fetchOne runs a read-started fetch with its own timeout, so the first
// reader giving up does not fail the others.
func (c *Cache) fetchOne(cl *call) {
	ctx, cancel := context.WithTimeout(context.Background(), c.fetchTimeout(cl.e.key.Service))
	defer cancel()
	item, err := c.opts.Fetcher.FetchOne(ctx, cl.e.key)
	c.finish(cl, item, err) // which also frees its place among the lazy fetches
}

// finish records the outcome of cl on its entry, wakes its waiters and
// returns the error as a *source.Error.
func (c *Cache) finish(cl *call, item *source.Item, err error) *source.Error {
	e := cl.e
	var serr *source.Error
	if err != nil && !errors.As(err, &serr) {
		serr = &source.Error{Class: source.ClassOther, Code: "UpstreamError", Message: "fetch failed", Key: e.key, Err: err}
	}
	serr = lean(serr)
	now := c.opts.Now()
	c.mu.Lock()
	if c.closed && serr == nil {
		// Wipe ran while this was in flight: don't keep a value it can't reach.
		if item != nil {
			item.Wipe()
		}
		item, serr = nil, &source.Error{Class: source.ClassOther, Code: "Closed", Message: ErrClosed.Error(), Key: e.key, Err: ErrClosed}
	}
	o := c.outage(e.key)
	if cl.probe {
		o.probing = false
	}
	switch {
	case serr == nil:
		c.store(e, item, now, c.pointJitter(cl))
		e.alone = false
		if o.failures > 0 {
			// AWS answers again: every entry the outage held back is due.
			*o = outage{}
			c.lowerDue(now)
		}
	case serr.Class.Temporary():
		// Not the item's fault: its service is failing (throttled, 5xx,
		// unreachable). The outage's one clock decides when to try again,
		// and a round of failures counts once, however many readers and
		// batches saw it. A fetch whose caller's budget ran out (a
		// prefetch) tells nothing and starts no outage.
		e.err = serr
		e.failures++
		if cl.spent {
			break
		}
		if !now.Before(o.until) {
			o.failures++
			o.until = now.Add(outageBackoff(o.failures, c.jitterOf(cl)))
			c.lowerDue(o.until)
		}
		o.err = serr
		// The entry waits for the round's end too, in case the service
		// answers the others (the failure was this item's alone).
		e.retryAt = o.until
	default:
		// Deleted upstream, access to it refused (IAM, KMS) or invalid:
		// stop serving it at once, however fresh the value was (not wiped:
		// a response may still be writing it out), back off on its own
		// clock, and keep it out of its neighbours' batches.
		e.err = serr
		e.failures++
		e.item = nil
		e.alone = !serr.Batch
		// (A whole batch refused is not the key's own doing: a read may
		// try it alone at once.)
		if cl.refresh || !serr.Batch {
			e.retryAt = now.Add(c.backoffWith(e.failures, c.jitterOf(cl)))
			c.lowerDue(e.retryAt)
		}
	}
	cl.item, cl.err = item, serr
	if e.call == cl {
		e.call = nil
	}
	if !c.closed {
		c.place(e)
	}
	if cl.lazy {
		// Before done closes: a read that saw this fetch end must not be
		// refused (ErrBusy) for it still counting.
		c.lazy--
	}
	c.mu.Unlock()
	close(cl.done)
	return serr
}

// lean returns a copy of err with only what an answer needs (class, code,
// message, key): not the error it wraps, which for an AWS error holds the
// SDK's response and signed request, several kilobytes a cached failure
// would otherwise keep. ErrClosed, ours, stays for errors.Is.
func lean(err *source.Error) *source.Error {
	if err == nil || err.Err == nil || errors.Is(err.Err, ErrClosed) {
		return err
	}
	return &source.Error{Class: err.Class, Code: err.Code, Message: err.Message, Key: err.Key, Batch: err.Batch}
}

// store records a fetched value; r in [0, 1) places its refresh point in
// the 10% before the refresh-ahead point. Requires mu.
func (c *Cache) store(e *entry, item *source.Item, now time.Time, r float64) {
	e.item, e.fetched = item, now
	e.err, e.failures, e.retryAt = nil, 0, time.Time{}
	ahead := time.Duration(float64(c.ttl(e.key.Service)) * c.opts.RefreshAhead)
	// Up to 10% earlier, so a fleet started together spreads its refreshes.
	e.refreshAt = now.Add(ahead - time.Duration(float64(ahead)*0.1*r))
	c.lowerDue(e.refreshAt)
	c.place(e)
}

// pointJitter is the jitter of the refresh point of the value cl stores:
// its round's for a prefetch or refresh round, so that the entries one
// round stored together come due together, and one timer wake-up (which
// takes what falls due within 10% of the TTL) fetches them in the same
// batches. Drawn for each entry, their points would spread over 8% of the
// TTL, and a wake-up brought forward by another entry (of the other
// service, say) could take some of a batch and leave the rest.
func (c *Cache) pointJitter(cl *call) float64 {
	if cl.refresh || cl.together {
		return cl.jitter
	}
	return c.opts.Rand()
}

// jitterOf is cl's backoff jitter: its refresh round's, or a new one.
func (c *Cache) jitterOf(cl *call) float64 {
	if cl.refresh {
		return cl.jitter
	}
	return c.opts.Rand()
}

// outageBackoff is the pause after an outage's n-th failed round:
// exponential from one second, capped at outageCap, with full jitter on
// its upper half (r in [0, 1)).
func outageBackoff(n int, r float64) time.Duration {
	d := outageCap
	if n < 5 {
		d = min(time.Second<<(n-1), d)
	}
	return d/2 + time.Duration(float64(d/2)*r)
}

// backoff is the pause after the n-th consecutive failure: exponential from
// one second, capped at five minutes, with full jitter on its upper half.
func (c *Cache) backoff(n int) time.Duration {
	return c.backoffWith(n, c.opts.Rand())
}

// backoffWith is backoff with the jitter r in [0, 1).
func (c *Cache) backoffWith(n int, r float64) time.Duration {
	d := 5 * time.Minute
	if n < 9 {
		d = min(time.Second<<(n-1), d)
	}
	return d/2 + time.Duration(float64(d/2)*r)
}
