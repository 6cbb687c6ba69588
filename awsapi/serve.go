package awsapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smschemas "github.com/aws/aws-sdk-go-v2/service/secretsmanager/schemas"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmschemas "github.com/aws/aws-sdk-go-v2/service/ssm/schemas"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/internal/names"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// AWS's limits on the served operations; a request beyond them is
// forwarded, for AWS to refuse in its own words.
const (
	maxIDLen        = 2048
	maxBatchSecrets = 20
	maxBatchParams  = 10
)

// A read's outcome, for the batch operations.
type outcome struct {
	res cache.Result
	err error
}

// getSecretValue serves secretsmanager.GetSecretValue.
func (h *Handler) getSecretValue(ctx context.Context, w http.ResponseWriter, body []byte) bool {
	var in secretsmanager.GetSecretValueInput
	if decodeInput(body, smschemas.GetSecretValueRequest, &in) != nil {
		return false
	}
	key, ok := secretKey(aws.ToString(in.SecretId), aws.ToString(in.VersionId), aws.ToString(in.VersionStage))
	if !ok {
		return false
	}
	res, err := h.opts.Cache.Get(ctx, key, false)
	if errors.Is(err, cache.ErrNotConfigured) {
		return false
	}
	if err != nil {
		h.logRead("GetSecretValue", key, "", err)
		writeError(w, readError(h.sm, err))
		return true
	}
	v, err := res.Item.SecretValue()
	if err != nil {
		return h.internal(w, h.sm, err)
	}
	out := &secretsmanager.GetSecretValueOutput{
		ARN: v.ARN, CreatedDate: v.CreatedDate, Name: v.Name, SecretBinary: v.SecretBinary,
		SecretString: v.SecretString, VersionId: v.VersionId, VersionStages: v.VersionStages,
	}
	h.logRead("GetSecretValue", key, res.Status.String(), nil)
	return h.answer(w, h.sm, smschemas.GetSecretValue, out, smschemas.GetSecretValueResponse, res.Status)
}

// secretKey is the cache key of a GetSecretValue request; false when the
// request is not one to serve (AWS answers it).
func secretKey(id, versionID, stage string) (source.Key, bool) {
	if id == "" || len(id) > maxIDLen || !names.Printable(id) || versionID != "" && stage != "" ||
		len(versionID) > 256 || len(stage) > 256 || !names.Printable(versionID) || !names.Printable(stage) {
		return source.Key{}, false
	}
	if stage == "AWSCURRENT" {
		stage = "" // the default: share the prefetched entry
	}
	return source.Key{Service: source.SecretsManager, ID: id, VersionID: versionID, VersionStage: stage}, true
}

// batchGetSecretValue serves secretsmanager.BatchGetSecretValue with a
// SecretIdList (a filtered listing is forwarded).
func (h *Handler) batchGetSecretValue(ctx context.Context, w http.ResponseWriter, body []byte) bool {
	var in secretsmanager.BatchGetSecretValueInput
	if decodeInput(body, smschemas.BatchGetSecretValueRequest, &in) != nil {
		return false
	}
	if in.Filters != nil || in.MaxResults != nil || in.NextToken != nil || len(in.SecretIdList) == 0 || len(in.SecretIdList) > maxBatchSecrets {
		return false
	}
	keys := make([]source.Key, len(in.SecretIdList))
	seen := make(map[string]bool, len(keys))
	for i, id := range in.SecretIdList {
		k, ok := secretKey(id, "", "")
		if !ok || seen[id] {
			return false
		}
		seen[id] = true
		keys[i] = k
	}
	outs := h.readAll(ctx, keys)
	out := &secretsmanager.BatchGetSecretValueOutput{SecretValues: []smtypes.SecretValueEntry{}, Errors: []smtypes.APIErrorType{}}
	for i, o := range outs {
		if errors.Is(o.err, cache.ErrNotConfigured) {
			return false
		}
		var serr *source.Error
		switch {
		case o.err == nil:
			v, err := o.res.Item.SecretValue()
			if err != nil {
				return h.internal(w, h.sm, err)
			}
			out.SecretValues = append(out.SecretValues, v)
		case errors.As(o.err, &serr) && itemFault(serr.Class):
			// The item's own failure: AWS reports it in Errors.
			out.Errors = append(out.Errors, smtypes.APIErrorType{SecretId: aws.String(in.SecretIdList[i]), ErrorCode: aws.String(serr.Code), Message: aws.String(serr.Message)})
		}
	}
	for i, o := range outs {
		var serr *source.Error
		if o.err != nil && !(errors.As(o.err, &serr) && itemFault(serr.Class)) {
			h.logRead("BatchGetSecretValue", keys[i], "", o.err)
			writeError(w, readError(h.sm, o.err))
			return true
		}
	}
	h.logBatch("BatchGetSecretValue", outs)
	return h.answer(w, h.sm, smschemas.BatchGetSecretValue, out, smschemas.BatchGetSecretValueResponse, 0)
}

// itemFault reports whether a failure is the item's own (missing, refused,
// invalid), which a batch operation reports per item, rather than one of
// the call (throttling, AWS unreachable), which fails the whole call.
func itemFault(c source.Class) bool {
	return c == source.ClassNotFound || c == source.ClassAccessDenied || c == source.ClassInvalid
}

// getParameter serves AmazonSSM.GetParameter.
func (h *Handler) getParameter(ctx context.Context, w http.ResponseWriter, body []byte) bool {
	var in ssm.GetParameterInput
	if decodeInput(body, ssmschemas.GetParameterRequest, &in) != nil {
		return false
	}
	key, ok := parameterKey(aws.ToString(in.Name), aws.ToBool(in.WithDecryption))
	if !ok {
		return false
	}
	res, err := h.opts.Cache.Get(ctx, key, false)
	if errors.Is(err, cache.ErrNotConfigured) {
		return false
	}
	if err != nil {
		h.logRead("GetParameter", key, "", err)
		writeError(w, readError(h.ssm, err))
		return true
	}
	p, err := res.Item.Parameter()
	if err != nil {
		return h.internal(w, h.ssm, err)
	}
	h.logRead("GetParameter", key, res.Status.String(), nil)
	return h.answer(w, h.ssm, ssmschemas.GetParameter, &ssm.GetParameterOutput{Parameter: &p}, ssmschemas.GetParameterResult, res.Status)
}

// parameterKey is the cache key of a parameter name as SSM takes it
// (name, name:version, name:label); false when it is not one to serve.
func parameterKey(full string, decrypt bool) (source.Key, bool) {
	if full == "" || len(full) > maxIDLen || !names.Printable(full) {
		return source.Key{}, false
	}
	name, sel := names.SplitSelector(full)
	if name == "" || sel == "" && name != full || sel != "" && !names.IsVersion(sel) && !names.IsLabel(sel) {
		return source.Key{}, false
	}
	k := source.Key{Service: source.ParameterStore, ID: name, Decrypt: decrypt}
	if sel != "" {
		k.Selector = ":" + sel
	}
	return k, true
}

// getParameters serves AmazonSSM.GetParameters.
func (h *Handler) getParameters(ctx context.Context, w http.ResponseWriter, body []byte) bool {
	var in ssm.GetParametersInput
	if decodeInput(body, ssmschemas.GetParametersRequest, &in) != nil {
		return false
	}
	if len(in.Names) == 0 || len(in.Names) > maxBatchParams {
		return false
	}
	keys := make([]source.Key, len(in.Names))
	seen := make(map[string]bool, len(keys))
	for i, n := range in.Names {
		k, ok := parameterKey(n, aws.ToBool(in.WithDecryption))
		if !ok || seen[n] {
			return false
		}
		seen[n] = true
		keys[i] = k
	}
	outs := h.readAll(ctx, keys)
	out := &ssm.GetParametersOutput{Parameters: []ssmtypes.Parameter{}, InvalidParameters: []string{}}
	for i, o := range outs {
		if errors.Is(o.err, cache.ErrNotConfigured) {
			return false
		}
		var serr *source.Error
		switch {
		case o.err == nil:
			p, err := o.res.Item.Parameter()
			if err != nil {
				return h.internal(w, h.ssm, err)
			}
			out.Parameters = append(out.Parameters, p)
		case errors.As(o.err, &serr) && serr.Class == source.ClassNotFound:
			// A missing name or version is not an error of the call.
			out.InvalidParameters = append(out.InvalidParameters, in.Names[i])
		}
	}
	for i, o := range outs {
		var serr *source.Error
		if o.err != nil && !(errors.As(o.err, &serr) && serr.Class == source.ClassNotFound) {
			// IAM and KMS judge every name of the call: one refusal fails it.
			h.logRead("GetParameters", keys[i], "", o.err)
			writeError(w, readError(h.ssm, o.err))
			return true
		}
	}
	h.logBatch("GetParameters", outs)
	return h.answer(w, h.ssm, ssmschemas.GetParameters, out, ssmschemas.GetParametersResult, 0)
}

// pageToken is the NextToken of a served GetParametersByPath page: where
// the next page starts in the path's listing. Its prefix tells it from
// AWS's own tokens (which are forwarded).
const pageToken = "secrets-prefetch-page:"

// getParametersByPath serves AmazonSSM.GetParametersByPath of a prefetched
// path (the same Path and Recursive), without ParameterFilters, from the
// path's listing and the cached parameters.
func (h *Handler) getParametersByPath(ctx context.Context, w http.ResponseWriter, body []byte) bool {
	var in ssm.GetParametersByPathInput
	if decodeInput(body, ssmschemas.GetParametersByPathRequest, &in) != nil {
		return false
	}
	path := aws.ToString(in.Path)
	if in.ParameterFilters != nil || !strings.HasPrefix(path, "/") || len(path) > maxIDLen || !names.Printable(path) {
		return false
	}
	if path != "/" {
		path = strings.TrimSuffix(path, "/")
	}
	size := maxBatchParams
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > maxBatchParams {
			return false
		}
		size = int(*in.MaxResults)
	}
	start := 0
	if in.NextToken != nil {
		n, err := strconv.Atoi(strings.TrimPrefix(*in.NextToken, pageToken))
		if !strings.HasPrefix(*in.NextToken, pageToken) || err != nil || n < 0 {
			return false // AWS's own token: AWS answers
		}
		start = n
	}
	if h.opts.Paths == nil {
		return false
	}
	listed, ok := h.opts.Paths.ListPath(cache.Path{Prefix: path, Recursive: aws.ToBool(in.Recursive)})
	if !ok {
		return false // not a prefetched path, or its listing is not current: AWS answers
	}
	start = min(start, len(listed))
	page := listed[start:min(start+size, len(listed))]
	keys := make([]source.Key, len(page))
	for i, n := range page {
		keys[i] = source.Key{Service: source.ParameterStore, ID: n, Decrypt: aws.ToBool(in.WithDecryption)}
	}
	outs := h.readAll(ctx, keys)
	out := &ssm.GetParametersByPathOutput{Parameters: []ssmtypes.Parameter{}}
	for i, o := range outs {
		var serr *source.Error
		switch {
		case errors.Is(o.err, cache.ErrNotConfigured):
			return false
		case o.err == nil:
			p, err := o.res.Item.Parameter()
			if err != nil {
				return h.internal(w, h.ssm, err)
			}
			out.Parameters = append(out.Parameters, p)
		case errors.As(o.err, &serr) && serr.Class == source.ClassNotFound:
			// Deleted since the path was listed: no longer under it.
		default:
			h.logRead("GetParametersByPath", keys[i], "", o.err)
			writeError(w, readError(h.ssm, o.err))
			return true
		}
	}
	if start+size < len(listed) {
		out.NextToken = aws.String(pageToken + strconv.Itoa(start+size))
	}
	h.logBatch("GetParametersByPath", outs)
	return h.answer(w, h.ssm, ssmschemas.GetParametersByPath, out, ssmschemas.GetParametersByPathResult, 0)
}

// readAll reads keys from the cache concurrently.
func (h *Handler) readAll(ctx context.Context, keys []source.Key) []outcome {
	outs := make([]outcome, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() {
			res, err := h.opts.Cache.Get(ctx, k, false)
			outs[i] = outcome{res, err}
		})
	}
	wg.Wait()
	return outs
}

// answer writes out, the SDK output struct of op, with its schema.
func (h *Handler) answer(w http.ResponseWriter, svc *service, op *smithy.Schema, out smithy.Serializable, schema *smithy.Schema, st cache.Status) bool {
	body, err := encode(svc.proto, op, out, schema)
	if err != nil {
		return h.internal(w, svc, err)
	}
	if st != 0 {
		w.Header()["X-Cache"] = []string{st.String()}
	}
	writeJSON(w, body)
	return true
}

func (h *Handler) internal(w http.ResponseWriter, svc *service, err error) bool {
	h.log.Error("aws api answer failed", "error", err)
	writeError(w, &apiError{http.StatusInternalServerError, svc.internal, "The extension could not render the answer."})
	return true
}

func (h *Handler) logRead(op string, key source.Key, status string, err error) {
	if err != nil {
		h.log.Debug("aws api read failed", "operation", op, "item", key.String(), "error", err)
		return
	}
	h.log.Debug("aws api read", "operation", op, "item", key.String(), "cache", status)
}

func (h *Handler) logBatch(op string, outs []outcome) {
	if !h.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	var hit, miss, stale, failed int
	for _, o := range outs {
		switch {
		case o.err != nil:
			failed++
		case o.res.Status == cache.Hit:
			hit++
		case o.res.Status == cache.Stale:
			stale++
		default:
			miss++
		}
	}
	h.log.Debug("aws api read", "operation", op, "items", len(outs), "hit", hit, "miss", miss, "stale", stale, "failed", failed)
}
