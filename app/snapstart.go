package app

import (
	"context"
	"sync"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// restoreGap is how much further the wall clock must have moved than the
// monotonic clock between two checks for a SnapStart restore to be seen.
// A snapshot waits minutes to weeks; NTP corrections are far below this.
const restoreGap = 30 * time.Second

// Clocks are the two clocks restore detection compares. Under SnapStart a
// snapshot is a paused Firecracker microVM: while it waits, the guest's
// monotonic clock stands still, and on restore the wall clock is set to the
// real time. So between two events, the wall clock moving far more than
// the monotonic clock means the environment was restored in between.
type Clocks struct {
	Wall func() time.Time     // default: time.Now without its monotonic reading
	Mono func() time.Duration // default: the monotonic time since the process started
}

func (c Clocks) orDefault() Clocks {
	if c.Wall == nil {
		c.Wall = func() time.Time { return time.Now().Round(0) }
	}
	if c.Mono == nil {
		start := time.Now()
		c.Mono = func() time.Duration { return time.Since(start) }
	}
	return c
}

// snapGuard stands before the cache under SnapStart: every read, and every
// INVOKE, first checks whether the environment has been restored since the
// last check (or, with SECRETS_PREFETCH_SNAPSHOT=exclude, whether this is
// the first activity after Init, which under SnapStart is always after a
// restore). Then, before the read goes on, every entry is expired and
// everything configured is fetched again in batches, so the first reads
// join that fetch and no value from the snapshot is served. Reads wait on
// mu for the moment that takes to start (no I/O under it).
type snapGuard struct {
	*cache.Cache
	clocks Clocks
	// refetch starts the fetch of everything configured (StartPrefetch)
	// and returns at once.
	refetch func()
	log     func(msg string, args ...any)

	mu       sync.Mutex // protects the fields below
	pending  bool       // exclude: nothing fetched yet; the first check fetches
	lastWall time.Time
	lastMono time.Duration
	restores int
}

func newSnapGuard(c *cache.Cache, clocks Clocks, exclude bool, refetch func(), log func(string, ...any)) *snapGuard {
	g := &snapGuard{Cache: c, clocks: clocks.orDefault(), refetch: refetch, log: log, pending: exclude}
	g.lastWall, g.lastMono = g.clocks.Wall(), g.clocks.Mono()
	return g
}

// mark sets the baseline: call it when Init is done, just before the
// snapshot is taken.
func (g *snapGuard) mark() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastWall, g.lastMono = g.clocks.Wall(), g.clocks.Mono()
}

// check notices a restore and, on one, expires the cache and starts the
// fetch of everything. It reports whether it did.
func (g *snapGuard) check() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	w, m := g.clocks.Wall(), g.clocks.Mono()
	gap := w.Sub(g.lastWall) - (m - g.lastMono)
	g.lastWall, g.lastMono = w, m
	first := g.pending
	if gap < restoreGap && !first {
		return false
	}
	g.pending = false
	g.restores++
	g.Cache.ExpireAll()
	g.refetch()
	if first {
		g.log("fetching the values kept out of the snapshot", "variable", "SECRETS_PREFETCH_SNAPSHOT")
	} else {
		g.log("SnapStart restore detected: every value fetched again", "wall_ahead_of_monotonic_s", int64(gap/time.Second))
	}
	return true
}

// Get checks for a restore, then reads.
func (g *snapGuard) Get(ctx context.Context, key source.Key, refreshNow bool) (cache.Result, error) {
	g.check()
	return g.Cache.Get(ctx, key, refreshNow)
}
