package awsapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

const testRegion = "us-east-1"

var (
	testCreds  = aws.Credentials{AccessKeyID: "AKIDEXTENSION0000001", SecretAccessKey: "extension/secret/key", SessionToken: "extension-session-token"}
	testTime   = time.Date(2025, 7, 14, 9, 26, 53, 589_000_000, time.UTC)
	testTime2  = time.Date(2025, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	testSecret = secretsmanager.GetSecretValueOutput{
		ARN: aws.String("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"), Name: aws.String("prod/db"),
		VersionId: aws.String("v-1"), SecretString: aws.String(`{"password":"p<&>w"}`), VersionStages: []string{"AWSCURRENT"}, CreatedDate: &testTime,
	}
	testBinary = secretsmanager.GetSecretValueOutput{
		ARN: aws.String("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/bin-XyZabc"), Name: aws.String("prod/bin"),
		VersionId: aws.String("v-2"), SecretBinary: []byte{0, 1, 2, 0xff, 'x'}, VersionStages: []string{"AWSCURRENT", "custom"}, CreatedDate: &testTime2,
	}
	testParam = ssmtypes.Parameter{
		ARN: aws.String("arn:aws:ssm:us-east-1:123456789012:parameter/app/url"), Name: aws.String("/app/url"), Type: ssmtypes.ParameterTypeString,
		Value: aws.String("https://example.com/?a=1&b=<2>"), Version: 7, DataType: aws.String("text"), LastModifiedDate: &testTime,
	}
	testSecure = ssmtypes.Parameter{
		ARN: aws.String("arn:aws:ssm:us-east-1:123456789012:parameter/app/key"), Name: aws.String("/app/key"), Type: ssmtypes.ParameterTypeSecureString,
		Value: aws.String("s3cr3t"), Version: 2, DataType: aws.String("text"), LastModifiedDate: &testTime2,
	}
)

// fakeAWS is the source's view of AWS, for building real items.
type fakeAWS struct{}

func (fakeAWS) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	switch aws.ToString(in.SecretId) {
	case "prod/db", aws.ToString(testSecret.ARN):
		out := testSecret
		return &out, nil
	case "prod/bin":
		out := testBinary
		return &out, nil
	}
	return nil, errors.New("not here")
}

func (fakeAWS) BatchGetSecretValue(context.Context, *secretsmanager.BatchGetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error) {
	return nil, errors.New("not used")
}

func (fakeAWS) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	for _, p := range []ssmtypes.Parameter{testParam, testSecure} {
		if aws.ToString(in.Name) == aws.ToString(p.Name) {
			p := p
			return &ssm.GetParameterOutput{Parameter: &p}, nil
		}
	}
	return nil, errors.New("not here")
}

func (fakeAWS) GetParameters(context.Context, *ssm.GetParametersInput, ...func(*ssm.Options)) (*ssm.GetParametersOutput, error) {
	return nil, errors.New("not used")
}

func (fakeAWS) GetParametersByPath(context.Context, *ssm.GetParametersByPathInput, ...func(*ssm.Options)) (*ssm.GetParametersByPathOutput, error) {
	return nil, errors.New("not used")
}

// item renders key as the extension does, through the source.
func item(t testing.TB, key source.Key) *source.Item {
	t.Helper()
	src := source.New(source.Options{SecretsManager: fakeAWS{}, SSM: fakeAWS{}})
	it, err := src.FetchOne(context.Background(), key)
	if err != nil {
		t.Fatalf("rendering %s: %v", key, err)
	}
	return it
}

// fakeCache answers from fixed items and errors, and records reads and
// invalidations.
type fakeCache struct {
	mu      sync.Mutex
	items   map[source.Key]*source.Item
	errs    map[source.Key]error
	reads   []source.Key
	dropped []source.Key
	paths   map[cache.Path][]string // listings
	stale   []string                // StalePaths calls
}

func newFakeCache() *fakeCache {
	return &fakeCache{items: map[source.Key]*source.Item{}, errs: map[source.Key]error{}, paths: map[cache.Path][]string{}}
}

func (c *fakeCache) Get(_ context.Context, key source.Key, _ bool) (cache.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads = append(c.reads, key)
	if it := c.items[key]; it != nil {
		return cache.Result{Item: it, Status: cache.Hit}, nil
	}
	if err := c.errs[key]; err != nil {
		return cache.Result{}, err
	}
	return cache.Result{}, &source.Error{Class: source.ClassNotFound, Code: "ResourceNotFoundException", Message: "Secrets Manager can't find the specified secret.", Key: key}
}

func (c *fakeCache) Invalidate(match func(source.Key, *source.Item) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, it := range c.items {
		if match(k, it) {
			delete(c.items, k)
			c.dropped = append(c.dropped, k)
			n++
		}
	}
	return n
}

func (c *fakeCache) ListPath(p cache.Path) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.paths[p]
	return l, ok
}

func (c *fakeCache) StalePaths(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stale = append(c.stale, name)
}

func (c *fakeCache) put(t testing.TB, key source.Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items[key] = item(t, key)
}

// world is a Handler under test behind an HTTP server, with an upstream
// AWS stand-in recording what is forwarded.
type world struct {
	h        *Handler
	cache    *fakeCache
	srv      *httptest.Server
	upstream *httptest.Server
	mu       sync.Mutex
	fwd      []*http.Request
	fwdBody  [][]byte
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{cache: newFakeCache()}
	w.upstream = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		buf.ReadFrom(r.Body)
		w.mu.Lock()
		w.fwd = append(w.fwd, r)
		w.fwdBody = append(w.fwdBody, buf.Bytes())
		w.mu.Unlock()
		rw.Header().Set("X-Amzn-Requestid", "upstream-request-id")
		rw.Header().Set("Content-Type", "application/x-amz-json-1.1")
		switch r.Header.Get("X-Amz-Target") {
		case "secretsmanager.PutSecretValue":
			rw.Write([]byte(`{"ARN":"` + aws.ToString(testSecret.ARN) + `","Name":"prod/db","VersionId":"v-3","VersionStages":["AWSCURRENT"]}`))
		case "AmazonSSM.PutParameter":
			rw.Write([]byte(`{"Tier":"Standard","Version":8}`))
		case "secretsmanager.DeleteSecret":
			rw.WriteHeader(http.StatusBadRequest)
			rw.Write([]byte(`{"__type":"InvalidRequestException","message":"nope"}`))
		default:
			rw.Write([]byte(`{"upstream":true}`))
		}
	}))
	t.Cleanup(w.upstream.Close)
	w.h = New(Options{
		Cache: w.cache, Paths: w.cache, Credentials: aws.NewCredentialsCache(credentials.StaticCredentialsProvider{Value: testCreds}), Region: testRegion,
		SecretsManagerEndpoint: w.upstream.URL, SSMEndpoint: w.upstream.URL,
	})
	w.srv = httptest.NewServer(w.h)
	t.Cleanup(w.srv.Close)
	return w
}

// config is an SDK configuration pointed at the handler, signing with creds.
func (w *world) config(creds aws.Credentials) aws.Config {
	return aws.Config{
		Region: testRegion, Credentials: credentials.StaticCredentialsProvider{Value: creds}, BaseEndpoint: aws.String(w.srv.URL),
	}
}

func (w *world) sm(creds aws.Credentials) *secretsmanager.Client {
	return secretsmanager.NewFromConfig(w.config(creds), func(o *secretsmanager.Options) { o.Retryer = aws.NopRetryer{} })
}

func (w *world) ssm(creds aws.Credentials) *ssm.Client {
	return ssm.NewFromConfig(w.config(creds), func(o *ssm.Options) { o.Retryer = aws.NopRetryer{} })
}

// signed builds a POST / for target with body, signed by creds at when.
func (w *world) signed(t testing.TB, target, body string, creds aws.Credentials, service, region string, when time.Time) *http.Request {
	t.Helper()
	return signedFor(t, w.srv.URL+"/", target, body, creds, service, region, when)
}

// signedFor builds a POST to url for target with body, signed by creds at when.
func signedFor(t testing.TB, url, target, body string, creds aws.Credentials, service, region string, when time.Time) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	r.Header.Set("X-Amz-Target", target)
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), service, region, when); err != nil {
		t.Fatal(err)
	}
	return r
}
