// Package testfunc is a Lambda function for end-to-end tests: a Runtime API loop
// (stdlib only) that reads values from the secrets-prefetch extension, during its
// own Init and on every invoke, and reports what it saw.
//
// The wire types here are shared by the function (./bootstrap) and the tests
// that decode its responses, so both sides agree on one contract.
package testfunc

import "encoding/json"

// Request is an invoke payload: what to read from the extension.
type Request struct {
	Secrets    []string `json:"secrets,omitempty"`
	Parameters []string `json:"parameters,omitempty"`
	// JSONKey, when set, adds &jsonKey=K to every secret read.
	JSONKey string `json:"jsonKey,omitempty"`
	// RefreshNow adds &refreshNow=true to every read.
	RefreshNow bool `json:"refreshNow,omitempty"`
	// Paths are raw request paths (with query) sent as given, e.g. "/ping".
	Paths []string `json:"paths,omitempty"`
}

// Response is what every invoke returns.
type Response struct {
	// Init holds the reads done during the function's Init, before its first
	// `next`; the same on every invoke of one execution environment.
	Init  []Read `json:"init"`
	Reads []Read `json:"reads"`
}

// Read is the outcome of one request to the extension.
type Read struct {
	Path   string `json:"path"`
	Status int    `json:"status"`
	XCache string `json:"xCache,omitempty"`
	Age    string `json:"age,omitempty"`
	// Region is the X-Secrets-Prefetch-Region header: the failover region
	// whose replica answered.
	Region string `json:"region,omitempty"`
	// Value is the secret's SecretString, the parameter's Value, or the raw
	// body for jsonKey and Paths reads (and for errors).
	Value          string  `json:"value"`
	LatencyMillis  float64 `json:"latencyMillis"`
	TransportError string  `json:"transportError,omitempty"`
}

// SDKCall is one call the SDK test function (./sdkfunc) makes: an operation
// of Secrets Manager or SSM and its input, as the SDK's input struct in JSON.
type SDKCall struct {
	Op    string          `json:"op"`
	Input json.RawMessage `json:"input"`
}

// SDKResult is one call's outcome: the SDK's output struct as JSON (without
// its ResultMetadata), or the API error code, or another error.
type SDKResult struct {
	Output    json.RawMessage `json:"output,omitempty"`
	ErrorCode string          `json:"errorCode,omitempty"`
	Error     string          `json:"error,omitempty"`
}
