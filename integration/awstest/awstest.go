// Package awstest is a test-only AWS for the integration and end-to-end tests:
// the kumo emulator (github.com/sivchari/kumo, a real implementation of the
// Secrets Manager and SSM JSON wire protocol) behind a small front, an
// http.Handler that reverse-proxies to kumo and adds what kumo lacks and the
// extension's tests need:
//
//   - BatchGetSecretValue, built from kumo's GetSecretValue;
//   - parameter version history, LabelParameterVersion and the name:N /
//     name:label selectors (kumo keeps only the latest version);
//   - /aws/reference/secretsmanager/<secret-id> parameter names;
//   - ciphertext for a SecureString read without WithDecryption;
//   - call counting, fault injection and SigV4 verification;
//   - regions (AddRegion): one store per region, chosen by the region the
//     request's SigV4 credential scope names, with that region in its ARNs;
//     parameters by ARN;
//   - STS AssumeRole (query protocol) handing out credentials of their own
//     per role, and items only one role may read (Only), so a test can tell
//     which credentials signed a read;
//   - tags (CreateSecret's, TagResource, UntagResource) and ListSecrets and
//     BatchGetSecretValue with Filters (name, tag-key, tag-value, all; by
//     prefix, "!" negating; paged).
//
// The extension under test talks to it with the real AWS SDK v2 clients:
// both services share one endpoint (URL) and the front routes on X-Amz-Target.
//
// kumo keeps its data in process-wide storage, shared by every kumo server in
// the process. So that each AWS is a world of its own (tests may run in
// parallel and reuse names), the front stores every secret and parameter under
// a namespace private to its AWS, and takes the namespace off again in every
// answer; clients never see it. (The data stays in that storage after Close;
// a test process is short.) Hence the front serves only operations whose
// names it knows how to move: Secrets Manager CreateSecret, GetSecretValue,
// BatchGetSecretValue, PutSecretValue, UpdateSecret, DescribeSecret,
// DeleteSecret, ListSecrets, TagResource, UntagResource; SSM PutParameter, GetParameter, GetParameters,
// GetParametersByPath, LabelParameterVersion, DeleteParameter(s). Any other
// answers UnknownOperationException.
//
// What neither kumo nor the front models: one version per staging label
// (after two updates of a secret kumo has two AWSPREVIOUS versions, so a test
// that reads AWSPREVIOUS should update a secret only once), parameter
// policies and tags, and DescribeParameters.
package awstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/sivchari/kumo"
)

const (
	// homeRegion is the region of the AWS New starts; AddRegion adds others.
	homeRegion = "us-east-1"
	// kumoRegion is the region kumo puts in ARNs (its default, with
	// AWS_DEFAULT_REGION unset); the front rewrites it to each region's own.
	kumoRegion = "us-east-1"
	// accountID is the account kumo puts in every ARN.
	accountID = "000000000000"

	// The fixed test credentials. Only the secret key matters to the front:
	// it recomputes each request's signature with it.
	testAccessKeyID     = "AKIAAWSTESTEXAMPLE01"
	testSecretAccessKey = "awstest/secret/access/key/for/tests/only"
	testSessionToken    = "awstest-session-token"

	// seedAccessKeyID signs the seeding helpers' calls, so that the front
	// can leave them out of Calls and faults.
	seedAccessKeyID     = "AKIAAWSTESTSEEDING01"
	seedSecretAccessKey = "awstest/seeding/secret/key"
)

// kumoStartMu serializes kumo.NewServer: every kumo server wires the same
// process-wide service instances together, which races when two servers
// start at once. It is the package's only shared state, for that reason.
var kumoStartMu sync.Mutex

// kumoCallMu serializes calls into kumo (see kumoRaw).
var kumoCallMu sync.Mutex

// AWS is one region of a test AWS: a kumo server and the front before it,
// shared by every region AddRegion adds. Its methods are safe for
// concurrent use.
type AWS struct {
	// URL is the front's base URL (http://127.0.0.1:port): the endpoint for
	// both Secrets Manager and SSM, and STS, in every region.
	URL string
	// Credentials are the static test credentials the front accepts.
	Credentials aws.Credentials

	*world
	region string // the region this store answers for
	ns     string // this region's namespace inside kumo's shared storage

	seedSM  *secretsmanager.Client // the seeding helpers' clients
	seedSSM *ssm.Client

	mu       sync.Mutex // protects the fields below
	verify   bool       // SigV4 verification on
	calls    map[string]int
	items    map[string]int
	faults   []*fault
	quotas   []*quota                   // SetQuota's token buckets
	params   map[string][]*paramVersion // version history by parameter name, oldest first
	faultSeq int
	only     map[string]string            // secret or parameter name -> the one role that may read it
	aliases  map[string]string            // replica ARN as shown -> the ARN kumo made (Replicate)
	tags     map[string]map[string]string // secret name -> its tags
}

// Start starts an AWS for a test and closes it when the test ends.
func Start(t testing.TB) *AWS {
	t.Helper()
	a, err := New()
	if err != nil {
		t.Fatalf("awstest: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

// New starts an AWS on 127.0.0.1 (kumo and the front, each on a free port).
// The caller must Close it. Start is the form for tests.
func New() (*AWS, error) {
	ns := make([]byte, 8)
	if _, err := rand.Read(ns); err != nil {
		return nil, fmt.Errorf("namespace: %w", err)
	}
	kumoStartMu.Lock()
	k := kumo.NewServer()
	kumoStartMu.Unlock()

	w := &world{
		kumo:       k,
		kumoURL:    k.URL,
		http:       &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		closing:    make(chan struct{}),
		regions:    map[string]*AWS{},
		principals: map[string]principal{},
		roles:      map[string]bool{},
	}
	a := w.newRegion(homeRegion, "awstest-"+hex.EncodeToString(ns))
	w.front = httptest.NewServer(http.HandlerFunc(w.serveHTTP))
	w.url = w.front.URL
	a.URL = w.url
	a.initSeeding()
	return a, nil
}

// newRegion makes the store of one region and registers it. The caller
// sets URL and calls initSeeding once the front is up.
func (w *world) newRegion(name, ns string) *AWS {
	a := &AWS{
		Credentials: aws.Credentials{
			AccessKeyID:     testAccessKeyID,
			SecretAccessKey: testSecretAccessKey,
			SessionToken:    testSessionToken,
			Source:          "awstest",
		},
		world:   w,
		region:  name,
		ns:      ns,
		verify:  true,
		calls:   map[string]int{},
		items:   map[string]int{},
		params:  map[string][]*paramVersion{},
		only:    map[string]string{},
		aliases: map[string]string{},
		tags:    map[string]map[string]string{},
	}
	w.mu.Lock()
	w.regions[name] = a
	w.mu.Unlock()
	return a
}

func (a *AWS) initSeeding() {
	seed := a.config(aws.Credentials{AccessKeyID: seedAccessKeyID, SecretAccessKey: seedSecretAccessKey, Source: "awstest"})
	a.seedSM = secretsmanager.NewFromConfig(seed)
	a.seedSSM = ssm.NewFromConfig(seed)
}

// Close stops the front and kumo. Requests the front is holding (latency,
// black hole) are released first, so Close does not wait for clients to
// give up. Close may be called more than once.
func (a *AWS) Close() {
	a.closeOnce.Do(func() {
		close(a.closing)
		a.front.Close()
		a.kumo.Close()
		a.http.CloseIdleConnections()
	})
}

// Region is the region this store answers for: requests whose signature is
// scoped to it, and the region in its ARNs.
func (a *AWS) Region() string { return a.region }

// Config returns an aws.Config for this AWS: the test credentials, Region and
// BaseEndpoint = URL, which the Secrets Manager and SSM clients both use.
// It is built by hand rather than by config.LoadDefaultConfig so that nothing
// from the environment (profiles, AWS_ENDPOINT_URL_*) can point a test
// elsewhere; ctx is accepted for that function's call shape and not used.
func (a *AWS) Config(_ context.Context) aws.Config {
	return a.config(a.Credentials)
}

func (a *AWS) config(creds aws.Credentials) aws.Config {
	return aws.Config{
		Region:       a.region,
		Credentials:  credentials.StaticCredentialsProvider{Value: creds},
		BaseEndpoint: aws.String(a.URL),
	}
}

// SecretsManagerClient returns a Secrets Manager client for this AWS.
func (a *AWS) SecretsManagerClient(optFns ...func(*secretsmanager.Options)) *secretsmanager.Client {
	return secretsmanager.NewFromConfig(a.Config(context.Background()), optFns...)
}

// SSMClient returns an SSM client for this AWS.
func (a *AWS) SSMClient(optFns ...func(*ssm.Options)) *ssm.Client {
	return ssm.NewFromConfig(a.Config(context.Background()), optFns...)
}

// Env returns the environment (KEY=value) that points an SDK-using child
// process, such as the extension, at this AWS.
func (a *AWS) Env() []string {
	return []string{
		"AWS_REGION=" + a.region,
		"AWS_ACCESS_KEY_ID=" + a.Credentials.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + a.Credentials.SecretAccessKey,
		"AWS_SESSION_TOKEN=" + a.Credentials.SessionToken,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + a.URL,
		"AWS_ENDPOINT_URL_SSM=" + a.URL,
		"AWS_ENDPOINT_URL_STS=" + a.URL,
	}
}

// VerifySignatures turns SigV4 verification on (the default) or off.
func (a *AWS) VerifySignatures(on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.verify = on
}
