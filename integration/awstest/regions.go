package awstest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/sivchari/kumo"
)

// world is what the regions of one test AWS share: kumo, the front, and the
// credentials STS has handed out (IAM and STS are global to an account).
type world struct {
	kumo      *kumo.Server
	front     *httptest.Server
	url       string
	kumoURL   string
	http      *http.Client  // to kumo
	closing   chan struct{} // closed by Close: releases held requests
	closeOnce sync.Once

	mu         sync.Mutex // protects the fields below
	regions    map[string]*AWS
	principals map[string]principal // by access key ID: credentials AssumeRole issued
	roles      map[string]bool      // roles AssumeRole hands out credentials for
	assumed    map[string]int       // AssumeRole calls that succeeded, by role
}

// principal is a set of temporary credentials AssumeRole issued.
type principal struct {
	secretKey, sessionToken, role string
	expires                       time.Time
}

// AddRegion returns the store of another region of this AWS, making it on
// first use. It shares the front (URL), STS and the test credentials; its
// secrets, parameters, calls and faults are its own. A request reaches it
// when its SigV4 credential scope names the region, as the SDK signs a
// client whose Region is set to it: the SDK's own endpoint resolution and
// signing decide where a call goes, exactly as with AWS's regional
// endpoints. Its ARNs carry its region.
func (a *AWS) AddRegion(name string) *AWS {
	a.world.mu.Lock()
	r := a.regions[name]
	a.world.mu.Unlock()
	if r != nil {
		return r
	}
	r = a.newRegion(name, a.ns+"-"+name)
	r.URL = a.URL
	r.initSeeding()
	return r
}

// InRegion returns the store of region name, or nil if there is none.
func (a *AWS) InRegion(name string) *AWS {
	a.world.mu.Lock()
	defer a.world.mu.Unlock()
	return a.regions[name]
}

// ServeHTTP is the front: STS requests are answered by the front's STS;
// every other request by the store of the region its signature is scoped
// to (unsigned ones, and those of a region the AWS lacks, by the home
// region, which refuses them as AWS does).
func (a *AWS) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.world.serveHTTP(w, r) }

func (w *world) serveHTTP(rw http.ResponseWriter, r *http.Request) {
	sig, _ := parseAuthorization(r.Header.Get("Authorization"))
	if sig.service == "sts" || r.Header.Get("X-Amz-Target") == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		w.serveSTS(rw, r)
		return
	}
	w.mu.Lock()
	target := w.regions[sig.region]
	if target == nil {
		target = w.regions[homeRegion]
	}
	w.mu.Unlock()
	target.serveRegion(rw, r)
}

// credentialsOf returns the secret key and, for credentials AssumeRole
// issued, the session token and role of an access key; ok is false for an
// unknown or expired key.
func (w *world) credentialsOf(accessKeyID string) (p principal, ok bool) {
	switch accessKeyID {
	case testAccessKeyID:
		return principal{secretKey: testSecretAccessKey}, true
	case seedAccessKeyID:
		return principal{secretKey: seedSecretAccessKey}, true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok = w.principals[accessKeyID]
	if ok && time.Now().After(p.expires) {
		return principal{}, false
	}
	return p, ok
}

// arnToKumo rewrites an ARN of this region for kumo, which puts kumoRegion
// in every ARN. An ARN of another region is moved into a namespace nothing
// lives in, so it is not found here, as AWS's regional endpoints answer.
func (a *AWS) arnToKumo(service, arn string) (string, bool) {
	own := "arn:aws:" + service + ":" + a.region + ":" + accountID + ":"
	rest, ok := strings.CutPrefix(arn, own)
	if !ok {
		return arn, false
	}
	return "arn:aws:" + service + ":" + kumoRegion + ":" + accountID + ":" + rest, true
}

// elsewhere is the namespace an ARN of another region is looked up in.
func (a *AWS) elsewhere() string { return a.ns + "/elsewhere" }

// regionalARNs rewrites the ARNs kumo answered with to this region's.
func (a *AWS) regionalARNs(body []byte) []byte {
	if a.region == kumoRegion {
		return body
	}
	s := string(body)
	for _, svc := range []string{"secretsmanager", "ssm"} {
		s = strings.ReplaceAll(s, "arn:aws:"+svc+":"+kumoRegion+":"+accountID+":", "arn:aws:"+svc+":"+a.region+":"+accountID+":")
	}
	return []byte(s)
}

// parameterARN is the ARN of a parameter of this region.
func (a *AWS) parameterARN(name string) string {
	return "arn:aws:ssm:" + a.region + ":" + accountID + ":parameter/" + strings.TrimPrefix(name, "/")
}

// parameterName turns a parameter ARN into the name it is stored under
// ("/a/b" for ".../parameter/a/b"; names without a leading slash are not
// reachable by ARN here). An ARN of another region gets a name nothing has.
func (a *AWS) parameterName(name string) string {
	if !strings.HasPrefix(name, "arn:") {
		return name
	}
	_, rest, ok := strings.Cut(name, ":parameter/")
	if !ok {
		return name
	}
	if !strings.HasPrefix(name, "arn:aws:ssm:"+a.region+":"+accountID+":") {
		return fmt.Sprintf("/%s/%s", "elsewhere", rest)
	}
	return "/" + rest
}

// Replicate makes the secret name of this region a replica in region to,
// as Secrets Manager's ReplicateSecretToRegions does: the same name, value
// and ARN but for the region. Later changes are not replicated; write both
// (UpdateSecret on each) to move them together. It returns the replica's ARN.
func (a *AWS) Replicate(ctx context.Context, name string, to *AWS) (string, error) {
	out, err := a.seedSM.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &name})
	if err != nil {
		return "", fmt.Errorf("awstest: replicate %q: %w", name, err)
	}
	got, err := to.seedSM.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: &name, SecretString: out.SecretString, SecretBinary: out.SecretBinary})
	if err != nil {
		return "", fmt.Errorf("awstest: replicate %q: %w", name, err)
	}
	shown := strings.Replace(aws.ToString(out.ARN), ":"+a.region+":", ":"+to.region+":", 1)
	to.mu.Lock()
	to.aliases[shown] = aws.ToString(got.ARN)
	to.mu.Unlock()
	return shown, nil
}

// unalias turns an ARN a replica is known by into the one kumo made.
func (a *AWS) unalias(arn string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if actual, ok := a.aliases[arn]; ok {
		return actual
	}
	return arn
}

// alias turns the ARNs kumo made for replicas into those they are known by.
func (a *AWS) alias(body []byte) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	for shown, actual := range a.aliases {
		body = bytes.ReplaceAll(body, []byte(actual), []byte(shown))
	}
	return body
}
