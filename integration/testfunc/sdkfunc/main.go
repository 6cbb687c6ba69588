// Command sdkfunc is a test Lambda function that uses the AWS SDK for Go v2
// as a function's own code does: clients configured from the environment
// alone (config.LoadDefaultConfig), so AWS_ENDPOINT_URL_SECRETS_MANAGER and
// AWS_ENDPOINT_URL_SSM decide where its calls go. Each invoke's payload is a
// list of calls (testfunc.SDKCall); it answers with each call's output as
// JSON, or its error code (testfunc.SDKResult).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/secrets-prefetch/secrets-prefetch/integration/testfunc"
	"github.com/secrets-prefetch/secrets-prefetch/integration/testfunc/sdkcall"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("sdkfunc: ")
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api == "" {
		return errors.New("AWS_LAMBDA_RUNTIME_API is not set")
	}
	cfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		return err
	}
	sm, ps := secretsmanager.NewFromConfig(cfg), ssm.NewFromConfig(cfg)
	runtime := &http.Client{} // no timeout: `next` is a long poll
	base := "http://" + api + "/2018-06-01/runtime/invocation/"
	for {
		resp, err := runtime.Get(base + "next")
		if err != nil {
			return err
		}
		payload, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("next: %d %v", resp.StatusCode, err)
		}
		var calls []testfunc.SDKCall
		if err := json.Unmarshal(payload, &calls); err != nil {
			return fmt.Errorf("decode payload: %w", err)
		}
		results := make([]testfunc.SDKResult, len(calls))
		for i, c := range calls {
			results[i] = sdkcall.Call(context.Background(), sm, ps, c)
		}
		out, _ := json.Marshal(results)
		r, err := runtime.Post(base+resp.Header.Get("Lambda-Runtime-Aws-Request-Id")+"/response", "application/json", bytes.NewReader(out))
		if err != nil {
			return err
		}
		r.Body.Close()
	}
}
