package app

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	for _, tc := range []struct {
		env  map[string]string
		want int
	}{
		{nil, gcPercent},
		{map[string]string{"GOGC": "200"}, 100},         // the runtime's own reading wins
		{map[string]string{"GOMEMLIMIT": "64MiB"}, 100}, // so does a memory limit
	} {
		debug.SetGCPercent(100)
		TuneGC(func(k string) string { return tc.env[k] })
		if got := debug.SetGCPercent(100); got != tc.want {
			t.Errorf("env %v: GC percent %d, want %d", tc.env, got, tc.want)
		}
	}
}
