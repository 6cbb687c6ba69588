package localserver

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultMaxConns bounds the server's open connections by default. Lambda
// gives a process 1,024 file descriptors; each connection takes one (and
// some 20 KiB of buffers and stack), and past the limit accept fails, so new
// requests would wait unanswered while idle keep-alive connections hold
// every descriptor. Half the limit is twice the requests that may be in
// flight at once (MaxInFlight's default, 256), so requests past that still
// get their 429 rather than a closed connection, and leaves the rest to the
// AWS connections and the runtime's own files.
const DefaultMaxConns = 512

// conns tracks the server's open connections and, past its bound, closes
// the one idle the longest (a connection that has not yet sent a request
// counts as idle since it was accepted). A connection busy with a request
// is never shed; when every connection is busy, the new one is refused.
// It is safe for concurrent use.
type conns struct {
	max int
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex // protects the fields below
	open     map[net.Conn]connInfo
	seq      uint64    // orders the connections' last moves to idle
	shed     int       // connections shed since the last warning
	warnedAt time.Time // when the last warning was logged
}

type connInfo struct {
	busy  bool   // handling a request
	since uint64 // when it was accepted or last went idle, in seq's order
}

// connWarnEvery spaces the warnings a flood of connections causes.
const connWarnEvery = 10 * time.Second

func newConns(max int, log *slog.Logger) *conns {
	return &conns{max: max, log: log, now: time.Now, open: make(map[net.Conn]connInfo)}
}

// state is the http.Server's ConnState hook.
func (cs *conns) state(c net.Conn, st http.ConnState) {
	var victim net.Conn
	cs.mu.Lock()
	cs.seq++
	switch st {
	case http.StateNew:
		if len(cs.open) >= cs.max {
			victim = cs.idlestLocked()
			if victim == nil {
				victim = c // every connection is busy: refuse the new one
			} else {
				delete(cs.open, victim)
			}
			cs.shed++
		}
		if victim != c {
			cs.open[c] = connInfo{since: cs.seq}
		}
	case http.StateActive:
		if _, ok := cs.open[c]; ok {
			cs.open[c] = connInfo{busy: true}
		}
	case http.StateIdle:
		if _, ok := cs.open[c]; ok {
			cs.open[c] = connInfo{since: cs.seq}
		}
	case http.StateHijacked, http.StateClosed:
		delete(cs.open, c)
	}
	warn, shed := false, 0
	if cs.shed > 0 { // only then is the clock read
		if now := cs.now(); cs.warnedAt.IsZero() || now.Sub(cs.warnedAt) >= connWarnEvery {
			warn, shed, cs.shed, cs.warnedAt = true, cs.shed, 0, now
		}
	}
	cs.mu.Unlock()
	if victim != nil {
		victim.Close() // the server sees the close and reports StateClosed
	}
	if warn {
		cs.log.Warn("too many open connections: closed the idlest", "limit", cs.max, "closed", shed,
			"hint", "reuse a few keep-alive connections to the extension rather than opening new ones")
	}
}

// idlestLocked returns the idle connection idle the longest, or nil.
// Requires mu held.
func (cs *conns) idlestLocked() net.Conn {
	var (
		best  net.Conn
		since uint64
	)
	for c, in := range cs.open {
		if !in.busy && (best == nil || in.since < since) {
			best, since = c, in.since
		}
	}
	return best
}

// count returns the number of open connections.
func (cs *conns) count() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.open)
}
