package awsapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smschemas "github.com/aws/aws-sdk-go-v2/service/secretsmanager/schemas"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmschemas "github.com/aws/aws-sdk-go-v2/service/ssm/schemas"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
)

// The request parser: any body either decodes into the input struct with
// only the schema's members, or is refused (and forwarded); what decodes
// re-encodes with the SDK's serializer to the same members.
func FuzzDecodeInput(f *testing.F) {
	for _, s := range []string{
		`{"SecretId":"prod/db"}`, `{"SecretId":"a","VersionStage":"AWSPREVIOUS"}`, `{"SecretIdList":["a","b"]}`,
		`{"Name":"/a/b:3","WithDecryption":true}`, `{"Names":["/a","/b"],"WithDecryption":false}`,
		`{"secretid":"x"}`, `{"SecretId":1}`, `{"SecretId":"x"} {}`, `[]`, `null`, `{"SecretId":"x","SecretId":"y"}`,
		`{"Filters":[{"Key":"name","Values":["x"]}],"MaxResults":5}`, "{\"SecretId\":\"\\u0000\"}",
	} {
		f.Add([]byte(s))
	}
	smProto, ssmProto := awsjson.New11(smschemas.Secretsmanager), awsjson.New11(ssmschemas.AmazonSSM)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, c := range []struct {
			in     smithy.Serializable
			schema *smithy.Schema
			proto  *awsjson.Protocol
		}{
			{&secretsmanager.GetSecretValueInput{}, smschemas.GetSecretValueRequest, smProto},
			{&secretsmanager.BatchGetSecretValueInput{}, smschemas.BatchGetSecretValueRequest, smProto},
			{&ssm.GetParameterInput{}, ssmschemas.GetParameterRequest, ssmProto},
			{&ssm.GetParametersInput{}, ssmschemas.GetParametersRequest, ssmProto},
		} {
			if err := decodeInput(body, c.schema, c.in); err != nil {
				continue
			}
			out, err := encode(c.proto, c.schema, c.in, c.schema)
			if err != nil {
				t.Fatalf("%T decoded from %q does not encode: %v", c.in, body, err)
			}
			var m map[string]any
			if err := strictUnmarshal(out, &m); err != nil {
				t.Fatalf("%T re-encoded as %q: %v", c.in, out, err)
			}
			for k := range m {
				if c.schema.Member(k) == nil {
					t.Fatalf("%T re-encoded with unknown member %q", c.in, k)
				}
			}
		}
	})
}

// The Authorization parser never panics, and what it accepts has the
// parts a signature needs.
func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=" + strings.Repeat("ab", 32))
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request,SignedHeaders=b;a,Signature=00")
	f.Add("AWS4-HMAC-SHA256 Credential=,,,")
	f.Add("Basic Zm9vOmJhcg==")
	f.Fuzz(func(t *testing.T, auth string) {
		s, bad := parseAuthorization(auth)
		if bad != "" {
			return
		}
		if s.accessKeyID == "" || len(s.signature) != 64 || s.signedHeaders == "" {
			t.Fatalf("accepted %q as %+v", auth, s)
		}
	})
}

// The signature check: for any Authorization, date, token, target and
// body a caller sends, the request is accepted only when its signature is
// the one the extension's credentials make over it.
func FuzzVerify(f *testing.F) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	good := func(target, body string) (string, string) {
		r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:2773/", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-amz-json-1.1")
		r.Header.Set("X-Amz-Target", target)
		sum := sha256.Sum256([]byte(body))
		v4.NewSigner().SignHTTP(context.Background(), testCreds, r, hex.EncodeToString(sum[:]), "secretsmanager", testRegion, now)
		return r.Header.Get("Authorization"), r.Header.Get("X-Amz-Date")
	}
	auth, date := good("secretsmanager.GetSecretValue", `{"SecretId":"a"}`)
	f.Add(auth, date, testCreds.SessionToken, "secretsmanager.GetSecretValue", `{"SecretId":"a"}`)
	f.Add(auth, date, testCreds.SessionToken, "secretsmanager.GetSecretValue", `{"SecretId":"b"}`)
	f.Add(auth, date, "", "secretsmanager.GetSecretValue", `{"SecretId":"a"}`)
	f.Add(auth, "20260301T120001Z", testCreds.SessionToken, "secretsmanager.GetSecretValue", `{"SecretId":"a"}`)
	f.Add(strings.Replace(auth, "us-east-1", "us-west-2", 1), date, testCreds.SessionToken, "secretsmanager.GetSecretValue", `{"SecretId":"a"}`)
	v := &verifier{creds: aws.NewCredentialsCache(staticCreds{}), region: testRegion, now: func() time.Time { return now }}
	f.Fuzz(func(t *testing.T, auth, date, token, target, body string) {
		r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:2773/", bytes.NewReader([]byte(body)))
		if err != nil {
			return
		}
		r.Header.Set("Content-Type", "application/x-amz-json-1.1")
		r.Header.Set("X-Amz-Target", target)
		r.Header.Set("X-Amz-Date", date)
		r.Header.Set("X-Amz-Security-Token", token)
		r.Header.Set("Authorization", auth)
		r.Host = "127.0.0.1:2773"
		if v.verify(context.Background(), r, []byte(body), "secretsmanager") != nil {
			return
		}
		// Accepted: it must be exactly what the credentials sign.
		want, wantDate := good(target, body)
		if token != testCreds.SessionToken || date != wantDate || auth != want {
			t.Fatalf("accepted a request the credentials did not sign: auth %q date %q token %q target %q body %q", auth, date, token, target, body)
		}
	})
}
