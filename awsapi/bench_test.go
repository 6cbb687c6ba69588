package awsapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// BenchmarkServeGetSecretValue is the handler's own cost of a cached
// GetSecretValue: the signature check, the cache read and the answer,
// without the network or the client.
func BenchmarkServeGetSecretValue(b *testing.B) {
	w := newWorld(&testing.T{})
	w.cache.put(b, source.SecretKey("prod/db"))
	body := `{"SecretId":"prod/db"}`
	r := w.signed(b, "secretsmanager.GetSecretValue", body, testCreds, "secretsmanager", testRegion, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		r.Body = io.NopCloser(bytes.NewReader([]byte(body)))
		rec := httptest.NewRecorder()
		w.h.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
