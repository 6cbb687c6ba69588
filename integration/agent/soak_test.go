package agent_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/secrets-prefetch/secrets-prefetch/app"
	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
)

// soakClock is the agent's clock in the soak: the test moves it to each
// timer's deadline instead of waiting.
type soakClock struct {
	mu sync.Mutex // protects t
	t  time.Time
}

func (c *soakClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// advanceTo moves the clock on to t, never back.
func (c *soakClock) advanceTo(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.t) {
		c.t = t
	}
}

// armedAt is the deadline of a timer just armed: the clock does not move
// between the driver reading it and the test receiving the timer.
func armedAt(c *soakClock, tm *soakTimer) time.Time { return c.Now().Add(tm.d) }

// soakTimer is a timer the test fires.
type soakTimer struct {
	d time.Duration
	c chan time.Time
}

func (t *soakTimer) C() <-chan time.Time { return t.c }
func (t *soakTimer) Stop() bool          { return true }

// expiringCredentials issues credentials that expire 20 ms after they are
// issued, each with a new session token: over the soak the SDK renews
// them hundreds of times, as its default chain renews a task role's or an
// instance profile's.
type expiringCredentials struct {
	key, secret string
	mu          sync.Mutex // protects issued
	issued      map[string]time.Time
}

const credentialLife = 20 * time.Millisecond

func (c *expiringCredentials) Retrieve(context.Context) (aws.Credentials, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	tok := "soak-session-" + strconv.Itoa(len(c.issued))
	c.issued[tok] = now.Add(credentialLife)
	return aws.Credentials{AccessKeyID: c.key, SecretAccessKey: c.secret, SessionToken: tok,
		CanExpire: true, Expires: now.Add(credentialLife), Source: "soak"}, nil
}

// expired reports whether a session token is unknown or expired long ago
// (a request signed just before its expiry may arrive just after).
func (c *expiringCredentials) expired(tok string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.issued[tok]
	return !ok || time.Since(exp) > 5*time.Second
}

func (c *expiringCredentials) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.issued)
}

// TestSoakTimerDriver runs the agent's timer driver in-process through
// simulated days (SOAK_AGENT_DAYS, default 30) of hourly TTLs, with the
// real SDK against the emulated AWS and credentials that keep expiring:
// every refresh succeeds in one batch per service, the front never sees an
// expired credential, and heap and goroutines stay flat.
func TestSoakTimerDriver(t *testing.T) {
	days := 30
	if v := os.Getenv("SOAK_AGENT_DAYS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("SOAK_AGENT_DAYS=%q: want a whole number of days from 1", v)
		}
		days = n
	}
	aw := awstest.Start(t)
	creds := &expiringCredentials{key: aw.Credentials.AccessKeyID, secret: aw.Credentials.SecretAccessKey, issued: map[string]time.Time{}}
	var (
		mu       sync.Mutex // protects expiredUse, calls
		expired  int
		calls    = map[string]int{}
		secrets  = make([]string, 10)
		params   = make([]string, 10)
		ctx      = context.Background()
		duration = time.Duration(days) * 24 * time.Hour
	)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if creds.expired(r.Header.Get("X-Amz-Security-Token")) {
			expired++
		}
		calls[opName(r.Header.Get("X-Amz-Target"))]++
		mu.Unlock()
		aw.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	for i := range secrets {
		secrets[i] = fmt.Sprintf("soak/secret-%02d", i)
		params[i] = fmt.Sprintf("/soak/param-%02d", i)
		if _, err := aw.PutSecretString(ctx, secrets[i], "v0"); err != nil {
			t.Fatal(err)
		}
		if _, err := aw.PutParameter(ctx, params[i], "v0", "String"); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("AWS_REGION", aw.Region())
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", front.URL)
	t.Setenv("AWS_ENDPOINT_URL_SSM", front.URL)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)

	env := map[string]string{
		"AWS_TOKEN":                   token,
		"SECRETS_PREFETCH_SECRETS":    strings.Join(secrets, ","),
		"SECRETS_PREFETCH_PARAMETERS": strings.Join(params, ","),
		"SECRETS_MANAGER_TTL":         "3600",
		"SSM_PARAMETER_STORE_TTL":     "3600",
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	clock := &soakClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	armed := make(chan *soakTimer, 1)
	refreshed := make(chan cache.RefreshReport) // unbuffered: a report is taken before the next timer is armed
	ready := make(chan struct{})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.RunAgent(runCtx, app.AgentOptions{
			Getenv:   func(k string) string { return env[k] },
			Stdout:   newLogBuf(),
			Version:  "soak",
			Listener: l,
			Ready:    func() { close(ready) },
			Now:      clock.Now,
			NewTimer: func(d time.Duration) app.Timer {
				t := &soakTimer{d: d, c: make(chan time.Time, 1)}
				select {
				case armed <- t:
				case <-runCtx.Done():
				}
				return t
			},
			Refreshed: func(r cache.RefreshReport) {
				select {
				case refreshed <- r:
				case <-runCtx.Done():
				}
			},
			AWSConfig: func(c *aws.Config) { c.Credentials = creds },
		})
	}()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("RunAgent: %v", err)
			}
		case <-time.After(waitFor):
			t.Error("the agent did not stop")
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("the agent stopped during its prefetch: %v", err)
	case <-time.After(waitFor):
		t.Fatal("no prefetch")
	}

	start := clock.Now()
	var (
		rounds            int
		warmHeap, maxHeap uint64
		warmGoroutines    int
		maxGoroutines     int
		sample            = func() (uint64, int) {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return m.HeapInuse, runtime.NumGoroutine()
		}
		lastDay = -1
	)
	for clock.Now().Sub(start) < duration {
		select {
		case tm := <-armed:
			// To the timer's deadline (a timer re-armed for the same
			// deadline does not move the clock twice).
			clock.advanceTo(armedAt(clock, tm))
			tm.c <- clock.Now()
		case rep := <-refreshed:
			if rep.Failed > 0 {
				t.Fatalf("a refresh failed on day %d: %+v", int(clock.Now().Sub(start)/(24*time.Hour)), rep.Errors)
			}
			if rep.Due == 0 {
				continue
			}
			if rep.Due != len(secrets)+len(params) {
				t.Fatalf("a refresh round took %d entries, want all %d in one round", rep.Due, len(secrets)+len(params))
			}
			rounds++
			if day := int(clock.Now().Sub(start) / (24 * time.Hour)); day != lastDay {
				lastDay = day
				// A value changed each day, seen by the next round.
				if _, err := aw.UpdateSecret(ctx, secrets[day%len(secrets)], "day-"+strconv.Itoa(day)); err != nil {
					t.Fatal(err)
				}
			}
			if rounds == 20 {
				warmHeap, warmGoroutines = sample()
			} else if rounds > 20 && rounds%100 == 0 {
				h, g := sample()
				maxHeap, maxGoroutines = max(maxHeap, h), max(maxGoroutines, g)
			}
		case err := <-done:
			t.Fatalf("the agent stopped: %v", err)
		case <-time.After(waitFor):
			t.Fatalf("no timer or refresh within %v (round %d)", waitFor, rounds)
		}
	}
	endHeap, endGoroutines := sample()
	maxHeap, maxGoroutines = max(maxHeap, endHeap), max(maxGoroutines, endGoroutines)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d days: %d refresh rounds, %d credentials issued, calls %v; heap in use %d KiB after warm-up, at most %d KiB later; goroutines %d, at most %d",
		days, rounds, creds.count(), calls, warmHeap>>10, maxHeap>>10, warmGoroutines, maxGoroutines)
	// One round per ~0.72–0.8 of the hour-long TTL.
	if want := int(duration / time.Hour); rounds < want {
		t.Errorf("%d refresh rounds in %d days, want at least %d", rounds, days, want)
	}
	if calls[awstest.OpBatchGetSecretValue] < rounds || calls[awstest.OpGetParameters] < rounds {
		t.Errorf("calls %v for %d rounds: want one batch per service per round", calls, rounds)
	}
	if calls[awstest.OpGetSecretValue] != 0 || calls[awstest.OpGetParameter] != 0 {
		t.Errorf("single-item calls %v: the timer refreshes in batches", calls)
	}
	if creds.count() < 10 {
		t.Errorf("credentials issued %d times: want them renewed through the soak", creds.count())
	}
	if expired > 0 {
		t.Errorf("%d calls signed with expired credentials", expired)
	}
	// Flat: the heap (kumo's own included) within 8 MiB of its warm size,
	// goroutines within a handful (idle connections come and go).
	if maxHeap > warmHeap+8<<20 {
		t.Errorf("heap in use grew from %d KiB to %d KiB", warmHeap>>10, maxHeap>>10)
	}
	if maxGoroutines > warmGoroutines+10 {
		t.Errorf("goroutines grew from %d to %d", warmGoroutines, maxGoroutines)
	}
}
