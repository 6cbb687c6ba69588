package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// extAPI is a minimal Lambda Extensions API for the benchmarks: register,
// event/next answered from a queue the driver fills, init/error and
// exit/error. It notes when the extension registered and each time it asks
// for the next event, which is how the driver knows that Init is over and
// that an INVOKE has been dealt with. (internal/extapitest is the complete
// fake, for tests; it needs a testing.TB and records every call.)
type extAPI struct {
	srv *httptest.Server

	registered chan time.Time // one value: when register arrived
	nexts      chan time.Time // a value each time event/next arrives
	events     chan []byte    // the answers to event/next, in order
	quit       chan struct{}

	mu     sync.Mutex // protects errors
	errors []string   // init/error and exit/error reports
}

func newExtAPI() *extAPI {
	a := &extAPI{
		registered: make(chan time.Time, 1),
		nexts:      make(chan time.Time, 1<<16),
		events:     make(chan []byte, 16),
		quit:       make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2020-01-01/extension/register", func(w http.ResponseWriter, r *http.Request) {
		select {
		case a.registered <- time.Now():
		default:
		}
		w.Header().Set("Lambda-Extension-Identifier", "bench-extension-id")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"functionName":"bench","functionVersion":"$LATEST","handler":"bootstrap"}`)
	})
	mux.HandleFunc("GET /2020-01-01/extension/event/next", func(w http.ResponseWriter, r *http.Request) {
		select {
		case a.nexts <- time.Now():
		default:
		}
		select {
		case ev := <-a.events:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Lambda-Extension-Event-Identifier", "bench-event")
			w.Write(ev)
		case <-r.Context().Done():
		case <-a.quit:
		}
	})
	report := func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		a.mu.Lock()
		a.errors = append(a.errors, r.URL.Path+" "+r.Header.Get("Lambda-Extension-Function-Error-Type")+": "+string(body))
		a.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"status":"OK"}`)
	}
	mux.HandleFunc("POST /2020-01-01/extension/init/error", report)
	mux.HandleFunc("POST /2020-01-01/extension/exit/error", report)
	a.srv = httptest.NewServer(mux)
	return a
}

// Addr is the API's host:port, the value of AWS_LAMBDA_RUNTIME_API.
func (a *extAPI) Addr() string { return strings.TrimPrefix(a.srv.URL, "http://") }

func (a *extAPI) Close() {
	close(a.quit)
	a.srv.Close()
}

// Errors returns the init/error and exit/error reports so far.
func (a *extAPI) Errors() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.errors, "\n")
}

// invoke queues an INVOKE event.
func (a *extAPI) invoke(id string) {
	a.events <- mustJSON(map[string]any{
		"eventType":          "INVOKE",
		"deadlineMs":         time.Now().Add(time.Minute).UnixMilli(),
		"requestId":          id,
		"invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:bench",
	})
}

// shutdown queues a SHUTDOWN event.
func (a *extAPI) shutdown() {
	a.events <- mustJSON(map[string]any{
		"eventType":      "SHUTDOWN",
		"shutdownReason": "spindown",
		"deadlineMs":     time.Now().Add(2 * time.Second).UnixMilli(),
	})
}

// waitNext waits for the next event/next call, up to d.
func (a *extAPI) waitNext(d time.Duration) (time.Time, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case at := <-a.nexts:
		return at, nil
	case <-t.C:
		return time.Time{}, fmt.Errorf("the extension did not ask for the next event within %s", d)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
