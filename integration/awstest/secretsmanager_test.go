package awstest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func TestBatchGetSecretValue(t *testing.T) {
	a, sm, _ := start(t)
	ctx := t.Context()
	before := time.Now().Add(-time.Second)
	textARN := try(a.PutSecretString(ctx, "app/text", "first")).must(t)
	current := try(a.UpdateSecret(ctx, "app/text", "second")).must(t)
	binARN := try(a.PutSecretBinary(ctx, "app/bin", []byte{0, 1, 2, 255})).must(t)

	out, err := sm.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{
		SecretIdList: []string{"app/bin", "app/missing", textARN},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.SecretValues) != 2 {
		t.Fatalf("SecretValues = %d entries, want 2", len(out.SecretValues))
	}
	bin, text := out.SecretValues[0], out.SecretValues[1]
	if aws.ToString(bin.ARN) != binARN || aws.ToString(bin.Name) != "app/bin" ||
		!slices.Equal(bin.SecretBinary, []byte{0, 1, 2, 255}) || bin.SecretString != nil {
		t.Errorf("binary entry = ARN %q Name %q Binary %v String %v", aws.ToString(bin.ARN), aws.ToString(bin.Name), bin.SecretBinary, bin.SecretString)
	}
	if aws.ToString(text.ARN) != textARN || aws.ToString(text.Name) != "app/text" || aws.ToString(text.SecretString) != "second" ||
		aws.ToString(text.VersionId) != current || !slices.Equal(text.VersionStages, []string{"AWSCURRENT"}) {
		t.Errorf("text entry = ARN %q Name %q String %q VersionId %q Stages %v",
			aws.ToString(text.ARN), aws.ToString(text.Name), aws.ToString(text.SecretString), aws.ToString(text.VersionId), text.VersionStages)
	}
	if text.CreatedDate == nil || text.CreatedDate.Before(before) {
		t.Errorf("CreatedDate = %v, want a time after %v", text.CreatedDate, before)
	}
	if len(out.Errors) != 1 || aws.ToString(out.Errors[0].SecretId) != "app/missing" ||
		aws.ToString(out.Errors[0].ErrorCode) != CodeResourceNotFound {
		t.Errorf("Errors = %+v, want one ResourceNotFoundException for app/missing", out.Errors)
	}
}

func TestBatchGetSecretValueRefusals(t *testing.T) {
	_, sm, _ := start(t)
	var ids21 []string
	for i := range 21 {
		ids21 = append(ids21, fmt.Sprint("s", i))
	}
	tests := []struct {
		name string
		in   *secretsmanager.BatchGetSecretValueInput
		code string
	}{
		{"more than 20 ids", &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids21}, CodeValidation},
		{"no ids", &secretsmanager.BatchGetSecretValueInput{}, codeInvalidParameter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sm.BatchGetSecretValue(t.Context(), tt.in)
			wantAPIError(t, err, tt.code, http.StatusBadRequest)
		})
	}
}

func TestGetSecretValue(t *testing.T) {
	a, sm, _ := start(t)
	ctx := t.Context()
	arn := try(a.PutSecretString(ctx, "db", "one")).must(t)
	try(a.UpdateSecret(ctx, "db", "two")).must(t)

	tests := []struct {
		name      string
		in        secretsmanager.GetSecretValueInput
		want      string
		wantStage string
	}{
		{"by name", secretsmanager.GetSecretValueInput{SecretId: aws.String("db")}, "two", "AWSCURRENT"},
		{"by ARN", secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}, "two", "AWSCURRENT"},
		{"previous", secretsmanager.GetSecretValueInput{SecretId: aws.String("db"), VersionStage: aws.String("AWSPREVIOUS")}, "one", "AWSPREVIOUS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := sm.GetSecretValue(t.Context(), &tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(out.SecretString) != tt.want || aws.ToString(out.ARN) != arn || !slices.Equal(out.VersionStages, []string{tt.wantStage}) {
				t.Errorf("got %q %q %v, want %q %q [%s]", aws.ToString(out.SecretString), aws.ToString(out.ARN), out.VersionStages, tt.want, arn, tt.wantStage)
			}
		})
	}

	// kumo answers 404 for a missing secret; AWS, and so the front, 400.
	_, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")})
	wantAPIError(t, err, CodeResourceNotFound, http.StatusBadRequest)
}

// TestIsolation checks that two AWS values in one process, which share
// kumo's storage, do not see each other's secrets or parameters.
func TestIsolation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	one, two := Start(t), Start(t)
	for i, a := range []*AWS{one, two} {
		try(a.PutSecretString(ctx, "shared", fmt.Sprint("secret-", i))).must(t)
		try(a.PutParameter(ctx, "/shared/p", fmt.Sprint("param-", i), "String")).must(t)
		try(a.PutParameter(ctx, "bare", fmt.Sprint("bare-", i), "String")).must(t)
	}
	for i, a := range []*AWS{one, two} {
		s := try(a.SecretsManagerClient().GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("shared")})).must(t)
		if got, want := aws.ToString(s.SecretString), fmt.Sprint("secret-", i); got != want {
			t.Errorf("AWS %d: secret = %q, want %q", i, got, want)
		}
		if got := aws.ToString(s.Name); got != "shared" {
			t.Errorf("AWS %d: secret Name = %q, want shared", i, got)
		}
		ps := a.SSMClient()
		for name, want := range map[string]string{"/shared/p": "param-", "bare": "bare-"} {
			p := try(getParameter(t, ps, name, false)).must(t)
			if got := aws.ToString(p.Value); got != fmt.Sprint(want, i) {
				t.Errorf("AWS %d: %s = %q, want %q", i, name, got, fmt.Sprint(want, i))
			}
			if got, want := aws.ToString(p.ARN), "arn:aws:ssm:us-east-1:000000000000:parameter/"+strings.TrimPrefix(name, "/"); got != want {
				t.Errorf("AWS %d: %s ARN = %q, want %q", i, name, got, want)
			}
		}
	}
}
