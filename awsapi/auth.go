package awsapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The JSON protocol's authentication fault types, all answered with 400.
const (
	errMissingToken        = "MissingAuthenticationTokenException"
	errIncompleteSignature = "IncompleteSignatureException"
	errInvalidSignature    = "InvalidSignatureException"
	errUnrecognizedClient  = "UnrecognizedClientException"
)

const (
	// maxSkew is how far a request's X-Amz-Date may be from our clock, as AWS allows.
	maxSkew     = 15 * time.Minute
	amzDate     = "20060102T150405Z"
	algorithm   = "AWS4-HMAC-SHA256"
	reaskPeriod = 30 * time.Second // at most one extra credentials lookup per this
)

// whyOtherCredentials ends the answer to a request signed with credentials
// the extension does not hold: it says why, since the caller's SDK works
// against AWS itself.
const whyOtherCredentials = " This endpoint answers only requests signed with the credentials the extension itself holds " +
	"(the function's execution role in Lambda; the task role or instance profile for the agent). " +
	"A caller with credentials of its own (EKS IRSA, a role it assumed) must call AWS directly: unset AWS_ENDPOINT_URL_SECRETS_MANAGER and AWS_ENDPOINT_URL_SSM for it."

// sigV4 is the parsed Authorization header of a SigV4-signed request.
type sigV4 struct {
	accessKeyID   string
	date          string // YYYYMMDD of the credential scope
	region        string
	service       string
	signedHeaders string // as sent: lower case, ';'-separated, sorted
	signature     string
}

// parseAuthorization parses "AWS4-HMAC-SHA256 Credential=AKID/date/region/
// service/aws4_request, SignedHeaders=a;b, Signature=hex". Each part must
// be given once; the signed headers must be lower case and sorted, as the
// signing process makes them.
func parseAuthorization(auth string) (sigV4, string) {
	var s sigV4
	rest, ok := strings.CutPrefix(auth, algorithm+" ")
	if !ok {
		return s, "Authorization header must use the " + algorithm + " algorithm."
	}
	var credential string
	seen := map[string]bool{}
	for field := range strings.SplitSeq(rest, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok || seen[key] {
			return s, "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters, each once."
		}
		seen[key] = true
		switch key {
		case "Credential":
			credential = value
		case "SignedHeaders":
			s.signedHeaders = value
		case "Signature":
			s.signature = value
		default:
			return s, "Authorization header has an unknown parameter " + quote(key) + "."
		}
	}
	if credential == "" || s.signedHeaders == "" || s.signature == "" {
		return s, "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters."
	}
	scope := strings.Split(credential, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || scope[0] == "" {
		return s, "Credential must have the form ACCESS-KEY/YYYYMMDD/REGION/SERVICE/aws4_request."
	}
	s.accessKeyID, s.date, s.region, s.service = scope[0], scope[1], scope[2], scope[3]
	if len(s.signature) != 64 || strings.ToLower(s.signature) != s.signature {
		return s, "Signature must be 64 lower-case hexadecimal digits."
	}
	if _, err := hex.DecodeString(s.signature); err != nil {
		return s, "Signature must be 64 lower-case hexadecimal digits."
	}
	prev := ""
	for h := range strings.SplitSeq(s.signedHeaders, ";") {
		if h == "" || h != strings.ToLower(h) || h <= prev {
			return s, "SignedHeaders must be lower-case header names, sorted, separated by ';'."
		}
		prev = h
	}
	return s, ""
}

// signs reports whether the signed-headers list holds h.
func (s sigV4) signs(h string) bool {
	for x := range strings.SplitSeq(s.signedHeaders, ";") {
		if x == h {
			return true
		}
	}
	return false
}

// verifier checks SigV4 signatures against the credentials the extension
// holds. It is safe for concurrent use.
type verifier struct {
	creds  aws.CredentialsProvider
	region string
	now    func() time.Time
	// signer recomputes signatures; one for all requests, so its cache of
	// derived signing keys (per day, region and service) saves four HMACs
	// a request. Safe for concurrent use.
	signer *v4.Signer

	mu        sync.Mutex // protects lastReask
	lastReask time.Time
}

// verify checks r's signature, computed by the caller over r and body for
// service, and returns the credentials it was made with. Failures are the
// answers AWS gives, with the JSON protocol's types.
func (v *verifier) verify(ctx context.Context, r *http.Request, body []byte, service string) *apiError {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if r.URL.Query().Has("X-Amz-Signature") {
			return authFault(errIncompleteSignature, "Presigned requests are not accepted: sign the request's Authorization header.")
		}
		return authFault(errMissingToken, "Missing Authentication Token")
	}
	got, bad := parseAuthorization(auth)
	if bad != "" {
		return authFault(errIncompleteSignature, bad)
	}
	for _, h := range []string{"host", "x-amz-date", "x-amz-target"} {
		if !got.signs(h) {
			// The operation must be signed: we re-sign what we forward,
			// so an unsigned target could turn a read into a write.
			return authFault(errIncompleteSignature, "SignedHeaders must include "+h+".")
		}
	}
	if _, ok := r.Header["X-Amz-Security-Token"]; ok && !got.signs("x-amz-security-token") {
		return authFault(errIncompleteSignature, "SignedHeaders must include x-amz-security-token.")
	}
	signed, err := time.Parse(amzDate, r.Header.Get("X-Amz-Date"))
	if err != nil {
		return authFault(errIncompleteSignature, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	if got.date != signed.Format("20060102") {
		return authFault(errInvalidSignature, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "+
			quote(got.date)+" != "+quote(signed.Format("20060102")))
	}
	if got.service != service {
		return authFault(errInvalidSignature, "Credential should be scoped to correct service: '"+service+"'.")
	}
	if got.region != v.region {
		return authFault(errInvalidSignature, "Credential should be scoped to a valid region, not "+quote(got.region)+
			": the extension serves "+quote(v.region)+".")
	}
	if host := hostOnly(r.Host); isAWSHost(host) {
		// The caller's SDK signs for the endpoint it calls, this one: a
		// request signed for AWS itself was captured and replayed here.
		return authFault(errInvalidSignature, "The request is signed for "+quote(host)+", an AWS endpoint, not for this one.")
	}
	now := v.now()
	if signed.Before(now.Add(-maxSkew)) {
		return authFault(errInvalidSignature, "Signature expired: "+signed.Format(amzDate)+" is now earlier than "+
			now.Add(-maxSkew).UTC().Format(amzDate)+" ("+now.UTC().Format(amzDate)+" - 15 min.)")
	}
	if signed.After(now.Add(maxSkew)) {
		return authFault(errInvalidSignature, "Signature not yet current: "+signed.Format(amzDate)+" is still later than "+
			now.Add(maxSkew).UTC().Format(amzDate)+" ("+now.UTC().Format(amzDate)+" + 15 min.)")
	}

	creds, err := v.credentialsFor(ctx, got.accessKeyID)
	if err != nil {
		return &apiError{status: http.StatusInternalServerError, typ: internalError(service), msg: "The extension could not retrieve its own credentials."}
	}
	if creds.AccessKeyID != got.accessKeyID {
		return authFault(errUnrecognizedClient, "The security token included in the request is invalid."+whyOtherCredentials)
	}
	if !sameSecret(r.Header.Get("X-Amz-Security-Token"), creds.SessionToken) {
		return authFault(errUnrecognizedClient, "The security token included in the request is invalid."+whyOtherCredentials)
	}

	// Recompute the signature over exactly what the client signed.
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	req := &http.Request{Method: r.Method, URL: &u, Host: r.Host, Header: http.Header{}}
	for h := range strings.SplitSeq(got.signedHeaders, ";") {
		switch h {
		case "host":
		case "content-length":
			req.ContentLength = r.ContentLength
		default:
			if vals := r.Header.Values(h); vals != nil {
				req.Header[http.CanonicalHeaderKey(h)] = vals
			}
		}
	}
	sum := sha256.Sum256(body)
	signer := v.signer
	if signer == nil {
		signer = v4.NewSigner() // (a verifier built by hand, in tests)
	}
	if err := signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), service, v.region, signed); err != nil {
		return &apiError{status: http.StatusInternalServerError, typ: internalError(service), msg: "The signature could not be computed."}
	}
	want, _ := parseAuthorization(req.Header.Get("Authorization"))
	if want.signedHeaders != got.signedHeaders || !hmac.Equal([]byte(want.signature), []byte(got.signature)) {
		return authFault(errInvalidSignature, "The request signature we calculated does not match the signature you provided. "+
			"Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return nil
}

// credentialsFor returns the extension's credentials. When they name
// another access key than the caller's, the provider is asked again, at
// most once per reaskPeriod: the agent's role credentials may have just
// been renewed (in Lambda they never change).
func (v *verifier) credentialsFor(ctx context.Context, accessKeyID string) (aws.Credentials, error) {
	creds, err := v.creds.Retrieve(ctx)
	if err == nil && creds.AccessKeyID == accessKeyID {
		return creds, nil
	}
	c, ok := v.creds.(*aws.CredentialsCache)
	if !ok {
		return creds, err
	}
	v.mu.Lock()
	now := v.now()
	if !v.lastReask.IsZero() && now.Sub(v.lastReask) < reaskPeriod {
		v.mu.Unlock()
		return creds, err
	}
	v.lastReask = now
	v.mu.Unlock()
	c.Invalidate()
	return c.Retrieve(ctx)
}

// sameSecret compares two tokens in constant time, their lengths included.
func sameSecret(a, b string) bool {
	x, y := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}

func hostOnly(hostport string) string {
	h := hostport
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	return strings.ToLower(strings.Trim(h, "[]"))
}

// isAWSHost reports whether host is one of AWS's own endpoints.
func isAWSHost(host string) bool {
	host = strings.TrimSuffix(host, ".")
	for _, d := range []string{"amazonaws.com", "amazonaws.com.cn", "api.aws", "c2s.ic.gov", "sc2s.sgov.gov", "amazonaws.eu"} {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

func authFault(typ, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typ, msg: msg}
}
