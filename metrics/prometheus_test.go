package metrics

import (
	"bytes"
	"math"
	"testing"
)

func TestWritePrometheus(t *testing.T) {
	var b bytes.Buffer
	err := WritePrometheus(&b, "secrets_prefetch", []Metric{
		{Name: "CacheHits", Unit: Count, Value: 3},
		{Name: "AWSErrorsAccessDenied", Unit: Count, Value: 0, Sparse: true},
		{Name: "BatchGetSecretValueCalls", Unit: Count, Value: 2},
		{Name: "CacheEntries", Unit: Gauge, Value: 1000},
		{Name: "PrefetchDuration", Unit: Milliseconds, Value: 1500},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `# TYPE secrets_prefetch_cache_hits_total counter
secrets_prefetch_cache_hits_total 3
# TYPE secrets_prefetch_aws_errors_access_denied_total counter
secrets_prefetch_aws_errors_access_denied_total 0
# TYPE secrets_prefetch_batch_get_secret_value_calls_total counter
secrets_prefetch_batch_get_secret_value_calls_total 2
# TYPE secrets_prefetch_cache_entries gauge
secrets_prefetch_cache_entries 1000
# TYPE secrets_prefetch_prefetch_duration_seconds gauge
secrets_prefetch_prefetch_duration_seconds 1.5
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if err := WritePrometheus(&b, "p", []Metric{{Name: "X", Value: math.NaN()}}); err == nil {
		t.Error("NaN: no error")
	}
	if err := WritePrometheus(&b, "p", []Metric{{Name: "X"}, {Name: "X"}}); err == nil {
		t.Error("a name twice: no error")
	}
}
