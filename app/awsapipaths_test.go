package app

import (
	"slices"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/config"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// A path's listing serves GetParametersByPath while it is current: from the
// prefetch's listing, for the parameters' TTL, until a write under it.
func TestListPath(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := config.Config{
		CacheEnabled: true, ParametersTTL: 100 * time.Second, SecretsTTL: 100 * time.Second, RefreshAhead: 0.8,
		ParameterPaths: []config.Path{{Prefix: "/app", Recursive: true}},
	}
	l := newListings(cfg, nil, func(source.Key) bool { return false }, func() time.Time { return now })
	app := cache.Path{Prefix: "/app", Recursive: true}
	if _, ok := l.ListPath(app); ok {
		t.Fatal("a path not yet listed is current")
	}
	l.settle(app, map[source.Key]bool{source.ParameterKey("/app/b"): true, source.ParameterKey("/app/a/x"): true})
	if got, ok := l.ListPath(app); !ok || !slices.Equal(got, []string{"/app/a/x", "/app/b"}) {
		t.Fatalf("ListPath = %v %t", got, ok)
	}
	if _, ok := l.ListPath(cache.Path{Prefix: "/app"}); ok {
		t.Fatal("another path (not recursive) is listed")
	}
	l.StalePaths("/other/x")
	if _, ok := l.ListPath(app); !ok {
		t.Fatal("a write elsewhere made the listing stale")
	}
	l.StalePaths("/app/new")
	if _, ok := l.ListPath(app); ok {
		t.Fatal("the listing is current after a write under the path")
	}
	if !l.lists[0].next.Equal(now) {
		t.Errorf("a stale listing is due at %v, want now", l.lists[0].next)
	}

	l2 := newListings(cfg, nil, func(source.Key) bool { return false }, func() time.Time { return now })
	l2.settle(app, map[source.Key]bool{})
	now = now.Add(100 * time.Second)
	if _, ok := l2.ListPath(app); ok {
		t.Error("a listing as old as the TTL is current")
	}
}
