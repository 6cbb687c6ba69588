package agent_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
)

// The AWS API endpoint in agent mode: a client signing with the credentials
// the agent's own SDK chain found (here from the environment, as an ECS
// task role gives both containers the same) is answered from the cache; one
// with other credentials is refused, saying why; writes go through.
func TestAgentAWSAPI(t *testing.T) {
	f := newFront(t)
	seed(t, f, map[string]string{"db": "db-v1"}, map[string]string{"/app/flag": "flag-v1"})
	addr := freeAddr(t)
	p := start(t, append(baseEnv(f.URL),
		"AWS_TOKEN="+token,
		"SECRETS_PREFETCH_LISTEN="+addr,
		"SECRETS_PREFETCH_SECRETS=db",
		"SECRETS_PREFETCH_PARAMETERS=/app/flag",
	), "agent")
	p.waitReady(t)
	ctx := context.Background()
	cfg := func(id, secret string) aws.Config {
		return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr),
			Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")}
	}
	own := cfg("AKIAAWSTESTEXAMPLE01", "awstest/secret/access/key/for/tests/only")

	mark := f.mark()
	sv, err := secretsmanager.NewFromConfig(own).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("db")})
	if err != nil || aws.ToString(sv.SecretString) != "db-v1" {
		t.Fatalf("GetSecretValue through the agent: %+v %v", sv, err)
	}
	pv, err := ssm.NewFromConfig(own).GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/app/flag"}, WithDecryption: aws.Bool(true)})
	if err != nil || len(pv.Parameters) != 1 || aws.ToString(pv.Parameters[0].Value) != "flag-v1" {
		t.Fatalf("GetParameters through the agent: %+v %v", pv, err)
	}
	for _, c := range f.since(mark) {
		if c.op == "secretsmanager.GetSecretValue" || c.op == "ssm.GetParameters" || c.op == "ssm.GetParameter" {
			t.Errorf("a prefetched item read through the AWS API endpoint called AWS: %v", c)
		}
	}

	_, err = secretsmanager.NewFromConfig(cfg("AKIAIRSAROLE00000001", "other")).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("db")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "UnrecognizedClientException" {
		t.Errorf("other credentials: %v, want UnrecognizedClientException", err)
	}

	if _, err := secretsmanager.NewFromConfig(own).PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("db"), SecretString: aws.String("db-v2")}); err != nil {
		t.Fatalf("PutSecretValue through the agent: %v", err)
	}
	sv, err = secretsmanager.NewFromConfig(own).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("db")})
	if err != nil || aws.ToString(sv.SecretString) != "db-v2" {
		t.Errorf("read after the write: %+v %v", sv, err)
	}
}
