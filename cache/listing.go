package cache

import (
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// StoreFound stores an item a listing found (a parameter path or a secret
// selection listed again), as a fetch of its key would.
func (c *Cache) StoreFound(k source.Key, item *source.Item) {
	c.storePathItem(nil, k, item)
}

// Forget drops the entry of k, which a listing no longer finds (a parameter
// deleted under a path, a secret that lost its tag). Its value is not
// wiped: a response being written may still hold it; it goes with the
// garbage. A fetch of k in flight finishes for its waiters.
func (c *Cache) Forget(k source.Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[k]; e != nil {
		c.remove(e)
	}
}

// ExpireAll makes every value expired and due for refresh at once, beyond
// the stale bound too: after a SnapStart restore the values are as old as
// the snapshot, however fresh the clocks (whose monotonic readings did not
// move while the snapshot waited) make them look. The next read of each
// key fetches it, or joins the fetch in flight.
func (c *Cache) ExpireAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.m {
		if e.item != nil {
			e.fetched, e.refreshAt = time.Time{}, time.Time{}
		}
		e.retryAt = time.Time{}
	}
	c.dueAt = time.Time{}
}
