package extension_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
)

// noMeta clears what differs between any two calls (the request id).
func noMeta[T any](v *T) *T {
	reflect.ValueOf(v).Elem().FieldByName("ResultMetadata").Set(reflect.ValueOf(middleware.Metadata{}))
	return v
}

// The function's own SDK, unchanged: with AWS_ENDPOINT_URL_SECRETS_MANAGER
// and AWS_ENDPOINT_URL_SSM naming the extension for the whole environment
// (the extension sees them too, and must not call itself), the real SDK
// clients get, field for field, what they get from AWS; prefetched items
// cost no AWS call; writes are forwarded and read back.
func TestSDKUnchanged(t *testing.T) {
	e := exttest.Start(t, exttest.Setup{
		SelfEndpoints: true,
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":    "sdk/text,sdk/binary",
			"SECRETS_PREFETCH_PARAMETERS": "/sdk/plain,/sdk/secure,/sdk/tree/**",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[string](t)(a.PutSecretString(ctx, "sdk/text", `{"user":"u","password":"p<&>"}`))
			exttest.Must[string](t)(a.PutSecretBinary(ctx, "sdk/binary", []byte{0, 1, 0xfe, 0xff}))
			exttest.Must[int64](t)(a.PutParameter(ctx, "/sdk/plain", "plain value", "String"))
			exttest.Must[int64](t)(a.PutParameter(ctx, "/sdk/secure", "secure value", "SecureString"))
			exttest.Must[int64](t)(a.PutParameter(ctx, "/sdk/tree/a", "a", "String"))
			exttest.Must[int64](t)(a.PutParameter(ctx, "/sdk/tree/b/c", "c", "StringList"))
		},
	})
	e.WaitReady(t)
	ctx := context.Background()

	// The function's clients, configured from the environment alone.
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(secretsmanager.NewFromConfig(cfg).Options().BaseEndpoint); got != "http://"+e.Addr {
		t.Fatalf("the function's Secrets Manager endpoint is %q, want the extension's", got)
	}
	viaSM, viaSSM := secretsmanager.NewFromConfig(cfg), ssm.NewFromConfig(cfg)
	awsSM, awsSSM := e.AWS.SecretsManagerClient(), e.AWS.SSMClient()

	// What AWS answers, asked directly.
	type answers struct {
		text, binary *secretsmanager.GetSecretValueOutput
		batch        *secretsmanager.BatchGetSecretValueOutput
		plain        *ssm.GetParameterOutput
		secure       *ssm.GetParameterOutput
		params       *ssm.GetParametersOutput
	}
	read := func(sm *secretsmanager.Client, p *ssm.Client) answers {
		t.Helper()
		var a answers
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		a.text, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("sdk/text")})
		must(err)
		a.binary, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("sdk/binary"), VersionStage: aws.String("AWSCURRENT")})
		must(err)
		a.batch, err = sm.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"sdk/text", "sdk/binary"}})
		must(err)
		a.plain, err = p.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/sdk/plain")})
		must(err)
		a.secure, err = p.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/sdk/secure"), WithDecryption: aws.Bool(true)})
		must(err)
		a.params, err = p.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/sdk/tree/a", "/sdk/missing", "/sdk/secure", "/sdk/tree/b/c"}, WithDecryption: aws.Bool(true)})
		must(err)
		return a
	}
	direct := read(awsSM, awsSSM)
	e.AWS.ResetCalls()
	via := read(viaSM, viaSSM)
	// Only /sdk/missing, unlisted, was looked up (lazily, as a GET would).
	if calls := e.AWS.AllCalls(); !reflect.DeepEqual(calls, map[string]int{awstest.OpGetParameter: 1}) {
		t.Errorf("reads through the SDK called AWS: %v, want one GetParameter (of the unlisted name)", calls)
	}
	for _, c := range []struct {
		name     string
		got, aws any
	}{
		{"GetSecretValue text", noMeta(via.text), noMeta(direct.text)},
		{"GetSecretValue binary", noMeta(via.binary), noMeta(direct.binary)},
		{"BatchGetSecretValue", noMeta(via.batch), noMeta(direct.batch)},
		{"GetParameter", noMeta(via.plain), noMeta(direct.plain)},
		{"GetParameter decrypted", noMeta(via.secure), noMeta(direct.secure)},
		{"GetParameters", noMeta(via.params), noMeta(direct.params)},
	} {
		if !reflect.DeepEqual(c.got, c.aws) {
			t.Errorf("%s through the extension:\n %+v\nfrom AWS:\n %+v", c.name, c.got, c.aws)
		}
	}
	if v := aws.ToString(via.text.SecretString); v != `{"user":"u","password":"p<&>"}` {
		t.Errorf("SecretString %q", v)
	}

	// Not served from the cache: answered by AWS, through the extension.
	e.AWS.ResetCalls()
	ct, err := viaSSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/sdk/secure")})
	if err != nil || aws.ToString(ct.Parameter.Value) == "secure value" || ct.Parameter.Type != ssmtypes.ParameterTypeSecureString {
		t.Errorf("SecureString without decryption: %+v %v", ct, err)
	}
	// A prefetched path: its listing, from the cache, the same parameters as AWS's.
	byPath := func(p *ssm.Client) []ssmtypes.Parameter {
		t.Helper()
		var all []ssmtypes.Parameter
		pg := ssm.NewGetParametersByPathPaginator(p, &ssm.GetParametersByPathInput{Path: aws.String("/sdk/tree"), Recursive: aws.Bool(true), WithDecryption: aws.Bool(true), MaxResults: aws.Int32(1)})
		for pg.HasMorePages() {
			out, err := pg.NextPage(ctx)
			if err != nil {
				t.Fatalf("GetParametersByPath: %v", err)
			}
			all = append(all, out.Parameters...)
		}
		slices.SortFunc(all, func(a, b ssmtypes.Parameter) int { return strings.Compare(aws.ToString(a.Name), aws.ToString(b.Name)) })
		return all
	}
	fromAWS := byPath(awsSSM)
	e.AWS.ResetCalls()
	if got := byPath(viaSSM); len(got) != 2 || !reflect.DeepEqual(got, fromAWS) {
		t.Errorf("GetParametersByPath through the extension:\n %+v\nfrom AWS:\n %+v", got, fromAWS)
	}
	if calls := e.AWS.AllCalls(); len(calls) != 0 {
		t.Errorf("GetParametersByPath of a prefetched path called AWS: %v", calls)
	}
	_, err = viaSM.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("sdk/none")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ResourceNotFoundException" {
		t.Errorf("a missing secret: %v, want ResourceNotFoundException", err)
	}
	if n := e.AWS.Calls(awstest.OpGetSecretValue); n != 1 {
		t.Errorf("GetSecretValue of a missing secret: %d AWS calls, want 1", n)
	}

	// Writes go to AWS and are read back through the cache.
	if _, err := viaSM.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("sdk/text"), SecretString: aws.String("rotated")}); err != nil {
		t.Fatalf("PutSecretValue through the extension: %v", err)
	}
	got, err := viaSM.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("sdk/text")})
	if err != nil || aws.ToString(got.SecretString) != "rotated" {
		t.Errorf("read after PutSecretValue: %v %v", got, err)
	}
	if _, err := viaSSM.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/sdk/plain"), Value: aws.String("v2"), Overwrite: aws.Bool(true)}); err != nil {
		t.Fatalf("PutParameter through the extension: %v", err)
	}
	gp, err := viaSSM.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/sdk/plain"}})
	if err != nil || len(gp.Parameters) != 1 || aws.ToString(gp.Parameters[0].Value) != "v2" || gp.Parameters[0].Version != 2 {
		t.Errorf("read after PutParameter: %+v %v", gp, err)
	}
	// A parameter put under a prefetched path is listed at once: the path's
	// listing is no longer current, so the request goes to AWS.
	if _, err := viaSSM.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/sdk/tree/new"), Value: aws.String("n"), Type: ssmtypes.ParameterTypeString}); err != nil {
		t.Fatalf("PutParameter under the path: %v", err)
	}
	if got := byPath(viaSSM); len(got) != 3 || aws.ToString(got[2].Name) != "/sdk/tree/new" {
		t.Errorf("GetParametersByPath after a write under the path: %+v", got)
	}
	after := e.AWS.AllCalls()
	if after["secretsmanager.PutSecretValue"] != 1 || after["ssm.PutParameter"] != 2 || after[awstest.OpGetParametersByPath] == 0 {
		t.Errorf("writes reached AWS: %v", after)
	}

	// Signed with credentials the extension does not hold: refused, saying why.
	other := aws.Config{Region: cfg.Region, BaseEndpoint: aws.String("http://" + e.Addr),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIAOTHERROLE0000001", SecretAccessKey: "x", SessionToken: "y"}, nil
		})}
	_, err = secretsmanager.NewFromConfig(other).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("sdk/text")})
	if !errors.As(err, &ae) || ae.ErrorCode() != "UnrecognizedClientException" {
		t.Errorf("other credentials: %v, want UnrecognizedClientException", err)
	}
}

// With SECRETS_PREFETCH_LAZY=false an unlisted name is not cached: each read
// is forwarded, and the caller gets AWS's answer.
func TestSDKUnchangedLazyOff(t *testing.T) {
	e := exttest.Start(t, exttest.Setup{
		SelfEndpoints: true,
		Env:           map[string]string{"SECRETS_PREFETCH_SECRETS": "listed", "SECRETS_PREFETCH_LAZY": "false"},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[string](t)(a.PutSecretString(ctx, "listed", "l"))
			exttest.Must[string](t)(a.PutSecretString(ctx, "unlisted", "u"))
		},
	})
	e.WaitReady(t)
	ctx := context.Background()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(cfg)
	e.AWS.ResetCalls()
	for range 2 {
		out, err := sm.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"listed", "unlisted"}})
		if err != nil || len(out.SecretValues) != 2 {
			t.Fatalf("BatchGetSecretValue with an unlisted name: %+v %v", out, err)
		}
	}
	if n := e.AWS.Calls(awstest.OpBatchGetSecretValue); n != 2 {
		t.Errorf("BatchGetSecretValue with an unlisted name: %d AWS calls, want each forwarded (2)", n)
	}
	if r := e.Get(t, exttest.SecretPath("unlisted")); r.Status != 404 {
		t.Errorf("GET of the unlisted name: %d, want 404 (nothing was cached)", r.Status)
	}
}
