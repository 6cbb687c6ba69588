package awstest

import (
	"errors"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
)

// start starts an AWS for a parallel test, with clients that do not retry,
// so each call is one request and an error is the front's answer.
func start(t *testing.T) (*AWS, *secretsmanager.Client, *ssm.Client) {
	t.Helper()
	t.Parallel()
	a := Start(t)
	sm := a.SecretsManagerClient(func(o *secretsmanager.Options) { o.RetryMaxAttempts = 1 })
	ps := a.SSMClient(func(o *ssm.Options) { o.RetryMaxAttempts = 1 })
	return a, sm, ps
}

// result holds a call's value and error, so that a test can write
// v := try(f()).must(t).
type result[T any] struct {
	v   T
	err error
}

func try[T any](v T, err error) result[T] { return result[T]{v, err} }

// must fails the test on the error, else returns the value.
func (r result[T]) must(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

// errorCode is the API error code of err, "" if it is not an API error.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// httpStatus is the HTTP status of an error answer, 0 if there was none.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// wantAPIError fails the test unless err is an API error with code and,
// if status is not 0, that HTTP status.
func wantAPIError(t *testing.T, err error, code string, status int) {
	t.Helper()
	if got := errorCode(err); got != code {
		t.Fatalf("error = %v, want API error %s", err, code)
	}
	if status != 0 && httpStatus(err) != status {
		t.Fatalf("HTTP status = %d, want %d (%v)", httpStatus(err), status, err)
	}
}

// getParameter calls GetParameter.
func getParameter(t *testing.T, c *ssm.Client, name string, withDecryption bool) (*ssmtypes.Parameter, error) {
	t.Helper()
	out, err := c.GetParameter(t.Context(), &ssm.GetParameterInput{Name: &name, WithDecryption: &withDecryption})
	if err != nil {
		return nil, err
	}
	return out.Parameter, nil
}
