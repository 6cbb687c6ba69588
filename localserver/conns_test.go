package localserver

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// capServer serves s on a loopback listener.
func capServer(t *testing.T, s *Server) string {
	t.Helper()
	l, err := Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-served
	})
	return l.Addr().String()
}

type testConn struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *testConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute)) // a bound, not a wait: no read here should block
	return &testConn{c, bufio.NewReader(c)}
}

// get sends a read on the connection and returns the answer's status.
func (c *testConn) get(t *testing.T) (int, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://localhost/secretsmanager/get?secretId=db", nil)
	req.Header.Set(TokenHeader, testToken)
	if err := req.Write(c); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(c.r, req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// closedByServer reports whether the server closed the connection: a read
// returns EOF (or a reset) rather than data.
func (c *testConn) closedByServer() bool {
	_, err := c.r.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || err != nil && strings.Contains(err.Error(), "reset")
}

// Past MaxConns the connection idle the longest is closed, and the new one
// is served: idle keep-alive connections can't hold every file descriptor.
func TestConnectionCapShedsTheIdlest(t *testing.T) {
	log, buf := debugLogger()
	s := newServer(&fakeCache{}, func(o *Options) { o.MaxConns = 4; o.Logger = log })
	addr := capServer(t, s)

	first := dial(t, addr) // accepted, never sends a request: idle the longest
	var rest []*testConn
	for range 3 {
		c := dial(t, addr)
		if st, err := c.get(t); err != nil || st != http.StatusOK {
			t.Fatalf("read on connection %d: %d %v", len(rest)+2, st, err)
		}
		rest = append(rest, c)
	}
	if strings.Contains(buf.String(), "too many open connections") {
		t.Fatalf("warned within the cap:\n%s", buf)
	}

	fifth := dial(t, addr)
	if st, err := fifth.get(t); err != nil || st != http.StatusOK {
		t.Fatalf("read on the connection past the cap: %d %v; want 200", st, err)
	}
	if !first.closedByServer() {
		t.Error("the idlest connection was not closed")
	}
	if n := s.conns.count(); n > 4 {
		t.Errorf("%d connections open, want at most 4", n)
	}
	// The survivors still work.
	for i, c := range append(rest[1:], fifth) {
		if st, err := c.get(t); err != nil || st != http.StatusOK {
			t.Errorf("survivor %d: %d %v", i, st, err)
		}
	}
	if !strings.Contains(buf.String(), "level=WARN msg=\"too many open connections: closed the idlest\" limit=4 closed=1") {
		t.Errorf("no warning naming the cap:\n%s", buf)
	}
}

// A connection busy with a request is never shed: when all are busy, the
// new connection is the one refused.
func TestConnectionCapNeverShedsBusy(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	fc := &fakeCache{get: func(ctx context.Context, _ source.Key, _ bool) (cache.Result, error) {
		entered <- struct{}{}
		<-release
		return cache.Result{Item: defaultItem, Status: cache.Hit}, nil
	}}
	s := newServer(fc, func(o *Options) { o.MaxConns = 2 })
	addr := capServer(t, s)

	type answer struct {
		st  int
		err error
	}
	answers := make(chan answer, 2)
	for range 2 {
		c := dial(t, addr)
		go func() {
			st, err := c.get(t)
			answers <- answer{st, err}
		}()
		<-entered
	}
	third := dial(t, addr)
	if st, err := third.get(t); err == nil {
		t.Errorf("a connection past the cap, all others busy, was answered %d", st)
	}
	close(release)
	for range 2 {
		if a := <-answers; a.err != nil || a.st != http.StatusOK {
			t.Errorf("busy read: %d %v; want 200", a.st, a.err)
		}
	}
}
