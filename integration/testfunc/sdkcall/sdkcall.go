// Package sdkcall makes one Secrets Manager or SSM call with the AWS SDK
// for Go v2 and reports its outcome as JSON, the same way in the SDK test
// function (../sdkfunc) and in the tests that ask the emulated AWS directly,
// so the two can be compared byte for byte.
package sdkcall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/secrets-prefetch/secrets-prefetch/integration/testfunc"
)

// Call makes one SDK call and reports it as the test compares it.
func Call(ctx context.Context, sm *secretsmanager.Client, ps *ssm.Client, c testfunc.SDKCall) testfunc.SDKResult {
	var out any
	var err error
	decode := func(in any) error { return json.Unmarshal(c.Input, in) }
	switch c.Op {
	case "GetSecretValue":
		var in secretsmanager.GetSecretValueInput
		if err = decode(&in); err == nil {
			out, err = sm.GetSecretValue(ctx, &in)
		}
	case "BatchGetSecretValue":
		var in secretsmanager.BatchGetSecretValueInput
		if err = decode(&in); err == nil {
			out, err = sm.BatchGetSecretValue(ctx, &in)
		}
	case "PutSecretValue":
		var in secretsmanager.PutSecretValueInput
		if err = decode(&in); err == nil {
			out, err = sm.PutSecretValue(ctx, &in)
		}
	case "GetParameter":
		var in ssm.GetParameterInput
		if err = decode(&in); err == nil {
			out, err = ps.GetParameter(ctx, &in)
		}
	case "GetParameters":
		var in ssm.GetParametersInput
		if err = decode(&in); err == nil {
			out, err = ps.GetParameters(ctx, &in)
		}
	case "GetParametersByPath":
		var in ssm.GetParametersByPathInput
		if err = decode(&in); err == nil {
			out, err = ps.GetParametersByPath(ctx, &in)
		}
	case "PutParameter":
		var in ssm.PutParameterInput
		if err = decode(&in); err == nil {
			out, err = ps.PutParameter(ctx, &in)
		}
	default:
		err = fmt.Errorf("unknown op %q", c.Op)
	}
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return testfunc.SDKResult{ErrorCode: ae.ErrorCode()}
		}
		return testfunc.SDKResult{Error: err.Error()}
	}
	// The request id differs from call to call: leave it out.
	reflect.ValueOf(out).Elem().FieldByName("ResultMetadata").Set(reflect.ValueOf(middleware.Metadata{}))
	b, err := json.Marshal(out)
	if err != nil {
		return testfunc.SDKResult{Error: err.Error()}
	}
	return testfunc.SDKResult{Output: b}
}
