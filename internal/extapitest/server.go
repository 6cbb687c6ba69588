package extapitest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Header names of the Extensions API.
const (
	headerName       = "Lambda-Extension-Name"
	headerIdentifier = "Lambda-Extension-Identifier"
	headerErrorType  = "Lambda-Extension-Function-Error-Type"
	headerEventID    = "Lambda-Extension-Event-Identifier"
)

// maxBodyBytes bounds request bodies the server reads.
const maxBodyBytes = 1 << 20

// Server is a fake Extensions API on an httptest server. It is safe for
// concurrent use: a test may Push events and Inject faults while the
// extension under test is calling it.
type Server struct {
	hs        *httptest.Server
	rec       *Record
	quit      chan struct{} // closed by Close to release blocked event/next calls
	closeOnce sync.Once

	mu     sync.Mutex // protects the fields below
	queue  []Event
	pushed chan struct{} // closed and replaced by Push, to wake event/next
	faults map[Route]*injected
	id     string // the registered extension's identifier
	ended  bool   // an init/error or exit/error was accepted
}

// NewServer starts a fake Extensions API whose event/next calls answer
// events in order. Once they are used up (and until Push adds more),
// event/next blocks until its request ends, like Lambda's long poll. The
// server is closed when the test ends.
func NewServer(t testing.TB, events ...Event) (*Server, *Record) {
	t.Helper()
	s := &Server{
		rec:    newRecord(),
		quit:   make(chan struct{}),
		queue:  append([]Event(nil), events...),
		pushed: make(chan struct{}),
		faults: make(map[Route]*injected),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+string(RouteRegister), s.register)
	mux.HandleFunc("GET "+string(RouteNext), s.next)
	mux.HandleFunc("POST "+string(RouteInitError), s.reportError)
	mux.HandleFunc("POST "+string(RouteExitError), s.reportError)
	s.hs = httptest.NewServer(s.recordAndFault(mux))
	t.Cleanup(s.Close)
	return s, s.rec
}

// Addr returns the server's host:port, the form of AWS_LAMBDA_RUNTIME_API.
func (s *Server) Addr() string { return s.hs.Listener.Addr().String() }

// Push queues more events for event/next, waking a call that is waiting.
func (s *Server) Push(events ...Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, events...)
	close(s.pushed)
	s.pushed = make(chan struct{})
}

// Close shuts the server down. Waiting event/next calls have their
// connection dropped, as when the execution environment goes away.
// It is called automatically when the test ends and is safe to call twice.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.quit)
		s.hs.Close()
	})
}

// recordAndFault records every request, then answers with a pending fault
// or passes the request on to next.
func (s *Server) recordAndFault(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
		if err != nil {
			return // the client went away
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.rec.addCall(Call{
			Method:    r.Method,
			Path:      r.URL.Path,
			Name:      r.Header.Get(headerName),
			ID:        r.Header.Get(headerIdentifier),
			ErrorType: r.Header.Get(headerErrorType),
			Body:      body,
		})
		if f, ok := s.takeFault(Route(r.URL.Path)); ok {
			applyFault(w, f)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get(headerName)
	if name == "" {
		writeError(w, http.StatusForbidden, "Extension.InvalidExtensionName", "Empty extension name")
		return
	}
	var req struct {
		Events []string `json:"events"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusForbidden, "InvalidRequestFormat", err.Error())
		return
	}
	for _, e := range req.Events {
		if e != TypeInvoke && e != TypeShutdown {
			writeError(w, http.StatusForbidden, "Extension.InvalidEventType", e+": event type not supported by external extensions")
			return
		}
	}

	s.mu.Lock()
	if s.id != "" {
		s.mu.Unlock()
		writeError(w, http.StatusForbidden, "Extension.InvalidExtensionState", "Extension with this name already registered")
		return
	}
	s.id = newUUID()
	id := s.id
	s.mu.Unlock()

	s.rec.setRegistration(Registration{Name: name, ID: id, Events: req.Events})
	w.Header().Set(headerIdentifier, id)
	writeJSON(w, http.StatusOK, struct {
		FunctionName    string `json:"functionName"`
		FunctionVersion string `json:"functionVersion"`
		Handler         string `json:"handler"`
	}{FunctionName, FunctionVersion, Handler})
}

// checkID answers 403 as Lambda does, and reports false, unless the request
// carries the registered extension's identifier.
func (s *Server) checkID(w http.ResponseWriter, r *http.Request) bool {
	id := r.Header.Get(headerIdentifier)
	s.mu.Lock()
	registered := s.id
	s.mu.Unlock()
	switch {
	case id == "":
		writeError(w, http.StatusForbidden, "Extension.MissingExtensionIdentifier", "Missing Lambda-Extension-Identifier header")
	case !isUUID(id):
		writeError(w, http.StatusForbidden, "Extension.InvalidExtensionIdentifier", "Invalid Lambda-Extension-Identifier")
	case id != registered:
		writeError(w, http.StatusForbidden, "Extension.UnknownExtensionIdentifier", "Unknown extension "+id)
	default:
		return true
	}
	return false
}

func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	if !s.checkID(w, r) {
		return
	}
	for {
		s.mu.Lock()
		if s.ended {
			s.mu.Unlock()
			writeError(w, http.StatusForbidden, "Extension.InvalidExtensionState", "State transition to Ready failed: extension reported an error")
			return
		}
		if len(s.queue) > 0 {
			ev := s.queue[0]
			s.queue = s.queue[1:]
			s.mu.Unlock()
			s.rec.addDelivered(ev)
			w.Header().Set(headerEventID, newUUID())
			writeJSON(w, http.StatusOK, ev)
			return
		}
		pushed := s.pushed
		s.mu.Unlock()

		select {
		case <-pushed:
		case <-r.Context().Done():
			return
		case <-s.quit:
			dropConn(w)
			return
		}
	}
}

// reportError serves init/error and exit/error.
func (s *Server) reportError(w http.ResponseWriter, r *http.Request) {
	if !s.checkID(w, r) {
		return
	}
	errorType := r.Header.Get(headerErrorType)
	if errorType == "" {
		writeError(w, http.StatusForbidden, "Extension.MissingHeader", headerErrorType+" not found")
		return
	}
	body, _ := io.ReadAll(r.Body) // already buffered by recordAndFault
	rep := ReportedError{Type: errorType, Body: body}
	var b struct {
		ErrorMessage string   `json:"errorMessage"`
		ErrorType    string   `json:"errorType"`
		StackTrace   []string `json:"stackTrace"`
	}
	// Lambda accepts any body; the fields are kept when it is the usual JSON.
	if json.Unmarshal(body, &b) == nil {
		rep.Message, rep.BodyType, rep.StackTrace = b.ErrorMessage, b.ErrorType, b.StackTrace
	}

	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.rec.addReport(Route(r.URL.Path), rep)
	writeJSON(w, http.StatusAccepted, struct {
		Status string `json:"status"`
	}{"OK"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("extapitest: encoding %T: %v", v, err)) // a bug in this package
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// writeError answers with Lambda's error body.
func writeError(w http.ResponseWriter, status int, errorType, message string) {
	writeJSON(w, status, struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}{message, errorType})
}

// newUUID returns a random (version 4) UUID, the form of Lambda's identifiers.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
