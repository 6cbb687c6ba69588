package lifecycle_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/lifecycle"
)

func TestRegister(t *testing.T) {
	srv, rec := extapitest.NewServer(t)
	c := lifecycle.NewClient(srv.Addr(), nil)

	resp, err := c.Register(testContext(t), testName)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	want := lifecycle.RegisterResponse{
		FunctionName:    extapitest.FunctionName,
		FunctionVersion: extapitest.FunctionVersion,
		Handler:         extapitest.Handler,
	}
	if resp != want {
		t.Errorf("response = %+v, want %+v", resp, want)
	}

	reg, ok := rec.Registered()
	if !ok {
		t.Fatal("server saw no registration")
	}
	if reg.Name != testName {
		t.Errorf("Lambda-Extension-Name = %q, want %q", reg.Name, testName)
	}
	if !slices.Equal(reg.Events, []string{"INVOKE", "SHUTDOWN"}) {
		t.Errorf("events = %q, want INVOKE, SHUTDOWN", reg.Events)
	}
	calls := rec.Calls()
	var body map[string]any
	if err := json.Unmarshal(calls[0].Body, &body); err != nil || len(body) != 1 {
		t.Errorf("register body = %s, want only events", calls[0].Body)
	}
	if got := c.ExtensionID(); got != reg.ID {
		t.Errorf("ExtensionID() = %q, want the server's %q", got, reg.ID)
	}

	// The identifier is sent with later calls.
	if err := c.ExitError(testContext(t), lifecycle.ErrorTypeRuntimeError, errors.New("boom")); err != nil {
		t.Fatalf("ExitError: %v", err)
	}
	if got := rec.Calls()[1].ID; got != reg.ID {
		t.Errorf("identifier sent = %q, want %q", got, reg.ID)
	}
}

func TestRegisterErrors(t *testing.T) {
	tests := []struct {
		name       string
		start      func(t *testing.T) string // returns the API address
		emptyName  bool
		wantStatus int    // of an *APIError; 0 for another error
		wantType   string // APIError.Type
		wantText   string
	}{
		{
			name: "missing identifier header",
			start: func(t *testing.T) string {
				return rawServer(t, map[string]http.HandlerFunc{"register": respond(200, `{"functionName":"f"}`)})
			},
			wantText: "no Lambda-Extension-Identifier header",
		},
		{
			name: "undecodable body",
			start: func(t *testing.T) string {
				return rawServer(t, map[string]http.HandlerFunc{"register": func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Lambda-Extension-Identifier", "id")
					w.Write([]byte(`{"functionName":`))
				}})
			},
			wantText: "decoding response",
		},
		{
			name: "lambda fails",
			start: func(t *testing.T) string {
				srv, _ := extapitest.NewServer(t)
				srv.Inject(extapitest.RouteRegister, extapitest.Fault{Status: 500}, 1)
				return srv.Addr()
			},
			wantStatus: 500,
			wantType:   "InjectedFault",
		},
		{
			name: "registered twice",
			start: func(t *testing.T) string {
				srv, _ := extapitest.NewServer(t)
				if _, err := lifecycle.NewClient(srv.Addr(), nil).Register(testContext(t), testName); err != nil {
					t.Fatal(err)
				}
				return srv.Addr()
			},
			wantStatus: 403,
			wantType:   "Extension.InvalidExtensionState",
		},
		{
			name: "200 is the only success",
			start: func(t *testing.T) string {
				return rawServer(t, map[string]http.HandlerFunc{"register": func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Lambda-Extension-Identifier", "id")
					w.WriteHeader(http.StatusAccepted)
				}})
			},
			wantStatus: 202,
		},
		{
			name:      "empty name",
			start:     func(t *testing.T) string { return rawServer(t, nil) },
			emptyName: true,
			wantText:  "empty extension name",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := lifecycle.NewClient(tt.start(t), nil)
			name := testName
			if tt.emptyName {
				name = ""
			}
			_, err := c.Register(testContext(t), name)
			if err == nil {
				t.Fatal("Register succeeded, want error")
			}
			checkErr(t, err, tt.wantStatus, tt.wantType, tt.wantText)
			if id := c.ExtensionID(); id != "" {
				t.Errorf("ExtensionID() = %q after failure, want empty", id)
			}
		})
	}
}

// checkErr checks err is an *APIError with wantStatus and (unless empty)
// wantType, or (wantStatus 0) not an APIError, and that its text holds wantText.
func checkErr(t *testing.T, err error, wantStatus int, wantType, wantText string) {
	t.Helper()
	var apiErr *lifecycle.APIError
	isAPI := errors.As(err, &apiErr)
	switch {
	case wantStatus == 0 && isAPI:
		t.Errorf("error = %v, want no APIError", err)
	case wantStatus != 0 && !isAPI:
		t.Errorf("error = %v, want APIError %d", err, wantStatus)
	case isAPI && (apiErr.Status != wantStatus || wantType != "" && apiErr.Type != wantType):
		t.Errorf("APIError status %d type %q, want %d %q", apiErr.Status, apiErr.Type, wantStatus, wantType)
	}
	if !strings.Contains(err.Error(), wantText) {
		t.Errorf("error %q does not contain %q", err, wantText)
	}
}
