package extapitest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
)

// failsafe bounds every wait so a bug fails the test instead of hanging it.
const failsafe = 10 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), failsafe)
	t.Cleanup(cancel)
	return ctx
}

// api calls the fake over plain net/http, so these tests check the wire
// protocol rather than a client's view of it.
type api struct {
	t    *testing.T
	addr string
	hc   *http.Client
}

type answer struct {
	status int
	header http.Header
	body   string
}

// errorType returns errorType of a Lambda JSON error body.
func (a answer) errorType() string {
	var e struct {
		ErrorType string `json:"errorType"`
	}
	json.Unmarshal([]byte(a.body), &e)
	return e.ErrorType
}

func (a *api) do(ctx context.Context, method string, route extapitest.Route, header map[string]string, body string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+a.addr+string(route), strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}, err
}

// must is do for calls that must get an answer.
func (a *api) must(method string, route extapitest.Route, header map[string]string, body string) answer {
	a.t.Helper()
	ans, err := a.do(testContext(a.t), method, route, header, body)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, route, err)
	}
	return ans
}

// register registers as "ext" and returns the identifier.
func (a *api) register() string {
	a.t.Helper()
	ans := a.must("POST", extapitest.RouteRegister, map[string]string{"Lambda-Extension-Name": "ext"}, `{"events":["INVOKE","SHUTDOWN"]}`)
	if ans.status != 200 {
		a.t.Fatalf("register: %d %s", ans.status, ans.body)
	}
	return ans.header.Get("Lambda-Extension-Identifier")
}

func start(t *testing.T, events ...extapitest.Event) (*extapitest.Server, *extapitest.Record, *api) {
	srv, rec := extapitest.NewServer(t, events...)
	return srv, rec, &api{t: t, addr: srv.Addr(), hc: &http.Client{}}
}

func idHeader(id string) map[string]string {
	return map[string]string{"Lambda-Extension-Identifier": id}
}

func TestLifecycle(t *testing.T) {
	deadline := time.UnixMilli(1_767_225_600_123)
	_, rec, a := start(t, extapitest.Invoke("req-1", deadline), extapitest.Shutdown(extapitest.ReasonSpindown, deadline))

	ans := a.must("POST", extapitest.RouteRegister, map[string]string{"Lambda-Extension-Name": "ext"}, `{"events":["INVOKE","SHUTDOWN"]}`)
	id := ans.header.Get("Lambda-Extension-Identifier")
	if ans.status != 200 || len(id) != 36 {
		t.Fatalf("register = %d, identifier %q", ans.status, id)
	}
	wantReg := `{"functionName":"test-function","functionVersion":"$LATEST","handler":"bootstrap"}`
	if ans.body != wantReg {
		t.Errorf("register body = %s, want %s", ans.body, wantReg)
	}
	if reg, ok := rec.Registered(); !ok || reg.Name != "ext" || reg.ID != id || !slices.Equal(reg.Events, []string{"INVOKE", "SHUTDOWN"}) {
		t.Errorf("Registered() = %+v, %v", reg, ok)
	}

	wantEvents := []string{
		`{"eventType":"INVOKE","deadlineMs":1767225600123,"requestId":"req-1",` +
			`"invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:test-function",` +
			`"tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}}`,
		`{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":1767225600123}`,
	}
	for i, want := range wantEvents {
		ans := a.must("GET", extapitest.RouteNext, idHeader(id), "")
		if ans.status != 200 || ans.body != want {
			t.Errorf("next #%d = %d %s\nwant 200 %s", i+1, ans.status, ans.body, want)
		}
		if ans.header.Get("Lambda-Extension-Event-Identifier") == "" {
			t.Errorf("next #%d has no Lambda-Extension-Event-Identifier", i+1)
		}
	}
	if got := rec.Delivered(); len(got) != 2 || got[1].Type != extapitest.TypeShutdown {
		t.Errorf("Delivered() = %+v", got)
	}

	// Events used up: next blocks until its request ends.
	ctx, cancel := context.WithCancel(testContext(t))
	errc := make(chan error, 1)
	go func() {
		_, err := a.do(ctx, "GET", extapitest.RouteNext, idHeader(id), "")
		errc <- err
	}()
	if err := rec.WaitNext(testContext(t), 3); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		t.Fatalf("next returned with no event left: %v", err)
	default:
	}
	cancel()
	if err := receive(t, errc); !errors.Is(err, context.Canceled) {
		t.Errorf("blocked next ended with %v, want context.Canceled", err)
	}

	if n := rec.NextCalls(); n != 3 {
		t.Errorf("NextCalls() = %d, want 3", n)
	}
	paths := []string{}
	for _, c := range rec.Calls() {
		paths = append(paths, c.Method+" "+c.Path)
	}
	wantPaths := []string{
		"POST " + string(extapitest.RouteRegister),
		"GET " + string(extapitest.RouteNext),
		"GET " + string(extapitest.RouteNext),
		"GET " + string(extapitest.RouteNext),
	}
	if !slices.Equal(paths, wantPaths) {
		t.Errorf("calls = %q\nwant %q", paths, wantPaths)
	}
}

func TestPush(t *testing.T) {
	srv, rec, a := start(t)
	id := a.register()

	got := make(chan answer, 1)
	go func() {
		ans, _ := a.do(testContext(t), "GET", extapitest.RouteNext, idHeader(id), "")
		got <- ans
	}()
	if err := rec.WaitNext(testContext(t), 1); err != nil {
		t.Fatal(err)
	}
	srv.Push(extapitest.Shutdown(extapitest.ReasonTimeout, time.UnixMilli(42)))
	ans := receive(t, got)
	if want := `{"eventType":"SHUTDOWN","shutdownReason":"timeout","deadlineMs":42}`; ans.body != want {
		t.Errorf("pushed event = %d %s, want %s", ans.status, ans.body, want)
	}
}

func TestIdentifierChecked(t *testing.T) {
	routes := []struct {
		method string
		route  extapitest.Route
	}{
		{"GET", extapitest.RouteNext},
		{"POST", extapitest.RouteInitError},
		{"POST", extapitest.RouteExitError},
	}
	ids := []struct {
		name     string
		id       string
		wantType string
	}{
		{"missing", "", "Extension.MissingExtensionIdentifier"},
		{"malformed", "not-a-uuid", "Extension.InvalidExtensionIdentifier"},
		{"unknown", "00000000-0000-4000-8000-000000000000", "Extension.UnknownExtensionIdentifier"},
	}
	for _, r := range routes {
		for _, tt := range ids {
			t.Run(string(r.route)+"/"+tt.name, func(t *testing.T) {
				_, rec, a := start(t, extapitest.Invoke("req-1", time.Now()))
				a.register()
				hdr := map[string]string{"Lambda-Extension-Function-Error-Type": "Extension.Test"}
				if tt.id != "" {
					hdr["Lambda-Extension-Identifier"] = tt.id
				}
				ans := a.must(r.method, r.route, hdr, `{}`)
				if ans.status != 403 || ans.errorType() != tt.wantType {
					t.Errorf("answer = %d %s, want 403 %s", ans.status, ans.body, tt.wantType)
				}
				if len(rec.Delivered())+len(rec.InitErrors())+len(rec.ExitErrors()) != 0 {
					t.Error("a refused call had an effect")
				}
			})
		}
	}
}

func TestRegisterRefused(t *testing.T) {
	tests := []struct {
		name     string
		extName  string
		body     string
		twice    bool
		wantType string
	}{
		{"no name", "", `{"events":["INVOKE"]}`, false, "Extension.InvalidExtensionName"},
		{"bad body", "ext", `{"events":`, false, "InvalidRequestFormat"},
		{"internal-only event", "ext", `{"events":["INVOKE","RESTORE"]}`, false, "Extension.InvalidEventType"},
		{"twice", "ext", `{"events":["INVOKE"]}`, true, "Extension.InvalidExtensionState"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rec, a := start(t)
			if tt.twice {
				a.register()
			}
			ans := a.must("POST", extapitest.RouteRegister, map[string]string{"Lambda-Extension-Name": tt.extName}, tt.body)
			if ans.status != 403 || ans.errorType() != tt.wantType || ans.header.Get("Lambda-Extension-Identifier") != "" {
				t.Errorf("register = %d %s, want 403 %s and no identifier", ans.status, ans.body, tt.wantType)
			}
			if _, ok := rec.Registered(); ok != tt.twice {
				t.Errorf("Registered() ok = %v, want %v", ok, tt.twice)
			}
		})
	}
}

func TestReportErrors(t *testing.T) {
	reports := []struct {
		route    extapitest.Route
		recorded func(*extapitest.Record) []extapitest.ReportedError
	}{
		{extapitest.RouteInitError, (*extapitest.Record).InitErrors},
		{extapitest.RouteExitError, (*extapitest.Record).ExitErrors},
	}
	for _, r := range reports {
		t.Run(string(r.route), func(t *testing.T) {
			_, rec, a := start(t, extapitest.Invoke("req-1", time.Now()))
			id := a.register()

			ans := a.must("POST", r.route, idHeader(id), `{}`)
			if ans.status != 403 || ans.errorType() != "Extension.MissingHeader" {
				t.Errorf("without error type = %d %s, want 403 Extension.MissingHeader", ans.status, ans.body)
			}

			hdr := idHeader(id)
			hdr["Lambda-Extension-Function-Error-Type"] = "Extension.ConfigInvalid"
			ans = a.must("POST", r.route, hdr, `{"errorMessage":"bad TTL","errorType":"Extension.ConfigInvalid","stackTrace":[]}`)
			if ans.status != 202 || ans.body != `{"status":"OK"}` {
				t.Errorf("report = %d %s, want 202 {\"status\":\"OK\"}", ans.status, ans.body)
			}
			got := r.recorded(rec)
			if len(got) != 1 || got[0].Type != "Extension.ConfigInvalid" || got[0].Message != "bad TTL" ||
				got[0].BodyType != "Extension.ConfigInvalid" || got[0].StackTrace == nil {
				t.Errorf("recorded = %+v", got)
			}

			// Like Lambda, an extension that reported an error gets no more events.
			ans = a.must("GET", extapitest.RouteNext, idHeader(id), "")
			if ans.status != 403 || ans.errorType() != "Extension.InvalidExtensionState" {
				t.Errorf("next after report = %d %s, want 403", ans.status, ans.body)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	t.Run("status k times", func(t *testing.T) {
		srv, rec, a := start(t, extapitest.Invoke("1", time.Now()))
		id := a.register()
		srv.Inject(extapitest.RouteNext, extapitest.Fault{Status: 500}, 2)
		for i, want := range []int{500, 500, 200} {
			ans := a.must("GET", extapitest.RouteNext, idHeader(id), "")
			if ans.status != want {
				t.Errorf("next #%d = %d %s, want %d", i+1, ans.status, ans.body, want)
			}
			if want == 500 && ans.errorType() != "InjectedFault" {
				t.Errorf("fault body = %s", ans.body)
			}
		}
		if n := rec.NextCalls(); n != 3 {
			t.Errorf("NextCalls() = %d, want 3 (faulted calls count)", n)
		}
	})
	t.Run("register", func(t *testing.T) {
		srv, rec, a := start(t)
		srv.Inject(extapitest.RouteRegister, extapitest.Fault{Status: 429}, 1)
		ans := a.must("POST", extapitest.RouteRegister, map[string]string{"Lambda-Extension-Name": "ext"}, `{"events":["INVOKE"]}`)
		if ans.status != 429 || ans.header.Get("Lambda-Extension-Identifier") != "" {
			t.Errorf("register = %d, want 429 without identifier", ans.status)
		}
		if _, ok := rec.Registered(); ok {
			t.Error("faulted register registered")
		}
		a.register() // the fault is used up
	})
	t.Run("close always, then cleared", func(t *testing.T) {
		srv, rec, a := start(t, extapitest.Invoke("1", time.Now()))
		id := a.register()
		srv.Inject(extapitest.RouteNext, extapitest.Fault{Close: true}, extapitest.Always)
		for range 3 {
			if ans, err := a.do(testContext(t), "GET", extapitest.RouteNext, idHeader(id), ""); err == nil {
				t.Fatalf("next over a dropped connection = %d %s, want a transport error", ans.status, ans.body)
			}
		}
		if len(rec.Delivered()) != 0 {
			t.Error("an event was used up by a faulted call")
		}
		srv.Inject(extapitest.RouteNext, extapitest.Fault{}, 0)
		if ans := a.must("GET", extapitest.RouteNext, idHeader(id), ""); ans.status != 200 {
			t.Errorf("next after clearing = %d %s", ans.status, ans.body)
		}
	})
}

func TestCloseReleasesWaitingNext(t *testing.T) {
	srv, rec, a := start(t)
	id := a.register()
	errc := make(chan error, 1)
	go func() {
		_, err := a.do(testContext(t), "GET", extapitest.RouteNext, idHeader(id), "")
		errc <- err
	}()
	if err := rec.WaitNext(testContext(t), 1); err != nil {
		t.Fatal(err)
	}
	srv.Close() // must not hang on the waiting call
	if err := receive(t, errc); err == nil {
		t.Error("waiting next succeeded after Close, want a transport error")
	}
	srv.Close() // twice is fine
}

func TestWaitForContextEnds(t *testing.T) {
	_, rec, _ := start(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := rec.WaitNext(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitNext = %v, want context.Canceled", err)
	}
}

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
