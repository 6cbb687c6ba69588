package awstest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

func TestSignatureVerification(t *testing.T) {
	a, _, _ := start(t)
	ctx := t.Context()
	try(a.PutParameter(ctx, "/p", "v", "String")).must(t)
	wrongSecret := a.Credentials
	wrongSecret.SecretAccessKey = "not-the-secret"
	unknownKey := a.Credentials
	unknownKey.AccessKeyID = "AKIAUNKNOWNKEY000000"

	tests := []struct {
		name     string
		opts     func(*ssm.Options)
		wantCode string
	}{
		{"right credentials", func(*ssm.Options) {}, ""},
		{"wrong secret key", func(o *ssm.Options) { o.Credentials = credentials.StaticCredentialsProvider{Value: wrongSecret} }, CodeInvalidSignature},
		{"unknown access key", func(o *ssm.Options) { o.Credentials = credentials.StaticCredentialsProvider{Value: unknownKey} }, CodeUnrecognizedClient},
		{"wrong region", func(o *ssm.Options) { o.Region = "eu-west-1" }, CodeInvalidSignature},
		{"unsigned", func(o *ssm.Options) { o.Credentials = aws.AnonymousCredentials{} }, CodeMissingAuthToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := a.SSMClient(func(o *ssm.Options) { o.RetryMaxAttempts = 1 }, tt.opts)
			_, err := ps.GetParameter(t.Context(), &ssm.GetParameterInput{Name: aws.String("/p")})
			if tt.wantCode == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantAPIError(t, err, tt.wantCode, http.StatusBadRequest)
		})
	}

	t.Run("verification off", func(t *testing.T) {
		a.VerifySignatures(false)
		defer a.VerifySignatures(true)
		ps := a.SSMClient(func(o *ssm.Options) { o.Credentials = credentials.StaticCredentialsProvider{Value: wrongSecret} })
		if _, err := ps.GetParameter(t.Context(), &ssm.GetParameterInput{Name: aws.String("/p")}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSignatureCoversBody signs a request by hand, then changes its body:
// the front must notice, as the body's hash is part of the signature.
func TestSignatureCoversBody(t *testing.T) {
	a, _, _ := start(t)
	try(a.PutParameter(t.Context(), "/p", "v", "String")).must(t)
	send := func(signed, sent string) int {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, a.URL+"/", strings.NewReader(sent))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "AmazonSSM.GetParameter")
		sum := sha256.Sum256([]byte(signed))
		if err := v4.NewSigner().SignHTTP(t.Context(), a.Credentials, req, hex.EncodeToString(sum[:]), "ssm", a.Region(), time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK && !bytes.Contains(body, []byte(CodeInvalidSignature)) {
			t.Errorf("status %d body %s, want InvalidSignatureException", resp.StatusCode, body)
		}
		return resp.StatusCode
	}
	body := `{"Name":"/p"}`
	if got := send(body, body); got != http.StatusOK {
		t.Errorf("intact request: status %d, want 200", got)
	}
	if got := send(body, `{"Name":"/q"}`); got != http.StatusBadRequest {
		t.Errorf("tampered body: status %d, want 400", got)
	}
}
