// Package lifecycle is a client for the AWS Lambda Extensions API: it
// registers the extension, long-polls for INVOKE and SHUTDOWN events and
// reports Init and runtime failures to Lambda.
//
// See https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html.
package lifecycle
