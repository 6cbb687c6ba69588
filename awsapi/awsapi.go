// Package awsapi answers the function's own AWS SDK: POST / with
// X-Amz-Target "secretsmanager.<Operation>" or "AmazonSSM.<Operation>" in
// the AWS JSON 1.1 protocol, as the SDKs and the CLI send it when their
// endpoint is the extension. Requests must be SigV4-signed with the
// credentials the extension itself holds. The read operations are answered
// from the cache (the same reads as the GET API's, so they join prefetches
// and are fetched lazily); every other operation is forwarded to AWS,
// re-signed, and after a successful write the entries it affects are
// dropped so the caller reads its own write. It never forwards to itself:
// the endpoints it is given are resolved without this extension's address.
package awsapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	smschemas "github.com/aws/aws-sdk-go-v2/service/secretsmanager/schemas"
	ssmschemas "github.com/aws/aws-sdk-go-v2/service/ssm/schemas"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// Cache is what the endpoint reads from and invalidates. *cache.Cache
// implements it.
type Cache interface {
	Get(ctx context.Context, key source.Key, refreshNow bool) (cache.Result, error)
	Invalidate(match func(source.Key, *source.Item) bool) int
}

// Paths knows the parameters under each prefetched path, for
// GetParametersByPath.
type Paths interface {
	// ListPath returns the names under p as last listed, sorted; false when
	// p is not a prefetched path or its listing is not current.
	ListPath(p cache.Path) ([]string, bool)
	// StalePaths marks the listings of the paths holding name as no longer
	// current: after a write of name went to AWS.
	StalePaths(name string)
}

// Options configure a Handler.
type Options struct {
	Cache Cache
	// Paths, if set, serves GetParametersByPath of prefetched paths (else
	// it is forwarded).
	Paths Paths
	// Credentials are the extension's own: requests must be signed with
	// them, and forwarded requests are signed again with them.
	Credentials aws.CredentialsProvider
	Region      string
	// SecretsManagerEndpoint and SSMEndpoint are the base URLs forwarded
	// requests go to (never this extension: see ResolveEndpoints).
	SecretsManagerEndpoint, SSMEndpoint string
	// HTTPClient sends forwarded requests; default http.DefaultClient.
	HTTPClient aws.HTTPClient
	// ForwardTimeout bounds one forwarded call; default 30 s.
	ForwardTimeout time.Duration
	// MaxInFlight bounds the requests handled at once; more get
	// ThrottlingException at once. Default 256.
	MaxInFlight int
	Logger      *slog.Logger
	Now         func() time.Time // default time.Now
}

// LoopHeader marks the requests the extension itself sends to AWS (its
// fetches, through MarkRequests, and what it forwards). One arriving here
// came from this extension, or another one, whose endpoint names this one:
// it is refused rather than answered, so a loop the endpoint resolution did
// not see (a host name for this address, say) ends at the first hop.
const LoopHeader = "X-Secrets-Prefetch-Hop"

// MarkRequests returns c with LoopHeader set on every request it sends
// (after signing: AWS ignores an unsigned header it does not know).
func MarkRequests(c aws.HTTPClient) aws.HTTPClient {
	return markingClient{c}
}

type markingClient struct{ c aws.HTTPClient }

func (m markingClient) Do(r *http.Request) (*http.Response, error) {
	r.Header.Set(LoopHeader, "1")
	return m.c.Do(r)
}

// maxBody bounds a request body; AWS's largest for these services (a
// 64 KiB binary secret, base64-encoded) is well under it.
const maxBody = 1 << 20

// Handler is the endpoint. It is safe for concurrent use.
type Handler struct {
	opts   Options
	auth   *verifier
	signer *v4.Signer // signs forwarded requests
	sm     *service
	ssm    *service
	slots  chan struct{}
	log    *slog.Logger
	served map[string]serveFunc // by X-Amz-Target

	nServed, nForwarded, nRefused atomic.Uint64
}

// Stats counts the requests since the Handler was made.
type Stats struct {
	Served    uint64 // answered from the cache (an error answer included)
	Forwarded uint64 // sent on to AWS
	Refused   uint64 // refused before either: signature, operation, size, rate
}

// Stats returns the counters.
func (h *Handler) Stats() Stats {
	return Stats{Served: h.nServed.Load(), Forwarded: h.nForwarded.Load(), Refused: h.nRefused.Load()}
}

// service is one of the two services the endpoint speaks for.
type service struct {
	target   string // X-Amz-Target prefix, with the dot
	signing  string // SigV4 service name
	internal string // the service's internal error type
	proto    *awsjson.Protocol
	endpoint string
}

// serveFunc answers a request from the cache. It returns false, having
// written nothing, when the request is to be forwarded instead.
type serveFunc func(h *Handler, ctx context.Context, w http.ResponseWriter, body []byte) bool

// New returns a Handler.
func New(o Options) *Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.ForwardTimeout <= 0 {
		o.ForwardTimeout = 30 * time.Second
	}
	if o.MaxInFlight < 1 {
		o.MaxInFlight = 256
	}
	h := &Handler{
		opts:   o,
		auth:   &verifier{creds: o.Credentials, region: o.Region, now: o.Now, signer: v4.NewSigner()},
		sm:     &service{target: "secretsmanager.", signing: "secretsmanager", internal: "InternalServiceError", proto: awsjson.New11(smschemas.Secretsmanager), endpoint: o.SecretsManagerEndpoint},
		ssm:    &service{target: "AmazonSSM.", signing: "ssm", internal: "InternalServerError", proto: awsjson.New11(ssmschemas.AmazonSSM), endpoint: o.SSMEndpoint},
		signer: v4.NewSigner(),
		slots:  make(chan struct{}, o.MaxInFlight),
		log:    o.Logger,
	}
	h.served = map[string]serveFunc{
		"secretsmanager.GetSecretValue":      (*Handler).getSecretValue,
		"secretsmanager.BatchGetSecretValue": (*Handler).batchGetSecretValue,
		"AmazonSSM.GetParameter":             (*Handler).getParameter,
		"AmazonSSM.GetParameters":            (*Handler).getParameters,
		"AmazonSSM.GetParametersByPath":      (*Handler).getParametersByPath,
	}
	return h
}

// apiError is an answer in the JSON protocol's error form.
type apiError struct {
	status int
	typ    string
	msg    string
}

func internalError(signing string) string {
	if signing == "ssm" {
		return "InternalServerError"
	}
	return "InternalServiceError"
}

// ServeHTTP answers POST / (the caller mounts it there).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header()["X-Amzn-Requestid"] = []string{newRequestID()}
	w.Header()["Cache-Control"] = []string{"no-store"}
	if _, ok := r.Header["X-Forwarded-For"]; ok {
		// A forwarded request came through a proxy: not from this environment.
		h.nRefused.Add(1)
		writeError(w, &apiError{http.StatusForbidden, "ForwardedRequestRefused", "Requests with X-Forwarded-For are refused."})
		return
	}
	if _, ok := r.Header[LoopHeader]; ok {
		h.nRefused.Add(1)
		h.log.Warn("aws api request from an extension refused: an AWS endpoint names this extension", "target", r.Header.Get("X-Amz-Target"))
		writeError(w, &apiError{http.StatusLoopDetected, "LoopDetected",
			"This request was sent by secrets-prefetch itself: the endpoint it uses for AWS names this extension. Point AWS_ENDPOINT_URL_SECRETS_MANAGER / AWS_ENDPOINT_URL_SSM for the extension at AWS, or use 127.0.0.1 or localhost for this address so it is recognised."})
		return
	}
	target := r.Header.Get("X-Amz-Target")
	var svc *service
	switch {
	case strings.HasPrefix(target, h.sm.target):
		svc = h.sm
	case strings.HasPrefix(target, h.ssm.target):
		svc = h.ssm
	}
	if svc == nil || len(target) == len(svc.target) || r.Method != http.MethodPost || r.URL.Path != "/" {
		h.nRefused.Add(1)
		writeError(w, &apiError{http.StatusBadRequest, "UnknownOperationException",
			"POST / needs an X-Amz-Target of secretsmanager.<Operation> or AmazonSSM.<Operation>."})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		h.nRefused.Add(1)
		writeError(w, &apiError{http.StatusBadRequest, "SerializationException", "The request body could not be read."})
		return
	}
	if len(body) > maxBody {
		h.nRefused.Add(1)
		writeError(w, &apiError{http.StatusRequestEntityTooLarge, "RequestEntityTooLargeException", "The request body is larger than 1 MiB."})
		return
	}
	if aerr := h.auth.verify(r.Context(), r, body, svc.signing); aerr != nil {
		h.nRefused.Add(1)
		h.log.Debug("aws api request refused", "target", target, "type", aerr.typ)
		writeError(w, aerr)
		return
	}
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		h.nRefused.Add(1)
		writeError(w, &apiError{http.StatusBadRequest, "ThrottlingException", "Rate exceeded"})
		return
	}
	if serve := h.served[target]; serve != nil && isJSON11(r.Header.Get("Content-Type")) {
		if serve(h, r.Context(), w, body) {
			h.nServed.Add(1)
			return
		}
	}
	h.nForwarded.Add(1)
	h.forward(r.Context(), w, r, svc, target[len(svc.target):], body)
}

// isJSON11 reports whether a Content-Type is the JSON 1.1 protocol's.
func isJSON11(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/x-amz-json-1.1")
}

// writeJSON writes a success answer.
func writeJSON(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"application/x-amz-json-1.1"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// writeError writes e as the JSON protocol does: {"__type","message"}.
func writeError(w http.ResponseWriter, e *apiError) {
	body := []byte(`{"__type":` + strconv.Quote(e.typ) + `,"message":` + strconv.Quote(e.msg) + `}`)
	h := w.Header()
	h["Content-Type"] = []string{"application/x-amz-json-1.1"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(e.status)
	w.Write(body)
}

// readError is the answer to a read the cache could not serve: AWS's own
// error where there was one (its type, message and status), else the
// service's internal error, which SDKs retry.
func readError(svc *service, err error) *apiError {
	if errors.Is(err, cache.ErrBusy) {
		return &apiError{http.StatusBadRequest, "ThrottlingException", "Rate exceeded"}
	}
	var serr *source.Error
	if !errors.As(err, &serr) {
		return &apiError{http.StatusInternalServerError, svc.internal, "The extension could not read the item: " + errText(err)}
	}
	switch serr.Code {
	case "UpstreamTimeout", "Canceled":
		return &apiError{http.StatusGatewayTimeout, svc.internal, "AWS did not answer in time."}
	case "UpstreamError", "UpstreamUnavailable", "MalformedResponse", "Unavailable", "Closed":
		return &apiError{http.StatusBadGateway, svc.internal, "AWS could not be reached: " + serr.Message}
	case "RetryQuotaExceeded":
		return &apiError{http.StatusBadRequest, "ThrottlingException", "Rate exceeded"}
	}
	status := http.StatusBadRequest
	var re interface{ HTTPStatusCode() int }
	if errors.As(serr.Err, &re) && re.HTTPStatusCode() >= 400 {
		status = re.HTTPStatusCode()
	} else if serr.Class == source.ClassTransient {
		status = http.StatusInternalServerError
	}
	return &apiError{status, serr.Code, serr.Message}
}

func errText(err error) string {
	if errors.Is(err, cache.ErrClosed) {
		return "the extension is shutting down"
	}
	return "internal error"
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // a version 4 UUID, as AWS's request ids are
	b[8] = b[8]&0x3f | 0x80
	s := hex.EncodeToString(b[:])
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// quote quotes a caller-given string for a message, bounded in length.
func quote(s string) string {
	if len(s) > 256 {
		s = s[:256] + "..."
	}
	return strconv.Quote(s)
}
