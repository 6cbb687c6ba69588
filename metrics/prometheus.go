package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// PrometheusContentType is the media type of WritePrometheus's output, the
// Prometheus text exposition format 0.0.4.
const PrometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

// Gauge marks a metric written as a gauge rather than a counter: a value
// that goes up and down (entries held, readiness).
const Gauge Unit = "Gauge"

// WritePrometheus writes the metrics in the Prometheus text format, each
// named prefix_snake_case (CacheHits -> secrets_prefetch_cache_hits_total
// for prefix secrets_prefetch): Count metrics as counters with _total,
// Gauge metrics as gauges, Milliseconds as gauges in seconds. Sparse
// metrics are written even when 0: a scraper wants a stable series. The
// format is small enough that a client library would cost more binary
// than it saves code.
func WritePrometheus(w io.Writer, prefix string, metrics []Metric) error {
	bw := bufio.NewWriter(w)
	seen := make(map[string]bool, len(metrics))
	for _, m := range metrics {
		if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
			return fmt.Errorf("metrics: %s is %v", m.Name, m.Value)
		}
		name, typ, v := prefix+"_"+snake(m.Name), "gauge", m.Value
		switch m.Unit {
		case Count:
			name, typ = name+"_total", "counter"
		case Milliseconds:
			name, v = name+"_seconds", v/1000
		}
		if seen[name] {
			return fmt.Errorf("metrics: %s is written twice", name)
		}
		seen[name] = true
		fmt.Fprintf(bw, "# TYPE %s %s\n%s %s\n", name, typ, name, strconv.FormatFloat(v, 'g', -1, 64))
	}
	return bw.Flush()
}

// snake turns CacheHits into cache_hits and AWSCalls into aws_calls:
// an underscore before an upper-case letter that follows a lower-case one,
// or that starts a word after an acronym.
func snake(s string) string {
	var b strings.Builder
	r := []rune(s)
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 {
			prevLower := unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1])
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
			if prevLower || (unicode.IsUpper(r[i-1]) && nextLower) {
				b.WriteByte('_')
			}
		}
		if !(unicode.IsLetter(c) || unicode.IsDigit(c)) {
			c = '_'
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
