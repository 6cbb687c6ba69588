package awstest

import (
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// TestEnv checks that Env is enough for the SDK's default configuration,
// as the extension builds it, to reach this AWS with valid signatures.
// It sets the process environment, so it does not run in parallel.
func TestEnv(t *testing.T) {
	a := Start(t)
	ctx := t.Context()
	try(a.PutSecretString(ctx, "env-secret", "s")).must(t)
	try(a.PutParameter(ctx, "/env/p", "p", "String")).must(t)
	for _, kv := range a.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	// Keep shared config files on this machine out of it.
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_PROFILE", "")

	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := try(secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("env-secret")})).must(t)
	p := try(ssm.NewFromConfig(cfg).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/env/p")})).must(t)
	if aws.ToString(s.SecretString) != "s" || aws.ToString(p.Parameter.Value) != "p" {
		t.Errorf("got %q and %q, want s and p", aws.ToString(s.SecretString), aws.ToString(p.Parameter.Value))
	}
	if a.Calls(OpGetSecretValue) != 1 || a.Calls(OpGetParameter) != 1 {
		t.Errorf("Calls = %v, want one GetSecretValue and one GetParameter", a.AllCalls())
	}
}

func TestUnknownOperation(t *testing.T) {
	a, sm, _ := start(t)
	_, err := sm.ListSecretVersionIds(t.Context(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("x")})
	wantAPIError(t, err, CodeUnknownOperation, 400)
	if a.Calls("secretsmanager.ListSecretVersionIds") != 1 {
		t.Errorf("Calls(ListSecretVersionIds) = %d, want 1", a.Calls("secretsmanager.ListSecretVersionIds"))
	}
}
