package cache

import "github.com/secrets-prefetch/secrets-prefetch/source"

// Invalidate drops every entry match selects, given its key and its value
// (nil if it has none), and returns how many it dropped: after a write went
// to AWS, the next read of what it changed fetches again. A fetch in flight
// for a dropped entry still answers the reads already waiting for it (they
// began before the write was acknowledged) but no longer stores its value.
func (c *Cache) Invalidate(match func(source.Key, *source.Item) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, e := range c.m {
		if match(k, e.item) {
			c.remove(e)
			n++
		}
	}
	return n
}
