// Package metrics writes the extension's counters as CloudWatch Embedded
// Metric Format (EMF) lines: JSON log lines that CloudWatch Logs turns into
// metrics, with no API call and no agent. Lambda sends an extension's stdout
// to the function's log group, where the extraction happens.
//
// When to write is the Recorder's job. A line per INVOKE would cost a log
// line (about 1 KB) per request and bill the same ingestion as the
// function's own logs; instead the Recorder writes a line at the first INVOKE
// of an execution environment (which carries the Init numbers: prefetch
// duration and failures), then at an INVOKE once Interval has passed since
// the last line, and at SHUTDOWN. Each line carries the counts since the line
// before, so CloudWatch's sums are exact however the lines fall. Lambda
// freezes an idle environment, so no timer could fire between events: lines
// are written only on events.
package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sync"
	"time"
)

// Unit is a CloudWatch metric unit.
type Unit string

// The units the extension uses.
const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
)

// Metric is one named value.
type Metric struct {
	Name  string
	Unit  Unit
	Value float64
	// Sparse metrics are left out of a line while their value is 0: each
	// metric name that ever appears is a billed CloudWatch custom metric,
	// and breakdowns (per API, per error class) are mostly 0.
	Sparse bool
}

// Emitter writes EMF lines to one writer, under one namespace and set of
// dimensions. It is safe for concurrent use.
type Emitter struct {
	mu         sync.Mutex // serializes writes, so lines never interleave
	w          io.Writer
	namespace  string
	dimensions []Dimension
}

// Dimension is a name and value that every metric of a line is filed under.
type Dimension struct{ Name, Value string }

// NewEmitter returns an Emitter writing to w.
func NewEmitter(w io.Writer, namespace string, dims ...Dimension) *Emitter {
	return &Emitter{w: w, namespace: namespace, dimensions: dims}
}

// reserved are the top-level keys a line uses itself.
const awsKey = "_aws"

// Write writes one EMF line with the metrics (sparse ones only when not 0)
// and properties: extra top-level fields that are searchable in CloudWatch
// Logs Insights but are not metrics. It writes nothing when no metric is left.
func (e *Emitter) Write(at time.Time, metrics []Metric, properties map[string]any) error {
	type metricDef struct {
		Name string
		Unit Unit
	}
	type directive struct {
		Namespace  string
		Dimensions [][]string
		Metrics    []metricDef
	}
	line := make(map[string]any, len(metrics)+len(properties)+len(e.dimensions)+1)
	for k, v := range properties {
		line[k] = v
	}
	dimNames := make([]string, 0, len(e.dimensions))
	for _, d := range e.dimensions {
		line[d.Name] = d.Value
		dimNames = append(dimNames, d.Name)
	}
	d := directive{Namespace: e.namespace, Dimensions: [][]string{dimNames}}
	for _, m := range metrics {
		if m.Sparse && m.Value == 0 {
			continue
		}
		if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
			return fmt.Errorf("metrics: %s is %v: EMF needs a finite number", m.Name, m.Value)
		}
		if _, dup := line[m.Name]; dup || m.Name == awsKey {
			return fmt.Errorf("metrics: %s is used twice in one line", m.Name)
		}
		line[m.Name] = m.Value
		d.Metrics = append(d.Metrics, metricDef{m.Name, m.Unit})
	}
	if len(d.Metrics) == 0 {
		return nil
	}
	line[awsKey] = map[string]any{
		"Timestamp":         at.UnixMilli(),
		"CloudWatchMetrics": []directive{d},
	}
	b, err := json.Marshal(line)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err = e.w.Write(append(b, '\n'))
	return err
}

// Recorder decides when to write a line and what goes in it. Counters comes
// from the caller: cumulative counts since the process started, the same
// names every time; the Recorder writes the difference since its last line.
// A Recorder is safe for concurrent use; a nil *Recorder does nothing.
type Recorder struct {
	opts RecorderOptions

	mu       sync.Mutex // protects the fields below
	last     map[string]float64
	lastAt   time.Time // zero until the first line
	invokes  float64   // INVOKEs since the last line
	once     []Metric  // one-off values for the next line (Init's)
	lastErr  error
	wroteAny bool
}

// DefaultInterval is how long after a line an INVOKE writes the next one.
// One minute matches CloudWatch's standard resolution: lines closer together
// add cost, not detail.
const DefaultInterval = time.Minute

// RecorderOptions configure a Recorder.
type RecorderOptions struct {
	Emitter *Emitter
	// Interval is the least time between two lines written at INVOKEs;
	// 0 means DefaultInterval.
	Interval time.Duration
	// Counters returns the cumulative counts.
	Counters func() []Metric
	// Properties are added to every line (not metrics), e.g. the version.
	Properties map[string]any
}

// NewRecorder returns a Recorder.
func NewRecorder(o RecorderOptions) *Recorder {
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	return &Recorder{opts: o, last: map[string]float64{}}
}

// Once adds a value to the next line only, e.g. the prefetch duration.
func (r *Recorder) Once(m ...Metric) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.once = append(r.once, m...)
}

// Invoke records an INVOKE at now and writes a line if it is the first or
// the interval has passed since the last one. It reports whether it wrote.
func (r *Recorder) Invoke(now time.Time) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.invokes++
	if r.wroteAny && now.Sub(r.lastAt) < r.opts.Interval {
		return false
	}
	r.write(now, "invoke")
	return true
}

// Flush writes what has not been written yet, at SHUTDOWN; nothing if
// nothing happened since the last line.
func (r *Recorder) Flush(now time.Time, reason string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.write(now, "shutdown:"+reason)
}

// Err returns the last write error, if any; a failed line is not retried
// (its counts go into the next one).
func (r *Recorder) Err() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// write writes the deltas since the last line, unless all are 0. Requires
// mu held.
func (r *Recorder) write(now time.Time, trigger string) {
	cur := r.opts.Counters()
	ms := make([]Metric, 0, len(cur)+len(r.once)+1)
	ms = append(ms, Metric{Name: "Invokes", Unit: Count, Value: r.invokes})
	changed := r.invokes != 0 || len(r.once) > 0
	for _, m := range cur {
		d := m
		d.Value = m.Value - r.last[m.Name]
		changed = changed || d.Value != 0
		ms = append(ms, d)
	}
	if !changed {
		return
	}
	ms = append(ms, r.once...)
	props := make(map[string]any, len(r.opts.Properties)+1)
	for k, v := range r.opts.Properties {
		props[k] = v
	}
	props["trigger"] = trigger
	if err := r.opts.Emitter.Write(now, ms, props); err != nil {
		r.lastErr = err
		return
	}
	r.lastErr = nil
	for _, m := range cur {
		r.last[m.Name] = m.Value
	}
	r.invokes, r.once = 0, nil
	r.lastAt, r.wroteAny = now, true
}
