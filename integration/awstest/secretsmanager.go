package awstest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// maxBatchSecrets is BatchGetSecretValue's limit on SecretIdList.
const maxBatchSecrets = 20

// secretValue is GetSecretValue's answer, and a BatchGetSecretValue
// SecretValues entry: the same fields, CreatedDate in epoch seconds.
type secretValue struct {
	ARN           string   `json:"ARN"`
	Name          string   `json:"Name"`
	VersionID     string   `json:"VersionId"`
	SecretString  *string  `json:"SecretString,omitempty"`
	SecretBinary  []byte   `json:"SecretBinary,omitempty"`
	VersionStages []string `json:"VersionStages"`
	CreatedDate   float64  `json:"CreatedDate"`
}

// batchError is a BatchGetSecretValue Errors entry (APIErrorType).
type batchError struct {
	SecretID  string `json:"SecretId"`
	ErrorCode string `json:"ErrorCode"`
	Message   string `json:"Message"`
}

// batchGetSecretValue serves BatchGetSecretValue, which kumo lacks, from
// kumo's GetSecretValue, one id at a time: found secrets in SecretValues,
// in request order, the others in Errors with the code GetSecretValue gave.
// Only the SecretIdList form is served; Filters is refused as not
// implemented here (the extension never lists secrets).
func (a *AWS) batchGetSecretValue(ctx context.Context, w http.ResponseWriter, body []byte, fx effect) {
	var req struct {
		SecretIDList []string          `json:"SecretIdList"`
		Filters      []json.RawMessage `json:"Filters"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, badRequest(codeSerializationFailed, "%v", err))
		return
	}
	switch {
	case len(req.Filters) > 0 && len(req.SecretIDList) > 0:
		writeError(w, badRequest(codeInvalidParameter, "Either 'SecretIdList' or 'Filters' must be provided, but not both."))
		return
	case len(req.Filters) > 0:
		writeError(w, badRequest(codeNotImplementedHere, "awstest: BatchGetSecretValue with Filters is not served by the test front"))
		return
	case len(req.SecretIDList) == 0:
		writeError(w, badRequest(codeInvalidParameter, "Either 'SecretIdList' or 'Filters' must be provided."))
		return
	case len(req.SecretIDList) > maxBatchSecrets:
		writeError(w, badRequest(CodeValidation, "1 validation error detected: Value '[%s]' at 'secretIdList' failed to satisfy constraint: "+
			"Member must have length less than or equal to %d", strings.Join(req.SecretIDList, ", "), maxBatchSecrets))
		return
	}

	out := struct {
		SecretValues []secretValue `json:"SecretValues"`
		Errors       []batchError  `json:"Errors"`
	}{SecretValues: []secretValue{}, Errors: []batchError{}}
	for _, id := range req.SecretIDList {
		if fx.failItems[id] {
			code := fx.failCode
			if code == "" {
				code = CodeResourceNotFound
			}
			out.Errors = append(out.Errors, batchError{SecretID: id, ErrorCode: code, Message: "awstest: injected " + code})
			continue
		}
		if !a.mayRead(id, fx.role) {
			e := a.denied(OpGetSecretValue, fx.role)
			out.Errors = append(out.Errors, batchError{SecretID: id, ErrorCode: e.Code, Message: e.Message})
			continue
		}
		var v secretValue
		if e := a.kumoJSON(ctx, OpGetSecretValue, map[string]string{"SecretId": id}, &v); e != nil {
			if e.Status >= http.StatusInternalServerError {
				writeError(w, e)
				return
			}
			out.Errors = append(out.Errors, batchError{SecretID: id, ErrorCode: e.Code, Message: e.Message})
			continue
		}
		out.SecretValues = append(out.SecretValues, v)
	}
	writeJSON(w, out)
}
