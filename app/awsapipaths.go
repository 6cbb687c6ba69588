package app

import (
	"slices"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/internal/names"
)

// ListPath serves GetParametersByPath through the AWS API endpoint
// (awsapi.Paths): the names under a prefetched path as last listed, when
// that listing is current — made within the parameters' TTL, and not
// followed by a write under the path through the endpoint (until the next
// refresh lists it again, such a request goes to AWS).
func (l *listings) ListPath(p cache.Path) ([]string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, li := range l.lists {
		if li.path == nil || *li.path != p {
			continue
		}
		if li.listedAt.IsZero() || li.stale || !l.now().Before(li.listedAt.Add(l.paramsTTL)) {
			return nil, false
		}
		found := make([]string, 0, len(li.members))
		for k := range li.members {
			found = append(found, k.ID)
		}
		slices.Sort(found)
		return found, true
	}
	return nil, false
}

// StalePaths marks the listings of the paths holding name as not current,
// and due, so the next refresh lists them again: a write of name went to AWS.
func (l *listings) StalePaths(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, li := range l.lists {
		if li.path != nil && names.UnderPath(name, li.path.Prefix, li.path.Recursive) {
			li.stale = true
			if !li.next.IsZero() {
				li.next = l.now()
			}
		}
	}
}
