package awstest

import (
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Fault is a misbehaviour the front applies to the calls it matches, in
// place of (or, for Delay and FailItems, on top of) the real answer. Build
// one with the constructors below, or as a literal; Times limits it.
type Fault struct {
	// Delay holds each matching request this long before it goes on. The
	// client giving up (its request context) or Close cuts the wait short.
	Delay time.Duration

	// Code and Status answer with that AWS error instead of the real answer.
	// Status 0 means 400. Code "" with a 5xx Status means the service's own
	// internal error code (CodeSMInternal or CodeSSMInternal). Message ""
	// means a default that says the error was injected.
	Code    string
	Status  int
	Message string

	// Reset closes the connection without an answer (a TCP RST): the client
	// sees a transport error, not an API error.
	Reset bool
	// BlackHole holds the request unanswered until the client gives up.
	BlackHole bool

	// FailItems are forced to fail while the rest of the call succeeds:
	// secret ids into BatchGetSecretValue's Errors (with ErrorCode FailCode,
	// CodeResourceNotFound if empty), parameter names into GetParameters'
	// InvalidParameters. Other operations ignore them.
	FailItems []string
	FailCode  string

	// Limit is how many matching calls the fault applies to; 0 means every
	// call until the fault is removed.
	Limit int
}

// Times returns f limited to the next n matching calls.
func (f Fault) Times(n int) Fault {
	f.Limit = n
	return f
}

// Latency delays every matching call by d.
func Latency(d time.Duration) Fault { return Fault{Delay: d} }

// ErrorFault answers with the AWS error code and HTTP status.
func ErrorFault(code string, status int) Fault { return Fault{Code: code, Status: status} }

// Throttling answers as AWS does past a quota: ThrottlingException, 400.
func Throttling() Fault {
	return Fault{Code: CodeThrottling, Status: http.StatusBadRequest, Message: "Rate exceeded"}
}

// InternalError answers 500 with the service's own internal error code.
func InternalError() Fault { return Fault{Status: http.StatusInternalServerError} }

// AccessDenied answers as IAM does to a role without the permission.
func AccessDenied() Fault { return Fault{Code: CodeAccessDenied, Status: http.StatusBadRequest} }

// KMSAccessDenied answers as SSM does when KMS refuses to decrypt a
// SecureString: AccessDeniedException, with KMS's message. (Secrets Manager
// answers AccessDeniedException too; ErrorFault(CodeDecryptionFailure, 400)
// is its other KMS failure.)
func KMSAccessDenied() Fault {
	return Fault{Code: CodeAccessDenied, Status: http.StatusBadRequest, Message: "The ciphertext refers to a customer master key " +
		"that does not exist, does not exist in this region, or you are not allowed to access. " +
		"(Service: AWSKMS; Status Code: 400; Error Code: AccessDeniedException)"}
}

// Unsupported answers as an endpoint that does not know the action does
// (UnknownOperationException, 400): BatchGetSecretValue where it is not
// available, say.
func Unsupported() Fault { return Fault{Code: CodeUnknownOperation, Status: http.StatusBadRequest} }

// ConnReset closes the connection without an answer.
func ConnReset() Fault { return Fault{Reset: true} }

// BlackHole holds the request until the client gives up.
func BlackHole() Fault { return Fault{BlackHole: true} }

// PartialFailure makes the given secret ids or parameter names fail inside
// an otherwise successful batch call; code is BatchGetSecretValue's ErrorCode.
func PartialFailure(code string, items ...string) Fault {
	return Fault{FailItems: items, FailCode: code}
}

func (f *Fault) terminal() bool { return f.Reset || f.BlackHole || f.Code != "" || f.Status != 0 }

// fault is an injected Fault and what is left of its Limit.
type fault struct {
	id   int
	op   string
	f    Fault
	left int // calls left; 0 = unlimited
}

// Inject adds a fault for op: an Op constant, any "service.Action", or OpAll.
// It applies from the next call on, together with any other matching
// faults (their delays add up; the first terminal one, in injection order,
// decides the answer). The seeding helpers' calls are never faulted.
// remove takes the fault away; calling it again does nothing.
func (a *AWS) Inject(op string, f Fault) (remove func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faultSeq++
	id := a.faultSeq
	f.FailItems = slices.Clone(f.FailItems)
	a.faults = append(a.faults, &fault{id: id, op: op, f: f, left: f.Limit})
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.faults = slices.DeleteFunc(a.faults, func(x *fault) bool { return x.id == id })
	}
}

// ClearFaults removes every injected fault.
func (a *AWS) ClearFaults() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults = nil
}

// effect is what the matching faults do to one call.
type effect struct {
	role      string // whose credentials signed the call ("" the test credentials)
	delay     time.Duration
	terminal  *Fault
	failItems map[string]bool
	failCode  string
}

// takeFaults collects the faults matching op and uses up one of each one's
// Limit.
func (a *AWS) takeFaults(op string) effect {
	a.mu.Lock()
	defer a.mu.Unlock()
	var fx effect
	a.faults = slices.DeleteFunc(a.faults, func(ft *fault) bool {
		if ft.op != op && ft.op != OpAll {
			return false
		}
		f := ft.f
		fx.delay += f.Delay
		if fx.terminal == nil && f.terminal() {
			fx.terminal = &f
		}
		if len(f.FailItems) > 0 {
			if fx.failItems == nil {
				fx.failItems = map[string]bool{}
				fx.failCode = f.FailCode
			}
			for _, item := range f.FailItems {
				fx.failItems[item] = true
			}
		}
		if ft.left == 0 {
			return false
		}
		ft.left--
		return ft.left == 0
	})
	return fx
}

// misbehave applies the delay and the terminal fault of fx. It reports
// whether the request has been dealt with (answered or hung up on).
func (a *AWS) misbehave(w http.ResponseWriter, r *http.Request, op string, fx effect) bool {
	if fx.delay > 0 {
		t := time.NewTimer(fx.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			hangUp(w, false)
			return true
		case <-a.closing:
			hangUp(w, false)
			return true
		}
	}
	f := fx.terminal
	switch {
	case f == nil:
		return false
	case f.BlackHole:
		select {
		case <-r.Context().Done():
		case <-a.closing:
		}
		hangUp(w, false)
	case f.Reset:
		hangUp(w, true)
	default:
		writeError(w, faultError(op, f))
	}
	return true
}

// faultError is the error answer of a terminal Fault for op.
func faultError(op string, f *Fault) *apiError {
	e := &apiError{Code: f.Code, Message: f.Message, Status: f.Status}
	if e.Status == 0 {
		e.Status = http.StatusBadRequest
	}
	if e.Code == "" {
		e.Code = internalCode(op)
	}
	if e.Message == "" {
		switch e.Code {
		case CodeAccessDenied:
			service, action, _ := strings.Cut(op, ".")
			e.Message = "User: arn:aws:sts::" + accountID + ":assumed-role/awstest/awstest is not authorized to perform: " +
				service + ":" + action + " because no identity-based policy allows the " + service + ":" + action + " action"
		default:
			e.Message = "awstest: injected " + e.Code + " for " + op
		}
	}
	return e
}

// hangUp closes the request's connection without an answer; reset makes
// the close a TCP RST (SO_LINGER 0), as a peer or middlebox dropping the
// connection does.
func hangUp(w http.ResponseWriter, reset bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		// net/http's documented way to abort a response without one.
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok && reset {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
