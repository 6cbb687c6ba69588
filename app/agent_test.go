package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/config"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// batchFetcher makes a new item per key per call, as AWS does, and counts
// its calls.
type batchFetcher struct {
	mu      sync.Mutex // protects batches, ones
	batches []int
	ones    int
}

func (f *batchFetcher) Fetch(_ context.Context, keys []source.Key, deliver source.Deliver) {
	f.mu.Lock()
	f.batches = append(f.batches, len(keys))
	f.mu.Unlock()
	for _, k := range keys {
		deliver(k, &source.Item{Key: k, Body: []byte(`{"SecretString":"v"}`), Text: []byte("v")}, nil)
	}
}

func (f *batchFetcher) FetchOne(_ context.Context, k source.Key) (*source.Item, error) {
	f.mu.Lock()
	f.ones++
	f.mu.Unlock()
	return &source.Item{Key: k, Body: []byte(`{"SecretString":"v"}`), Text: []byte("v")}, nil
}

func (f *batchFetcher) FetchPath(context.Context, string, bool, source.Deliver) (int, error) {
	return 0, nil
}

// testTimer is a timer the test fires by hand.
type testTimer struct {
	d time.Duration
	c chan time.Time
}

func (t *testTimer) C() <-chan time.Time { return t.c }
func (t *testTimer) Stop() bool          { return true }

// timerHarness runs timerLoop over n listed secrets with a simulated clock.
type timerHarness struct {
	e         *extension
	f         *batchFetcher
	clock     *benchClock
	armed     chan *testTimer
	refreshed chan cache.RefreshReport
	stop      context.CancelFunc
	done      chan struct{}
}

func newTimerHarness(t testing.TB, n int) *timerHarness {
	secrets := make([]string, n)
	keys := make([]source.Key, n)
	for i := range secrets {
		secrets[i] = fmt.Sprintf("secret-%04d", i)
		keys[i] = source.SecretKey(secrets[i])
	}
	env := map[string]string{
		config.EnvSessionToken: testToken,
		config.EnvSecrets:      strings.Join(secrets, ","),
		config.EnvCacheSize:    strconv.Itoa(n),
	}
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	h := &timerHarness{
		f:         &batchFetcher{},
		clock:     &benchClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		armed:     make(chan *testTimer, 1),
		refreshed: make(chan cache.RefreshReport), // unbuffered: a report is taken before the next timer is armed
		done:      make(chan struct{}),
	}
	h.e = assemble(cfg, h.f, slog.New(slog.DiscardHandler), h.clock.now, nil)
	if rep := h.e.cache.Prefetch(context.Background(), keys, nil); rep.Fetched != n {
		t.Fatalf("prefetched %d of %d", rep.Fetched, n)
	}
	ctx, stop := context.WithCancel(context.Background())
	h.stop = stop
	go func() {
		defer close(h.done)
		h.e.timerLoop(ctx, AgentOptions{
			Now: h.clock.now,
			NewTimer: func(d time.Duration) Timer {
				tm := &testTimer{d: d, c: make(chan time.Time, 1)}
				select {
				case h.armed <- tm:
				case <-ctx.Done():
				}
				return tm
			},
			Refreshed: func(r cache.RefreshReport) {
				select {
				case h.refreshed <- r:
				case <-ctx.Done():
				}
			},
		})
	}()
	t.Cleanup(func() { stop(); <-h.done })
	return h
}

// round fires the next timer and returns the refresh it leads to, and how
// many timers were armed on the way.
func (h *timerHarness) round(t testing.TB) (cache.RefreshReport, int) {
	armed := 0
	for {
		select {
		case tm := <-h.armed:
			armed++
			h.clock.mu.Lock()
			h.clock.t = h.clock.t.Add(tm.d)
			h.clock.mu.Unlock()
			tm.c <- h.clock.now()
		case rep := <-h.refreshed:
			return rep, armed
		case <-time.After(30 * time.Second):
			t.Fatal("no timer and no refresh")
		}
	}
}

// The timer sleeps until the next refresh point and then refreshes every
// entry due within the jitter window in one batch; one timer per round,
// no polling; a value stored sooner wakes it to sleep again.
func TestTimerLoop(t *testing.T) {
	h := newTimerHarness(t, 50)
	// The first pass runs at once (nothing known yet) and finds nothing due.
	if rep, armed := h.round(t); rep.Due != 0 || armed != 0 {
		t.Fatalf("first pass: %+v after %d timers", rep, armed)
	}
	start := h.clock.now()
	for i := range 20 {
		rep, armed := h.round(t)
		if rep.Due != 50 || rep.Refreshed != 50 || armed != 1 {
			t.Fatalf("round %d: %+v after %d timers, want all 50 after one", i, rep, armed)
		}
	}
	// 20 rounds, each 72–80% of the 300 s TTL after the one before.
	if took := h.clock.now().Sub(start); took < 20*216*time.Second || took > 20*240*time.Second {
		t.Errorf("20 rounds took %v of simulated time, want 72–80 minutes", took)
	}
	h.f.mu.Lock()
	batches, ones := h.f.batches, h.f.ones
	h.f.mu.Unlock()
	if len(batches) != 21 || ones != 0 {
		t.Errorf("fetches: batches %v, single %d; want the prefetch and one batch a round", batches, ones)
	}

	// A read of a new name stores a value due sooner than the timer's
	// point? Not with equal TTLs; a failure's backoff is: a lazy read of a
	// name that is missing makes no entry due, and the timer stays.
	select {
	case tm := <-h.armed:
		_ = tm // the timer for the next round, armed once
	case <-time.After(30 * time.Second):
		t.Fatal("no timer armed after the last round")
	}
	select {
	case tm := <-h.armed:
		t.Fatalf("a second timer (%v) with nothing new due: the loop re-arms without cause", tm.d)
	default:
	}
}

// TestTimerRefreshMemory is the figure behind the README: RSS and heap
// after many timer refreshes of many items, in-process with a simulated
// clock (AGENT_MEMORY_ROUNDS and AGENT_MEMORY_ITEMS; small by default).
// Heap in use must stay flat after the first rounds.
func TestTimerRefreshMemory(t *testing.T) {
	rounds, items := envInt(t, "AGENT_MEMORY_ROUNDS", 300), envInt(t, "AGENT_MEMORY_ITEMS", 1000)
	h := newTimerHarness(t, items)
	h.round(t) // the first pass
	var warm uint64
	for i := 1; i <= rounds; i++ {
		if rep, _ := h.round(t); rep.Due != items {
			t.Fatalf("round %d refreshed %d of %d", i, rep.Due, items)
		}
		if i == min(50, rounds) {
			warm = heapInUse()
		}
	}
	end := heapInUse()
	t.Logf("%d timer refreshes of %d items: heap in use %d KiB after %d rounds, %d KiB at the end; RSS %s",
		rounds, items, warm>>10, min(50, rounds), end>>10, rss())
	if end > warm+4<<20 {
		t.Errorf("heap in use grew from %d KiB to %d KiB", warm>>10, end>>10)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// rss is the process's resident set size from /proc/self/status.
func rss() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func envInt(t testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a whole number from 1", name, v)
	}
	return n
}

// The token file: read trimmed; a rename over it or a write in place hands
// the new token over; an emptied file keeps the last one.
func TestWatchToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("token", "\n one \n")
	tok, err := readToken(path)
	if err != nil || tok != "one" {
		t.Fatalf("readToken: %q, %v", tok, err)
	}
	got := make(chan string, 8)
	var log bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return log.Write(p) }), nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchToken(ctx, path, tok, func(s string) { got <- s }, logger)
	wait := func(want string) {
		t.Helper()
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("new token %q, want %q", s, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no new token %q", want)
		}
	}
	write(".tmp", "two")
	if err := os.Rename(filepath.Join(dir, ".tmp"), path); err != nil {
		t.Fatal(err)
	}
	wait("two")
	write("token", "three\n")
	wait("three")
	write("token", "  ")         // emptied: kept
	write("other-file", "noise") // a change in the directory: the token is read, unchanged
	write("token", "four")
	wait("four")
	logMu.Lock()
	defer logMu.Unlock()
	for _, v := range []string{"one", "two", "three", "four"} {
		if strings.Contains(log.String(), "="+v) || strings.Contains(log.String(), `"`+v+`"`) {
			t.Errorf("the log shows a token:\n%s", log.String())
		}
	}
	for _, bad := range []string{"", " \n"} {
		write("bad", bad)
		if _, err := readToken(filepath.Join(dir, "bad")); err == nil {
			t.Errorf("readToken of %q: no error", bad)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Agent mode closes connections to AWS idle for 30 s, well before a NAT
// gateway or load balancer would drop them silently between refreshes.
func TestAgentTransportIdleTimeout(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	cfg, err := loadAWSWith(context.Background(), config.Default(), agentTransport)
	if err != nil {
		t.Fatal(err)
	}
	bc, ok := cfg.HTTPClient.(interface{ GetTransport() *http.Transport })
	if !ok {
		t.Fatalf("HTTP client %T has no transport to inspect", cfg.HTTPClient)
	}
	if got := bc.GetTransport().IdleConnTimeout; got != 30*time.Second {
		t.Errorf("IdleConnTimeout = %v, want 30s", got)
	}
}
