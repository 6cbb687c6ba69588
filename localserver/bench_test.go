package localserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unsafe"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// staticCache answers every read with one result, recording nothing, so the
// benchmarks measure the server rather than a fake.
type staticCache struct{ res cache.Result }

func (c staticCache) Get(context.Context, source.Key, bool) (cache.Result, error) {
	return c.res, nil
}

func benchRequest(target string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Header.Set(TokenHeader, testToken)
	return r
}

// BenchmarkServeHit is a cached read through the whole handler: auth, query
// parsing, the in-flight bound, headers and the body. Compare with
// BenchmarkFloor, which writes the same bytes and nothing else.
func BenchmarkServeHit(b *testing.B) {
	s := newServer(staticCache{cache.Result{Item: defaultItem, Status: cache.Hit}})
	r := benchRequest("/secretsmanager/get?secretId=%2Fapp%2Fdb&versionStage=AWSCURRENT")
	b.ReportAllocs()
	b.SetBytes(int64(len(defaultItem.Body)))
	for b.Loop() {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// BenchmarkServeJSONKey is a cached read with jsonKey extraction.
func BenchmarkServeJSONKey(b *testing.B) {
	s := newServer(staticCache{cache.Result{Item: defaultItem, Status: cache.Hit}})
	r := benchRequest("/secretsmanager/get?secretId=db&jsonKey=user")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// BenchmarkFloor is the least a handler can do for the same answer: the
// recorder and the body write that BenchmarkServeHit can't avoid.
func BenchmarkFloor(b *testing.B) {
	body := defaultItem.Body
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})
	r := benchRequest("/secretsmanager/get?secretId=%2Fapp%2Fdb&versionStage=AWSCURRENT")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// BenchmarkTokenMatches is the token check of every request, for a short
// token and one of a Lambda session token's length, beside the check it
// replaced: the presented value hashed with SHA-256 and the digests compared.
func BenchmarkTokenMatches(b *testing.B) {
	for _, n := range []int{len(testToken), 1100} {
		token := strings.Repeat("t", n)
		s := newServer(&fakeCache{}, func(o *Options) { o.Token = token })
		b.Run(fmt.Sprintf("padded/chars=%d", n), func(b *testing.B) {
			for b.Loop() {
				if !s.tokenMatches(token) {
					b.Fatal("the token did not match")
				}
			}
		})
		want := sha256.Sum256([]byte(token))
		b.Run(fmt.Sprintf("sha256/chars=%d", n), func(b *testing.B) {
			for b.Loop() {
				got := sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
				if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
					b.Fatal("the token did not match")
				}
			}
		})
	}
}
