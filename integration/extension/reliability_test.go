package extension_test

import (
	"fmt"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// waitBlockedIn waits until a goroutine's stack includes fn (a read blocked
// in the cache, say), failing the test after a generous bound. It is how a
// test knows a request has got past the server into the cache, which
// e.Accepted (the connection's arrival) does not tell.
func waitBlockedIn(t *testing.T, fn string) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	bound := time.After(30 * time.Second)
	for goroutinesIn(fn) == 0 {
		select {
		case <-tick.C:
		case <-bound:
			t.Fatalf("no goroutine reached %s", fn)
		}
	}
}

// goroutinesIn counts the goroutines whose stacks include fn, from the
// goroutine profile: groups of identical stacks, each headed "N @ ...".
func goroutinesIn(fn string) int {
	var b strings.Builder
	pprof.Lookup("goroutine").WriteTo(&b, 1)
	n, count, counted := 0, 0, false
	for _, line := range strings.Split(b.String(), "\n") {
		if c, _, ok := strings.Cut(line, " @ "); ok {
			count, counted = 0, false
			fmt.Sscan(c, &count)
			continue
		}
		if !counted && strings.Contains(line, fn) {
			n += count
			counted = true
		}
	}
	return n
}
