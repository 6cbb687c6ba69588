// Package wire is the testapp's output line, shared by the testapp and the
// tests and demo that read its output, so both sides agree on one contract.
package wire

import "github.com/secrets-prefetch/secrets-prefetch/integration/testfunc"

// Line is one read through the agent: which round of reads it was in and
// what it got.
type Line struct {
	Round int `json:"round"`
	testfunc.Read
}
