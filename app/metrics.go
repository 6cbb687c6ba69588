package app

import (
	"log/slog"
	"strings"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/config"
	"github.com/secrets-prefetch/secrets-prefetch/metrics"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// metricsNamespace is the CloudWatch namespace of the EMF metrics.
const metricsNamespace = "SecretsPrefetch"

// emf writes the extension's CloudWatch metrics (SECRETS_PREFETCH_METRICS):
// a line at the first INVOKE, then at most one a minute at INVOKEs, and one
// at SHUTDOWN (see package metrics for why). A nil *emf does nothing.
type emf struct {
	rec *metrics.Recorder
	now func() time.Time
	log *slog.Logger
}

// newEMF returns the extension's metrics writer, or nil when they are off.
// Lines go to o.Stdout, which Lambda sends to the function's log group.
func newEMF(cfg config.Config, o Options, e *extension) *emf {
	if !cfg.Metrics {
		return nil
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	function := o.Getenv("AWS_LAMBDA_FUNCTION_NAME")
	if function == "" {
		function = "unknown"
	}
	stats, _ := e.fetcher.(interface{ Stats() source.Stats })
	return &emf{now: now, log: e.log, rec: metrics.NewRecorder(metrics.RecorderOptions{
		Emitter:    metrics.NewEmitter(o.Stdout, metricsNamespace, metrics.Dimension{Name: "FunctionName", Value: function}),
		Counters:   func() []metrics.Metric { return counters(e, stats) },
		Properties: map[string]any{"extension": o.Name, "version": o.Version},
	})}
}

// counters are the cumulative counts a metrics line reports the deltas of.
// The per-API and per-class breakdowns are sparse: CloudWatch bills each
// metric that ever appears, and they are mostly zero.
func counters(e *extension, stats interface{ Stats() source.Stats }) []metrics.Metric {
	c := e.cache.Stats()
	count := func(name string, v uint64) metrics.Metric {
		return metrics.Metric{Name: name, Unit: metrics.Count, Value: float64(v)}
	}
	ms := []metrics.Metric{
		count("CacheHits", c.Hits),         // reads served from memory
		count("CacheMisses", c.Misses),     // reads that fetched from AWS
		count("CacheStaleServes", c.Stale), // reads served past the TTL while AWS failed
		count("CacheErrors", c.Errors),     // reads answered with an error
		count("Refreshes", c.Refreshes),    // entries refreshed at INVOKE
		count("RefreshErrors", c.RefreshErrors),
	}
	if e.awsAPI != nil {
		// Requests to the AWS API endpoint (POST /); its reads are counted
		// as cache reads above too.
		a := e.awsAPI.Stats()
		for _, m := range []metrics.Metric{count("AWSAPIServed", a.Served), count("AWSAPIForwarded", a.Forwarded), count("AWSAPIRefused", a.Refused)} {
			m.Sparse = true
			ms = append(ms, m)
		}
	}
	if stats == nil {
		return ms
	}
	s := stats.Stats()
	ms = append(ms, count("AWSCalls", s.TotalCalls()), count("AWSErrors", s.TotalErrors()))
	if e.cfg.FailoverRegion != "" {
		// Secrets asked of the failover region's replicas.
		ms = append(ms, count("Failovers", s.Failovers))
	}
	for api := range source.NumAPIs {
		m := count(source.API(api).String()+"Calls", s.Calls[api])
		m.Sparse = true
		ms = append(ms, m)
	}
	for class := range source.NumClasses {
		m := count("AWSErrors"+camel(source.Class(class).String()), s.Errors[class])
		m.Sparse = true
		ms = append(ms, m)
	}
	return ms
}

// prefetched adds Init's numbers to the next line.
func (m *emf) prefetched(d time.Duration, items, failed int) {
	if m == nil {
		return
	}
	m.rec.Once(
		metrics.Metric{Name: "PrefetchDuration", Unit: metrics.Milliseconds, Value: float64(d.Microseconds()) / 1000},
		metrics.Metric{Name: "PrefetchItems", Unit: metrics.Count, Value: float64(items)},
		metrics.Metric{Name: "PrefetchFailures", Unit: metrics.Count, Value: float64(failed)},
	)
}

// invoke counts an INVOKE, after its refresh, and writes a line when due.
func (m *emf) invoke() {
	if m == nil {
		return
	}
	m.rec.Invoke(m.now())
}

// flush writes the last line at SHUTDOWN.
func (m *emf) flush(reason string) {
	if m == nil {
		return
	}
	m.rec.Flush(m.now(), reason)
	if err := m.rec.Err(); err != nil {
		m.log.Warn("writing metrics failed", "error", err)
	}
}

// camel turns a class name such as "access_denied" into "AccessDenied".
func camel(s string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(s, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}
