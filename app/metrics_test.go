package app

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/metrics"
)

// emfLines returns the EMF lines among the extension's output, parsed.
func emfLines(t *testing.T, out string) []metrics.Line {
	t.Helper()
	var ls []metrics.Line
	for line := range strings.Lines(out) {
		if !strings.HasPrefix(line, "{") || !strings.Contains(line, `"_aws":`) {
			continue
		}
		l, err := metrics.Parse([]byte(line))
		if err != nil {
			t.Fatalf("not valid EMF: %v\n%s", err, line)
		}
		ls = append(ls, l)
	}
	return ls
}

// TestMetricsLines drives Init, two INVOKEs and SHUTDOWN and checks the EMF
// lines against what happened: a line at the first INVOKE (with Init's
// prefetch), none at the second (within the minute), the rest at SHUTDOWN.
func TestMetricsLines(t *testing.T) {
	for _, format := range []string{"Text", "JSON"} {
		t.Run(format, func(t *testing.T) {
			h := newHarness(t, map[string]string{
				"SECRETS_PREFETCH_SECRETS": "db, api",
				"SECRETS_PREFETCH_METRICS": "true",
				"AWS_LAMBDA_FUNCTION_NAME": "orders",
				"AWS_LAMBDA_LOG_FORMAT":    format,
			})
			h.start(t, t.Context())
			select {
			case <-h.ready:
			case err := <-h.result:
				t.Fatalf("Run returned before ready: %v\n%s", err, h.out.String())
			}
			// Before the first INVOKE: two hits, one read of a secret that
			// does not exist (a GetSecretValue, not found).
			for _, p := range []string{"/secretsmanager/get?secretId=db", "/secretsmanager/get?secretId=api&jsonKey=key"} {
				if status, _ := h.get(t, p); status != http.StatusOK {
					t.Fatalf("%s: %d", p, status)
				}
			}
			if status, _ := h.get(t, "/secretsmanager/get?secretId=nope"); status != http.StatusNotFound {
				t.Fatalf("missing secret: status %d, want 404", status)
			}
			if n := len(emfLines(t, h.out.String())); n != 0 {
				t.Fatalf("%d EMF lines before the first INVOKE, want 0", n)
			}

			h.api.Push(extapitest.Invoke("req-1", time.Now().Add(3*time.Second)))
			if err := h.rec.WaitNext(t.Context(), 2); err != nil {
				t.Fatal(err)
			}
			if n := len(emfLines(t, h.out.String())); n != 1 {
				t.Fatalf("%d EMF lines after the first INVOKE, want 1:\n%s", n, h.out.String())
			}
			h.get(t, "/secretsmanager/get?secretId=db")
			h.api.Push(extapitest.Invoke("req-2", time.Now().Add(3*time.Second)))
			if err := h.rec.WaitNext(t.Context(), 3); err != nil {
				t.Fatal(err)
			}
			h.api.Push(extapitest.Shutdown(extapitest.ReasonSpindown, time.Now().Add(2*time.Second)))
			if err := h.wait(t); err != nil {
				t.Fatalf("Run = %v", err)
			}

			ls := emfLines(t, h.out.String())
			if len(ls) != 2 {
				t.Fatalf("%d EMF lines, want 2 (first INVOKE, SHUTDOWN):\n%s", len(ls), h.out.String())
			}
			want := []struct {
				trigger string
				values  map[string]float64
			}{
				{"invoke", map[string]float64{
					"Invokes": 1, "CacheHits": 2, "CacheMisses": 0, "CacheStaleServes": 0, "CacheErrors": 1,
					"Refreshes": 0, "RefreshErrors": 0,
					"AWSCalls": 2, "BatchGetSecretValueCalls": 1, "GetSecretValueCalls": 1,
					"AWSErrors": 1, "AWSErrorsNotFound": 1,
					"PrefetchItems": 2, "PrefetchFailures": 0,
				}},
				{"shutdown:spindown", map[string]float64{
					"Invokes": 1, "CacheHits": 1, "CacheMisses": 0, "CacheStaleServes": 0, "CacheErrors": 0,
					"Refreshes": 0, "RefreshErrors": 0, "AWSCalls": 0, "AWSErrors": 0,
				}},
			}
			for i, w := range want {
				l := ls[i]
				if l.Namespace != "SecretsPrefetch" || l.Dimensions["FunctionName"] != "orders" || len(l.Dimensions) != 1 {
					t.Errorf("line %d: namespace %q dimensions %v", i, l.Namespace, l.Dimensions)
				}
				if l.Properties["trigger"] != w.trigger || l.Properties["version"] != "test" {
					t.Errorf("line %d: properties %v, want trigger %s", i, l.Properties, w.trigger)
				}
				if time.Since(l.Timestamp).Abs() > time.Minute {
					t.Errorf("line %d: timestamp %v is not now", i, l.Timestamp)
				}
				// The prefetch duration is measured: present and positive
				// in the first line only.
				d, ok := l.Values["PrefetchDuration"]
				if (i == 0) != ok || (ok && (d <= 0 || l.Units["PrefetchDuration"] != metrics.Milliseconds)) {
					t.Errorf("line %d: PrefetchDuration = %v (present %v)", i, d, ok)
				}
				delete(l.Values, "PrefetchDuration")
				for k, v := range w.values {
					if got, ok := l.Values[k]; !ok || got != v || l.Units[k] != metrics.Count {
						t.Errorf("line %d: %s = %v %s (present %v), want %v Count", i, k, got, l.Units[k], ok, v)
					}
				}
				for k, v := range l.Values {
					if _, ok := w.values[k]; !ok {
						t.Errorf("line %d: unexpected metric %s = %v", i, k, v)
					}
				}
			}
		})
	}
}

func TestMetricsOffByDefault(t *testing.T) {
	h := newHarness(t, map[string]string{"SECRETS_PREFETCH_SECRETS": "db"},
		extapitest.Invoke("req-1", time.Now().Add(3*time.Second)),
		extapitest.Shutdown(extapitest.ReasonSpindown, time.Now().Add(2*time.Second)))
	h.start(t, t.Context())
	if err := h.wait(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if strings.Contains(h.out.String(), `"_aws"`) {
		t.Errorf("EMF lines without SECRETS_PREFETCH_METRICS=true:\n%s", h.out.String())
	}
}
