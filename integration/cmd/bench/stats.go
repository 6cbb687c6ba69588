package main

import (
	"cmp"
	"math"
	"slices"
)

// number is what median averages.
type number interface {
	~int | ~int64 | ~float64
}

// median is the middle value (the mean of the two middle ones for an even
// count); 0 for none.
func median[T number](v []T) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return float64(s[n/2])
	}
	return (float64(s[n/2-1]) + float64(s[n/2])) / 2
}

// percentile is the nearest-rank q-th percentile (0 < q <= 100) of sorted.
func percentile[T cmp.Ordered](sorted []T, q float64) T {
	var zero T
	if len(sorted) == 0 {
		return zero
	}
	i := int(math.Ceil(q/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
