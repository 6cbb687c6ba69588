package awsapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// Each signature fault gets AWS's answer: status 400 and the JSON
// protocol's type.
func TestSignatureFaults(t *testing.T) {
	w := newWorld(t)
	w.cache.put(t, source.SecretKey("prod/db"))
	const target, body = "secretsmanager.GetSecretValue", `{"SecretId":"prod/db"}`
	now := time.Now()
	other := testCreds
	other.AccessKeyID = "AKIDSOMEONEELSE00001"
	wrongSecret := testCreds
	wrongSecret.SecretAccessKey = "not-the-secret"
	wrongToken := testCreds
	wrongToken.SessionToken = "another-session-token"
	noToken := testCreds
	noToken.SessionToken = ""

	ok := func() *http.Request { return w.signed(t, target, body, testCreds, "secretsmanager", testRegion, now) }
	cases := []struct {
		name     string
		req      func() *http.Request
		status   int
		typ, msg string
	}{
		{"valid", ok, 200, "", ""},
		{"unsigned", func() *http.Request {
			r := ok()
			r.Header.Del("Authorization")
			return r
		}, 400, errMissingToken, "Missing Authentication Token"},
		{"malformed", func() *http.Request {
			r := ok()
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/secretsmanager/aws4_request")
			return r
		}, 400, errIncompleteSignature, "requires"},
		{"another algorithm", func() *http.Request {
			r := ok()
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", 1))
			return r
		}, 400, errIncompleteSignature, "algorithm"},
		{"no date", func() *http.Request {
			r := ok()
			r.Header.Del("X-Amz-Date")
			return r
		}, 400, errIncompleteSignature, "X-Amz-Date"},
		{"target not signed", func() *http.Request {
			r := ok()
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), ";x-amz-target", "", 1))
			return r
		}, 400, errIncompleteSignature, "x-amz-target"},
		{"wrong secret key", func() *http.Request {
			return w.signed(t, target, body, wrongSecret, "secretsmanager", testRegion, now)
		}, 400, errInvalidSignature, "does not match"},
		{"body changed", func() *http.Request {
			r := w.signed(t, target, `{"SecretId":"prod/bin"}`, testCreds, "secretsmanager", testRegion, now)
			r2 := ok()
			r2.Header = r.Header
			return r2
		}, 400, errInvalidSignature, "does not match"},
		{"target changed", func() *http.Request {
			r := ok()
			r.Header.Set("X-Amz-Target", "secretsmanager.DeleteSecret")
			return r
		}, 400, errInvalidSignature, "does not match"},
		{"unknown access key", func() *http.Request {
			return w.signed(t, target, body, other, "secretsmanager", testRegion, now)
		}, 400, errUnrecognizedClient, "EKS IRSA"},
		{"wrong session token", func() *http.Request {
			return w.signed(t, target, body, wrongToken, "secretsmanager", testRegion, now)
		}, 400, errUnrecognizedClient, "security token"},
		{"no session token", func() *http.Request {
			return w.signed(t, target, body, noToken, "secretsmanager", testRegion, now)
		}, 400, errUnrecognizedClient, "security token"},
		{"expired", func() *http.Request {
			return w.signed(t, target, body, testCreds, "secretsmanager", testRegion, now.Add(-16*time.Minute))
		}, 400, errInvalidSignature, "Signature expired"},
		{"from the future", func() *http.Request {
			return w.signed(t, target, body, testCreds, "secretsmanager", testRegion, now.Add(16*time.Minute))
		}, 400, errInvalidSignature, "not yet current"},
		{"within the window", func() *http.Request {
			return w.signed(t, target, body, testCreds, "secretsmanager", testRegion, now.Add(-14*time.Minute))
		}, 200, "", ""},
		{"another service", func() *http.Request {
			return w.signed(t, target, body, testCreds, "ssm", testRegion, now)
		}, 400, errInvalidSignature, "correct service"},
		{"another region", func() *http.Request {
			return w.signed(t, target, body, testCreds, "secretsmanager", "eu-west-1", now)
		}, 400, errInvalidSignature, "valid region"},
		{"unsigned payload", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, w.srv.URL+"/", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-amz-json-1.1")
			r.Header.Set("X-Amz-Target", target)
			r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
			v4.NewSigner().SignHTTP(context.Background(), testCreds, r, "UNSIGNED-PAYLOAD", "secretsmanager", testRegion, now)
			return r
		}, 400, errInvalidSignature, "does not match"},
		{"replayed within the window", func() *http.Request {
			// The same signed request a second time is accepted, as AWS
			// accepts it (SECURITY.md, "a replay").
			r := ok()
			http.DefaultClient.Do(r.Clone(context.Background()))
			r2 := ok()
			r2.Header = r.Header.Clone()
			return r2
		}, 200, "", ""},
		{"forwarded", func() *http.Request {
			r := ok()
			r.Header.Set("X-Forwarded-For", "10.0.0.1")
			return r
		}, 403, "ForwardedRequestRefused", "X-Forwarded-For"},
		{"unknown target", func() *http.Request {
			return w.signed(t, "kms.Decrypt", body, testCreds, "kms", testRegion, now)
		}, 400, "UnknownOperationException", "X-Amz-Target"},
		{"no target", func() *http.Request {
			r := ok()
			r.Header.Del("X-Amz-Target")
			return r
		}, 400, "UnknownOperationException", "X-Amz-Target"},
		{"presigned", func() *http.Request {
			r := ok()
			r.Header.Del("Authorization")
			r.URL.RawQuery = "X-Amz-Signature=abc"
			return r
		}, 400, errIncompleteSignature, "Presigned"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := http.DefaultClient.Do(c.req())
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, got)
			}
			if c.typ == "" {
				return
			}
			var e struct{ Type, Message string }
			if err := json.Unmarshal(got, &struct {
				Type    *string `json:"__type"`
				Message *string `json:"message"`
			}{&e.Type, &e.Message}); err != nil {
				t.Fatalf("%s: %v", got, err)
			}
			if e.Type != c.typ || !strings.Contains(e.Message, c.msg) {
				t.Errorf("answer %s, want type %s, message with %q", got, c.typ, c.msg)
			}
			if resp.Header.Get("X-Amzn-Requestid") == "" || resp.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
				t.Errorf("headers %v", resp.Header)
			}
		})
	}
	if len(w.fwd) != 0 {
		t.Errorf("refused requests were forwarded: %d", len(w.fwd))
	}
}

// A request signed for AWS's own host, replayed here, is refused even
// though its signature is right for that host.
func TestSignedForAWSHost(t *testing.T) {
	v := &verifier{creds: aws.NewCredentialsCache(staticCreds{}), region: testRegion, now: time.Now}
	r := signedFor(t, "http://secretsmanager.us-east-1.amazonaws.com/", "secretsmanager.GetSecretValue", `{}`, testCreds, "secretsmanager", testRegion, time.Now())
	aerr := v.verify(context.Background(), r, []byte(`{}`), "secretsmanager")
	if aerr == nil || aerr.typ != errInvalidSignature || !strings.Contains(aerr.msg, "AWS endpoint") {
		t.Errorf("verify = %+v, want InvalidSignatureException naming the AWS endpoint", aerr)
	}
	// The same request signed for a loopback host passes.
	r = signedFor(t, "http://127.0.0.1:2773/", "secretsmanager.GetSecretValue", `{}`, testCreds, "secretsmanager", testRegion, time.Now())
	if aerr := v.verify(context.Background(), r, []byte(`{}`), "secretsmanager"); aerr != nil {
		t.Errorf("verify = %+v for this endpoint", aerr)
	}
}

// The real SDK, signing with credentials of its own, is refused with the
// reason.
func TestSDKWithOtherCredentials(t *testing.T) {
	w := newWorld(t)
	w.cache.put(t, source.SecretKey("prod/db"))
	other := testCreds
	other.AccessKeyID = "AKIDIRSAROLE00000001"
	_, err := w.sm(other).GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/db")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != errUnrecognizedClient || !strings.Contains(ae.ErrorMessage(), "EKS IRSA") {
		t.Errorf("GetSecretValue with other credentials: %v", err)
	}
}

// In the agent, renewed role credentials are picked up: the provider is
// asked again when a caller's key is unknown, at most once per period.
func TestCredentialsAskedAgain(t *testing.T) {
	p := &rotating{keys: []string{"AKIDOLD", "AKIDNEW"}}
	now := time.Now()
	v := &verifier{creds: aws.NewCredentialsCache(p), region: testRegion, now: func() time.Time { return now }}
	c, _ := v.credentialsFor(context.Background(), "AKIDOLD")
	if c.AccessKeyID != "AKIDOLD" || p.n != 1 {
		t.Fatalf("first: %s after %d calls", c.AccessKeyID, p.n)
	}
	c, _ = v.credentialsFor(context.Background(), "AKIDNEW")
	if c.AccessKeyID != "AKIDNEW" || p.n != 2 {
		t.Fatalf("renewed: %s after %d calls", c.AccessKeyID, p.n)
	}
	c, _ = v.credentialsFor(context.Background(), "AKIDUNKNOWN")
	if c.AccessKeyID != "AKIDNEW" || p.n != 2 {
		t.Errorf("an unknown key within the period asked again: %s after %d calls", c.AccessKeyID, p.n)
	}
}

type rotating struct {
	keys []string
	n    int
}

func (r *rotating) Retrieve(context.Context) (aws.Credentials, error) {
	k := r.keys[min(r.n, len(r.keys)-1)]
	r.n++
	return aws.Credentials{AccessKeyID: k, SecretAccessKey: "s", CanExpire: false}, nil
}
