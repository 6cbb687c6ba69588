package source

import (
	"context"
	"errors"
	"sync/atomic"
)

// API is one AWS operation the source calls.
type API uint8

const (
	APIGetSecretValue API = iota
	APIBatchGetSecretValue
	APIGetParameter
	APIGetParameters
	APIGetParametersByPath
	APIListSecrets

	NumAPIs = int(APIListSecrets) + 1
)

var apiNames = [NumAPIs]string{"GetSecretValue", "BatchGetSecretValue", "GetParameter", "GetParameters", "GetParametersByPath", "ListSecrets"}

// String returns the operation's AWS name, e.g. "GetSecretValue".
func (a API) String() string { return apiNames[a] }

// Service returns the service the operation belongs to.
func (a API) Service() Service {
	if a <= APIBatchGetSecretValue || a == APIListSecrets {
		return SecretsManager
	}
	return ParameterStore
}

// NumClasses is the number of error classes: Class values are 0..NumClasses-1.
const NumClasses = int(ClassTimeout) + 1

// Stats counts the source's AWS calls since it was made: every call made,
// by operation, and the calls that failed, by class. A call that failed
// because the extension itself canceled it (at shutdown) counts as a call,
// not as an error. Errors reported for single items inside a successful
// batch answer (BatchGetSecretValue's Errors, GetParameters'
// InvalidParameters) are the items' outcomes, not failed calls.
type Stats struct {
	Calls  [NumAPIs]uint64    // indexed by API
	Errors [NumClasses]uint64 // indexed by Class
	// Failovers counts the secrets asked of the failover region's replicas
	// because the home region failed.
	Failovers uint64
}

// TotalCalls is the sum of Calls.
func (s Stats) TotalCalls() uint64 {
	var n uint64
	for _, c := range s.Calls {
		n += c
	}
	return n
}

// TotalErrors is the sum of Errors.
func (s Stats) TotalErrors() uint64 {
	var n uint64
	for _, c := range s.Errors {
		n += c
	}
	return n
}

// counters are Stats as it is being counted.
type counters struct {
	calls     [NumAPIs]atomic.Uint64
	errors    [NumClasses]atomic.Uint64
	failovers atomic.Uint64
}

// record counts one call of api that ended with err.
func (c *counters) record(api API, err error) {
	c.calls[api].Add(1)
	if err == nil || errors.Is(err, context.Canceled) {
		return
	}
	c.errors[classify(Key{}, err).Class].Add(1)
}

// Stats returns the counts so far. It is safe to call concurrently with
// fetches; each count is read atomically, the set is not a snapshot.
func (s *Source) Stats() Stats {
	var out Stats
	for i := range out.Calls {
		out.Calls[i] = s.stats.calls[i].Load()
	}
	for i := range out.Errors {
		out.Errors[i] = s.stats.errors[i].Load()
	}
	out.Failovers = s.stats.failovers.Load()
	return out
}
