package extapitest

import "net/http"

// Route is an Extensions API path.
type Route string

// The routes the server answers.
const (
	RouteRegister  Route = "/2020-01-01/extension/register"
	RouteNext      Route = "/2020-01-01/extension/event/next"
	RouteInitError Route = "/2020-01-01/extension/init/error"
	RouteExitError Route = "/2020-01-01/extension/exit/error"
)

// Fault replaces the normal answer to a call.
type Fault struct {
	// Status answers with this status and a Lambda-style JSON error body
	// with errorType "InjectedFault".
	Status int
	// Close drops the connection without an answer, so the client sees a
	// transport error. Go's Transport retries an idempotent request (such as
	// event/next) once by itself when a reused connection is closed before
	// any answer, so one client call may consume two Close faults.
	Close bool
}

// Always makes Inject apply a fault to every later call.
const Always = -1

// injected is a fault and how many more calls it applies to.
type injected struct {
	fault Fault
	left  int // Always for no limit
}

// Inject makes the next times calls to route (Always: every call) fail with
// f instead of being answered. It replaces any fault pending for route;
// times 0 clears it. Faulted calls are still recorded.
func (s *Server) Inject(route Route, f Fault, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if times == 0 {
		delete(s.faults, route)
		return
	}
	s.faults[route] = &injected{fault: f, left: times}
}

// takeFault returns the fault for route, if one is pending, and uses it up.
func (s *Server) takeFault(route Route) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inj, ok := s.faults[route]
	if !ok {
		return Fault{}, false
	}
	if inj.left != Always {
		inj.left--
		if inj.left <= 0 {
			delete(s.faults, route)
		}
	}
	return inj.fault, true
}

func applyFault(w http.ResponseWriter, f Fault) {
	if f.Close {
		dropConn(w)
		return
	}
	writeError(w, f.Status, "InjectedFault", "injected fault: "+http.StatusText(f.Status))
}

// dropConn closes the connection under w without answering.
func dropConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): aborting the handler resets the stream.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}
