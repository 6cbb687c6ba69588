// Package soak_test runs the extension (app.Run, in-process through the
// ../exttest harness, real SDK clients against the emulated AWS) under load: many concurrent readers of
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
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/localserver"
)

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

	var secrets, params, paths []string
	for _, s := range exttest.Names("soak-secret-", 20) {
		secrets = append(secrets, s)
		paths = append(paths, exttest.SecretPath(s), exttest.SecretPath(s)+"&jsonKey=password")
	}
	for _, p := range exttest.Names("/soak/p", 20) {
		params = append(params, p)
		paths = append(paths, exttest.ParamPath(p))
	}
	// The emulated AWS and the fake Extensions API are closed by the test
	// itself, so that their connections (and the goroutines serving them)
	// are gone before the count after.
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL":  "info",
			"SECRETS_PREFETCH_SECRETS":                strings.Join(secrets, ","),
			"SECRETS_PREFETCH_PARAMETERS":             strings.Join(params, ","),
			"SECRETS_PREFETCH_REQUIRED":               "true",
			"SECRETS_MANAGER_TTL":                     "30",
			"SSM_PARAMETER_STORE_TTL":                 "30",
			"SECRETS_PREFETCH_REFRESH_AHEAD":          "0.5",
			"SECRETS_PREFETCH_STALE_IF_ERROR_SECONDS": "86400",
			"SECRETS_MANAGER_TIMEOUT_MILLIS":          "300",
			"SSM_PARAMETER_STORE_TIMEOUT_MILLIS":      "300",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			for _, s := range secrets {
				exttest.Must[string](t)(a.PutSecretString(ctx, s, `{"user":"u`+s+`","password":"p`+s+`"}`))
			}
			for _, p := range params {
				exttest.Must[int64](t)(a.PutParameter(ctx, p, "v"+p, "SecureString"))
			}
		},
	})
	e.WaitReady(t)

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
				req, _ := http.NewRequest(http.MethodGet, "http://"+e.Addr+p, nil)
				req.Header.Set(localserver.TokenHeader, exttest.Token)
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
				removeF = e.AWS.Inject(awstest.OpAll, *f.fault)
			}
		}
		e.Clock.Advance(7 * time.Second)
		e.Invoke(t)
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

	e.API.Push(extapitest.Shutdown(extapitest.ReasonSpindown, time.Now().Add(2*time.Second)))
	if err := e.Wait(t, 10*time.Second); err != nil {
		t.Fatalf("Run after SHUTDOWN = %v\n%s", err, e.Out)
	}
	transport.CloseIdleConnections()
	e.AWS.Close()
	e.API.Close()

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
