// Package soak_test runs the extension (app.Run, in-process, real SDK
// clients against the emulated AWS) under load: many concurrent readers of
// cached items for a bounded time, while INVOKEs drive refreshes and AWS
// faults come and go. It checks that no cached item ever gets a 5xx, that
// no goroutine is left behind and that memory stays bounded, and logs the
// figures.
//
// CI runs a short soak (SOAK_DURATION, default 5s); for a longer one:
//
//	cd integration && SOAK_DURATION=2m SOAK_CLIENTS=64 go test -race -run TestSoak -v ./soak/
package soak_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/app"
	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/localserver"
)

const token = "soak-session-token"

// clock is the extension's cache clock, advanced by the refresh driver.
type clock struct {
	mu sync.Mutex // protects t
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type syncBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive whole number", name, v)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a duration such as 2m", name, v)
	}
	return d
}

// faultCycle is what AWS does, in turn, while the soak runs: healthy between
// faults, and only failures a stale value may stand in for (an item AWS
// reports missing or forbidden is, rightly, no longer served).
var faultCycle = []struct {
	name  string
	fault *awstest.Fault
}{
	{"healthy", nil},
	{"5xx", &awstest.Fault{Status: http.StatusInternalServerError}},
	{"healthy", nil},
	{"throttling", ptr(awstest.Throttling())},
	{"latency", ptr(awstest.Latency(30 * time.Millisecond))},
	{"connection reset", ptr(awstest.ConnReset())},
	{"healthy", nil},
	{"black hole", ptr(awstest.BlackHole())},
	{"partial batch failure", ptr(awstest.PartialFailure(awstest.CodeSMInternal, "soak-secret-03", "soak-secret-07"))},
}

func ptr[T any](v T) *T { return &v }

// stats are the readers' counts, latencies and failures.
type stats struct {
	mu        sync.Mutex // protects the fields below
	requests  int
	byStatus  map[int]int
	byCache   map[string]int
	latencies []time.Duration
	failures  []string // 5xx (or no answer) for a cached item
}

func (s *stats) add(status int, xcache string, d time.Duration, failure string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.byStatus[status]++
	s.byCache[xcache]++
	s.latencies = append(s.latencies, d)
	if failure != "" && len(s.failures) < 20 {
		s.failures = append(s.failures, failure)
	}
}

func TestSoak(t *testing.T) {
	duration := envDuration(t, "SOAK_DURATION", 5*time.Second)
	clients := envInt(t, "SOAK_CLIENTS", 32)

	runtime.GC()
	goroutinesBefore := runtime.NumGoroutine()
	var memBefore runtime.MemStats
	runtime.ReadMemStats(&memBefore)

	// The emulated AWS, closed by the test itself so that its connections
	// (and the goroutines serving them) are gone before the count after.
	a, err := awstest.New()
	if err != nil {
		t.Fatal(err)
	}
	awsClosed := false
	t.Cleanup(func() {
		if !awsClosed {
			a.Close()
		}
	})
	ctx := t.Context()
	var secrets, params, paths []string
	for i := range 20 {
		s := fmt.Sprintf("soak-secret-%02d", i)
		must(t, func() error { _, err := a.PutSecretString(ctx, s, `{"user":"u`+s+`","password":"p`+s+`"}`); return err })
		secrets = append(secrets, s)
		paths = append(paths, "/secretsmanager/get?secretId="+s, "/secretsmanager/get?secretId="+s+"&jsonKey=password")
	}
	for i := range 20 {
		p := fmt.Sprintf("/soak/p%02d", i)
		must(t, func() error { _, err := a.PutParameter(ctx, p, "v"+p, "SecureString"); return err })
		params = append(params, p)
		paths = append(paths, "/systemsmanager/parameters/get?withDecryption=true&name="+p)
	}
	for _, kv := range a.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	api, rec := extapitest.NewServer(t)
	env := map[string]string{
		"AWS_LAMBDA_RUNTIME_API":                       api.Addr(),
		"AWS_SESSION_TOKEN":                            token,
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL":       "info",
		"PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS": "3",
		"SECRETS_PREFETCH_SECRETS":                     strings.Join(secrets, ","),
		"SECRETS_PREFETCH_PARAMETERS":                  strings.Join(params, ","),
		"SECRETS_PREFETCH_REQUIRED":                    "true",
		"SECRETS_MANAGER_TTL":                          "30",
		"SSM_PARAMETER_STORE_TTL":                      "30",
		"SECRETS_PREFETCH_REFRESH_AHEAD":               "0.5",
		"SECRETS_PREFETCH_STALE_IF_ERROR_SECONDS":      "86400",
		"SECRETS_MANAGER_TIMEOUT_MILLIS":               "300",
		"SSM_PARAMETER_STORE_TIMEOUT_MILLIS":           "300",
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	out := &syncBuffer{}
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- app.Run(context.Background(), app.Options{
			Getenv:   func(k string) string { return env[k] },
			Stdout:   out,
			Name:     "secrets-prefetch",
			Version:  "soak",
			Listener: l,
			Ready:    func() { close(ready) },
			Now:      clk.Now,
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("the extension stopped during Init: %v\n%s", err, out)
	case <-time.After(30 * time.Second):
		t.Fatalf("prefetch did not finish\n%s", out)
	}

	// Readers: cached items only, as fast as they are answered.
	st := &stats{byStatus: map[int]int{}, byCache: map[string]int{}}
	transport := &http.Transport{MaxIdleConnsPerHost: clients}
	client := &http.Client{Transport: transport}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range clients {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				p := paths[rand.IntN(len(paths))]
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+p, nil)
				req.Header.Set(localserver.TokenHeader, token)
				begin := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					st.add(0, "", time.Since(begin), p+": "+err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				d := time.Since(begin)
				failure := ""
				if resp.StatusCode >= 500 {
					failure = fmt.Sprintf("%s: %d %s", p, resp.StatusCode, body)
				}
				st.add(resp.StatusCode, resp.Header.Get("X-Cache"), d, failure)
			}
		})
	}

	// The refresh driver: INVOKEs with the clock moving on, and the fault
	// cycle turning, until the time is up.
	var (
		invokes   int
		peakHeap  uint64
		removeF   = func() {}
		deadline  = time.Now().Add(duration)
		faultSeen = map[string]int{}
	)
	for i := 0; time.Now().Before(deadline); i++ {
		if i%4 == 0 {
			removeF()
			f := faultCycle[(i/4)%len(faultCycle)]
			faultSeen[f.name]++
			removeF = func() {}
			if f.fault != nil {
				removeF = a.Inject(awstest.OpAll, *f.fault)
			}
		}
		clk.Advance(7 * time.Second)
		n := rec.NextCalls()
		api.Push(extapitest.Invoke(fmt.Sprintf("soak-%d", i), time.Now().Add(10*time.Second)))
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := rec.WaitNext(wctx, n+1)
		cancel()
		if err != nil {
			t.Fatalf("INVOKE %d was not finished: %v\n%s", i, err, out)
		}
		invokes++
		var m runtime.MemStats
		if i%8 == 0 {
			runtime.ReadMemStats(&m)
			peakHeap = max(peakHeap, m.HeapInuse)
		}
	}
	removeF()
	close(stop)
	readers.Wait()

	api.Push(extapitest.Shutdown(extapitest.ReasonSpindown, time.Now().Add(2*time.Second)))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after SHUTDOWN = %v\n%s", err, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the extension did not stop after SHUTDOWN")
	}
	transport.CloseIdleConnections()
	a.Close()
	awsClosed = true
	api.Close()

	// Goroutines end asynchronously once their connections close, and
	// nothing signals it: poll the count, bounded.
	goroutinesAfter := runtime.NumGoroutine()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for end := time.After(10 * time.Second); goroutinesAfter > goroutinesBefore+slack; goroutinesAfter = runtime.NumGoroutine() {
		select {
		case <-tick.C:
			continue
		case <-end:
		}
		break
	}
	runtime.GC()
	var memAfter runtime.MemStats
	runtime.ReadMemStats(&memAfter)

	st.mu.Lock()
	defer st.mu.Unlock()
	slices.Sort(st.latencies)
	pct := func(p float64) time.Duration {
		if len(st.latencies) == 0 {
			return 0
		}
		return st.latencies[min(len(st.latencies)-1, int(p*float64(len(st.latencies))))]
	}
	t.Logf("soak: %v, %d clients, %d INVOKEs, fault phases %v", duration, clients, invokes, faultSeen)
	t.Logf("requests %d (%.0f/s): status %v, X-Cache %v", st.requests, float64(st.requests)/duration.Seconds(), st.byStatus, st.byCache)
	t.Logf("latency p50 %v, p99 %v, max %v", pct(0.50), pct(0.99), pct(1))
	t.Logf("goroutines before %d, after %d; heap in use before %.1f MiB, peak %.1f MiB, after %.1f MiB; RSS %s",
		goroutinesBefore, goroutinesAfter, mib(memBefore.HeapInuse), mib(peakHeap), mib(memAfter.HeapInuse), rss())

	if len(st.failures) > 0 {
		t.Errorf("%d reads of cached items failed (5xx or no answer), e.g.:\n%s", st.byStatus[0]+count5xx(st.byStatus), strings.Join(st.failures, "\n"))
	}
	if st.requests < clients {
		t.Errorf("only %d requests in %v", st.requests, duration)
	}
	if faultSeen["5xx"] == 0 {
		t.Errorf("the soak was too short to reach a fault (phases %v)", faultSeen)
	}
	if goroutinesAfter > goroutinesBefore+slack {
		t.Errorf("goroutines: %d before, %d after: a leak", goroutinesBefore, goroutinesAfter)
	}
	if grown := int64(memAfter.HeapInuse) - int64(memBefore.HeapInuse); grown > maxHeapGrowth {
		t.Errorf("heap in use grew by %.1f MiB over the soak, want at most %.0f MiB", mib(uint64(grown)), mib(maxHeapGrowth))
	}
}

// slack allows for goroutines the runtime and the test framework start on
// their own; a leak per request or per INVOKE is thousands.
const slack = 5

// maxHeapGrowth bounds what the run may leave on the heap (the emulator's
// process-wide storage keeps what was seeded).
const maxHeapGrowth = 64 << 20

func count5xx(m map[int]int) int {
	n := 0
	for s, c := range m {
		if s >= 500 {
			n += c
		}
	}
	return n
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// rss is the process's resident set size, now and at its peak (Linux).
func rss() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	var now, peak string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			now = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			peak = strings.TrimSpace(v)
		}
	}
	return now + " (peak " + peak + ")"
}

func must(t *testing.T, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatal(err)
	}
}
