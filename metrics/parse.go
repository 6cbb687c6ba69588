package metrics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Line is one EMF line, parsed and checked against the format's rules.
type Line struct {
	Timestamp  time.Time
	Namespace  string
	Dimensions map[string]string  // the dimension names of the (single) directive, with their values
	Values     map[string]float64 // by metric name
	Units      map[string]Unit    // by metric name
	Properties map[string]any     // top-level fields that are neither metrics nor dimensions
}

// units are the units CloudWatch accepts.
var units = map[Unit]bool{
	"Seconds": true, "Microseconds": true, "Milliseconds": true, "Bytes": true, "Kilobytes": true,
	"Megabytes": true, "Gigabytes": true, "Terabytes": true, "Bits": true, "Kilobits": true,
	"Megabits": true, "Gigabits": true, "Terabits": true, "Percent": true, "Count": true,
	"Bytes/Second": true, "Kilobytes/Second": true, "Megabytes/Second": true, "Gigabytes/Second": true,
	"Terabytes/Second": true, "Bits/Second": true, "Kilobits/Second": true, "Megabits/Second": true,
	"Gigabits/Second": true, "Terabits/Second": true, "Count/Second": true, "None": true,
}

// Parse parses one EMF line and checks what CloudWatch requires of it: an
// _aws object with a millisecond Timestamp and CloudWatchMetrics directives,
// each with a Namespace, dimension sets naming top-level string fields, and
// metric definitions naming top-level numbers, with valid units. It accepts
// the one-directive lines Emitter writes; its purpose is checking them (in
// tests, or a log pipeline).
func Parse(b []byte) (Line, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		return Line{}, fmt.Errorf("emf: not a JSON object: %w", err)
	}
	var raw struct {
		AWS *struct {
			Timestamp         *json.Number
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct {
					Name              string
					Unit              Unit
					StorageResolution *int
				}
			}
		} `json:"_aws"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return Line{}, fmt.Errorf("emf: _aws: %w", err)
	}
	a := raw.AWS
	if a == nil {
		return Line{}, errors.New("emf: no _aws object")
	}
	if a.Timestamp == nil {
		return Line{}, errors.New("emf: no _aws.Timestamp")
	}
	ms, err := a.Timestamp.Int64()
	if err != nil || ms <= 0 {
		return Line{}, fmt.Errorf("emf: _aws.Timestamp %v is not milliseconds since the epoch", a.Timestamp)
	}
	if len(a.CloudWatchMetrics) != 1 {
		return Line{}, fmt.Errorf("emf: %d CloudWatchMetrics directives, want 1", len(a.CloudWatchMetrics))
	}
	d := a.CloudWatchMetrics[0]
	if n := len(d.Namespace); n == 0 || n > 255 {
		return Line{}, fmt.Errorf("emf: Namespace %q: want 1 to 255 characters", d.Namespace)
	}
	l := Line{
		Timestamp: time.UnixMilli(ms), Namespace: d.Namespace,
		Dimensions: map[string]string{}, Values: map[string]float64{}, Units: map[string]Unit{}, Properties: map[string]any{},
	}
	if len(d.Dimensions) == 0 {
		return Line{}, errors.New("emf: no Dimensions (use [[]] for none)")
	}
	for _, set := range d.Dimensions {
		if len(set) > 30 {
			return Line{}, fmt.Errorf("emf: a dimension set has %d names, at most 30", len(set))
		}
		for _, name := range set {
			v, ok := root[name].(string)
			if !ok {
				return Line{}, fmt.Errorf("emf: dimension %q has no top-level string value", name)
			}
			l.Dimensions[name] = v
		}
	}
	if n := len(d.Metrics); n == 0 || n > 100 {
		return Line{}, fmt.Errorf("emf: %d metric definitions, want 1 to 100", n)
	}
	for _, m := range d.Metrics {
		if m.Name == "" || len(m.Name) > 1024 {
			return Line{}, fmt.Errorf("emf: metric name %q: want 1 to 1024 characters", m.Name)
		}
		if _, dup := l.Values[m.Name]; dup {
			return Line{}, fmt.Errorf("emf: metric %q defined twice", m.Name)
		}
		if m.Unit != "" && !units[m.Unit] {
			return Line{}, fmt.Errorf("emf: metric %q: unit %q is not a CloudWatch unit", m.Name, m.Unit)
		}
		num, ok := root[m.Name].(json.Number)
		if !ok {
			return Line{}, fmt.Errorf("emf: metric %q has no top-level number", m.Name)
		}
		v, err := num.Float64()
		if err != nil {
			return Line{}, fmt.Errorf("emf: metric %q: %w", m.Name, err)
		}
		l.Values[m.Name], l.Units[m.Name] = v, m.Unit
	}
	for k, v := range root {
		if _, isMetric := l.Values[k]; !isMetric && k != awsKey {
			if _, isDim := l.Dimensions[k]; !isDim {
				l.Properties[k] = v
			}
		}
	}
	return l, nil
}
