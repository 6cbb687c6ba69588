package metrics

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 29, 7, 0, 0, 0, time.UTC)

func lines(t *testing.T, out string) []Line {
	t.Helper()
	var ls []Line
	for raw := range strings.Lines(out) {
		l, err := Parse([]byte(raw))
		if err != nil {
			t.Fatalf("%v\nin %s", err, raw)
		}
		ls = append(ls, l)
	}
	return ls
}

func TestEmitterWritesEMF(t *testing.T) {
	var buf bytes.Buffer
	e := NewEmitter(&buf, "SecretsPrefetch", Dimension{"FunctionName", "orders"})
	err := e.Write(t0, []Metric{
		{Name: "CacheHits", Unit: Count, Value: 3},
		{Name: "PrefetchDuration", Unit: Milliseconds, Value: 12.5},
		{Name: "ThrottledErrors", Unit: Count, Value: 0, Sparse: true}, // left out
		{Name: "Zero", Unit: Count, Value: 0},                          // kept
	}, map[string]any{"version": "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "\n") != 1 || !strings.HasSuffix(buf.String(), "}\n") {
		t.Fatalf("want one JSON line, got %q", buf.String())
	}
	ls := lines(t, buf.String())
	l := ls[0]
	if l.Namespace != "SecretsPrefetch" || l.Dimensions["FunctionName"] != "orders" || len(l.Dimensions) != 1 {
		t.Errorf("namespace %q dimensions %v", l.Namespace, l.Dimensions)
	}
	if !l.Timestamp.Equal(t0) {
		t.Errorf("timestamp %v, want %v", l.Timestamp, t0)
	}
	wantValues := map[string]float64{"CacheHits": 3, "PrefetchDuration": 12.5, "Zero": 0}
	if len(l.Values) != len(wantValues) {
		t.Errorf("values %v, want %v", l.Values, wantValues)
	}
	for k, v := range wantValues {
		if l.Values[k] != v {
			t.Errorf("%s = %v, want %v", k, l.Values[k], v)
		}
	}
	if l.Units["PrefetchDuration"] != Milliseconds || l.Units["CacheHits"] != Count {
		t.Errorf("units %v", l.Units)
	}
	if l.Properties["version"] != "v1" || len(l.Properties) != 1 {
		t.Errorf("properties %v", l.Properties)
	}
}

func TestEmitterRefuses(t *testing.T) {
	var buf bytes.Buffer
	e := NewEmitter(&buf, "NS", Dimension{"FunctionName", "f"})
	for name, ms := range map[string][]Metric{
		"NaN":               {{Name: "A", Unit: Count, Value: math.NaN()}},
		"Inf":               {{Name: "A", Unit: Count, Value: math.Inf(1)}},
		"duplicate":         {{Name: "A", Unit: Count, Value: 1}, {Name: "A", Unit: Count, Value: 2}},
		"dimension clash":   {{Name: "FunctionName", Unit: Count, Value: 1}},
		"reserved _aws key": {{Name: "_aws", Unit: Count, Value: 1}},
	} {
		if err := e.Write(t0, ms, nil); err == nil {
			t.Errorf("%s: Write = nil, want an error", name)
		}
	}
	// Only sparse zeros: nothing to write.
	if err := e.Write(t0, []Metric{{Name: "A", Unit: Count, Sparse: true}}, nil); err != nil {
		t.Error(err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %q", buf.String())
	}
}

func TestParseRejects(t *testing.T) {
	for name, line := range map[string]string{
		"not JSON":         `hello`,
		"no _aws":          `{"A":1}`,
		"no timestamp":     `{"_aws":{"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"A"}]}]},"A":1}`,
		"no namespace":     `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Dimensions":[[]],"Metrics":[{"Name":"A"}]}]},"A":1}`,
		"metric not top":   `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"A"}]}]}}`,
		"metric a string":  `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"A"}]}]},"A":"1"}`,
		"bad unit":         `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"A","Unit":"Things"}]}]},"A":1}`,
		"dimension absent": `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["F"]],"Metrics":[{"Name":"A"}]}]},"A":1}`,
		"no dimensions":    `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Metrics":[{"Name":"A"}]}]},"A":1}`,
		"no metrics":       `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[]}]}}`,
	} {
		if _, err := Parse([]byte(line)); err == nil {
			t.Errorf("%s: Parse = nil error", name)
		}
	}
}

// counts is a fake set of cumulative counters.
type counts struct {
	mu   sync.Mutex
	hits float64
	errs float64
}

func (c *counts) add(hits, errs float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hits += hits
	c.errs += errs
}

func (c *counts) metrics() []Metric {
	c.mu.Lock()
	defer c.mu.Unlock()
	return []Metric{{Name: "CacheHits", Unit: Count, Value: c.hits}, {Name: "ThrottledErrors", Unit: Count, Value: c.errs, Sparse: true}}
}

func TestRecorderSchedule(t *testing.T) {
	var buf bytes.Buffer
	c := &counts{}
	r := NewRecorder(RecorderOptions{
		Emitter:    NewEmitter(&buf, "NS", Dimension{"FunctionName", "f"}),
		Interval:   time.Minute,
		Counters:   c.metrics,
		Properties: map[string]any{"version": "v1"},
	})
	r.Once(Metric{Name: "PrefetchDuration", Unit: Milliseconds, Value: 40})

	// The first INVOKE writes, with Init's one-off values.
	c.add(2, 0)
	if !r.Invoke(t0) {
		t.Fatal("first Invoke did not write")
	}
	// Within the interval: counted, not written.
	c.add(3, 1)
	for i := range 4 {
		if r.Invoke(t0.Add(time.Duration(i+1) * 10 * time.Second)) {
			t.Fatalf("Invoke %d within the interval wrote a line", i+2)
		}
	}
	// Past the interval: the deltas since the first line.
	c.add(1, 0)
	if !r.Invoke(t0.Add(61 * time.Second)) {
		t.Fatal("Invoke past the interval did not write")
	}
	// SHUTDOWN: the rest.
	c.add(5, 0)
	r.Flush(t0.Add(70*time.Second), "spindown")
	// A second flush with nothing new writes nothing.
	r.Flush(t0.Add(71*time.Second), "spindown")
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}

	ls := lines(t, buf.String())
	want := []struct {
		at      time.Duration
		trigger string
		values  map[string]float64
	}{
		{0, "invoke", map[string]float64{"Invokes": 1, "CacheHits": 2, "PrefetchDuration": 40}},
		{61 * time.Second, "invoke", map[string]float64{"Invokes": 5, "CacheHits": 4, "ThrottledErrors": 1}},
		{70 * time.Second, "shutdown:spindown", map[string]float64{"Invokes": 0, "CacheHits": 5}},
	}
	if len(ls) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(ls), len(want), buf.String())
	}
	for i, w := range want {
		l := ls[i]
		if !l.Timestamp.Equal(t0.Add(w.at)) || l.Properties["trigger"] != w.trigger || l.Properties["version"] != "v1" {
			t.Errorf("line %d: at %v, properties %v; want %v %s", i, l.Timestamp, l.Properties, t0.Add(w.at), w.trigger)
		}
		if len(l.Values) != len(w.values) {
			t.Errorf("line %d: values %v, want %v", i, l.Values, w.values)
		}
		for k, v := range w.values {
			if got, ok := l.Values[k]; !ok || got != v {
				t.Errorf("line %d: %s = %v (present %v), want %v", i, k, got, ok, v)
			}
		}
	}
}

type failingWriter struct{ fail bool }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.fail {
		return 0, errors.New("stdout closed")
	}
	return len(p), nil
}

func TestRecorderCarriesCountsPastAFailedWrite(t *testing.T) {
	w := &failingWriter{fail: true}
	var buf bytes.Buffer
	c := &counts{}
	r := NewRecorder(RecorderOptions{Emitter: NewEmitter(w, "NS"), Counters: c.metrics})
	c.add(2, 0)
	r.Invoke(t0)
	if r.Err() == nil {
		t.Fatal("Err = nil after a failed write")
	}
	// The next line carries the counts the failed one had.
	r.opts.Emitter = NewEmitter(&buf, "NS")
	c.add(1, 0)
	r.Invoke(t0.Add(time.Second))
	ls := lines(t, buf.String())
	if len(ls) != 1 || ls[0].Values["CacheHits"] != 3 || ls[0].Values["Invokes"] != 2 {
		t.Errorf("after a failed write: %+v", ls)
	}
}

func TestNilRecorder(t *testing.T) {
	var r *Recorder
	r.Once(Metric{Name: "A"})
	if r.Invoke(t0) {
		t.Error("nil Recorder wrote")
	}
	r.Flush(t0, "x")
	if r.Err() != nil {
		t.Error("nil Recorder has an error")
	}
}
