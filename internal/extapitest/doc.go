// Package extapitest is a fake Lambda Extensions API for tests. It speaks the
// wire protocol of the real API (paths, headers, status codes and JSON error
// bodies as Lambda sends them), plays events the test scripts or pushes, can
// inject faults, and records every call.
//
// It defines its own wire types rather than reusing package lifecycle's, so
// a mismatch between the client and the protocol shows up as a failing test.
package extapitest
