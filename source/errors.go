package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// Class groups AWS failures by what the caller should do about them. It is
// decided by the AWS error code, not the HTTP status.
type Class uint8

const (
	ClassOther        Class = iota // unexpected: an upstream error
	ClassNotFound                  // the item does not exist (or not that version)
	ClassAccessDenied              // IAM or KMS refused
	ClassInvalid                   // AWS rejected the request as malformed
	ClassThrottled                 // a quota was hit: back off
	ClassTransient                 // 5xx, reset connection: worth retrying later
	ClassTimeout                   // no answer in time
)

func (c Class) String() string {
	return [...]string{"other", "not_found", "access_denied", "invalid", "throttled", "transient", "timeout"}[c]
}

// Temporary reports whether a later attempt may succeed, which is when a
// stale value may stand in for a fresh one.
func (c Class) Temporary() bool {
	return c == ClassThrottled || c == ClassTransient || c == ClassTimeout || c == ClassOther
}

// Error is a failed fetch of one item. Its message carries the AWS error code
// and message and the item's name, never a value.
type Error struct {
	Class   Class
	Code    string // AWS error code, e.g. ResourceNotFoundException; or a code of ours
	Message string
	Key     Key
	// Batch is set when the error belongs to a whole batch call rather than
	// to this item, so fetching the item alone may still succeed.
	Batch bool
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Key, e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// notFound is the error for an item a batch call reported as missing.
func notFound(key Key, code, msg string) *Error {
	return &Error{Class: ClassNotFound, Code: code, Message: msg, Key: key}
}

// classify turns an SDK error into an *Error for key.
func classify(key Key, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		c := *e
		c.Key = key
		return &c
	}
	var re *RoleError
	if errors.As(err, &re) {
		return classifyRole(key, re)
	}
	out := &Error{Class: ClassOther, Code: "UpstreamError", Key: key, Err: err}
	var apiErr smithy.APIError
	var netErr net.Error
	var quota ratelimit.QuotaExceededError
	var maxAttempts *retry.MaxAttemptsError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		out.Class, out.Code, out.Message = ClassTimeout, "UpstreamTimeout", "AWS did not answer in time"
		return out
	case errors.Is(err, context.Canceled):
		out.Class, out.Code, out.Message = ClassTimeout, "Canceled", "the fetch was canceled"
		return out
	case errors.As(err, &apiErr):
		out.Code, out.Message = apiErr.ErrorCode(), apiErr.ErrorMessage()
		if out.Code == "" {
			// An error answer without a usable code ("x#", say, which the
			// SDK trims to nothing): still one the caller can tell apart.
			out.Code = "UpstreamError"
		}
		out.Class = classifyCode(out.Code)
		if out.Class == ClassOther && httpStatus(err) >= 500 {
			out.Class = ClassTransient
		}
		return out
	case errors.As(err, &quota):
		out.Class, out.Code, out.Message = ClassThrottled, "RetryQuotaExceeded", "client-side retry quota exhausted after repeated AWS failures"
		return out
	case errors.As(err, &netErr) && netErr.Timeout():
		out.Class, out.Code, out.Message = ClassTimeout, "UpstreamTimeout", "AWS did not answer in time"
		return out
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.As(err, &netErr):
		out.Class, out.Code, out.Message = ClassTransient, "UpstreamUnavailable", "connection to AWS failed"
		return out
	}
	if errors.As(err, &maxAttempts) || httpStatus(err) >= 500 {
		out.Class, out.Message = ClassTransient, "AWS failed after retries"
		return out
	}
	out.Message = "unexpected error from AWS"
	return out
}

func classifyCode(code string) Class {
	switch code {
	case "ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound":
		return ClassNotFound
	case "AccessDeniedException", "AccessDenied", "UnrecognizedClientException",
		"InvalidSignatureException", "ExpiredTokenException", "MissingAuthenticationTokenException",
		"IncompleteSignature", "KMSAccessDeniedException", "DecryptionFailure":
		return ClassAccessDenied
	case "ThrottlingException", "Throttling", "TooManyRequestsException",
		"RequestLimitExceeded", "ThrottledException", "ProvisionedThroughputExceededException":
		return ClassThrottled
	case "InternalServiceError", "InternalServerError", "InternalFailure",
		"ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException":
		return ClassTransient
	case "ValidationException", "InvalidParameterException", "InvalidRequestException",
		"InvalidParameterValue", "InvalidKeyId", "ParameterVersionLabelLimitExceeded":
		return ClassInvalid
	}
	return ClassOther
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// batchRefused reports whether a BatchGetSecretValue error means the batch
// API can't be used here (no permission, or an endpoint that lacks it), so
// GetSecretValue should be used instead from now on.
func batchRefused(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode() {
	case "AccessDeniedException", "AccessDenied", "UnknownOperationException",
		"InvalidAction", "UnsupportedOperation", "NotImplemented", "UnsupportedOperationException":
		return true
	}
	return false
}
