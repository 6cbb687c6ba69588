package app

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/config"
	"github.com/secrets-prefetch/secrets-prefetch/localserver"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// heldFetcher serves prefetches at once, holds single fetches until their
// context ends (an AWS that never answers), and keeps every item it made.
type heldFetcher struct {
	mu      sync.Mutex // protects items
	items   []*source.Item
	entered chan struct{}
}

func (f *heldFetcher) item(k source.Key) *source.Item {
	f.mu.Lock()
	defer f.mu.Unlock()
	it := &source.Item{Key: k, Body: []byte(`{"SecretString":"` + testSecret + `"}`), Text: []byte(testSecret)}
	f.items = append(f.items, it)
	return it
}

func (f *heldFetcher) Fetch(_ context.Context, keys []source.Key, deliver source.Deliver) {
	for _, k := range keys {
		deliver(k, f.item(k), nil)
	}
}

func (f *heldFetcher) FetchOne(ctx context.Context, k source.Key) (*source.Item, error) {
	f.entered <- struct{}{}
	<-ctx.Done()
	return nil, &source.Error{Class: source.ClassTimeout, Code: "UpstreamTimeout", Key: k}
}

func (f *heldFetcher) FetchPath(context.Context, string, bool, source.Deliver) (int, error) {
	return 0, nil
}

// TestStopDrainsThenWipes: stop answers the read still waiting for AWS
// within its deadline, and only then overwrites every cached value.
func TestStopDrainsThenWipes(t *testing.T) {
	env := map[string]string{"AWS_SESSION_TOKEN": testToken, "SECRETS_PREFETCH_SECRETS": "a,b", "SECRETS_MANAGER_TIMEOUT_MILLIS": "60000"}
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	f := &heldFetcher{entered: make(chan struct{}, 1)}
	e := assemble(cfg, f, slog.New(slog.DiscardHandler), nil, nil)
	l, err := localserver.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	go e.server.Serve(l)
	e.cache.Prefetch(t.Context(), []source.Key{source.SecretKey("a"), source.SecretKey("b")}, nil)

	status := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+l.Addr().String()+"/secretsmanager/get?secretId=slow", nil)
		req.Header.Set(localserver.TokenHeader, testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			status <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	<-f.entered

	deadline := time.Now().Add(time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	e.stop(ctx)
	// Only a stop that ignores its deadline fails here: a slow machine may
	// overrun it by a scheduling delay, which is no bug.
	if over := time.Since(deadline); over > 2*time.Second {
		t.Errorf("stop overran its deadline by %v", over)
	}
	if got := <-status; got != http.StatusServiceUnavailable {
		t.Errorf("the read in flight got %d, want 503", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.items) != 2 {
		t.Fatalf("%d items made, want 2", len(f.items))
	}
	for _, it := range f.items {
		for _, b := range [][]byte{it.Body, it.Text} {
			for _, c := range b {
				if c != 0 {
					t.Fatalf("item %s not wiped: %q", it.Key, b)
				}
			}
		}
	}
}
