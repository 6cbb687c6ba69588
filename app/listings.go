package app

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/config"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// selectionLister lists the secrets of a selection. *source.Source is one.
type selectionLister interface {
	ListSelection(ctx context.Context, sel source.Selection) ([]string, error)
}

// listings keeps the prefetched listings current: parameter paths
// (/app/*, /app/**) and secret selections (tag:KEY=VALUE, prefix:NAME).
// Each is listed again about when its items fall due, so that parameters
// added under a path and secrets newly tagged join at the next refresh, and
// those deleted or untagged leave (their entries are dropped). The items'
// values are refreshed by the cache like any listed item. It is safe for
// concurrent use.
type listings struct {
	fetcher cache.Fetcher
	static  func(source.Key) bool // listed by name: never dropped
	sels    selectionLister       // nil when the fetcher can't list secrets
	cache   *cache.Cache
	now     func() time.Time
	// every is how long after a listing it is due again: the refresh-ahead
	// point of its items, less up to 10% so a fleet spreads its calls.
	secretsEvery, paramsEvery time.Duration
	paramsTTL                 time.Duration // how long a path's listing is current

	mu    sync.Mutex // protects the fields below
	lists []*listing
}

// listing is one path or selection and what it found last.
type listing struct {
	path    *cache.Path
	sel     *source.Selection
	members map[source.Key]bool
	next    time.Time // when it is due again
	running bool
	// retryAt is, after failures in a row, when the agent's timer lists it
	// again (a jittered backoff, so that an outage does not spin the timer);
	// an INVOKE still tries at the next event.
	failures int
	retryAt  time.Time
	// listedAt is when members were last found; stale is set when a write
	// under the path went through the AWS API endpoint since (awsapipaths.go).
	listedAt time.Time
	stale    bool
}

func newListings(cfg config.Config, f cache.Fetcher, static func(source.Key) bool, now func() time.Time) *listings {
	l := &listings{fetcher: f, static: static, now: now}
	l.sels, _ = f.(selectionLister)
	ahead := func(ttl time.Duration) time.Duration { return time.Duration(float64(ttl) * cfg.RefreshAhead) }
	l.secretsEvery, l.paramsEvery = ahead(cfg.SecretsTTL), ahead(cfg.ParametersTTL)
	l.paramsTTL = cfg.ParametersTTL
	if !cfg.CacheEnabled {
		l.secretsEvery, l.paramsEvery, l.paramsTTL = 0, 0, 0
	}
	for _, p := range cfg.ParameterPaths {
		l.lists = append(l.lists, &listing{path: &cache.Path{Prefix: p.Prefix, Recursive: p.Recursive}, members: map[source.Key]bool{}})
	}
	for _, s := range cfg.Selections {
		sel := source.Selection{TagKey: s.TagKey, TagValue: s.TagValue, Prefix: s.Prefix}
		l.lists = append(l.lists, &listing{sel: &sel, members: map[source.Key]bool{}})
	}
	return l
}

// isMember reports whether k is a secret a selection found last.
func (l *listings) isMember(k source.Key) bool {
	if k.Service != source.SecretsManager || k.Role != "" || !k.Plain() {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, li := range l.lists {
		if li.sel != nil && li.members[k] {
			return true
		}
	}
	return false
}

// recorder is the cache's fetcher with the paths' finds recorded, so the
// Init prefetch of a path (which the cache makes) gives its first members.
type recorder struct {
	cache.Fetcher
	l *listings
}

func (r recorder) FetchPath(ctx context.Context, prefix string, recursive bool, deliver source.Deliver) (int, error) {
	found := map[source.Key]bool{}
	var mu sync.Mutex
	n, err := r.Fetcher.FetchPath(ctx, prefix, recursive, func(k source.Key, item *source.Item, err error) {
		if err == nil {
			mu.Lock()
			found[k] = true
			mu.Unlock()
		}
		deliver(k, item, err)
	})
	// On a failure, what was found is the start; the next refresh lists
	// the path again.
	r.l.settle(cache.Path{Prefix: prefix, Recursive: recursive}, found)
	return n, err
}

// settle records what the Init prefetch found under a path.
func (l *listings) settle(p cache.Path, found map[source.Key]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, li := range l.lists {
		if li.path != nil && *li.path == p && li.next.IsZero() {
			li.members = found
			li.next = l.due(li)
			li.listedAt = l.now()
		}
	}
}

// due is when li is next due, from now; zero (never) when caching is off,
// as every read then goes to AWS. Requires mu.
func (l *listings) due(li *listing) time.Time {
	every := l.paramsEvery
	if li.sel != nil {
		every = l.secretsEvery
	}
	if every <= 0 {
		return time.Time{}
	}
	return l.now().Add(every - time.Duration(float64(every)*0.1*rand.Float64()))
}

// listSelections lists every selection for the Init prefetch and returns
// the keys of their members, and the selections that failed.
func (l *listings) listSelections(ctx context.Context) (keys []source.Key, failed map[string]error) {
	failed = map[string]error{}
	l.mu.Lock()
	var todo []*listing
	for _, li := range l.lists {
		if li.sel != nil {
			todo = append(todo, li)
		}
	}
	l.mu.Unlock()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, li := range todo {
		wg.Go(func() {
			found, err := l.list(ctx, li)
			l.mu.Lock()
			li.next = l.due(li) // a failed listing is tried again then
			if err == nil {
				li.members = found
			}
			l.mu.Unlock()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed[li.sel.String()] = err
				return
			}
			for k := range found {
				keys = append(keys, k)
			}
		})
	}
	wg.Wait()
	return keys, failed
}

// list lists a selection and records its members.
func (l *listings) list(ctx context.Context, li *listing) (map[source.Key]bool, error) {
	if l.sels == nil {
		return nil, &source.Error{Class: source.ClassInvalid, Code: "ListUnsupported", Message: "secrets can't be listed here", Key: source.SecretKey(li.sel.String())}
	}
	names, err := l.sels.ListSelection(ctx, *li.sel)
	if err != nil {
		return nil, err
	}
	found := make(map[source.Key]bool, len(names))
	for _, n := range names {
		found[source.SecretKey(n)] = true
	}
	return found, nil
}

// listingReport tells what a refresh of the listings did.
type listingReport struct {
	Listed, Joined, Left int
	Errors               map[string]error // by path or selection
}

// refreshDue lists again every path and selection that is due: new
// members are fetched (selections) or stored as listed (paths), members no
// longer found are dropped from the cache. A listing that fails keeps its
// members and is tried again at the next refresh.
func (l *listings) refreshDue(ctx context.Context) listingReport {
	now := l.now()
	l.mu.Lock()
	var due []*listing
	for _, li := range l.lists {
		if !li.running && !li.next.IsZero() && !now.Before(li.next) {
			li.running = true
			due = append(due, li)
		}
	}
	l.mu.Unlock()
	rep := listingReport{Errors: map[string]error{}}
	var mu sync.Mutex // protects rep
	var wg sync.WaitGroup
	for _, li := range due {
		wg.Go(func() {
			joined, left, err := l.relist(ctx, li)
			mu.Lock()
			defer mu.Unlock()
			rep.Listed++
			rep.Joined += joined
			rep.Left += left
			if err != nil {
				rep.Errors[li.name()] = err
			}
		})
	}
	wg.Wait()
	return rep
}

func (li *listing) name() string {
	if li.sel != nil {
		return li.sel.String()
	}
	return pathString(*li.path)
}

// relist lists li again and brings the cache in line.
func (l *listings) relist(ctx context.Context, li *listing) (joined, left int, err error) {
	var found map[source.Key]bool
	if li.sel != nil {
		found, err = l.list(ctx, li)
	} else {
		found = map[source.Key]bool{}
		var mu sync.Mutex
		_, err = l.fetcher.FetchPath(ctx, li.path.Prefix, li.path.Recursive, func(k source.Key, item *source.Item, e error) {
			if e != nil {
				return
			}
			l.cache.StoreFound(k, item)
			mu.Lock()
			found[k] = true
			mu.Unlock()
		})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	li.running = false
	if err != nil {
		// Tried again at the next refresh: the members stay as they were.
		li.failures++
		d := min(time.Second<<min(li.failures-1, 9), 5*time.Minute)
		li.retryAt = l.now().Add(d/2 + time.Duration(float64(d/2)*rand.Float64()))
		return 0, 0, err
	}
	li.failures, li.retryAt = 0, time.Time{}
	var fresh []source.Key
	for k := range found {
		if !li.members[k] {
			joined++
			fresh = append(fresh, k)
		}
	}
	for k := range li.members {
		if !found[k] && !l.memberElsewhere(li, k) && !l.static(k) {
			left++
			l.cache.Forget(k)
		}
	}
	li.members = found
	li.next = l.due(li)
	li.listedAt, li.stale = l.now(), false
	if li.sel != nil && len(fresh) > 0 {
		// Outside mu: the fetch calls AWS. New members are fetched in
		// batches, like the prefetch.
		l.mu.Unlock()
		l.cache.Prefetch(ctx, fresh, nil)
		l.mu.Lock()
	}
	return joined, left, nil
}

// memberElsewhere reports whether another listing still has k. Requires mu.
func (l *listings) memberElsewhere(li *listing, k source.Key) bool {
	for _, o := range l.lists {
		if o != li && o.members[k] {
			return true
		}
	}
	return false
}

// nextDue is when refreshDue next finds a listing due, for the agent's
// timer; the zero time when none ever is.
func (l *listings) nextDue() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var next time.Time
	for _, li := range l.lists {
		if li.running || li.next.IsZero() {
			continue
		}
		at := li.next
		if li.retryAt.After(at) {
			at = li.retryAt
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}

// selectionMembers returns the secrets the selections found last.
func (l *listings) selectionMembers() []source.Key {
	l.mu.Lock()
	defer l.mu.Unlock()
	var keys []source.Key
	for _, li := range l.lists {
		if li.sel != nil {
			for k := range li.members {
				keys = append(keys, k)
			}
		}
	}
	return keys
}
