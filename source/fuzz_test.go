package source

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// cannedAWS answers every call with the same status and body, and counts
// the calls.
type cannedAWS struct {
	mu     sync.Mutex // protects the fields below
	status int
	body   []byte
	calls  int
}

func (c *cannedAWS) set(status int, body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status, c.body, c.calls = status, body, 0
}

func (c *cannedAWS) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func (c *cannedAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.calls++
	status, body := c.status, c.body
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	w.Write(body)
}

// inMemory is an SDK HTTP client that serves each request with h.
type inMemory struct{ h http.Handler }

func (c inMemory) Do(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	return w.Result(), nil
}

// fuzzOps are the fetches FuzzAWSResponse drives, each reaching different
// operations and decoders.
var fuzzOps = []func(ctx context.Context, s *Source, t *testing.T){
	// BatchGetSecretValue, then GetSecretValue for what it did not answer.
	func(ctx context.Context, s *Source, t *testing.T) {
		fetchAll(ctx, t, s, []Key{SecretKey("a"), SecretKey("b"), SecretKey("arn:aws:secretsmanager:us-east-1:123456789012:secret:c")})
	},
	// GetParameters, then GetParameter for what it did not answer.
	func(ctx context.Context, s *Source, t *testing.T) {
		fetchAll(ctx, t, s, []Key{ParameterKey("/a"), ParameterKey("/b"), ParameterKey("c")})
	},
	// GetSecretValue and GetParameter with selectors.
	func(ctx context.Context, s *Source, t *testing.T) {
		fetchAll(ctx, t, s, []Key{{Service: SecretsManager, ID: "v", VersionStage: "AWSPREVIOUS"}, {Service: ParameterStore, ID: "/p", Selector: ":3", Decrypt: true}})
	},
	// GetParametersByPath, following NextToken.
	func(ctx context.Context, s *Source, t *testing.T) {
		seen := 0
		n, err := s.FetchPath(ctx, "/app", true, func(k Key, it *Item, err error) {
			seen++
			checkDelivery(t, k, it, err)
		})
		if n != seen {
			t.Fatalf("FetchPath reported %d parameters, delivered %d", n, seen)
		}
		var serr *Error
		if err != nil && (!errors.As(err, &serr) || serr.Code == "") {
			t.Fatalf("FetchPath error %v (%T) is not a *Error with a code", err, err)
		}
	},
}

// fetchAll fetches keys and checks that each is delivered exactly once.
func fetchAll(ctx context.Context, t *testing.T, s *Source, keys []Key) {
	t.Helper()
	var (
		mu  sync.Mutex
		got = map[Key]int{}
	)
	s.Fetch(ctx, keys, func(k Key, it *Item, err error) {
		mu.Lock()
		got[k]++
		mu.Unlock()
		checkDelivery(t, k, it, err)
	})
	for _, k := range keys {
		if got[k] != 1 {
			t.Fatalf("%s delivered %d times, want once", k, got[k])
		}
	}
	if len(got) != len(keys) {
		t.Fatalf("delivered %v, asked for %v", got, keys)
	}
}

// checkDelivery checks one delivered outcome: an item whose body is JSON,
// or a classified error for that key. It may run on any goroutine, so it
// reports with Errorf.
func checkDelivery(t *testing.T, k Key, it *Item, err error) {
	t.Helper()
	if err != nil {
		var serr *Error
		if it != nil || !errors.As(err, &serr) || serr.Code == "" || serr.Key != k {
			t.Errorf("%s: item %v, error %v (%T): want no item and a *Error with a code, for the key", k, it, err, err)
		}
		return
	}
	if it == nil || !json.Valid(it.Body) {
		t.Errorf("%s: item %+v: want one with a JSON body", k, it)
	}
}

// FuzzAWSResponse feeds arbitrary bytes, with a success, client-error or
// server-error status, as the answer of every AWS call the real SDK clients
// inside a Source make (their whole stack but the socket): decoding must never panic or hang, each key is
// delivered exactly once, and FetchPath stops when a page names no new
// NextToken.
func FuzzAWSResponse(f *testing.F) {
	for _, seed := range []struct {
		op     uint8
		status uint8
		body   string
	}{
		{0, 0, `{"SecretValues":[{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:a-AbCdEf","Name":"a","SecretString":"s","VersionId":"v","VersionStages":["AWSCURRENT"],"CreatedDate":1.6e9}],"Errors":[{"SecretId":"b","ErrorCode":"ResourceNotFoundException","Message":"m"}]}`},
		{0, 0, `{"SecretValues":[{"Name":"a","SecretBinary":"AAEC"},{"Name":"a"},{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:c-AbCdEf"}]}`},
		{0, 0, `{"SecretValues":null,"Errors":[{}]}`},
		{0, 1, `{"__type":"AccessDeniedException","message":"no"}`},
		{0, 1, `{"__type":"com.amazonaws.secretsmanager#ThrottlingException:http://internal","message":"slow down"}`},
		{0, 2, `{"__type":"InternalServiceError"}`},
		{0, 2, ``},
		{1, 0, `{"Parameters":[{"Name":"/a","Type":"SecureString","Value":"v","Version":1,"ARN":"arn:aws:ssm:us-east-1:123456789012:parameter/a","LastModifiedDate":1.6e9,"DataType":"text"}],"InvalidParameters":["/b"]}`},
		{1, 0, `{"Parameters":[{"Name":"/a"},{"Name":"/a"},{}],"InvalidParameters":["/a","c","c"]}`},
		{1, 0, `{"Parameter":{"Name":"c","Value":"v","Version":9223372036854775807}}`},
		{1, 1, `{"__type":"ParameterNotFound"}`},
		{2, 0, `{"Name":"v","SecretString":"\ud800","VersionStages":[]}`},
		{2, 0, `{"Parameter":null}`},
		{2, 0, `{"Parameter":{"Name":"/p","Selector":":3","Value":"v","Type":"Bogus","LastModifiedDate":-1e300}}`},
		{3, 0, `{"Parameters":[{"Name":"/app/a","Value":"v"}],"NextToken":"t"}`},
		{3, 0, `{"Parameters":[],"NextToken":""}`},
		{3, 0, `{"Parameters":[{"Value":"v"}]}`},
		{3, 1, `{"__type":"ValidationException"}`},
		{3, 0, `[`},
		{3, 0, `{"Parameters":{}}`},
		{3, 0, "\x00\xff"},
	} {
		f.Add(seed.op, seed.status, []byte(seed.body))
	}

	// The SDK clients reach the canned answers in memory, through an
	// httptest recorder: decoding is all that is fuzzed here, and a real
	// connection per call leaves the fuzzer stalled on ports in TIME_WAIT.
	canned := &cannedAWS{}
	creds := credentials.NewStaticCredentialsProvider("AKIDFUZZ", "fuzz-secret", "")
	sm := secretsmanager.New(secretsmanager.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("https://aws.invalid"), Credentials: creds,
		HTTPClient: inMemory{canned}, Retryer: aws.NopRetryer{},
	})
	ps := ssm.New(ssm.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("https://aws.invalid"), Credentials: creds,
		HTTPClient: inMemory{canned}, Retryer: aws.NopRetryer{},
	})
	statuses := []int{http.StatusOK, http.StatusBadRequest, http.StatusInternalServerError}

	f.Fuzz(func(t *testing.T, op, status uint8, body []byte) {
		canned.set(statuses[int(status)%len(statuses)], body)
		s := New(Options{SecretsManager: sm, SSM: ps, MaxConcurrency: 4})
		// A bound, so that a decoder that loops fails the input rather
		// than the whole run.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		fuzzOps[int(op)%len(fuzzOps)](ctx, s, t)
		if ctx.Err() != nil {
			t.Fatalf("the fetch ran into its 10 s bound after %d calls", canned.count())
		}
		// Every path makes a handful of calls at most (a batch, then one
		// per key; two pages of a path).
		if n := canned.count(); n > 5 {
			t.Fatalf("%d AWS calls for one fetch", n)
		}
	})
}

// FuzzStringValue: the value read back out of an item's body is the value
// the item was made from, whatever it holds and whatever the fields before
// it hold, for secrets and parameters alike.
func FuzzStringValue(f *testing.F) {
	for _, s := range []string{"", "plain", `{"a":"b"}`, `"SecretString":"x`, `\`, "\u2028", "é😀", "\x00\x1f", `"Value":"`} {
		f.Add(s, `"SecretString":"`)
	}
	f.Fuzz(func(t *testing.T, value, name string) {
		if !utf8.ValidString(value) {
			return // AWS's values are UTF-8; the encoder replaces what isn't
		}
		s := secretItem(SecretKey("s"), aws.String(name), aws.String(name), aws.String(name), nil, aws.String(value), nil, []string{name})
		if got, ok := s.StringValue(); !ok || string(got) != value {
			t.Fatalf("secret: StringValue = %q, %v; want %q", got, ok, value)
		}
		p := parameterItem(ParameterKey("p"), &ssmtypes.Parameter{ARN: aws.String(name), Name: aws.String(name), DataType: aws.String(name), Value: aws.String(value)})
		if got, ok := p.StringValue(); !ok || string(got) != value {
			t.Fatalf("parameter: StringValue = %q, %v; want %q", got, ok, value)
		}
		b := secretItem(SecretKey("b"), aws.String(name), aws.String(name), nil, nil, nil, []byte(value), nil)
		if got, ok := b.StringValue(); ok {
			t.Fatalf("binary secret: StringValue = %q, want none", got)
		}
	})
}
