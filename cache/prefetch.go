package cache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// Path is a parameter path to prefetch: every parameter directly under
// Prefix, or every one below it when Recursive.
type Path struct {
	Prefix    string
	Recursive bool
}

// PrefetchReport tells what a prefetch did. Failures name items, never values.
type PrefetchReport struct {
	Fetched  int                          // items stored, path matches included
	Failed   map[source.Key]*source.Error // listed keys that could not be fetched
	Paths    map[Path]int                 // parameters found under each path
	PathErrs map[Path]error               // paths whose listing failed
	// Configured is how many entries the configuration names once the
	// prefetch is done: its keys and the parameters found under its paths,
	// each once. They are never evicted, so past Options.Size the cache
	// holds more than Size entries.
	Configured int
	Duration   time.Duration
}

// Prefetch fetches keys and paths into the cache, batched and in parallel,
// and returns when all are done or ctx ends (the Init budget). Reads of a key
// or of a name under a path wait for it instead of fetching it themselves.
func (c *Cache) Prefetch(ctx context.Context, keys []source.Key, paths []Path) PrefetchReport {
	return c.StartPrefetch(ctx, keys, paths).Wait()
}

// Prefetching is a prefetch under way.
type Prefetching struct {
	c      *Cache
	ctx    context.Context
	start  time.Time
	wg     sync.WaitGroup
	mu     sync.Mutex // protects rep until wg is done
	rep    PrefetchReport
	joined map[source.Key]*call // fetches a read started before the prefetch
}

// StartPrefetch starts fetching keys and paths and returns at once. When it
// returns, every key and path is known to be in flight: a read from then on
// joins the prefetch instead of fetching on its own (or, with lazy fetching
// off, being refused). Wait for the outcome with Wait.
func (c *Cache) StartPrefetch(ctx context.Context, keys []source.Key, paths []Path) *Prefetching {
	start := c.opts.Now()
	p := &Prefetching{c: c, ctx: ctx, start: start, joined: map[source.Key]*call{}, rep: PrefetchReport{
		Failed:   map[source.Key]*source.Error{},
		Paths:    map[Path]int{},
		PathErrs: map[Path]error{},
	}}
	rep, mu, wg, joined := &p.rep, &p.mu, &p.wg, p.joined
	calls := make(map[source.Key]*call, len(keys))
	todo := make([]source.Key, 0, len(keys))
	pfs := make([]*pathFetch, len(paths))
	jitter := c.opts.Rand() // one for the prefetch: see Cache.pointJitter

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return p
	}
	for _, k := range keys {
		e := c.m[k]
		if e == nil {
			e = c.insert(k, start)
		}
		c.configure(e)
		if calls[k] != nil || joined[k] != nil {
			continue
		}
		if e.call != nil {
			joined[k] = e.call
			continue
		}
		cl := c.start(e, false)
		cl.jitter, cl.together = jitter, true
		calls[k] = cl
		todo = append(todo, k)
	}
	for i, p := range paths {
		pfs[i] = &pathFetch{prefix: p.Prefix, recursive: p.Recursive, done: make(chan struct{})}
		c.paths = append(c.paths, pfs[i])
	}
	c.mu.Unlock()

	wg.Go(func() {
		c.opts.Fetcher.Fetch(ctx, todo, func(k source.Key, item *source.Item, err error) {
			cl := calls[k]
			if cl == nil {
				return // not asked for: a stray delivery
			}
			cl.spent = ctx.Err() != nil
			serr := c.finish(cl, item, notOwnFault(ctx, err))
			mu.Lock()
			defer mu.Unlock()
			if serr != nil {
				rep.Failed[k] = serr
			} else {
				rep.Fetched++
			}
		})
	})
	for i, p := range paths {
		wg.Go(func() {
			n, err := c.opts.Fetcher.FetchPath(ctx, p.Prefix, p.Recursive, func(k source.Key, item *source.Item, _ error) {
				c.storePathItem(pfs[i], k, item)
			})
			c.mu.Lock()
			c.removePath(pfs[i])
			pfs[i].ok = err == nil
			c.mu.Unlock()
			close(pfs[i].done)
			mu.Lock()
			defer mu.Unlock()
			rep.Paths[p] = n
			rep.Fetched += n
			if err != nil {
				rep.PathErrs[p] = err
			}
		})
	}
	return p
}

// Wait returns the prefetch's report once every fetch is done or its
// context has ended.
func (p *Prefetching) Wait() PrefetchReport {
	p.wg.Wait()
	rep := p.rep
	for k, cl := range p.joined {
		// A fetch that finished counts even when the budget ended too.
		select {
		case <-cl.done:
		default:
			select {
			case <-cl.done:
			case <-p.ctx.Done():
				rep.Failed[k] = p.c.timeoutErr(k)
				continue
			}
		}
		if cl.err != nil {
			rep.Failed[k] = cl.err
		} else {
			rep.Fetched++
		}
	}
	p.c.mu.Lock()
	rep.Configured = p.c.configured
	p.c.mu.Unlock()
	rep.Duration = p.c.opts.Now().Sub(p.start)
	return rep
}

// storePathItem stores a parameter found under a prefetched path and wakes
// the reads waiting for it (p nil: a path listed again, which no read waits for).
func (c *Cache) storePathItem(p *pathFetch, k source.Key, item *source.Item) {
	now := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		if item != nil {
			item.Wipe()
		}
		return
	}
	e := c.m[k]
	if e == nil {
		e = c.insert(k, now)
	}
	c.configure(e) // a member of a configured path
	c.store(e, item, now, c.opts.Rand())
	if p != nil {
		p.brought(k)
	}
}

// removePath drops p from the paths in flight. Requires mu.
func (c *Cache) removePath(p *pathFetch) {
	for i, q := range c.paths {
		if q == p {
			c.paths = append(c.paths[:i], c.paths[i+1:]...)
			return
		}
	}
}

// RefreshReport tells what a RefreshDue did.
type RefreshReport struct {
	Due, Refreshed, Failed int
	// Deferred counts the due entries the caller's deadline cut short (see
	// ErrCutShort): not failures, and still due.
	Deferred int
	// Errors holds each failed key's error (names and codes, never values).
	Errors map[source.Key]*source.Error
}

// ErrCutShort is the cause (context.WithDeadlineCause) a caller of
// RefreshDue gives its context when the deadline is its own (an INVOKE's end)
// rather than a bound on how long AWS may take: a fetch that deadline cuts
// short is no failure of the item's.
var ErrCutShort = errors.New("refresh cut short by the caller's deadline")

// RefreshDue fetches, in batches, every entry past its refresh-ahead point and
// every configured entry whose last fetch failed and whose backoff has
// passed. An entry refused on its own is fetched by itself. While a
// service's outage lasts (see outage) its entries wait; once its pause is
// over, one batch goes first as a probe, and only if it succeeds do the
// rest follow, in the same call. It returns when they are done or ctx ends;
// on ctx's end the fetches are canceled and the entries keep their values.
// When ctx ends with the cause ErrCutShort, the fetches it cut short count
// as neither refreshed nor failed: no failure is recorded, no backoff
// begins, and the entries stay due for the next RefreshDue or read. A ctx
// already done fetches nothing.
func (c *Cache) RefreshDue(ctx context.Context) RefreshReport {
	return c.refreshDue(ctx, 0)
}

// RefreshWithin is RefreshDue for a timer: it also fetches, in the same
// batches, every entry whose refresh point falls within the jitter window,
// window times its TTL from now (0.1 in agent mode), so that one wake-up
// refreshes together the entries a prefetch stored together.
func (c *Cache) RefreshWithin(ctx context.Context, window float64) RefreshReport {
	return c.refreshDue(ctx, window)
}

// NextDue is when RefreshWithin may next find work: no later than the
// earliest refresh point or backoff end of any entry (a time far ahead when
// nothing can become due). A timer sleeps until then, and sleeps again
// from the new NextDue when DueSooner fires.
func (c *Cache) NextDue() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dueAt
}

// DueSooner receives a value when NextDue has been brought forward (a value
// stored or a failure recorded outside a refresh, say). One receiver only.
func (c *Cache) DueSooner() <-chan struct{} { return c.dueSooner }

// lowerDue brings dueAt forward to t if t is earlier. Requires mu.
func (c *Cache) lowerDue(t time.Time) {
	if t.Before(c.dueAt) {
		c.dueAt = t
		select {
		case c.dueSooner <- struct{}{}:
		default:
		}
	}
}

func (c *Cache) refreshDue(ctx context.Context, window float64) RefreshReport {
	now := c.opts.Now()
	horizon := func(svc source.Service) time.Time {
		return now.Add(time.Duration(float64(c.ttl(svc)) * window))
	}
	jitter := c.opts.Rand() // one for the round: see call.jitter
	if ctx.Err() != nil {
		return RefreshReport{} // no time left: not even a round trip
	}
	c.mu.Lock()
	if c.closed || horizon(source.SecretsManager).Before(c.dueAt) && horizon(source.ParameterStore).Before(c.dueAt) {
		// Nothing can be due yet: no need to look at every entry.
		c.mu.Unlock()
		return RefreshReport{}
	}
	next := never
	due := map[*outage][]*entry{}
	for k, e := range c.m {
		if e.call != nil || c.ttl(k.Service) == 0 {
			continue // (a fetch in flight lowers dueAt when it ends)
		}
		if now.Before(e.retryAt) {
			next = earliest(next, e.retryAt)
			continue
		}
		refresh := e.item != nil && !horizon(k.Service).Before(e.refreshAt)
		retry := e.item == nil && e.err != nil && e.configured
		switch {
		case !refresh && !retry:
			if e.item != nil {
				next = earliest(next, e.refreshAt)
			}
		case c.outage(k).gated(now):
			if o := c.outage(k); !o.probing {
				next = earliest(next, o.until)
			}
		default:
			o := c.outage(k)
			due[o] = append(due[o], e)
		}
	}
	c.dueAt = next
	// The first round after an outage's pause sends a probe: one batch.
	var first, rest []*entry
	for o, es := range due {
		if o.failures > 0 {
			n := min(len(es), probeSize)
			first = append(first, es[:n]...)
			rest = append(rest, es[n:]...)
			o.probing = true
		} else {
			first = append(first, es...)
		}
	}
	calls := map[source.Key]*call{}
	start := func(es []*entry) {
		for _, e := range es {
			cl := c.start(e, true)
			cl.jitter, cl.probe = jitter, c.outage(e.key).failures > 0
			calls[e.key] = cl
		}
	}
	start(first)
	c.mu.Unlock()

	rep := RefreshReport{Due: len(first) + len(rest)}
	if rep.Due == 0 {
		return rep
	}
	var mu sync.Mutex // protects rep and calls
	deliver := func(k source.Key, item *source.Item, err error) {
		mu.Lock()
		cl := calls[k]
		mu.Unlock()
		if cl == nil {
			return // not asked for: a stray delivery
		}
		if cutShort(ctx, err) {
			c.postpone(cl)
			mu.Lock()
			defer mu.Unlock()
			rep.Deferred++
			return
		}
		serr := c.finish(cl, item, notOwnFault(ctx, err))
		mu.Lock()
		defer mu.Unlock()
		if serr != nil {
			rep.Failed++
			if rep.Errors == nil {
				rep.Errors = map[source.Key]*source.Error{}
			}
			rep.Errors[k] = serr
			c.refreshErrs.Add(1)
		} else {
			rep.Refreshed++
			c.refreshes.Add(1)
		}
	}
	c.fetchRound(ctx, first, deliver)
	if len(rest) == 0 {
		return rep
	}
	// The probe is back: fetch the rest of each service whose outage it
	// ended; the others wait for the next probe.
	c.mu.Lock()
	var go2 []*entry
	for _, e := range rest {
		if c.closed || c.outage(e.key).failures > 0 || e.call != nil || c.m[e.key] != e {
			continue
		}
		go2 = append(go2, e)
	}
	mu.Lock()
	start(go2)
	mu.Unlock()
	c.mu.Unlock()
	rep.Due -= len(rest) - len(go2)
	c.fetchRound(ctx, go2, deliver)
	return rep
}

// probeSize is how many keys an outage's probe carries: what one batch call
// of either service can fetch.
const probeSize = 10

// fetchRound fetches es: in batches, except the entries refused on their
// own, each of which is fetched by itself. Requires no lock.
func (c *Cache) fetchRound(ctx context.Context, es []*entry, deliver source.Deliver) {
	c.mu.Lock()
	var batch, alone []source.Key
	for _, e := range es {
		if e.alone {
			alone = append(alone, e.key)
		} else {
			batch = append(batch, e.key)
		}
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, k := range alone {
		wg.Go(func() { c.opts.Fetcher.Fetch(ctx, []source.Key{k}, deliver) })
	}
	if len(batch) > 0 {
		c.opts.Fetcher.Fetch(ctx, batch, deliver)
	}
	wg.Wait()
}

// Wipe overwrites and drops every cached value; later reads get ErrClosed.
// Call it once the HTTP server has stopped serving, so no response still
// holds a value being written out.
func (c *Cache) Wipe() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for k, e := range c.m {
		if e.item != nil {
			e.item.Wipe()
			e.item = nil // a reader still holding e must not serve the zeros
		}
		e.elem, e.in = nil, nil
		delete(c.m, k)
	}
	c.empty.Init()
	c.valued.Init()
	c.configured = 0
}

// never is later than any refresh point: dueAt when nothing can become due.
var never = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// earliest returns the earlier of two times.
func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// notOwnFault marks an error as the batch's rather than the key's when the
// caller's budget ran out: a reader may then fetch the key alone at once,
// without waiting out a failure backoff.
func notOwnFault(ctx context.Context, err error) error {
	var serr *source.Error
	if err == nil || ctx.Err() == nil || !errors.As(err, &serr) || serr.Batch {
		return err
	}
	c := *serr
	c.Batch = true
	return &c
}

// cutShort reports whether err is a fetch ended by ctx's deadline when that
// deadline was the caller's own (ErrCutShort), not AWS failing to answer.
func cutShort(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() == nil || !errors.Is(context.Cause(ctx), ErrCutShort) {
		return false
	}
	var serr *source.Error
	return errors.As(err, &serr) && serr.Class == source.ClassTimeout
}

// postpone ends a refresh fetch the caller's deadline cut short without
// recording anything on its entry: no failure, no backoff, still due. Readers
// that joined it see a whole-batch timeout and may fetch the key alone.
func (c *Cache) postpone(cl *call) {
	serr := &source.Error{Class: source.ClassTimeout, Code: "UpstreamTimeout", Message: "the refresh was cut short", Key: cl.e.key, Batch: true}
	c.mu.Lock()
	if cl.e.call == cl {
		cl.e.call = nil
	}
	if cl.probe {
		c.outage(cl.e.key).probing = false // the next round probes again
	}
	if !c.closed {
		c.place(cl.e)
	}
	c.lowerDue(c.opts.Now())
	cl.err = serr
	c.mu.Unlock()
	close(cl.done)
}
