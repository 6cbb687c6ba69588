package extapitest

import (
	"context"
	"slices"
	"sync"
)

// Call is one request the server received, in arrival order.
type Call struct {
	Method    string
	Path      string
	Name      string // Lambda-Extension-Name
	ID        string // Lambda-Extension-Identifier
	ErrorType string // Lambda-Extension-Function-Error-Type
	Body      []byte
}

// Registration is what a successful register call established.
type Registration struct {
	Name   string   // Lambda-Extension-Name
	ID     string   // the identifier the server assigned
	Events []string // the events subscribed to
}

// ReportedError is an accepted init/error or exit/error call.
type ReportedError struct {
	Type       string   // the Lambda-Extension-Function-Error-Type header
	Message    string   // errorMessage of the body
	BodyType   string   // errorType of the body
	StackTrace []string // stackTrace of the body
	Body       []byte   // the raw body, also when it is not JSON
}

// Record is what the server saw. It is safe for concurrent use; accessors
// return copies.
type Record struct {
	mu         sync.Mutex // protects the fields below
	calls      []Call
	nextCalls  int
	reg        *Registration
	initErrors []ReportedError
	exitErrors []ReportedError
	delivered  []Event
	changed    chan struct{} // closed and replaced on every change, to wake waiters
}

func newRecord() *Record {
	return &Record{changed: make(chan struct{})}
}

// notifyLocked wakes every waiter. Requires r.mu held.
func (r *Record) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *Record) addCall(c Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
	if c.Path == string(RouteNext) {
		r.nextCalls++
	}
	r.notifyLocked()
}

func (r *Record) setRegistration(reg Registration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reg = &reg
	r.notifyLocked()
}

func (r *Record) addReport(route Route, e ReportedError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if route == RouteInitError {
		r.initErrors = append(r.initErrors, e)
	} else {
		r.exitErrors = append(r.exitErrors, e)
	}
	r.notifyLocked()
}

func (r *Record) addDelivered(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivered = append(r.delivered, e)
	r.notifyLocked()
}

// Calls returns every request received so far, in order, faulted ones too.
func (r *Record) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// NextCalls returns how many event/next requests have arrived, including
// ones that were refused, faulted or are still waiting for an event.
func (r *Record) NextCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nextCalls
}

// Registered returns the successful registration, if there was one.
func (r *Record) Registered() (Registration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reg == nil {
		return Registration{}, false
	}
	return *r.reg, true
}

// InitErrors returns the accepted init/error reports.
func (r *Record) InitErrors() []ReportedError {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.initErrors)
}

// ExitErrors returns the accepted exit/error reports.
func (r *Record) ExitErrors() []ReportedError {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.exitErrors)
}

// Delivered returns the events answered to event/next so far.
func (r *Record) Delivered() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.delivered)
}

// WaitFor blocks until cond returns true or ctx ends. cond is evaluated
// again after every change to the record; it may call the accessors.
func (r *Record) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		r.mu.Lock()
		changed := r.changed // taken before cond so no change is missed
		r.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitNext blocks until at least n event/next requests have arrived — that
// is, the extension has finished with the event before the n-th — or ctx ends.
func (r *Record) WaitNext(ctx context.Context, n int) error {
	return r.WaitFor(ctx, func() bool { return r.NextCalls() >= n })
}
