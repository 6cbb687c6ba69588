package rie

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/testfunc"
	"github.com/secrets-prefetch/secrets-prefetch/integration/testfunc/sdkcall"
)

// sdkFunc is ../testfunc/sdkfunc, built once per test process.
var sdkFunc = testFunction{pkg: "./testfunc/sdkfunc", file: "sdk-func"}

func call(op string, input any) testfunc.SDKCall {
	b, _ := json.Marshal(input)
	return testfunc.SDKCall{Op: op, Input: b}
}

// A function whose code calls Secrets Manager and SSM with the AWS SDK for
// Go v2, configured from the environment, with AWS_ENDPOINT_URL_SECRETS_MANAGER
// and AWS_ENDPOINT_URL_SSM naming the extension for the whole execution
// environment (the extension sees them too): its calls are answered by the
// extension, field for field as AWS answers them, prefetched items without
// an AWS call, and its writes reach AWS and are read back.
func TestSDKUnchangedUnderRIE(t *testing.T) {
	requireSupported(t)
	a := awstest.Start(t)
	ctx := t.Context()
	for name, v := range map[string]string{"e2e/db": `{"password":"pw"}`, "e2e/api": "key-1"} {
		if _, err := a.PutSecretString(ctx, name, v); err != nil {
			t.Fatal(err)
		}
	}
	for name, v := range map[string]string{"/e2e/url": "https://example.com", "/e2e/tree/x": "x", "/e2e/tree/y/z": "z"} {
		if _, err := a.PutParameter(ctx, name, v, "SecureString"); err != nil {
			t.Fatal(err)
		}
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	self := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	env := Start(t, Options{
		Binaries: Binaries{Function: sdkFunc.path(t)},
		Env: append(a.Env(),
			"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="+strconv.Itoa(ports[0]),
			// For the whole environment, as a user sets them on the function.
			"AWS_ENDPOINT_URL_SECRETS_MANAGER="+self,
			"AWS_ENDPOINT_URL_SSM="+self,
			// Where AWS is, for the extension once it has skipped its own
			// address (in Lambda: the regional endpoints).
			"AWS_ENDPOINT_URL="+a.URL,
			"SECRETS_PREFETCH_SECRETS=e2e/db,e2e/api",
			"SECRETS_PREFETCH_PARAMETERS=/e2e/url,/e2e/tree/**",
			"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug",
		),
	})

	reads := []testfunc.SDKCall{
		call("GetSecretValue", map[string]any{"SecretId": "e2e/db"}),
		call("BatchGetSecretValue", map[string]any{"SecretIdList": []string{"e2e/api", "e2e/db"}}),
		call("GetParameter", map[string]any{"Name": "/e2e/url", "WithDecryption": true}),
		call("GetParameters", map[string]any{"Names": []string{"/e2e/tree/x", "/e2e/tree/y/z"}, "WithDecryption": true}),
	}
	invoke := func(calls []testfunc.SDKCall) []testfunc.SDKResult {
		t.Helper()
		payload, _ := json.Marshal(calls)
		ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		status, body, _, err := env.Invoke(ictx, payload)
		if err != nil || status != 200 {
			t.Fatalf("invoke: status %d, err %v, body %s", status, err, body)
		}
		var out []testfunc.SDKResult
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		return out
	}
	direct := make([]testfunc.SDKResult, len(reads))
	for i, c := range reads {
		direct[i] = sdkcall.Call(ctx, a.SecretsManagerClient(), a.SSMClient(), c)
		if direct[i].Output == nil {
			t.Fatalf("%s from AWS: %+v", c.Op, direct[i])
		}
	}
	compare := func(round string, got []testfunc.SDKResult) {
		t.Helper()
		for i, c := range reads {
			if string(got[i].Output) != string(direct[i].Output) {
				t.Errorf("%s %s through the extension:\n %s %s %s\nfrom AWS:\n %s", round, c.Op, got[i].Output, got[i].ErrorCode, got[i].Error, direct[i].Output)
			}
		}
	}
	compare("first invoke", invoke(reads))
	a.ResetCalls()
	compare("second invoke", invoke(reads))
	if calls := a.AllCalls(); len(calls) != 0 {
		t.Errorf("the function's reads of prefetched items called AWS: %v", calls)
	}
	if out := env.Output(); !strings.Contains(out, "endpoint source skipped") || !strings.Contains(out, "AWS_ENDPOINT_URL_SECRETS_MANAGER") {
		t.Errorf("the extension did not say it skipped its own address:\n%s", out)
	}

	// Writes go through to AWS and are read back.
	got := invoke([]testfunc.SDKCall{
		call("PutSecretValue", map[string]any{"SecretId": "e2e/api", "SecretString": "key-2"}),
		call("GetSecretValue", map[string]any{"SecretId": "e2e/api"}),
		call("PutParameter", map[string]any{"Name": "/e2e/url", "Value": "https://example.org", "Type": "SecureString", "Overwrite": true}),
		call("GetParameter", map[string]any{"Name": "/e2e/url", "WithDecryption": true}),
	})
	var sv struct{ SecretString string }
	var pv struct{ Parameter struct{ Value string } }
	json.Unmarshal(got[1].Output, &sv)
	json.Unmarshal(got[3].Output, &pv)
	if got[0].Output == nil || got[2].Output == nil || sv.SecretString != "key-2" || pv.Parameter.Value != "https://example.org" {
		t.Errorf("write then read: %+v", got)
	}
	calls := a.AllCalls()
	for _, op := range []string{"secretsmanager.PutSecretValue", awstest.OpGetSecretValue, awstest.OpPutParameter, awstest.OpGetParameter} {
		if calls[op] != 1 {
			t.Errorf("AWS calls after the writes: %v, want one %s", calls, op)
		}
	}
}
