package source

import (
	"context"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
)

// statsSM answers GetSecretValue for "ok" and throttles the rest; it
// refuses BatchGetSecretValue as a role without the permission does.
type statsSM struct{}

func (statsSM) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	if aws.ToString(in.SecretId) != "ok" {
		return nil, &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}
	}
	return &secretsmanager.GetSecretValueOutput{Name: in.SecretId, SecretString: aws.String("v")}, nil
}

func (statsSM) BatchGetSecretValue(context.Context, *secretsmanager.BatchGetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized"}
}

// statsSSM serves /p/a and /p/b by GetParameters (and /p/missing as
// invalid), two pages under /p, and ParameterNotFound for GetParameter.
type statsSSM struct{}

func (statsSSM) GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "ParameterNotFound"}
}

func (statsSSM) GetParameters(_ context.Context, in *ssm.GetParametersInput, _ ...func(*ssm.Options)) (*ssm.GetParametersOutput, error) {
	out := &ssm.GetParametersOutput{}
	for _, n := range in.Names {
		if n == "/p/missing" {
			out.InvalidParameters = append(out.InvalidParameters, n)
			continue
		}
		out.Parameters = append(out.Parameters, ssmtypes.Parameter{Name: aws.String(n), Value: aws.String("v"), Type: ssmtypes.ParameterTypeString, Version: 1})
	}
	return out, nil
}

func (statsSSM) GetParametersByPath(_ context.Context, in *ssm.GetParametersByPathInput, _ ...func(*ssm.Options)) (*ssm.GetParametersByPathOutput, error) {
	if in.NextToken == nil {
		return &ssm.GetParametersByPathOutput{NextToken: aws.String("page2"),
			Parameters: []ssmtypes.Parameter{{Name: aws.String("/p/a"), Value: aws.String("v"), Type: ssmtypes.ParameterTypeString}}}, nil
	}
	return &ssm.GetParametersByPathOutput{}, nil
}

func TestStatsCountCallsAndErrors(t *testing.T) {
	s := New(Options{SecretsManager: statsSM{}, SSM: statsSSM{}, MaxConcurrency: 4})
	var mu sync.Mutex
	outcomes := map[string]bool{}
	deliver := func(k Key, _ *Item, err error) {
		mu.Lock()
		defer mu.Unlock()
		outcomes[k.ID] = err == nil
	}
	ctx := t.Context()
	// Two secrets: BatchGetSecretValue (refused: an access-denied call),
	// then GetSecretValue for each (one throttled).
	s.Fetch(ctx, []Key{SecretKey("ok"), SecretKey("busy")}, deliver)
	// Three parameters: one GetParameters; the invalid name is an item
	// outcome, not a failed call.
	s.Fetch(ctx, []Key{ParameterKey("/p/a"), ParameterKey("/p/b"), ParameterKey("/p/missing")}, deliver)
	// One parameter alone: GetParameter, not found.
	s.Fetch(ctx, []Key{ParameterKey("/p/gone")}, deliver)
	// Two pages.
	if _, err := s.FetchPath(ctx, "/p", false, deliver); err != nil {
		t.Fatal(err)
	}
	// A call the extension itself cancels is a call, not an error.
	canceled, cancel := context.WithCancel(ctx)
	s.call(ctx, APIGetSecretValue, func(context.Context) error { cancel(); return canceled.Err() })

	got := s.Stats()
	want := Stats{}
	want.Calls[APIBatchGetSecretValue] = 1
	want.Calls[APIGetSecretValue] = 3
	want.Calls[APIGetParameters] = 1
	want.Calls[APIGetParameter] = 1
	want.Calls[APIGetParametersByPath] = 2
	want.Errors[ClassAccessDenied] = 1
	want.Errors[ClassThrottled] = 1
	want.Errors[ClassNotFound] = 1
	if got != want {
		t.Errorf("Stats = %+v\nwant    %+v", got, want)
	}
	if got.TotalCalls() != 8 || got.TotalErrors() != 3 {
		t.Errorf("totals = %d calls, %d errors; want 8, 3", got.TotalCalls(), got.TotalErrors())
	}
	if !outcomes["ok"] || outcomes["busy"] || outcomes["/p/missing"] || !outcomes["/p/b"] || outcomes["/p/gone"] {
		t.Errorf("outcomes = %v", outcomes)
	}
}

func TestStatsNotCountedWhenNoCallIsMade(t *testing.T) {
	s := New(Options{SecretsManager: statsSM{}, SSM: statsSSM{}, MaxConcurrency: 1})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	// Canceled while waiting for the concurrency bound: no call went out.
	g, _ := s.reads.acquire(t.Context())
	if err := s.call(ctx, APIGetParameter, func(context.Context) error { return nil }); err == nil {
		t.Fatal("call with a canceled context and a full bound = nil")
	}
	s.reads.release(g, false)
	if st := s.Stats(); st.TotalCalls() != 0 || st.TotalErrors() != 0 {
		t.Errorf("Stats = %+v, want nothing counted", st)
	}
}

func TestAPINames(t *testing.T) {
	for api, want := range map[API]struct {
		name string
		svc  Service
	}{
		APIGetSecretValue:      {"GetSecretValue", SecretsManager},
		APIBatchGetSecretValue: {"BatchGetSecretValue", SecretsManager},
		APIGetParameter:        {"GetParameter", ParameterStore},
		APIGetParameters:       {"GetParameters", ParameterStore},
		APIGetParametersByPath: {"GetParametersByPath", ParameterStore},
	} {
		if api.String() != want.name || api.Service() != want.svc {
			t.Errorf("API %d = %s %v, want %s %v", api, api, api.Service(), want.name, want.svc)
		}
	}
	if Class(NumClasses-1).String() != ClassTimeout.String() {
		t.Error("NumClasses does not end at the last class")
	}
}
