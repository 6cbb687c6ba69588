package awstest

import (
	"encoding/json"
	"maps"
)

// Operation names, as Calls, Items and Inject take them: the service's
// short name, a dot, the action. Any other action is named the same way
// ("secretsmanager.CreateSecret", "ssm.DeleteParameter").
const (
	OpAll                   = "*" // Inject only: every operation
	OpGetSecretValue        = "secretsmanager.GetSecretValue"
	OpBatchGetSecretValue   = "secretsmanager.BatchGetSecretValue"
	OpGetParameter          = "ssm.GetParameter"
	OpGetParameters         = "ssm.GetParameters"
	OpGetParametersByPath   = "ssm.GetParametersByPath"
	OpPutParameter          = "ssm.PutParameter"
	OpLabelParameterVersion = "ssm.LabelParameterVersion"
)

// Calls is how many requests for op the front has received since the start
// or ResetCalls, failed ones included (a retried call counts each attempt).
// The seeding helpers' calls (PutSecretString, PutParameter...) are not
// counted, so a test needs no ResetCalls after seeding.
func (a *AWS) Calls(op string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[op]
}

// AllCalls returns a copy of the counts of every operation called.
func (a *AWS) AllCalls() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.calls)
}

// Items is how many items the calls for op asked for: the names of
// GetParameters, the ids of BatchGetSecretValue, one for any other call.
func (a *AWS) Items(op string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.items[op]
}

// ResetCalls sets every count (Calls and Items) back to zero.
func (a *AWS) ResetCalls() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.calls)
	clear(a.items)
}

func (a *AWS) count(op string, body []byte) {
	n := 1
	var req struct {
		Names        []string
		SecretIDList []string `json:"SecretIdList"`
	}
	if json.Unmarshal(body, &req) == nil {
		switch op {
		case OpGetParameters:
			n = len(req.Names)
		case OpBatchGetSecretValue:
			n = len(req.SecretIDList)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls[op]++
	a.items[op] += n
}
