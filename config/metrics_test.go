package config

import (
	"errors"
	"testing"
)

func TestMetrics(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  bool
		ok    bool
	}{
		{"", false, true}, // off unless asked for: each metric is billed by CloudWatch
		{"  ", false, true},
		{"true", true, true},
		{"TRUE", true, true},
		{" false ", false, true},
		{"1", false, false},
		{"yes", false, false},
		{"on", false, false},
	} {
		env := map[string]string{EnvSessionToken: "t", EnvMetrics: tc.value}
		c, err := FromEnv(func(k string) string { return env[k] })
		if !tc.ok {
			var ve *VarError
			if !errors.As(err, &ve) || ve.Name != EnvMetrics || ve.Want != "true or false" {
				t.Errorf("%s=%q: error %v, want a VarError naming it", EnvMetrics, tc.value, err)
			}
			continue
		}
		if err != nil || c.Metrics != tc.want {
			t.Errorf("%s=%q: Metrics %v, err %v; want %v", EnvMetrics, tc.value, c.Metrics, err, tc.want)
		}
	}
	if Default().Metrics {
		t.Error("Default().Metrics = true, want false")
	}
}
