package app

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/metrics"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// promPrefix names every metric on /metrics.
const promPrefix = "secrets_prefetch"

// serveMetrics serves the counters the EMF lines carry, and two gauges, as
// Prometheus text on GET /metrics, on a listener of its own
// (SECRETS_PREFETCH_METRICS_LISTEN): containers are scraped, not
// log-parsed. It asks no token: it shows counts, never names or values.
// A serving failure goes to errc; stop closes the server.
func (e *extension) serveMetrics(l net.Listener, addr string, errc chan<- error) (stop func(), err error) {
	if l == nil {
		if l, err = net.Listen("tcp", addr); err != nil {
			return nil, err
		}
	}
	stats, _ := e.fetcher.(interface{ Stats() source.Stats })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		ms := counters(e, stats)
		ready := 0.0
		if e.ready.Load() {
			ready = 1
		}
		ms = append(ms,
			metrics.Metric{Name: "CacheEntries", Unit: metrics.Gauge, Value: float64(e.cache.Len())},
			metrics.Metric{Name: "Ready", Unit: metrics.Gauge, Value: ready},
		)
		var b bytes.Buffer
		if err := metrics.WritePrometheus(&b, promPrefix, ms); err != nil {
			http.Error(w, "metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", metrics.PrometheusContentType)
		w.Write(b.Bytes())
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	go func() {
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	e.log.Info("serving metrics", "address", l.Addr().String(), "path", "/metrics")
	return func() { srv.Close() }, nil
}
