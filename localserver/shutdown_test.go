package localserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// TestShutdownAnswersReadsInFlight: reads still waiting in the cache when
// Shutdown's deadline nears get a JSON 503 ShuttingDown, not a dropped
// connection; Shutdown returns nil, before its deadline, with no handler
// left running.
func TestShutdownAnswersReadsInFlight(t *testing.T) {
	const readers = 8
	entered := make(chan struct{}, readers)
	fc := &fakeCache{get: func(ctx context.Context, key source.Key, _ bool) (cache.Result, error) {
		entered <- struct{}{}
		<-ctx.Done() // AWS never answers
		return cache.Result{}, &source.Error{Class: source.ClassTimeout, Code: "UpstreamTimeout", Key: key}
	}}
	s := newServer(fc)
	// The answers get the time between the drain point and the final wait's
	// end to go out: an eighth of the time left, capped at half the margin
	// (100 ms in production). A loaded machine can take longer than that to
	// schedule eight handlers, so the test widens the margins: 8 s before
	// the deadline, the drain point comes at 6 s and the answers have a
	// whole second. What is proved is the same: answered, not cut.
	s.drainMargin, s.handlerGrace = 2*time.Second, time.Second
	l, err := Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()

	type answer struct {
		status int
		code   string
		err    error
	}
	answers := make(chan answer, readers)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, "http://"+l.Addr().String()+"/secretsmanager/get?secretId=slow", nil)
			req.Header.Set(TokenHeader, testToken)
			resp, err := client.Do(req)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			var b errorBody
			body, _ := io.ReadAll(resp.Body)
			json.Unmarshal(body, &b)
			answers <- answer{status: resp.StatusCode, code: b.Error.Code}
		})
	}
	for range readers {
		<-entered
	}
	deadline := time.Now().Add(8 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	// Only a Shutdown that ignores its deadline fails here, not a slow machine.
	if over := time.Since(deadline); over > 10*time.Second {
		t.Errorf("Shutdown returned %v past its deadline", over)
	}
	s.mu.Lock()
	active := s.active
	s.mu.Unlock()
	if active != 0 {
		t.Errorf("%d handlers still running after Shutdown", active)
	}
	wg.Wait()
	close(answers)
	for a := range answers {
		if a.err != nil || a.status != http.StatusServiceUnavailable || a.code != "ShuttingDown" {
			t.Errorf("read in flight at shutdown: %+v, want 503 ShuttingDown", a)
		}
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

func TestBusyIsTooManyRequests(t *testing.T) {
	w := serve(newServer(errCache(cache.ErrBusy)), http.MethodGet, "/secretsmanager/get?secretId=x", testToken)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", w.Code)
	}
	if code, _ := errorCode(t, w); code != "TooManyRequests" {
		t.Errorf("code %q", code)
	}
}
