package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/lifecycle"
	"github.com/secrets-prefetch/secrets-prefetch/localserver"
)

const (
	testToken  = "test-session-token"
	testSecret = "s3cr3t-value-that-must-not-leak"
)

// fakeAWS answers Secrets Manager's JSON protocol: GetSecretValue and
// BatchGetSecretValue for the secrets it holds, ResourceNotFoundException
// for the rest. The real-emulator suite lives in the integration module;
// this one keeps app's own tests self-contained.
type fakeAWS struct {
	mu      sync.Mutex // protects secrets and calls
	secrets map[string]string
	calls   map[string]int
}

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := r.Header.Get("X-Amz-Target")
	var in struct {
		SecretID     string   `json:"SecretId"`
		SecretIDList []string `json:"SecretIdList"`
	}
	json.NewDecoder(r.Body).Decode(&in)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	entry := func(id string) map[string]any {
		return map[string]any{"ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + id + "-AbCdEf", "Name": id,
			"SecretString": f.secrets[id], "VersionId": "v1", "VersionStages": []string{"AWSCURRENT"}, "CreatedDate": 1.6685868e9}
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch op {
	case "secretsmanager.GetSecretValue":
		if _, ok := f.secrets[in.SecretID]; !ok {
			w.Header().Set("X-Amzn-ErrorType", "ResourceNotFoundException")
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"__type": "ResourceNotFoundException", "message": "Secrets Manager can't find the specified secret."})
			return
		}
		json.NewEncoder(w).Encode(entry(in.SecretID))
	case "secretsmanager.BatchGetSecretValue":
		out := map[string]any{"SecretValues": []any{}, "Errors": []any{}}
		for _, id := range in.SecretIDList {
			if _, ok := f.secrets[id]; ok {
				out["SecretValues"] = append(out["SecretValues"].([]any), entry(id))
			} else {
				out["Errors"] = append(out["Errors"].([]any), map[string]string{"SecretId": id, "ErrorCode": "ResourceNotFoundException", "Message": "not found"})
			}
		}
		json.NewEncoder(w).Encode(out)
	default:
		w.Header().Set("X-Amzn-ErrorType", "UnknownOperationException")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"UnknownOperationException"}`)
	}
}

func (f *fakeAWS) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls["secretsmanager."+op]
}

// harness runs Run against the fake Extensions API and the fake AWS.
type harness struct {
	api    *extapitest.Server
	rec    *extapitest.Record
	aws    *fakeAWS
	env    map[string]string
	out    syncBuffer
	addr   string
	ready  chan struct{}
	result chan error
	skew   atomic.Int64 // added to the cache's clock (see advance)
}

func newHarness(t *testing.T, env map[string]string, events ...extapitest.Event) *harness {
	t.Helper()
	h := &harness{aws: &fakeAWS{secrets: map[string]string{"db": testSecret, "api": `{"key":"` + testSecret + `"}`}, calls: map[string]int{}},
		ready: make(chan struct{}), result: make(chan error, 1)}
	awsSrv := httptest.NewServer(h.aws)
	t.Cleanup(awsSrv.Close)
	// The SDK reads these from the process environment, as in Lambda.
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key")
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", awsSrv.URL)
	t.Setenv("AWS_ENDPOINT_URL_SSM", awsSrv.URL)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	// Nor a developer's own AWS configuration (profiles, credentials).
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	h.api, h.rec = extapitest.NewServer(t, events...)
	h.env = map[string]string{
		"AWS_LAMBDA_RUNTIME_API":                 h.api.Addr(),
		"AWS_SESSION_TOKEN":                      testToken,
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL": "debug",
	}
	for k, v := range env {
		h.env[k] = v
	}
	return h
}

func (h *harness) start(t *testing.T, ctx context.Context) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = l.Addr().String()
	go func() {
		h.result <- Run(ctx, Options{
			Getenv:   func(k string) string { return h.env[k] },
			Stdout:   &h.out,
			Name:     "secrets-prefetch",
			Version:  "test",
			Listener: l,
			Ready:    func() { close(h.ready) },
			Now:      func() time.Time { return time.Now().Add(time.Duration(h.skew.Load())) },
		})
	}()
}

// advance moves the cache's clock forward, so tests need not wait out TTLs.
func (h *harness) advance(d time.Duration) { h.skew.Add(int64(d)) }

func (h *harness) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.result:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func (h *harness) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+path, nil)
	req.Header.Set(localserver.TokenHeader, testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLifecycleServesThenShutsDown(t *testing.T) {
	h := newHarness(t, map[string]string{"SECRETS_PREFETCH_SECRETS": "db, api"})
	h.start(t, t.Context())
	select {
	case <-h.ready:
	case err := <-h.result:
		t.Fatalf("Run returned before ready: %v\n%s", err, h.out.String())
	}
	if got := h.aws.count("BatchGetSecretValue"); got != 1 {
		t.Errorf("BatchGetSecretValue calls = %d, want 1 (both secrets in one batch)", got)
	}
	status, body := h.get(t, "/secretsmanager/get?secretId=api&jsonKey=key")
	if status != http.StatusOK || body != testSecret {
		t.Errorf("jsonKey read = %d %q, want 200 and the value", status, body)
	}
	if got := h.aws.count("GetSecretValue"); got != 0 {
		t.Errorf("a prefetched read called GetSecretValue %d times", got)
	}

	h.api.Push(extapitest.Invoke("req-1", time.Now().Add(3*time.Second)))
	if err := h.rec.WaitNext(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h.api.Push(extapitest.Shutdown(extapitest.ReasonSpindown, time.Now().Add(2*time.Second)))
	if err := h.wait(t); err != nil {
		t.Fatalf("Run after SHUTDOWN = %v, want nil", err)
	}
	if d := time.Since(start); d > 4*time.Second { // the deadline was 2 s: only ignoring it fails
		t.Errorf("shutdown took %v, past its deadline", d)
	}
	if _, err := net.Dial("tcp", h.addr); err == nil {
		t.Error("server still accepts connections after SHUTDOWN")
	}
	if n := len(h.rec.InitErrors()) + len(h.rec.ExitErrors()); n != 0 {
		t.Errorf("%d errors reported to Lambda, want none", n)
	}
	if strings.Contains(h.out.String(), testSecret) {
		t.Errorf("a secret value reached the logs:\n%s", h.out.String())
	}
}

func TestInitErrors(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		wantType string
		wantMsg  []string
	}{
		{
			name:     "invalid configuration",
			env:      map[string]string{"SECRETS_MANAGER_TTL": "abc", "SECRETS_PREFETCH_REFRESH_AHEAD": "2"},
			wantType: lifecycle.ErrorTypeConfigInvalid,
			wantMsg:  []string{"SECRETS_MANAGER_TTL", "SECRETS_PREFETCH_REFRESH_AHEAD", "0 to 86400"},
		},
		{
			name:     "required item missing",
			env:      map[string]string{"SECRETS_PREFETCH_SECRETS": "db,missing-one,missing-two", "SECRETS_PREFETCH_REQUIRED": "true"},
			wantType: lifecycle.ErrorTypePrefetchFailed,
			wantMsg:  []string{"missing-one", "missing-two", "ResourceNotFoundException"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.env)
			h.start(t, t.Context())
			if err := h.wait(t); err == nil {
				t.Fatal("Run = nil, want an error")
			}
			errs := h.rec.InitErrors()
			if len(errs) != 1 || errs[0].Type != tt.wantType {
				t.Fatalf("init errors = %+v, want one %s", errs, tt.wantType)
			}
			for _, want := range tt.wantMsg {
				if !strings.Contains(errs[0].Message, want) {
					t.Errorf("init/error message %q lacks %q", errs[0].Message, want)
				}
				if !strings.Contains(h.out.String(), want) {
					t.Errorf("log lacks %q (Lambda does not show the init/error body):\n%s", want, h.out.String())
				}
			}
			if strings.Contains(h.out.String(), testSecret) || strings.Contains(errs[0].Message, testSecret) {
				t.Error("a secret value leaked into the logs or the error")
			}
		})
	}
}

func TestBestEffortPrefetchServesTheRest(t *testing.T) {
	h := newHarness(t, map[string]string{"SECRETS_PREFETCH_SECRETS": "db,missing"},
		extapitest.Shutdown(extapitest.ReasonSpindown, time.Now().Add(10*time.Second)))
	h.start(t, t.Context())
	if err := h.wait(t); err != nil {
		t.Fatalf("Run = %v, want nil: a missing item is not fatal without SECRETS_PREFETCH_REQUIRED", err)
	}
	if !strings.Contains(h.out.String(), "missing") {
		t.Errorf("the failed item is not named in the log:\n%s", h.out.String())
	}
}

func TestNextFailureReportsExitError(t *testing.T) {
	h := newHarness(t, nil)
	h.api.Inject(extapitest.RouteNext, extapitest.Fault{Status: http.StatusForbidden}, extapitest.Always)
	h.start(t, t.Context())
	if err := h.wait(t); err == nil {
		t.Fatal("Run = nil, want the event/next error")
	}
	errs := h.rec.ExitErrors()
	if len(errs) != 1 || errs[0].Type != lifecycle.ErrorTypeRuntimeError {
		t.Fatalf("exit errors = %+v, want one %s", errs, lifecycle.ErrorTypeRuntimeError)
	}
}

func TestRegisterRefused(t *testing.T) {
	h := newHarness(t, nil)
	h.api.Inject(extapitest.RouteRegister, extapitest.Fault{Status: http.StatusInternalServerError}, extapitest.Always)
	h.start(t, t.Context())
	if err := h.wait(t); err == nil || !strings.Contains(err.Error(), "register") {
		t.Fatalf("Run = %v, want a register error", err)
	}
	if !strings.Contains(h.out.String(), "register failed") {
		t.Errorf("log lacks the register failure:\n%s", h.out.String())
	}
}

func TestSignalStopsCleanly(t *testing.T) {
	h := newHarness(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	h.start(t, ctx)
	<-h.ready
	if err := h.rec.WaitNext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := h.wait(t); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
}

func TestNoRuntimeAPI(t *testing.T) {
	var out bytes.Buffer
	err := Run(t.Context(), Options{Getenv: func(string) string { return "" }, Stdout: &out, Name: "x"})
	if err == nil || !strings.Contains(err.Error(), "AWS_LAMBDA_RUNTIME_API") {
		t.Fatalf("Run = %v, want an error naming AWS_LAMBDA_RUNTIME_API", err)
	}
}

func TestParameterKey(t *testing.T) {
	tests := []struct{ in, id, sel string }{
		{"/app/db", "/app/db", ""},
		{"/app/db:3", "/app/db", ":3"},
		{"plain:prod", "plain", ":prod"},
		{"arn:aws:ssm:us-east-1:123456789012:parameter/app/db", "arn:aws:ssm:us-east-1:123456789012:parameter/app/db", ""},
		{"arn:aws:ssm:us-east-1:123456789012:parameter/app/db:2", "arn:aws:ssm:us-east-1:123456789012:parameter/app/db", ":2"},
	}
	for _, tt := range tests {
		k := parameterKey(tt.in)
		if k.ID != tt.id || k.Selector != tt.sel || !k.Decrypt {
			t.Errorf("parameterKey(%q) = %+v, want ID %q selector %q decrypted", tt.in, k, tt.id, tt.sel)
		}
	}
}
