package awstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxBody bounds a request body; AWS's own limits are far below it.
const maxBody = 8 << 20

// Error codes the front answers with, as the real services spell them.
const (
	CodeThrottling          = "ThrottlingException"
	CodeAccessDenied        = "AccessDeniedException"
	CodeUnknownOperation    = "UnknownOperationException"
	CodeValidation          = "ValidationException"
	CodeSMInternal          = "InternalServiceError"      // Secrets Manager's 500
	CodeSSMInternal         = "InternalServerError"       // SSM's 500
	CodeResourceNotFound    = "ResourceNotFoundException" // Secrets Manager
	CodeDecryptionFailure   = "DecryptionFailure"         // Secrets Manager, KMS refused
	CodeParameterNotFound   = "ParameterNotFound"
	CodeVersionNotFound     = "ParameterVersionNotFound"
	CodeLabelLimitExceeded  = "ParameterVersionLabelLimitExceeded"
	CodeInvalidSignature    = "InvalidSignatureException"
	CodeUnrecognizedClient  = "UnrecognizedClientException"
	CodeMissingAuthToken    = "MissingAuthenticationTokenException"
	codeInvalidParameter    = "InvalidParameterException" // Secrets Manager
	codeInvalidRequest      = "InvalidRequestException"   // Secrets Manager
	codeNotImplementedHere  = "NotImplemented"            // a real request this front does not serve
	codeSerializationFailed = "SerializationException"
)

// apiError is an AWS JSON-protocol error answer.
type apiError struct {
	Code    string
	Message string
	Status  int
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...), Status: http.StatusBadRequest}
}

// serveRegion is the front of one region: it counts the call, checks its
// signature, applies the faults injected for it, then answers it itself or
// through kumo.
func (a *AWS) serveRegion(w http.ResponseWriter, r *http.Request) {
	op := opName(r.Header.Get("X-Amz-Target"))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, badRequest(codeSerializationFailed, "reading the request body: %v", err))
		return
	}
	if r.Method != http.MethodPost || op == "" {
		writeError(w, badRequest(CodeUnknownOperation, "awstest: no operation for %s %q", r.Method, r.Header.Get("X-Amz-Target")))
		return
	}
	// The seeding helpers sign with their own key; their calls are set-up,
	// not traffic of the code under test.
	seeding := accessKeyID(r.Header.Get("Authorization")) == seedAccessKeyID
	if !seeding {
		a.count(op, body)
	}
	role, e := a.checkSignature(r, op, body)
	if e != nil {
		writeError(w, e)
		return
	}
	if !seeding {
		if e := a.checkRole(op, body, role); e != nil {
			writeError(w, e)
			return
		}
	}
	if !seeding && a.overQuota(op) {
		writeError(w, faultError(op, &Fault{Code: CodeThrottling, Status: http.StatusBadRequest, Message: "Rate exceeded"}))
		return
	}
	fx := effect{role: role}
	if !seeding {
		fx = a.takeFaults(op)
		fx.role = role
		if handled := a.misbehave(w, r, op, fx); handled {
			return
		}
	}
	a.route(r.Context(), w, op, body, fx)
}

// opName turns an X-Amz-Target into the name Calls and Inject use:
// "secretsmanager.GetSecretValue" or "ssm.GetParameters"; "" if unknown.
func opName(target string) string {
	if action, ok := strings.CutPrefix(target, "AmazonSSM."); ok && action != "" {
		return "ssm." + action
	}
	if action, ok := strings.CutPrefix(target, "secretsmanager."); ok && action != "" {
		return target
	}
	return ""
}

// kumoTarget is opName's inverse.
func kumoTarget(op string) string {
	if action, ok := strings.CutPrefix(op, "ssm."); ok {
		return "AmazonSSM." + action
	}
	return op
}

func isSecretsManager(op string) bool { return strings.HasPrefix(op, "secretsmanager.") }

// route answers an operation that passed the signature check and faults.
func (a *AWS) route(ctx context.Context, w http.ResponseWriter, op string, body []byte, fx effect) {
	switch op {
	case OpBatchGetSecretValue:
		a.batchGetSecretValue(ctx, w, body, fx)
	case "secretsmanager.CreateSecret":
		a.createSecret(ctx, w, body)
	case "secretsmanager.TagResource", "secretsmanager.UntagResource":
		a.tagResource(ctx, w, op, body)
	case OpListSecrets:
		a.listSecrets(ctx, w, body)

	case OpGetSecretValue, "secretsmanager.PutSecretValue",
		"secretsmanager.UpdateSecret", "secretsmanager.DeleteSecret", "secretsmanager.DescribeSecret":
		a.forward(ctx, w, op, body)
	case OpGetParameter:
		a.getParameter(ctx, w, body)
	case OpGetParameters:
		a.getParameters(ctx, w, body, fx)
	case OpGetParametersByPath:
		a.getParametersByPath(ctx, w, body)
	case OpPutParameter:
		a.putParameter(ctx, w, body)
	case OpLabelParameterVersion:
		a.labelParameterVersion(w, body)
	case "ssm.DeleteParameter", "ssm.DeleteParameters":
		a.deleteParameters(ctx, w, op, body)
	default:
		writeError(w, badRequest(CodeUnknownOperation, "awstest: %s is not served by the test front", op))
	}
}

// forward passes a request to kumo and its answer back.
func (a *AWS) forward(ctx context.Context, w http.ResponseWriter, op string, body []byte) {
	status, out, err := a.kumoRaw(ctx, op, body)
	if err != nil {
		writeError(w, err)
		return
	}
	if status != http.StatusOK {
		writeError(w, kumoError(op, status, out))
		return
	}
	writeRaw(w, out)
}

// kumoRaw sends one request to kumo, with the names in it moved into this
// AWS's namespace, and returns kumo's answer with them moved out again.
func (a *AWS) kumoRaw(ctx context.Context, op string, body []byte) (int, []byte, *apiError) {
	in, err := a.toKumo(op, body)
	if err != nil {
		return 0, nil, badRequest(codeSerializationFailed, "awstest: request body: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.kumoURL+"/", bytes.NewReader(in))
	if err != nil {
		return 0, nil, internalError(op, err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", kumoTarget(op))
	// kumo's reads write (GetSecretValue sets LastAccessedDate under a read
	// lock), and its storage is shared by every kumo server in the process:
	// one call at a time, or the race detector rightly fails the tests. The
	// front's own latency and faults are applied outside this lock.
	kumoCallMu.Lock()
	defer kumoCallMu.Unlock()
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, nil, internalError(op, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, internalError(op, err)
	}
	return resp.StatusCode, a.fromKumo(out), nil
}

// kumoJSON calls kumo with in marshalled as the request and decodes a 200
// answer into out; any other answer comes back as kumo's error.
func (a *AWS) kumoJSON(ctx context.Context, op string, in, out any) *apiError {
	body, err := json.Marshal(in)
	if err != nil {
		return internalError(op, err)
	}
	status, resp, e := a.kumoRaw(ctx, op, body)
	if e != nil {
		return e
	}
	if status != http.StatusOK {
		return kumoError(op, status, resp)
	}
	if err := json.Unmarshal(resp, out); err != nil {
		return internalError(op, fmt.Errorf("decoding kumo's answer: %w", err))
	}
	return nil
}

// kumoError decodes kumo's error answer. kumo answers 404 for Secrets
// Manager's ResourceNotFoundException; AWS answers 400.
func kumoError(op string, status int, body []byte) *apiError {
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Type == "" {
		return internalError(op, fmt.Errorf("kumo answered %d: %s", status, body))
	}
	if status == http.StatusNotFound {
		status = http.StatusBadRequest
	}
	return &apiError{Code: e.Type, Message: e.Message, Status: status}
}

func internalError(op string, err error) *apiError {
	return &apiError{Code: internalCode(op), Message: "awstest: " + err.Error(), Status: http.StatusInternalServerError}
}

// internalCode is the service's own code for a 500.
func internalCode(op string) string {
	if isSecretsManager(op) {
		return CodeSMInternal
	}
	return CodeSSMInternal
}

// toKumo moves the names in a request body into this AWS's namespace.
func (a *AWS) toKumo(op string, body []byte) ([]byte, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	sm := isSecretsManager(op)
	for key, v := range m {
		switch key {
		case "Name", "SecretId", "Path":
			if s, ok := v.(string); ok {
				m[key] = a.kumoName(sm, s)
			}
		case "NextToken":
			// kumo's GetParametersByPath token is the next parameter's name.
			if s, ok := v.(string); ok && op == OpGetParametersByPath {
				m[key] = a.kumoName(false, s)
			}
		case "Names":
			if list, ok := v.([]any); ok {
				for i, n := range list {
					if s, ok := n.(string); ok {
						list[i] = a.kumoName(false, s)
					}
				}
			}
		}
	}
	return json.Marshal(m)
}

// kumoName is a name (or secret ARN, or path) inside this AWS's namespace.
// fromKumo must undo it textually, so each form keeps the namespace next to
// a separator: secrets "NS/name" (ARN ":secret:NS/name-xxxxxx"), parameters
// "/NS/a/b" for "/a/b" and "NS.name" for a name without a leading slash.
func (a *AWS) kumoName(secret bool, name string) string {
	if secret {
		if strings.HasPrefix(name, "arn:") {
			k, own := a.arnToKumo("secretsmanager", a.unalias(name))
			if prefix, rest, ok := strings.Cut(k, ":secret:"); ok {
				if !own {
					return prefix + ":secret:" + a.elsewhere() + "/" + rest
				}
				return prefix + ":secret:" + a.ns + "/" + rest
			}
		}
		return a.ns + "/" + name
	}
	name = a.parameterName(name)
	if strings.HasPrefix(name, "/") {
		return "/" + a.ns + name
	}
	return a.ns + "." + name
}

// fromKumo takes this AWS's namespace out of everything kumo answered: names,
// ARNs, error messages. The namespace is random, so nothing else matches.
func (a *AWS) fromKumo(body []byte) []byte {
	body = a.regionalARNs(body)
	body = bytes.ReplaceAll(body, []byte("/"+a.ns+"/"), []byte("/"))
	body = bytes.ReplaceAll(body, []byte(a.ns+"/"), nil)
	return a.alias(bytes.ReplaceAll(body, []byte(a.ns+"."), nil))
}

// writeError writes an AWS JSON-protocol error: the code in both the
// X-Amzn-ErrorType header and the body's __type, as AWS does, so the SDK
// returns a smithy.APIError with that ErrorCode.
func writeError(w http.ResponseWriter, e *apiError) {
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	body, _ := json.Marshal(map[string]string{"__type": e.Code, "message": e.Message})
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h.Set("X-Amzn-Requestid", requestID())
	h.Set("X-Amzn-Errortype", e.Code)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeJSON writes a 200 answer.
func writeJSON(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(w, &apiError{Code: CodeSSMInternal, Message: err.Error(), Status: http.StatusInternalServerError})
		return
	}
	writeRaw(w, body)
}

func writeRaw(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h.Set("X-Amzn-Requestid", requestID())
	_, _ = w.Write(body)
}

// requestID is a random UUID-shaped request ID.
func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	s := hex.EncodeToString(b)
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}
