package awsapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// maxAnswer bounds a forwarded answer held in memory (a page of
// ListSecrets or DescribeParameters is far smaller).
const maxAnswer = 16 << 20

// forwardedHeaders are the request headers a forwarded request keeps; the
// signature's own (Authorization, X-Amz-Date, X-Amz-Security-Token) are
// made anew.
var forwardedHeaders = []string{"Content-Type", "X-Amz-Target", "User-Agent", "X-Amz-User-Agent", "Amz-Sdk-Invocation-Id", "Amz-Sdk-Request"}

// relayedHeaders are the answer headers not relayed: hop-by-hop ones, and
// the length, which is set for the body as relayed.
var droppedHeaders = map[string]bool{"Connection": true, "Keep-Alive": true, "Transfer-Encoding": true, "Content-Length": true, "Te": true, "Trailer": true, "Upgrade": true}

// forward sends the request to AWS signed with the extension's
// credentials, its body unchanged, and relays the answer unchanged. After a
// successful write it drops the cache entries the write affected.
func (h *Handler) forward(ctx context.Context, w http.ResponseWriter, r *http.Request, svc *service, op string, body []byte) {
	if svc.endpoint == "" {
		writeError(w, &apiError{http.StatusBadGateway, svc.internal, "The extension has no endpoint to forward " + svc.signing + " requests to."})
		return
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.ForwardTimeout)
	defer cancel()
	url := strings.TrimSuffix(svc.endpoint, "/") + "/"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		writeError(w, &apiError{http.StatusBadGateway, svc.internal, "The forwarding endpoint is not a valid URL."})
		return
	}
	for _, k := range forwardedHeaders {
		if v := r.Header.Values(k); v != nil {
			req.Header[k] = v
		}
	}
	creds, err := h.opts.Credentials.Retrieve(ctx)
	if err != nil {
		writeError(w, &apiError{http.StatusInternalServerError, svc.internal, "The extension could not retrieve its own credentials."})
		return
	}
	sum := sha256.Sum256(body)
	if err := h.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), svc.signing, h.opts.Region, h.opts.Now()); err != nil {
		writeError(w, &apiError{http.StatusInternalServerError, svc.internal, "The forwarded request could not be signed."})
		return
	}
	req.Header.Set(LoopHeader, "1")
	resp, err := h.opts.HTTPClient.Do(req)
	if err != nil {
		h.log.Warn("aws api forward failed", "operation", op, "error", err)
		status := http.StatusBadGateway
		if ctx.Err() != nil {
			status = http.StatusGatewayTimeout
		}
		writeError(w, &apiError{status, svc.internal, "AWS could not be reached."})
		return
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil || len(answer) > maxAnswer {
		h.log.Warn("aws api forward failed", "operation", op, "status", resp.StatusCode, "error", err, "bytes", len(answer))
		writeError(w, &apiError{http.StatusBadGateway, svc.internal, "AWS's answer could not be read in full."})
		return
	}
	if resp.StatusCode/100 == 2 {
		if n := h.invalidate(svc, op, body, answer); n > 0 {
			h.log.Debug("aws api write dropped cached entries", "operation", op, "entries", n)
		}
	}
	h.log.Debug("aws api forwarded", "operation", op, "status", resp.StatusCode)
	out := w.Header()
	delete(out, "X-Amzn-Requestid") // AWS's own id is relayed instead
	for k, v := range resp.Header {
		if !droppedHeaders[k] {
			out[k] = v
		}
	}
	out["Content-Length"] = []string{strconv.Itoa(len(answer))}
	w.WriteHeader(resp.StatusCode)
	w.Write(answer)
}

// Writes whose success changes what a read returns, by service.
var (
	secretWrites = map[string]bool{
		"CreateSecret": true, "PutSecretValue": true, "UpdateSecret": true, "UpdateSecretVersionStage": true,
		"RotateSecret": true, "CancelRotateSecret": true, "DeleteSecret": true, "RestoreSecret": true,
	}
	parameterWrites = map[string]bool{
		"PutParameter": true, "DeleteParameter": true, "DeleteParameters": true,
		"LabelParameterVersion": true, "UnlabelParameterVersion": true,
	}
)

// invalidate drops the entries a successful write op affected: every entry
// of the secret (any version, by name, ARN or partial ARN, and its
// /aws/reference/secretsmanager/ parameter) or of the parameters (any
// version, label, with or without decryption). It returns how many.
func (h *Handler) invalidate(svc *service, op string, req, answer []byte) int {
	var ids struct {
		SecretID string `json:"SecretId"`
		Name     string
		Names    []string
		ARN      string
	}
	var res struct {
		ARN, Name string
	}
	json.Unmarshal(req, &ids)
	json.Unmarshal(answer, &res)
	named := map[string]bool{}
	for _, n := range append([]string{ids.SecretID, ids.Name, res.ARN, res.Name}, ids.Names...) {
		if n != "" {
			named[n] = true
		}
	}
	if len(named) == 0 {
		return 0
	}
	switch {
	case svc == h.sm && secretWrites[op]:
		return h.opts.Cache.Invalidate(func(k source.Key, it *source.Item) bool {
			id := k.ID
			if k.Service == source.ParameterStore {
				var ok bool
				if id, ok = strings.CutPrefix(k.ID, source.SecretsManagerReferencePrefix); !ok {
					return false
				}
			}
			return named[id] || it != nil && (named[it.ARN] || k.Service == source.SecretsManager && named[it.Name])
		})
	case svc == h.ssm && parameterWrites[op]:
		// A listing of a path holding the name is out of date too.
		if h.opts.Paths != nil {
			for n := range named {
				h.opts.Paths.StalePaths(n)
			}
		}
		return h.opts.Cache.Invalidate(func(k source.Key, it *source.Item) bool {
			return k.Service == source.ParameterStore && (named[k.ID] || it != nil && (named[it.Name] || named[it.ARN]))
		})
	}
	return 0
}
