package app

import (
	"runtime/debug"
)

// gcPercent is the extension's GOGC: the live heap may grow by a quarter
// before a collection, not Go's default of all of it. The extension's heap
// is mostly its cache, which changes little between refreshes, so a lower
// GOGC costs little CPU (a collection of a few MiB every few hundred
// INVOKEs) and keeps the resident memory a small function pays for close
// to what it caches; BENCHMARKS.md ("Memory") measures the settings.
// A heap ballast (a large []byte never written, so never resident) would
// give the read path GOGC=100's fewer collections, but at its price: the
// headroom is a quarter of the ballast as well, and the garbage that fills
// it is resident (measured: +6.0 MiB over 10,000 idle INVOKEs, against
// +2.0 without; README's performance section).
const gcPercent = 25

// TuneGC sets the garbage collector for a small function, unless the
// environment already sets GOGC or GOMEMLIMIT (which the Go runtime reads
// itself, and which then win).
func TuneGC(getenv func(string) string) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(gcPercent)
}

// releaseMemory returns to the operating system what the Init prefetch
// left behind (the SDK's decoded responses, the batches' buffers): the heap
// keeps only the cache from then on. It forces a collection, a few
// milliseconds on a heap of a few MiB, once per execution environment.
func releaseMemory() {
	debug.FreeOSMemory()
}
