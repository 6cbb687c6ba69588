package awstest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const codeIncompleteSignature = "IncompleteSignatureException"

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
// service/aws4_request, SignedHeaders=a;b, Signature=hex".
func parseAuthorization(auth string) (sigV4, bool) {
	var s sigV4
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return s, false
	}
	var credential string
	for field := range strings.SplitSeq(rest, ",") {
		key, value, _ := strings.Cut(strings.TrimSpace(field), "=")
		switch key {
		case "Credential":
			credential = value
		case "SignedHeaders":
			s.signedHeaders = value
		case "Signature":
			s.signature = value
		}
	}
	scope := strings.Split(credential, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || s.signedHeaders == "" || s.signature == "" {
		return s, false
	}
	s.accessKeyID, s.date, s.region, s.service = scope[0], scope[1], scope[2], scope[3]
	return s, true
}

// accessKeyID is the access key an Authorization header names, if any.
func accessKeyID(auth string) string {
	s, _ := parseAuthorization(auth)
	return s.accessKeyID
}

// checkSignature verifies a request's SigV4 signature as AWS does: it
// recomputes the signature over what was received (the signed headers, the
// body's hash) with the secret key of the access key named, using the SDK's
// own signer, and compares. The session token is taken as sent, not checked:
// a child process may be given its own; but the token of credentials
// AssumeRole issued must be the one issued with them. Errors are what AWS's
// JSON services answer, with status 400 as they send it. It returns the
// role whose credentials signed ("" for the test credentials).
func (a *AWS) checkSignature(r *http.Request, op string, body []byte) (string, *apiError) {
	a.mu.Lock()
	on := a.verify
	a.mu.Unlock()
	auth := r.Header.Get("Authorization")
	got, ok := parseAuthorization(auth)
	p, known := a.credentialsOf(got.accessKeyID)
	if !on {
		return p.role, nil
	}
	if auth == "" {
		return "", badRequest(CodeMissingAuthToken, "Missing Authentication Token")
	}
	if !ok {
		return "", badRequest(codeIncompleteSignature, "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.")
	}
	secret := p.secretKey
	if !known || p.sessionToken != "" && p.sessionToken != r.Header.Get("X-Amz-Security-Token") {
		return "", badRequest(CodeUnrecognizedClient, "The security token included in the request is invalid.")
	}
	service, _, _ := strings.Cut(op, ".")
	if service == "" {
		service = "sts"
	}
	if got.region != a.region {
		return "", badRequest(CodeInvalidSignature, "Credential should be scoped to a valid region. ")
	}
	if got.service != service {
		return "", badRequest(CodeInvalidSignature, "Credential should be scoped to correct service: '%s'. ", service)
	}
	signed, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return "", badRequest(codeIncompleteSignature, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	if got.date != signed.Format("20060102") {
		return "", badRequest(CodeInvalidSignature, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s'", got.date, signed.Format("20060102"))
	}

	// Rebuild the request from exactly the headers the client signed.
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	req := &http.Request{Method: r.Method, URL: &u, Host: r.Host, Header: http.Header{}}
	for h := range strings.SplitSeq(got.signedHeaders, ";") {
		switch h {
		case "host":
		case "content-length":
			req.ContentLength = r.ContentLength
		default:
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	creds := aws.Credentials{AccessKeyID: got.accessKeyID, SecretAccessKey: secret, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, req, hex.EncodeToString(sum[:]), service, a.region, signed); err != nil {
		return "", internalError(op, err)
	}
	want, _ := parseAuthorization(req.Header.Get("Authorization"))
	if want.signedHeaders != got.signedHeaders || !hmac.Equal([]byte(want.signature), []byte(got.signature)) {
		return "", badRequest(CodeInvalidSignature, "The request signature we calculated does not match the signature you provided. "+
			"Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return p.role, nil
}
