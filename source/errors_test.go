package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// SDK error shapes, built the way aws-sdk-go-v2 wraps them: an
// OperationError around a ResponseError (API errors) or a RequestSendError
// (transport errors).

func opError(op string, err error) error {
	return &smithy.OperationError{ServiceID: "Test", OperationName: op, Err: err}
}

func responseError(status int, err error) error {
	return &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      err,
		},
		RequestID: "req-1",
	}
}

func sendError(err error) error {
	return &smithyhttp.RequestSendError{Err: &url.Error{Op: "Post", URL: "https://aws.test/", Err: err}}
}

// apiError is an API error with an unmodeled code, as the SDK returns it.
func apiError(status int, code string) error {
	return opError("Op", responseError(status, &smithy.GenericAPIError{Code: code, Message: code + " happened"}))
}

func connReset() error {
	return opError("Op", sendError(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}))
}

func TestClassify(t *testing.T) {
	quota := fmt.Errorf("failed to get rate limit token, %w", ratelimit.QuotaExceededError{Available: 0, Requested: 5})
	tests := []struct {
		name  string
		err   error
		class Class
		code  string
	}{
		// not found
		{"secret not found", opError("GetSecretValue", responseError(400, &smtypes.ResourceNotFoundException{Message: aws.String("no")})), ClassNotFound, "ResourceNotFoundException"},
		{"parameter not found", opError("GetParameter", responseError(400, &ssmtypes.ParameterNotFound{})), ClassNotFound, "ParameterNotFound"},
		{"parameter version not found", opError("GetParameter", responseError(400, &ssmtypes.ParameterVersionNotFound{})), ClassNotFound, "ParameterVersionNotFound"},
		// access denied
		{"access denied", apiError(400, "AccessDeniedException"), ClassAccessDenied, "AccessDeniedException"},
		{"KMS decryption failure", opError("GetSecretValue", responseError(400, &smtypes.DecryptionFailure{})), ClassAccessDenied, "DecryptionFailure"},
		{"expired token", apiError(400, "ExpiredTokenException"), ClassAccessDenied, "ExpiredTokenException"},
		{"unrecognized client", apiError(400, "UnrecognizedClientException"), ClassAccessDenied, "UnrecognizedClientException"},
		// throttled
		{"throttling", apiError(400, "ThrottlingException"), ClassThrottled, "ThrottlingException"},
		{"too many requests", apiError(429, "TooManyRequestsException"), ClassThrottled, "TooManyRequestsException"},
		{"request limit exceeded", apiError(400, "RequestLimitExceeded"), ClassThrottled, "RequestLimitExceeded"},
		{"throttling on a 5xx is still throttling", apiError(503, "ThrottlingException"), ClassThrottled, "ThrottlingException"},
		{"retry quota exhausted", quota, ClassThrottled, "RetryQuotaExceeded"},
		{"retry quota exhausted after resets", opError("Op", errors.Join(connReset(), quota)), ClassThrottled, "RetryQuotaExceeded"},
		// transient
		{"secrets manager internal error", opError("GetSecretValue", responseError(500, &smtypes.InternalServiceError{})), ClassTransient, "InternalServiceError"},
		{"ssm internal error", opError("GetParameter", responseError(500, &ssmtypes.InternalServerError{})), ClassTransient, "InternalServerError"},
		{"unknown code on a 503", apiError(503, "Brand New"), ClassTransient, "Brand New"},
		{"unknown code on a 500 after retries", &retry.MaxAttemptsError{Attempt: 3, Err: apiError(500, "Weird")}, ClassTransient, "Weird"},
		{"503 without an API error", opError("Op", responseError(503, errors.New("bad gateway body"))), ClassTransient, "UpstreamError"},
		{"connection reset", connReset(), ClassTransient, "UpstreamUnavailable"},
		{"connection refused", opError("Op", sendError(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})), ClassTransient, "UpstreamUnavailable"},
		{"unexpected EOF", opError("Op", sendError(io.ErrUnexpectedEOF)), ClassTransient, "UpstreamUnavailable"},
		{"retries exhausted", &retry.MaxAttemptsError{Attempt: 3, Err: errors.New("something")}, ClassTransient, "UpstreamError"},
		// timeout
		{"net timeout", opError("Op", sendError(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded})), ClassTimeout, "UpstreamTimeout"},
		{"context deadline", opError("Op", sendError(context.DeadlineExceeded)), ClassTimeout, "UpstreamTimeout"},
		{"bare context deadline", context.DeadlineExceeded, ClassTimeout, "UpstreamTimeout"},
		{"canceled", opError("Op", &aws.RequestCanceledError{Err: context.Canceled}), ClassTimeout, "Canceled"},
		// invalid
		{"validation", apiError(400, "ValidationException"), ClassInvalid, "ValidationException"},
		// other
		{"unknown code on a 400", apiError(400, "SomethingElse"), ClassOther, "SomethingElse"},
		{"unknown error", errors.New("boom"), ClassOther, "UpstreamError"},
	}
	key := SecretKey("app/db")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := classify(key, tt.err)
			if e.Class != tt.class || e.Code != tt.code {
				t.Errorf("classify(%v) = %v %q, want %v %q", tt.err, e.Class, e.Code, tt.class, tt.code)
			}
			if e.Key != key {
				t.Errorf("key %v, want %v", e.Key, key)
			}
			if e.Batch {
				t.Error("Batch set")
			}
			// AWS's message when there is one (SSM often sends none); ours otherwise.
			if ae := smithy.APIError(nil); errors.As(tt.err, &ae) {
				if e.Message != ae.ErrorMessage() {
					t.Errorf("message %q, want AWS's %q", e.Message, ae.ErrorMessage())
				}
			} else if e.Message == "" {
				t.Error("no message")
			}
			if !errors.Is(e, tt.err) {
				t.Error("the *Error does not wrap the SDK error")
			}
		})
	}
}

func TestClassifyKeepsOwnErrors(t *testing.T) {
	orig := &Error{Class: ClassOther, Code: "MalformedResponse", Message: "m", Key: SecretKey("x"), Batch: true}
	key := ParameterKey("/y")
	got := classify(key, fmt.Errorf("wrapped: %w", orig))
	want := *orig
	want.Key = key
	if *got != want {
		t.Errorf("got %+v, want %+v", *got, want)
	}
	if orig.Key != SecretKey("x") {
		t.Error("classify changed the original")
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{
			classify(SecretKey("app/db"), opError("GetSecretValue", responseError(400, &smtypes.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret.")}))),
			"secretsmanager:app/db: ResourceNotFoundException: Secrets Manager can't find the specified secret.",
		},
		{
			classify(Key{Service: ParameterStore, ID: "/app/port", Selector: ":3"}, apiError(400, "ThrottlingException")),
			"ssm:/app/port:3: ThrottlingException: ThrottlingException happened",
		},
		{
			notFound(ParameterKey("/gone"), "ParameterNotFound", "parameter not found"),
			"ssm:/gone: ParameterNotFound: parameter not found",
		},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// The message names the item and the code, never anything that came with a
// value: classify only ever sees errors, but a batch entry error carries
// AWS's message, which is all it may repeat.
func TestErrorMessageNamesKeyAndCode(t *testing.T) {
	key := Key{Service: SecretsManager, ID: "prod/api", VersionStage: "AWSPREVIOUS"}
	e := batchEntryError(key, smtypes.APIErrorType{SecretId: aws.String("prod/api"), ErrorCode: aws.String("DecryptionFailure"), Message: aws.String("KMS said no")})
	msg := e.Error()
	for _, s := range []string{"prod/api", "AWSPREVIOUS", "DecryptionFailure", "KMS said no"} {
		if !strings.Contains(msg, s) {
			t.Errorf("%q lacks %q", msg, s)
		}
	}
	if e.Class != ClassAccessDenied || e.Batch {
		t.Errorf("class %v batch %t", e.Class, e.Batch)
	}
}

func TestClassTemporary(t *testing.T) {
	tests := []struct {
		class Class
		name  string
		want  bool
	}{
		{ClassOther, "other", true},
		{ClassNotFound, "not_found", false},
		{ClassAccessDenied, "access_denied", false},
		{ClassInvalid, "invalid", false},
		{ClassThrottled, "throttled", true},
		{ClassTransient, "transient", true},
		{ClassTimeout, "timeout", true},
	}
	for _, tt := range tests {
		if got := tt.class.Temporary(); got != tt.want {
			t.Errorf("%v.Temporary() = %t, want %t", tt.class, got, tt.want)
		}
		if got := tt.class.String(); got != tt.name {
			t.Errorf("String() = %q, want %q", got, tt.name)
		}
	}
}

func TestBatchRefused(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{apiError(400, "AccessDeniedException"), true},
		{apiError(400, "UnknownOperationException"), true},
		{apiError(501, "NotImplemented"), true},
		{apiError(400, "ThrottlingException"), false},
		{apiError(500, "InternalServiceError"), false},
		{apiError(400, "ValidationException"), false},
		{connReset(), false},
		{context.DeadlineExceeded, false},
	}
	for _, tt := range tests {
		if got := batchRefused(tt.err); got != tt.want {
			t.Errorf("batchRefused(%v) = %t, want %t", tt.err, got, tt.want)
		}
	}
}
