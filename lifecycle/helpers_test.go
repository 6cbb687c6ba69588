package lifecycle_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/lifecycle"
)

// failsafe bounds every wait in these tests so a bug fails the test instead
// of hanging it; nothing waits for it to pass.
const failsafe = 10 * time.Second

const testName = "secrets-prefetch"

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), failsafe)
	t.Cleanup(cancel)
	return ctx
}

// registered returns a client registered with a fake API playing events.
func registered(t *testing.T, events ...extapitest.Event) (*lifecycle.Client, *extapitest.Server, *extapitest.Record) {
	t.Helper()
	srv, rec := extapitest.NewServer(t, events...)
	c := lifecycle.NewClient(srv.Addr(), nil)
	if _, err := c.Register(testContext(t), testName); err != nil {
		t.Fatalf("Register: %v", err)
	}
	return c, srv, rec
}

// rawServer serves handlers by path suffix ("register", "event/next" ...),
// for answers the fake API would never give. Unless overridden, register
// succeeds with identifier "raw-id".
func rawServer(t *testing.T, handlers map[string]http.HandlerFunc) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const prefix = "/2020-01-01/extension/"
		route := strings.TrimPrefix(r.URL.Path, prefix)
		if h, ok := handlers[route]; ok {
			h(w, r)
			return
		}
		if route == "register" {
			w.Header().Set("Lambda-Extension-Identifier", "raw-id")
			w.Write([]byte(`{"functionName":"f","functionVersion":"1","handler":"h"}`))
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(hs.Close)
	return hs.Listener.Addr().String()
}

// respond returns a handler answering status and body.
func respond(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}

// rawClient returns a client registered with rawServer(handlers).
func rawClient(t *testing.T, handlers map[string]http.HandlerFunc) *lifecycle.Client {
	t.Helper()
	c := lifecycle.NewClient(rawServer(t, handlers), nil)
	if _, err := c.Register(testContext(t), testName); err != nil {
		t.Fatalf("Register: %v", err)
	}
	return c
}

// receive returns the next value from ch, failing the test after failsafe.
func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(failsafe):
		t.Fatal("timed out")
		panic("unreachable")
	}
}
