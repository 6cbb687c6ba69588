// Package faults_test holds the extension up against faults: AWS failing in
// every way the emulator's front can inject (aws_test.go), Lambda's
// Extensions API failing or cutting the extension short (lambda_test.go, and
// process_test.go for the built binary), hostile input through the real
// server (hostile_test.go), and a scan of every output for secret values
// (hygiene_test.go). Each test runs the whole extension (app.Run) in-process
// with the real AWS SDK clients against awstest, driven by the fake
// Extensions API, with the cache's clock injected: the harness in
// ../exttest, shared with ../extension and ../soak. This file holds what
// only this suite needs on top of it: a gate on the emulator's endpoint.
package faults_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// gate holds the calls of one operation at the endpoint until released,
// telling the test when one has arrived.
type gate struct {
	op      string
	arrived chan struct{} // receives once per held call
	release chan struct{}
	once    sync.Once
}

func newGate(op string) *gate {
	return &gate{op: op, arrived: make(chan struct{}, 1024), release: make(chan struct{})}
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if opOf(r) == g.op {
			g.arrived <- struct{}{}
			select {
			case <-g.release:
			case <-r.Context().Done():
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// opOf names a request's operation as awstest does.
func opOf(r *http.Request) string {
	target := r.Header.Get("X-Amz-Target")
	if action, ok := strings.CutPrefix(target, "AmazonSSM."); ok {
		return "ssm." + action
	}
	return target
}

func recv(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
