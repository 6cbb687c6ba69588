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
// Filters are served as ListSecrets applies them (see matches), paged.
func (a *AWS) batchGetSecretValue(ctx context.Context, w http.ResponseWriter, body []byte, fx effect) {
	var req struct {
		SecretIDList []string `json:"SecretIdList"`
		Filters      []filter `json:"Filters"`
		MaxResults   int
		NextToken    string
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
		a.batchGetFiltered(ctx, w, req.Filters, req.MaxResults, req.NextToken, fx)
		return
	case len(req.SecretIDList) == 0:
		writeError(w, badRequest(codeInvalidParameter, "Either 'SecretIdList' or 'Filters' must be provided."))
		return
	case len(req.SecretIDList) > maxBatchSecrets:
		writeError(w, badRequest(CodeValidation, "1 validation error detected: Value '[%s]' at 'secretIdList' failed to satisfy constraint: "+
			"Member must have length less than or equal to %d", strings.Join(req.SecretIDList, ", "), maxBatchSecrets))
		return
	}

	a.batchAnswer(ctx, w, req.SecretIDList, "", fx)
}

// batchGetFiltered serves BatchGetSecretValue with Filters: the secrets
// ListSecrets would list, a page (at most 20) at a time.
func (a *AWS) batchGetFiltered(ctx context.Context, w http.ResponseWriter, filters []filter, maxResults int, token string, fx effect) {
	all, e := a.selectSecrets(ctx, filters)
	if e != nil {
		writeError(w, e)
		return
	}
	list, next, e := page(all, token, maxResults, maxBatchSecrets)
	if e != nil {
		writeError(w, e)
		return
	}
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.Name
	}
	a.batchAnswer(ctx, w, ids, next, fx)
}

// batchAnswer answers a BatchGetSecretValue for ids.
func (a *AWS) batchAnswer(ctx context.Context, w http.ResponseWriter, ids []string, next string, fx effect) {
	out := struct {
		SecretValues []secretValue `json:"SecretValues"`
		Errors       []batchError  `json:"Errors"`
		NextToken    string        `json:"NextToken,omitempty"`
	}{SecretValues: []secretValue{}, Errors: []batchError{}, NextToken: next}
	for _, id := range ids {
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
