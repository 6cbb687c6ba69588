// Command example is a Lambda function (runtime provided.al2023, handler
// bootstrap) that reads a secret, one key of it and a parameter through the
// secrets-prefetch extension.
//
// Build: GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap .
//
// Environment: SECRET_ID (a secret whose value is JSON), SECRET_JSON_KEY
// (default "username"), PARAMETER_NAME. An invoke event may override them
// with "secretId", "jsonKey" and "parameterName", to try the error paths.
package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
)

// Event is the invoke payload; every field is optional.
type Event struct {
	SecretID      string `json:"secretId,omitempty"`
	JSONKey       string `json:"jsonKey,omitempty"`
	ParameterName string `json:"parameterName,omitempty"`
}

// Result shows what was read. It returns the JSON key's value to show the
// read worked: point SECRET_JSON_KEY at something that is not secret (a user
// name), and never return secret material from a real function.
type Result struct {
	Secret struct {
		Name      string `json:"name"`
		VersionID string `json:"versionId"`
		Keys      int    `json:"keys"` // how many keys its JSON value has
	} `json:"secret"`
	JSONKey struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"jsonKey"`
	Parameter struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		Version int64  `json:"version"`
	} `json:"parameter"`
}

// client is made once per execution environment, during Init. The
// extension registered before Init started, so reads during Init work too.
var client = NewClient()

func handler(ctx context.Context, ev Event) (*Result, error) {
	secretID := or(ev.SecretID, os.Getenv("SECRET_ID"))
	jsonKey := or(ev.JSONKey, or(os.Getenv("SECRET_JSON_KEY"), "username"))
	paramName := or(ev.ParameterName, os.Getenv("PARAMETER_NAME"))

	var r Result
	secret, err := client.Secret(ctx, secretID)
	if err != nil {
		return nil, fail(err)
	}
	r.Secret.Name, r.Secret.VersionID = secret.Name, secret.VersionId
	r.Secret.Keys = countKeys(secret.SecretString)

	value, err := client.SecretJSONKey(ctx, secretID, jsonKey)
	if err != nil {
		return nil, fail(err)
	}
	r.JSONKey.Key, r.JSONKey.Value = jsonKey, value

	param, err := client.Parameter(ctx, paramName)
	if err != nil {
		return nil, fail(err)
	}
	r.Parameter.Name, r.Parameter.Value, r.Parameter.Version = param.Name, param.Value, param.Version
	return &r, nil
}

// fail logs a failed read by its kind and returns it: the invocation fails
// with the error's type as Lambda's errorType (NotFoundError,
// AccessDeniedError, UpstreamError, UpstreamTimeoutError...). Temporary
// ones are worth a retry (Lambda retries asynchronous invocations; a
// synchronous caller may retry itself); the others need a fix, not a retry.
func fail(err error) error {
	if temporary(err) {
		slog.Warn("read failed; temporary, worth retrying", "error", err)
	} else {
		slog.Error("read failed; needs a configuration or IAM fix", "error", err)
	}
	return err
}

// countKeys counts the top-level keys of a JSON object value; 0 otherwise.
func countKeys(value string) int {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(value), &m) != nil {
		return 0
	}
	return len(m)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func main() {
	lambda.Start(handler)
}
