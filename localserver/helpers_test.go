package localserver

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

const testToken = "test-session-token"

// getCall is one recorded Cache.Get.
type getCall struct {
	key        source.Key
	refreshNow bool
}

// fakeCache records its calls and answers with get (by default: a hit on
// defaultItem). Safe for concurrent use.
type fakeCache struct {
	get func(ctx context.Context, key source.Key, refreshNow bool) (cache.Result, error)

	mu    sync.Mutex // protects calls
	calls []getCall
}

var defaultItem = &source.Item{
	Body: []byte(`{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf","CreatedDate":"2022-11-16T08:22:40.499Z","Name":"db","SecretBinary":null,"SecretString":"{\"user\":\"u\"}","VersionId":"v1","VersionStages":["AWSCURRENT"],"ResultMetadata":{}}`),
	Text: []byte(`{"user":"u"}`),
}

func (f *fakeCache) Get(ctx context.Context, key source.Key, refreshNow bool) (cache.Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, getCall{key, refreshNow})
	get := f.get
	f.mu.Unlock()
	if get == nil {
		return cache.Result{Item: defaultItem, Status: cache.Hit}, nil
	}
	return get(ctx, key, refreshNow)
}

func (f *fakeCache) recorded() []getCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]getCall(nil), f.calls...)
}

// itemCache answers every read with a hit on it.
func itemCache(it *source.Item) *fakeCache {
	return &fakeCache{get: func(context.Context, source.Key, bool) (cache.Result, error) {
		return cache.Result{Item: it, Status: cache.Hit}, nil
	}}
}

// errCache answers every read with err.
func errCache(err error) *fakeCache {
	return &fakeCache{get: func(context.Context, source.Key, bool) (cache.Result, error) {
		return cache.Result{}, err
	}}
}

func newServer(c Cache, edit ...func(*Options)) *Server {
	o := Options{Cache: c, Token: testToken}
	for _, e := range edit {
		e(&o)
	}
	return New(o)
}

// serve runs one request through s.ServeHTTP. token "" sends no token header.
func serve(s http.Handler, method, target, token string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	if token != "" {
		r.Header.Set(TokenHeader, token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// errorCode decodes an error body strictly: {"error":{"code","message"}} and
// nothing else.
func errorCode(t *testing.T, w *httptest.ResponseRecorder) (code, msg string) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	var b struct {
		Error *struct {
			Code    *string `json:"code"`
			Message *string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || dec.More() {
		t.Fatalf("error body %q: not {\"error\":{\"code\",\"message\"}}: %v", w.Body.String(), err)
	}
	if b.Error == nil || b.Error.Code == nil || b.Error.Message == nil || *b.Error.Code == "" || *b.Error.Message == "" {
		t.Fatalf("error body %q: want error.code and error.message set", w.Body.String())
	}
	return *b.Error.Code, *b.Error.Message
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
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

// debugLogger logs everything, at debug level and up, to the returned buffer.
func debugLogger() (*slog.Logger, *syncBuffer) {
	var buf syncBuffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

func mustNotContain(t *testing.T, what, s string, secrets ...string) {
	t.Helper()
	for _, v := range secrets {
		if strings.Contains(s, v) {
			t.Errorf("%s contains the secret value %q:\n%s", what, v, s)
		}
	}
}
