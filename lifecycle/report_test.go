package lifecycle_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/lifecycle"
)

// report is InitError or ExitError.
type report func(c *lifecycle.Client, ctx context.Context, errorType string, err error) error

var reports = []struct {
	name     string
	call     report
	recorded func(*extapitest.Record) []extapitest.ReportedError
	path     string
}{
	{"init error", (*lifecycle.Client).InitError, (*extapitest.Record).InitErrors, "init/error"},
	{"exit error", (*lifecycle.Client).ExitError, (*extapitest.Record).ExitErrors, "exit/error"},
}

func TestReportError(t *testing.T) {
	causes := []struct {
		errorType string
		cause     error
	}{
		{lifecycle.ErrorTypeConfigInvalid, errors.New(`SECRETS_MANAGER_TTL: "abc" is not a whole number of seconds (0 to 86400)`)},
		{lifecycle.ErrorTypePrefetchFailed, errors.Join(errors.New("secret db-password: access denied"), errors.New("parameter /app/key: not found"))},
		{lifecycle.ErrorTypeRuntimeError, nil},
	}
	for _, r := range reports {
		for _, tc := range causes {
			t.Run(r.name+"/"+tc.errorType, func(t *testing.T) {
				c, _, rec := registered(t)
				if err := r.call(c, testContext(t), tc.errorType, tc.cause); err != nil {
					t.Fatalf("%s: %v", r.name, err)
				}
				got := r.recorded(rec)
				if len(got) != 1 {
					t.Fatalf("server recorded %d reports, want 1", len(got))
				}
				wantMsg := ""
				if tc.cause != nil {
					wantMsg = tc.cause.Error()
				}
				rep := got[0]
				if rep.Type != tc.errorType || rep.BodyType != tc.errorType || rep.Message != wantMsg {
					t.Errorf("report = header type %q, body type %q, message %q; want %q, %q, %q",
						rep.Type, rep.BodyType, rep.Message, tc.errorType, tc.errorType, wantMsg)
				}
				// Lambda's error shape has a stackTrace array, empty but present.
				var body map[string]json.RawMessage
				if err := json.Unmarshal(rep.Body, &body); err != nil {
					t.Fatalf("body %s: %v", rep.Body, err)
				}
				if st := string(body["stackTrace"]); st != "[]" || len(body) != 3 {
					t.Errorf("body = %s, want errorMessage, errorType and stackTrace []", rep.Body)
				}
			})
		}
	}
}

func TestReportErrorErrors(t *testing.T) {
	tests := []struct {
		name       string
		client     func(t *testing.T, path string) *lifecycle.Client
		emptyType  bool
		wantOK     bool
		wantIs     error
		wantStatus int
		wantType   string
		wantText   string
	}{
		{
			name: "200 is accepted too",
			client: func(t *testing.T, path string) *lifecycle.Client {
				return rawClient(t, map[string]http.HandlerFunc{path: respond(200, "")})
			},
			wantOK: true,
		},
		{
			name: "not registered",
			client: func(t *testing.T, path string) *lifecycle.Client {
				return lifecycle.NewClient(rawServer(t, nil), nil)
			},
			wantIs: lifecycle.ErrNotRegistered,
		},
		{
			name: "empty error type",
			client: func(t *testing.T, path string) *lifecycle.Client {
				c, _, _ := registered(t)
				return c
			},
			emptyType: true,
			wantText:  "empty error type",
		},
		{
			name: "refused",
			client: func(t *testing.T, path string) *lifecycle.Client {
				return rawClient(t, map[string]http.HandlerFunc{path: respond(403,
					`{"errorMessage":"State transition from Ready to InitError failed","errorType":"Extension.InvalidExtensionState"}`)})
			},
			wantStatus: 403,
			wantType:   "Extension.InvalidExtensionState",
		},
	}
	for _, r := range reports {
		for _, tt := range tests {
			t.Run(r.name+"/"+tt.name, func(t *testing.T) {
				errorType := lifecycle.ErrorTypeRuntimeError
				if tt.emptyType {
					errorType = ""
				}
				err := r.call(tt.client(t, r.path), testContext(t), errorType, errors.New("cause"))
				if tt.wantOK {
					if err != nil {
						t.Fatalf("%s: %v", r.name, err)
					}
					return
				}
				if err == nil {
					t.Fatalf("%s succeeded, want error", r.name)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("error = %v, want %v", err, tt.wantIs)
				}
				checkErr(t, err, tt.wantStatus, tt.wantType, tt.wantText)
			})
		}
	}
}
