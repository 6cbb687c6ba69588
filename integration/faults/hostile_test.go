package faults_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
	"github.com/secrets-prefetch/secrets-prefetch/localserver"
)

// hostileCase is one request a misbehaving caller might send.
type hostileCase struct {
	name   string
	method string   // GET if empty
	path   string   // sent as is
	header []string // pairs; the token is added unless noToken
	// noToken sends no token header.
	noToken bool
	status  int
	code    string // "" accepts any code (an AWS one)
}

// TestHostileInputThroughTheServer sends a barrage of malformed, oversized
// and unauthorised requests through the real server of a running extension.
// Each gets a 4xx JSON error with a code that says what was wrong, none
// brings the extension down, and afterwards the cache is intact: the
// prefetched items are still hits with the same bodies, although the cache
// is small and the barrage names many items AWS doesn't have.
func TestHostileInputThroughTheServer(t *testing.T) {
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":                     "kept-secret,plain-secret,binary-secret",
			"SECRETS_PREFETCH_PARAMETERS":                  "/kept/param",
			"PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE":      "6",
			"PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS": "3",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[string](t)(a.PutSecretString(ctx, "kept-secret", `{"user":"u","password":"p"}`))
			exttest.Must[string](t)(a.PutSecretString(ctx, "plain-secret", "not json at all"))
			exttest.Must[string](t)(a.PutSecretBinary(ctx, "binary-secret", []byte{0, 1, 2, 0xff}))
			exttest.Must[int64](t)(a.PutParameter(ctx, "/kept/param", "kept-value", "SecureString"))
		},
	})
	e.WaitReady(t)
	kept := []string{exttest.SecretPath("kept-secret"), exttest.ParamPath("/kept/param")}
	before := map[string]exttest.Response{}
	for _, p := range kept {
		r := e.Get(t, p)
		if r.Status != http.StatusOK || r.XCache != "hit" {
			t.Fatalf("%s before the barrage: %v", p, r)
		}
		before[p] = r
	}

	long := strings.Repeat("a", 10000)
	sp, pp := "/secretsmanager/get?", "/systemsmanager/parameters/get?"
	cases := []hostileCase{
		{name: "no token", path: sp + "secretId=kept-secret", noToken: true, status: 401, code: "MissingToken"},
		{name: "empty token", path: sp + "secretId=kept-secret", noToken: true, header: []string{localserver.TokenHeader, ""}, status: 401, code: "MissingToken"},
		{name: "wrong token", path: sp + "secretId=kept-secret", noToken: true, header: []string{localserver.TokenHeader, "guess"}, status: 403, code: "InvalidToken"},
		{name: "token prefix", path: sp + "secretId=kept-secret", noToken: true, header: []string{localserver.TokenHeader, exttest.Token[:len(exttest.Token)-1]}, status: 403, code: "InvalidToken"},
		{name: "token plus a byte", path: sp + "secretId=kept-secret", noToken: true, header: []string{localserver.TokenHeader, exttest.Token + "x"}, status: 403, code: "InvalidToken"},
		{name: "token in the query", path: sp + "secretId=kept-secret&" + localserver.TokenHeader + "=" + exttest.Token, noToken: true, status: 401, code: "MissingToken"},
		{name: "X-Forwarded-For", path: sp + "secretId=kept-secret", header: []string{"X-Forwarded-For", "203.0.113.7"}, status: 403, code: "ForwardedRequestRefused"},
		{name: "X-Forwarded-For on ping", path: "/ping", header: []string{"X-Forwarded-For", "203.0.113.7"}, status: 403, code: "ForwardedRequestRefused"},
		{name: "POST", method: http.MethodPost, path: sp + "secretId=kept-secret", status: 405, code: "MethodNotAllowed"},
		{name: "PUT", method: http.MethodPut, path: sp + "secretId=kept-secret", status: 405, code: "MethodNotAllowed"},
		{name: "DELETE", method: http.MethodDelete, path: sp + "secretId=kept-secret", status: 405, code: "MethodNotAllowed"},
		{name: "PATCH", method: http.MethodPatch, path: pp + "name=/kept/param", status: 405, code: "MethodNotAllowed"},
		{name: "OPTIONS", method: http.MethodOptions, path: sp + "secretId=kept-secret", status: 405, code: "MethodNotAllowed"},
		{name: "TRACE", method: http.MethodTrace, path: sp + "secretId=kept-secret", status: 405, code: "MethodNotAllowed"},
		{name: "made-up method", method: "BREW", path: sp + "secretId=kept-secret", status: 405, code: "MethodNotAllowed"},
		{name: "unknown path", path: "/secretsmanager/list", status: 404, code: "UnknownPath"},
		{name: "dot-dot in the path", path: "/secretsmanager/../ping", status: 404, code: "UnknownPath"},
		{name: "encoded dot-dot in the path", path: "/secretsmanager/get/..%2F..%2Fping", status: 404, code: "UnknownPath"},
		{name: "bad percent-encoding", path: sp + "secretId=%zz", status: 400, code: "MalformedQueryString"},
		{name: "truncated percent-encoding", path: sp + "secretId=abc%", status: 400, code: "MalformedQueryString"},
		{name: "bad percent-encoding in a key", path: pp + "na%GGme=/kept/param", status: 400, code: "MalformedQueryString"},
		{name: "duplicate parameter", path: sp + "secretId=kept-secret&secretId=other", status: 400, code: "DuplicateParameter"},
		{name: "missing id", path: sp + "versionStage=AWSCURRENT", status: 400, code: "MissingParameter"},
		{name: "empty name", path: pp + "name=", status: 400, code: "MissingParameter"},
		{name: "only separators", path: sp + "&&=&=", status: 400, code: "DuplicateParameter"},
		{name: "NUL in a name", path: sp + "secretId=kept%00secret", status: 400, code: "InvalidParameterValue"},
		{name: "newline in a name", path: pp + "name=/kept/param%0Ainjected=1", status: 400, code: "InvalidParameterValue"},
		{name: "DEL in a name", path: sp + "secretId=a%7Fb", status: 400, code: "InvalidParameterValue"},
		{name: "C1 control in a name", path: sp + "secretId=a%C2%85b", status: 400, code: "InvalidParameterValue"},
		{name: "invalid UTF-8 in a name", path: sp + "secretId=a%FFb", status: 400, code: "InvalidParameterValue"},
		{name: "10,000-character secret id", path: sp + "secretId=" + long, status: 400, code: "InvalidParameterValue"},
		{name: "10,000-character parameter name", path: pp + "name=/" + long, status: 400, code: "InvalidParameterValue"},
		{name: "10,000-character jsonKey", path: sp + "secretId=kept-secret&jsonKey=" + long, status: 400, code: "InvalidJSONKey"},
		{name: "10,000-character version stage", path: sp + "secretId=kept-secret&versionStage=" + long, status: 400, code: "InvalidParameterValue"},
		{name: "both secret version selectors", path: sp + "secretId=kept-secret&versionId=abc&versionStage=AWSPREVIOUS", status: 400, code: "ConflictingParameters"},
		{name: "name selector and version", path: pp + "name=/kept/param:1&version=1", status: 400, code: "ConflictingParameters"},
		{name: "version and label", path: pp + "name=/kept/param&version=1&label=prod", status: 400, code: "ConflictingParameters"},
		{name: "version zero", path: pp + "name=/kept/param&version=0", status: 400, code: "InvalidParameterValue"},
		{name: "label with a slash", path: pp + "name=/kept/param&label=../x", status: 400, code: "InvalidParameterValue"},
		{name: "empty selector", path: pp + "name=/kept/param:", status: 400, code: "InvalidParameterValue"},
		{name: "bad boolean", path: pp + "name=/kept/param&withDecryption=yes", status: 400, code: "InvalidParameterValue"},
		{name: "empty jsonKey", path: sp + "secretId=kept-secret&jsonKey=", status: 400, code: "InvalidJSONKey"},
		{name: "jsonKey on a non-JSON value", path: sp + "secretId=plain-secret&jsonKey=password", status: 400, code: "ValueNotJSON"},
		{name: "jsonKey on a binary secret", path: sp + "secretId=binary-secret&jsonKey=password", status: 400, code: "ValueNotJSON"},
		{name: "jsonKey on a non-JSON parameter", path: pp + "name=/kept/param&jsonKey=password", status: 400, code: "ValueNotJSON"},
		{name: "jsonKey not in the value", path: sp + "secretId=kept-secret&jsonKey=nope", status: 400, code: "JSONKeyNotFound"},
		// Names AWS doesn't have: fetched (lazy is on) and refused by AWS.
		{name: "dot-dot secret id", path: sp + "secretId=../../etc/passwd", status: 404},
		{name: "dot-dot parameter name", path: pp + "name=/kept/../../etc/passwd", status: 404},
		{name: "dot-dot relative parameter name", path: pp + "name=..%2F..%2Fetc%2Fshadow", status: 404},
	}
	// Many distinct names AWS doesn't have, more than the cache holds.
	for i := range 20 {
		cases = append(cases, hostileCase{name: fmt.Sprintf("missing secret %d", i), path: sp + fmt.Sprintf("secretId=missing-%d", i), status: 404, code: awstest.CodeResourceNotFound})
	}
	for _, c := range cases {
		method := c.method
		if method == "" {
			method = http.MethodGet
		}
		header := c.header
		if !c.noToken {
			header = append([]string{localserver.TokenHeader, exttest.Token}, header...)
		}
		r := e.Do(t.Context(), method, c.path, header...)
		if r.Err != nil {
			t.Errorf("%s: %v, want %d", c.name, r.Err, c.status)
			continue
		}
		if r.Status != c.status || r.ContentType != "application/json" || r.Code() == "" || c.code != "" && r.Code() != c.code {
			t.Errorf("%s: %d %s %q, want %d JSON %s", c.name, r.Status, r.ContentType, r.Body, c.status, c.code)
		}
		if r.XCache != "" || r.Age != "" {
			t.Errorf("%s: an error with X-Cache %q, Age %q", c.name, r.XCache, r.Age)
		}
		// HEAD gets the same status, without a body.
		if method == http.MethodGet {
			h := e.Do(t.Context(), http.MethodHead, c.path, header...)
			if h.Status != c.status || h.Body != "" {
				t.Errorf("%s as HEAD: %d %q, want %d and no body", c.name, h.Status, h.Body, c.status)
			}
		}
	}

	checkServerLimits(t, e)

	// The cache is intact: the prefetched items are hits, with the same bodies.
	e.AWS.ResetCalls()
	for _, p := range kept {
		r := e.Get(t, p)
		if r.Status != http.StatusOK || r.XCache != "hit" || r.Body != before[p].Body {
			t.Errorf("%s after the barrage: %v, want the same body as a hit", p, r)
		}
	}
	if calls := e.AWS.AllCalls(); len(calls) != 0 {
		t.Errorf("reading the kept items after the barrage called AWS: %v", calls)
	}
	if r := e.Do(t.Context(), http.MethodGet, "/ping"); r.Status != http.StatusOK {
		t.Errorf("ping after the barrage: %v", r)
	}
}

// checkServerLimits sends what net/http itself refuses before the
// extension's handler runs: request lines and headers past the server's
// MaxHeaderBytes, and malformed request lines. net/http answers those in
// plain text (431 or 400) and closes the connection; the status is what a
// client can rely on. The server keeps serving.
func checkServerLimits(t *testing.T, e *exttest.Ext) {
	t.Helper()
	huge := strings.Repeat("b", 64<<10)
	tests := []struct {
		name    string
		request string
		status  int
	}{
		{"64 KiB URL", "GET /secretsmanager/get?secretId=" + huge + " HTTP/1.1\r\nHost: x\r\n" + localserver.TokenHeader + ": " + exttest.Token + "\r\n\r\n", 431},
		{"64 KiB header", "GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + huge + "\r\n\r\n", 431},
		{"many headers", "GET /ping HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 4000) + "\r\n", 431},
		{"control character in the URL", "GET /secretsmanager/get?secretId=a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"space in the URL", "GET /secretsmanager/get?secretId=a b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"no Host", "GET /ping HTTP/1.1\r\n\r\n", 400},
		{"bad header line", "GET /ping HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400},
		{"bad version", "GET /ping HTTP/9.9\r\nHost: x\r\n\r\n", 505},
	}
	for _, tt := range tests {
		status, err := rawRequest(e.Addr, tt.request)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if status != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, status, tt.status)
		}
	}
}

// rawRequest writes request on a new connection and returns the status of
// the answer.
func rawRequest(addr, request string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// The server may answer and close before it has read everything.
	go io.WriteString(c, request)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, nil
}

// TestTooManyConcurrentReads: with every request slot taken by reads waiting
// for AWS, further reads get 429 at once, not a hang, and the waiting ones
// complete when AWS answers.
func TestTooManyConcurrentReads(t *testing.T) {
	const slots, extra = 256, 44 // localserver's default MaxInFlight
	g := newGate(awstest.OpGetSecretValue)
	e := exttest.Start(t, exttest.Setup{
		Env:      map[string]string{"SECRETS_MANAGER_TIMEOUT_MILLIS": "120000"},
		Endpoint: g.wrap,
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[string](t)(a.PutSecretString(ctx, "busy", "busy-value"))
		},
	})
	t.Cleanup(g.open)
	e.WaitReady(t)
	results := make(chan exttest.Response, slots+extra)
	for range slots + extra {
		go func() { results <- e.Get(t, exttest.SecretPath("busy")) }()
	}
	recv(t, g.arrived, "the fetch to reach AWS")
	// The reads beyond the slots are answered while AWS still holds the
	// fetch: nothing else can finish before the gate opens.
	for i := range extra {
		select {
		case r := <-results:
			if r.Status != http.StatusTooManyRequests || r.Code() != "TooManyRequests" {
				t.Fatalf("answer %d while every slot waits: %v, want 429 TooManyRequests", i, r)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of the %d reads past the limit were answered", i, extra)
		}
	}
	select {
	case r := <-results:
		t.Fatalf("an answer before AWS answered, past the %d refused: %v", extra, r)
	default:
	}
	g.open()
	for i := range slots {
		select {
		case r := <-results:
			if r.Status != http.StatusOK || exttest.ValueOf(t, r) != "busy-value" {
				t.Errorf("waiting read %d: %v, want its value", i, r)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of the %d waiting reads completed", i, slots)
		}
	}
	if n := e.AWS.Calls(awstest.OpGetSecretValue); n != 1 {
		t.Errorf("%d concurrent reads of one item made %d GetSecretValue calls, want 1", slots, n)
	}
}

// TestLazyFloodIsBounded: callers that ask for many distinct names and give
// up at once, while AWS never answers, cannot pile up fetches without bound:
// at most 256 fetches of unlisted names run at once (cache.MaxLazyFetches),
// further such reads get 429 at once, and the extension keeps serving what
// it has.
func TestLazyFloodIsBounded(t *testing.T) {
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":       "kept",
			"SECRETS_MANAGER_TIMEOUT_MILLIS": "10000",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[string](t)(a.PutSecretString(ctx, "kept", "kept-value"))
		},
	})
	e.WaitReady(t)
	e.AWS.Inject(awstest.OpAll, awstest.BlackHole())
	base := runtime.NumGoroutine()

	const clients, perClient, maxFetches = 16, 100, 256
	var (
		sent atomic.Int64
		wg   sync.WaitGroup
	)
	for c := range clients {
		wg.Go(func() {
			for i := range perClient {
				// Each caller gives up almost at once.
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
				e.Do(ctx, http.MethodGet, exttest.SecretPath(fmt.Sprintf("flood-%d-%d", c, i)), localserver.TokenHeader, exttest.Token)
				cancel()
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	// The abandoned fetches live for the 10 s timeout, longer than the flood.
	fetches := goroutinesIn("cache.(*Cache).fetchOne")
	t.Logf("%d abandoned reads of distinct names against a black hole: goroutines %d before, %d after; %d fetches in flight",
		sent.Load(), base, runtime.NumGoroutine(), fetches)
	if fetches > maxFetches {
		t.Errorf("%d read-started fetches in flight, want at most %d", fetches, maxFetches)
	}
	if fetches < maxFetches/2 {
		t.Errorf("only %d fetches in flight: the flood did not reach the bound, the test proves nothing", fetches)
	}
	// At the bound, a read of yet another name is refused at once.
	if r := e.Get(t, exttest.SecretPath("one-more")); r.Status != http.StatusTooManyRequests || r.Code() != "TooManyRequests" {
		t.Errorf("a new name at the bound: %v, want 429 TooManyRequests", r)
	}
	if r := e.Get(t, exttest.SecretPath("kept")); r.Status != http.StatusOK || r.XCache != "hit" {
		t.Errorf("kept after the flood: %v, want a hit", r)
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
