package awstest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func TestErrorFaults(t *testing.T) {
	a, sm, ps := start(t)
	ctx := t.Context()
	try(a.PutSecretString(ctx, "s", "v")).must(t)
	try(a.PutParameter(ctx, "/p", "v", "SecureString")).must(t)
	getSecret := func() error {
		_, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
		return err
	}
	batchSecrets := func() error {
		_, err := sm.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"s"}})
		return err
	}
	getParameter := func() error {
		_, err := ps.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/p"), WithDecryption: aws.Bool(true)})
		return err
	}
	getParameters := func() error {
		_, err := ps.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/p"}, WithDecryption: aws.Bool(true)})
		return err
	}

	tests := []struct {
		name       string
		op         string
		fault      Fault
		call       func() error
		wantCode   string
		wantStatus int
	}{
		{"throttled secret", OpGetSecretValue, Throttling(), getSecret, CodeThrottling, 400},
		{"throttled parameters", OpGetParameters, Throttling(), getParameters, CodeThrottling, 400},
		{"Secrets Manager 500", OpGetSecretValue, InternalError(), getSecret, CodeSMInternal, 500},
		{"SSM 500", OpGetParameter, InternalError(), getParameter, CodeSSMInternal, 500},
		{"access denied", OpBatchGetSecretValue, AccessDenied(), batchSecrets, CodeAccessDenied, 400},
		{"KMS refuses SSM", OpGetParameter, KMSAccessDenied(), getParameter, CodeAccessDenied, 400},
		{"KMS refuses Secrets Manager", OpGetSecretValue, ErrorFault(CodeDecryptionFailure, 400), getSecret, CodeDecryptionFailure, 400},
		{"batch unsupported", OpBatchGetSecretValue, Unsupported(), batchSecrets, CodeUnknownOperation, 400},
		{"every operation", OpAll, ErrorFault("ServiceUnavailable", 503), getParameters, "ServiceUnavailable", 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			remove := a.Inject(tt.op, tt.fault)
			err := tt.call()
			remove()
			wantAPIError(t, err, tt.wantCode, tt.wantStatus)
			if err := tt.call(); err != nil {
				t.Errorf("after remove: %v", err)
			}
		})
	}
}

func TestFaultLimitAndToggle(t *testing.T) {
	a, _, ps := start(t)
	ctx := t.Context()
	try(a.PutParameter(ctx, "/p", "v", "String")).must(t)
	get := func() error {
		_, err := ps.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/p")})
		return err
	}

	a.Inject(OpGetParameter, Throttling().Times(2))
	var codes []string
	for range 3 {
		codes = append(codes, errorCode(get()))
	}
	if want := []string{CodeThrottling, CodeThrottling, ""}; !slices.Equal(codes, want) {
		t.Errorf("codes = %q, want %q", codes, want)
	}

	remove := a.Inject(OpAll, InternalError())
	wantAPIError(t, get(), CodeSSMInternal, http.StatusInternalServerError)
	remove()
	remove() // again: no effect
	if err := get(); err != nil {
		t.Errorf("after remove: %v", err)
	}

	a.Inject(OpGetParameter, AccessDenied())
	a.Inject(OpGetParameter, Throttling())
	wantAPIError(t, get(), CodeAccessDenied, 0) // the first injected decides
	a.ClearFaults()
	if err := get(); err != nil {
		t.Errorf("after ClearFaults: %v", err)
	}
}

// TestFaultRetriedBySDK checks that an SDK client with its standard retries
// gets through a limited throttle, each attempt counted.
func TestFaultRetriedBySDK(t *testing.T) {
	a, _, _ := start(t)
	ctx := t.Context()
	try(a.PutSecretString(ctx, "s", "v")).must(t)
	sm := a.SecretsManagerClient(func(o *secretsmanager.Options) {
		o.Retryer = retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	})
	a.Inject(OpGetSecretValue, Throttling().Times(2))
	if _, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
	if n := a.Calls(OpGetSecretValue); n != 3 {
		t.Errorf("Calls = %d, want 3 (two throttled, one served)", n)
	}
}

func TestLatency(t *testing.T) {
	a, _, ps := start(t)
	ctx := t.Context()
	try(a.PutParameter(ctx, "/p", "v", "String")).must(t)
	get := func(ctx context.Context) error {
		_, err := ps.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/p")})
		return err
	}

	remove := a.Inject(OpGetParameter, Latency(150*time.Millisecond))
	start := time.Now()
	if err := get(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("call took %v, want at least the injected 150ms", d)
	}
	remove()

	// A delay longer than the client will wait is cut short by its context.
	a.Inject(OpAll, Latency(time.Hour))
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := get(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("call took %v, want it bounded by the client's 100ms", d)
	}
}

func TestConnReset(t *testing.T) {
	a, sm, _ := start(t)
	ctx := t.Context()
	try(a.PutSecretString(ctx, "s", "v")).must(t)
	a.Inject(OpGetSecretValue, ConnReset().Times(1))
	_, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
	var sendErr *smithyhttp.RequestSendError
	if !errors.As(err, &sendErr) || errorCode(err) != "" {
		t.Fatalf("error = %v, want a transport error (RequestSendError), not an API error", err)
	}
	if !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("error = %v, want a connection reset", err)
	}
	if _, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")}); err != nil {
		t.Errorf("next call: %v", err)
	}
}

func TestBlackHole(t *testing.T) {
	a, sm, _ := start(t)
	a.Inject(OpBatchGetSecretValue, BlackHole())
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := sm.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"s"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("call took %v, want it bounded by the client's 100ms", d)
	}
}

// TestCloseReleasesHeldRequests checks that Close does not wait for a
// client that never gives up.
func TestCloseReleasesHeldRequests(t *testing.T) {
	t.Parallel()
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	a.Inject(OpGetSecretValue, BlackHole())
	sm := a.SecretsManagerClient(func(o *secretsmanager.Options) { o.RetryMaxAttempts = 1 })
	// The client never gives up; its request is held once written.
	wrote := make(chan struct{})
	var once sync.Once
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(wrote) }) },
	})
	done := make(chan error, 1)
	go func() {
		_, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
		done <- err
	}()
	<-wrote
	a.Close()
	a.Close()
	if err := <-done; err == nil {
		t.Error("held request succeeded after Close, want an error")
	}
}

func TestPartialFailure(t *testing.T) {
	a, sm, ps := start(t)
	ctx := t.Context()
	for _, id := range []string{"a", "b"} {
		try(a.PutSecretString(ctx, id, id+"-value")).must(t)
		try(a.PutParameter(ctx, "/"+id, id+"-value", "String")).must(t)
	}

	a.Inject(OpBatchGetSecretValue, PartialFailure(CodeDecryptionFailure, "b"))
	out := try(sm.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"a", "b"}})).must(t)
	if len(out.SecretValues) != 1 || aws.ToString(out.SecretValues[0].Name) != "a" {
		t.Errorf("SecretValues = %+v, want only a", out.SecretValues)
	}
	if len(out.Errors) != 1 || aws.ToString(out.Errors[0].SecretId) != "b" || aws.ToString(out.Errors[0].ErrorCode) != CodeDecryptionFailure {
		t.Errorf("Errors = %+v, want b with DecryptionFailure", out.Errors)
	}

	a.Inject(OpGetParameters, PartialFailure("", "/b").Times(1))
	params := try(ps.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/a", "/b"}})).must(t)
	if len(params.Parameters) != 1 || aws.ToString(params.Parameters[0].Name) != "/a" || !slices.Equal(params.InvalidParameters, []string{"/b"}) {
		t.Errorf("GetParameters = %d parameters, invalid %v; want /a and [/b]", len(params.Parameters), params.InvalidParameters)
	}
	params = try(ps.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/a", "/b"}})).must(t)
	if len(params.Parameters) != 2 {
		t.Errorf("after the limited fault: %d parameters, want 2", len(params.Parameters))
	}
}

func TestCalls(t *testing.T) {
	a, sm, ps := start(t)
	ctx := t.Context()
	// Seeding is neither counted nor faulted.
	a.Inject(OpAll, InternalError())
	try(a.PutSecretString(ctx, "s", "v")).must(t)
	try(a.PutParameter(ctx, "/p", "v", "String")).must(t)
	if calls := a.AllCalls(); len(calls) != 0 {
		t.Errorf("after seeding, AllCalls = %v, want none", calls)
	}
	a.ClearFaults()

	for range 2 {
		try(ps.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/p", "/x", "/y"}})).must(t)
	}
	try(sm.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"s", "t"}})).must(t)
	try(sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})).must(t)
	_, _ = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("missing")})

	want := map[string]int{OpGetParameters: 2, OpBatchGetSecretValue: 1, OpGetSecretValue: 2}
	if got := a.AllCalls(); len(got) != len(want) || got[OpGetParameters] != 2 || got[OpBatchGetSecretValue] != 1 || got[OpGetSecretValue] != 2 {
		t.Errorf("AllCalls = %v, want %v", got, want)
	}
	if a.Items(OpGetParameters) != 6 || a.Items(OpBatchGetSecretValue) != 2 || a.Items(OpGetSecretValue) != 2 {
		t.Errorf("Items = %d, %d, %d; want 6, 2, 2", a.Items(OpGetParameters), a.Items(OpBatchGetSecretValue), a.Items(OpGetSecretValue))
	}
	a.ResetCalls()
	if a.Calls(OpGetParameters) != 0 || a.Items(OpGetParameters) != 0 || len(a.AllCalls()) != 0 {
		t.Errorf("after ResetCalls: %v", a.AllCalls())
	}
}

// TestQuota: past a service's quota calls are throttled (and counted), the
// other service is not limited, and removing the quota lifts it.
func TestQuota(t *testing.T) {
	a, sm, ps := start(t)
	ctx := t.Context()
	try(a.PutSecretString(ctx, "s", "v")).must(t)
	try(a.PutParameter(ctx, "/p", "v", "SecureString")).must(t)
	remove := a.SetQuota("ssm", 1)
	a.ResetCalls()
	noRetry := func(o *ssm.Options) { o.RetryMaxAttempts = 1 }
	var throttled int
	const calls = 10 // a quota of 1 per second lets 1 through, plus 1 per second the calls take
	for range calls {
		_, err := ps.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/p"}, WithDecryption: aws.Bool(true)}, noRetry)
		if err != nil {
			wantAPIError(t, err, CodeThrottling, 400)
			throttled++
		}
	}
	if throttled == 0 || throttled != a.Throttled() {
		t.Errorf("%d calls throttled, Throttled() = %d; want the same, at least 1", throttled, a.Throttled())
	}
	if got := a.Calls(OpGetParameters); got != calls {
		t.Errorf("Calls = %d, want %d (throttled calls count)", got, calls)
	}
	for range 3 {
		if _, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")}); err != nil {
			t.Errorf("Secrets Manager under an SSM quota: %v", err)
		}
	}
	remove()
	if _, err := ps.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/p"}, WithDecryption: aws.Bool(true)}, noRetry); err != nil {
		t.Errorf("after remove: %v", err)
	}
}
