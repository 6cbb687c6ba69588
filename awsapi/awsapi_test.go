package awsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smschemas "github.com/aws/aws-sdk-go-v2/service/secretsmanager/schemas"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmschemas "github.com/aws/aws-sdk-go-v2/service/ssm/schemas"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// The SDK's field names are the members' names, so decoding by field name
// is decoding by member name (and encode's output is the SDK's own).
func TestInputFieldsAreMembers(t *testing.T) {
	for _, c := range []struct {
		v      any
		schema *smithy.Schema
	}{
		{&secretsmanager.GetSecretValueInput{}, smschemas.GetSecretValueRequest},
		{&secretsmanager.BatchGetSecretValueInput{}, smschemas.BatchGetSecretValueRequest},
		{&ssm.GetParameterInput{}, ssmschemas.GetParameterRequest},
		{&ssm.GetParametersInput{}, ssmschemas.GetParametersRequest},
	} {
		if bad := fieldsAreMembers(c.v, c.schema); len(bad) > 0 {
			t.Errorf("%T: fields %v are not members of %s", c.v, bad, c.schema.ID().Name)
		}
		if n, m := reflect.TypeOf(c.v).Elem().NumField()-1, len(c.schema.Members()); n != m {
			t.Errorf("%T: %d exported fields, %d members", c.v, n, m)
		}
	}
}

// stripMeta clears what the SDK adds on its side (ResultMetadata).
func stripMeta[T any](v *T) *T {
	reflect.ValueOf(v).Elem().FieldByName("ResultMetadata").Set(reflect.ValueOf(middleware.Metadata{}))
	return v
}

// The served reads, as the real SDK clients decode them: equal, field for
// field, to what AWS answered the extension.
func TestServedReadsAsTheSDKReadsThem(t *testing.T) {
	w := newWorld(t)
	for _, k := range []source.Key{
		source.SecretKey("prod/db"), source.SecretKey("prod/bin"),
		source.ParameterKey("/app/url"), source.ParameterKey("/app/key"),
		{Service: source.ParameterStore, ID: "/app/key"}, // without decryption
	} {
		w.cache.put(t, k)
	}
	ctx := context.Background()
	sm, ps := w.sm(testCreds), w.ssm(testCreds)

	for _, c := range []struct {
		id   string
		want secretsmanager.GetSecretValueOutput
	}{{"prod/db", testSecret}, {"prod/bin", testBinary}} {
		got, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(c.id)})
		if err != nil {
			t.Fatalf("GetSecretValue %s: %v", c.id, err)
		}
		if !reflect.DeepEqual(stripMeta(got), &c.want) {
			t.Errorf("GetSecretValue %s:\n got %+v\nwant %+v", c.id, got, c.want)
		}
	}

	b, err := sm.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"prod/bin", "missing", "prod/db"}})
	if err != nil {
		t.Fatalf("BatchGetSecretValue: %v", err)
	}
	wantBatch := &secretsmanager.BatchGetSecretValueOutput{
		SecretValues: []smtypes.SecretValueEntry{entry(testBinary), entry(testSecret)},
		Errors: []smtypes.APIErrorType{{SecretId: aws.String("missing"), ErrorCode: aws.String("ResourceNotFoundException"),
			Message: aws.String("Secrets Manager can't find the specified secret.")}},
	}
	if !reflect.DeepEqual(stripMeta(b), wantBatch) {
		t.Errorf("BatchGetSecretValue:\n got %+v\nwant %+v", b, wantBatch)
	}

	p, err := ps.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/url"), WithDecryption: aws.Bool(true)})
	if err != nil {
		t.Fatalf("GetParameter: %v", err)
	}
	if !reflect.DeepEqual(stripMeta(p), &ssm.GetParameterOutput{Parameter: &testParam}) {
		t.Errorf("GetParameter:\n got %+v\nwant %+v", p.Parameter, testParam)
	}
	ps2, err := ps.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/app/key", "/nope", "/app/url"}, WithDecryption: aws.Bool(true)})
	if err != nil {
		t.Fatalf("GetParameters: %v", err)
	}
	want := &ssm.GetParametersOutput{Parameters: []ssmtypes.Parameter{testSecure, testParam}, InvalidParameters: []string{"/nope"}}
	if !reflect.DeepEqual(stripMeta(ps2), want) {
		t.Errorf("GetParameters:\n got %+v\nwant %+v", ps2, want)
	}

	// The cache was asked for the keys the GET API uses.
	wantReads := []source.Key{source.ParameterKey("/app/key"), source.ParameterKey("/nope")}
	for _, k := range wantReads {
		if !slices.Contains(w.cache.reads, k) {
			t.Errorf("no read of %s in %v", k, w.cache.reads)
		}
	}
	if len(w.fwd) != 0 {
		t.Errorf("served reads forwarded %d requests", len(w.fwd))
	}
}

func entry(o secretsmanager.GetSecretValueOutput) smtypes.SecretValueEntry {
	return smtypes.SecretValueEntry{ARN: o.ARN, CreatedDate: o.CreatedDate, Name: o.Name, SecretBinary: o.SecretBinary,
		SecretString: o.SecretString, VersionId: o.VersionId, VersionStages: o.VersionStages}
}

// The bytes on the wire: members as the service names them, epoch
// seconds, base64, both arrays of GetParameters even when empty.
func TestAnswerBytes(t *testing.T) {
	w := newWorld(t)
	w.cache.put(t, source.SecretKey("prod/bin"))
	w.cache.put(t, source.ParameterKey("/app/url"))
	for _, c := range []struct{ target, body, want string }{
		{"secretsmanager.GetSecretValue", `{"SecretId":"prod/bin"}`,
			`{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/bin-XyZabc","CreatedDate":1.735787045006E9,"Name":"prod/bin","SecretBinary":"AAEC/3g=","VersionId":"v-2","VersionStages":["AWSCURRENT","custom"]}`},
		{"AmazonSSM.GetParameters", `{"Names":["/app/url"],"WithDecryption":true}`,
			`{"InvalidParameters":[],"Parameters":[{"ARN":"arn:aws:ssm:us-east-1:123456789012:parameter/app/url","DataType":"text","LastModifiedDate":1.752485213589E9,"Name":"/app/url","Type":"String","Value":"https://example.com/?a=1&b=<2>","Version":7}]}`},
	} {
		resp, err := http.DefaultClient.Do(w.signed(t, c.target, c.body, testCreds, signingName(c.target), testRegion, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !jsonEqual(t, got, []byte(c.want)) {
			t.Errorf("%s:\n got %s\nwant %s", c.target, got, c.want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
			t.Errorf("%s: Content-Type %q", c.target, ct)
		}
		if resp.Header.Get("X-Amzn-Requestid") == "" {
			t.Errorf("%s: no x-amzn-RequestId", c.target)
		}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func signingName(target string) string {
	if strings.HasPrefix(target, "AmazonSSM.") {
		return "ssm"
	}
	return "secretsmanager"
}

// Errors reach the SDK as AWS's: type, message, status.
func TestReadErrors(t *testing.T) {
	w := newWorld(t)
	w.cache.errs[source.SecretKey("denied")] = &source.Error{Class: source.ClassAccessDenied, Code: "AccessDeniedException", Message: "User is not authorized", Key: source.SecretKey("denied")}
	w.cache.errs[source.SecretKey("slow")] = &source.Error{Class: source.ClassTimeout, Code: "UpstreamTimeout", Message: "AWS did not answer in time"}
	w.cache.errs[source.SecretKey("busy")] = cache.ErrBusy
	w.cache.errs[source.ParameterKey("/p")] = &source.Error{Class: source.ClassNotFound, Code: "ParameterNotFound", Message: ""}
	ctx := context.Background()
	sm := w.sm(testCreds)
	for id, want := range map[string]string{"missing": "ResourceNotFoundException", "denied": "AccessDeniedException", "slow": "InternalServiceError", "busy": "ThrottlingException"} {
		_, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != want {
			t.Errorf("GetSecretValue %s: %v, want %s", id, err, want)
		}
	}
	_, err := w.ssm(testCreds).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/p"), WithDecryption: aws.Bool(true)})
	var nf *ssmtypes.ParameterNotFound
	if !errors.As(err, &nf) {
		t.Errorf("GetParameter of a missing name: %v, want ParameterNotFound", err)
	}
	// A call's failure fails a batch as a whole.
	_, err = sm.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"missing", "slow"}})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InternalServiceError" {
		t.Errorf("BatchGetSecretValue with a timed-out item: %v, want InternalServiceError", err)
	}
}

// What is not served is forwarded: re-signed with the extension's
// credentials, the body byte for byte, AWS's answer relayed unchanged; a
// write drops the cached entries it affects.
func TestForwardAndInvalidate(t *testing.T) {
	w := newWorld(t)
	w.cache.put(t, source.SecretKey("prod/db"))
	w.cache.put(t, source.SecretKey(aws.ToString(testSecret.ARN)))
	w.cache.put(t, source.SecretKey("prod/bin"))
	w.cache.put(t, source.ParameterKey("/app/url"))
	w.cache.put(t, source.Key{Service: source.ParameterStore, ID: "/app/url", Decrypt: false})
	w.cache.put(t, source.ParameterKey("/app/key"))

	body := `{"SecretId":"prod/db",  "SecretString":"new \u00e9 value","ClientRequestToken":"tok-0000000000000000000000000000000001"}`
	resp, err := http.DefaultClient.Do(w.signed(t, "secretsmanager.PutSecretValue", body, testCreds, "secretsmanager", testRegion, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Amzn-Requestid") != "upstream-request-id" || !strings.Contains(string(got), `"VersionId":"v-3"`) {
		t.Errorf("relayed answer: %d %q %s", resp.StatusCode, resp.Header.Get("X-Amzn-Requestid"), got)
	}
	if len(w.fwd) != 1 || string(w.fwdBody[0]) != body {
		t.Fatalf("forwarded %d requests; body %q, want %q", len(w.fwd), w.fwdBody, body)
	}
	f := w.fwd[0]
	if f.Header.Get("X-Amz-Target") != "secretsmanager.PutSecretValue" || f.Header.Get("X-Amz-Security-Token") != testCreds.SessionToken ||
		!strings.Contains(f.Header.Get("Authorization"), "Credential="+testCreds.AccessKeyID+"/") {
		t.Errorf("forwarded headers: %v", f.Header)
	}
	// The forwarded signature is valid for the upstream (checked as AWS would).
	v := &verifier{creds: aws.NewCredentialsCache(staticCreds{}), region: testRegion, now: time.Now}
	f.URL.Path = "/"
	if aerr := v.verify(context.Background(), f, w.fwdBody[0], "secretsmanager"); aerr != nil {
		t.Errorf("forwarded signature: %s: %s", aerr.typ, aerr.msg)
	}
	wantDropped := []source.Key{source.SecretKey("prod/db"), source.SecretKey(aws.ToString(testSecret.ARN))}
	if !sameKeys(w.cache.dropped, wantDropped) {
		t.Errorf("PutSecretValue dropped %v, want %v", w.cache.dropped, wantDropped)
	}

	// A failed write drops nothing; its error is relayed as AWS sent it.
	w.cache.dropped = nil
	resp, err = http.DefaultClient.Do(w.signed(t, "secretsmanager.DeleteSecret", `{"SecretId":"prod/bin"}`, testCreds, "secretsmanager", testRegion, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || string(got) != `{"__type":"InvalidRequestException","message":"nope"}` || len(w.cache.dropped) != 0 {
		t.Errorf("failed write: %d %s, dropped %v", resp.StatusCode, got, w.cache.dropped)
	}

	// A parameter write drops every form of that parameter, only that one.
	_, err = w.ssm(testCreds).PutParameter(context.Background(), &ssm.PutParameterInput{Name: aws.String("/app/url"), Value: aws.String("v2"), Overwrite: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	wantDropped = []source.Key{source.ParameterKey("/app/url"), {Service: source.ParameterStore, ID: "/app/url"}}
	if !sameKeys(w.cache.dropped, wantDropped) {
		t.Errorf("PutParameter dropped %v, want %v", w.cache.dropped, wantDropped)
	}

	// Other operations, and served ones the cache may not serve, go through.
	w.cache.errs[source.SecretKey("unlisted")] = cache.ErrNotConfigured
	for _, c := range []struct{ target, body string }{
		{"secretsmanager.DescribeSecret", `{"SecretId":"prod/db"}`},
		{"secretsmanager.GetSecretValue", `{"SecretId":"unlisted"}`},
		{"secretsmanager.GetSecretValue", `{"SecretId":"prod/bin","Extra":1}`},
		{"secretsmanager.GetSecretValue", `{"SecretId":"prod/bin","VersionId":"a","VersionStage":"b"}`},
		{"secretsmanager.BatchGetSecretValue", `{"Filters":[{"Key":"name","Values":["x"]}]}`},
		{"AmazonSSM.GetParametersByPath", `{"Path":"/app","Recursive":true}`},
		{"AmazonSSM.GetParameter", `{"Name":"/app/url:"}`},
		{"AmazonSSM.NoSuchOperation", `{}`},
	} {
		n := len(w.fwd)
		resp, err := http.DefaultClient.Do(w.signed(t, c.target, c.body, testCreds, signingName(c.target), testRegion, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(w.fwd) != n+1 || string(got) != `{"upstream":true}` {
			t.Errorf("%s %s: not forwarded (%d %s)", c.target, c.body, resp.StatusCode, got)
		}
	}
}

type staticCreds struct{}

func (staticCreds) Retrieve(context.Context) (aws.Credentials, error) { return testCreds, nil }

func sameKeys(a, b []source.Key) bool {
	if len(a) != len(b) {
		return false
	}
	for _, k := range b {
		if !slices.Contains(a, k) {
			return false
		}
	}
	return true
}

// GetParametersByPath of a prefetched path is answered from its listing and
// the cached parameters, paged as the SDK's paginator reads it; any other
// form is forwarded.
func TestGetParametersByPath(t *testing.T) {
	w := newWorld(t)
	w.cache.put(t, source.ParameterKey("/app/url"))
	w.cache.put(t, source.ParameterKey("/app/key"))
	w.cache.paths[cache.Path{Prefix: "/app", Recursive: true}] = []string{"/app/gone", "/app/key", "/app/url"}
	ps := w.ssm(testCreds)
	for _, path := range []string{"/app", "/app/"} {
		var got []ssmtypes.Parameter
		pages := 0
		pg := ssm.NewGetParametersByPathPaginator(ps, &ssm.GetParametersByPathInput{Path: aws.String(path), Recursive: aws.Bool(true), WithDecryption: aws.Bool(true), MaxResults: aws.Int32(1)})
		for pg.HasMorePages() {
			out, err := pg.NextPage(context.Background())
			if err != nil {
				t.Fatalf("%s page %d: %v", path, pages, err)
			}
			pages++
			got = append(got, out.Parameters...)
		}
		if pages != 3 || !reflect.DeepEqual(got, []ssmtypes.Parameter{testSecure, testParam}) {
			t.Errorf("%s: %d pages, %+v", path, pages, got)
		}
	}
	if len(w.fwd) != 0 {
		t.Fatalf("served pages forwarded %d requests", len(w.fwd))
	}
	for _, body := range []string{
		`{"Path":"/app","Recursive":false}`, // not the prefetched path
		`{"Path":"/app","Recursive":true,"ParameterFilters":[{"Key":"Type","Values":["String"]}]}`,
		`{"Path":"/app","Recursive":true,"NextToken":"AAAA-an-aws-token"}`,
		`{"Path":"/app","Recursive":true,"MaxResults":11}`,
	} {
		n := len(w.fwd)
		resp, err := http.DefaultClient.Do(w.signed(t, "AmazonSSM.GetParametersByPath", body, testCreds, "ssm", testRegion, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if len(w.fwd) != n+1 {
			t.Errorf("%s: not forwarded", body)
		}
	}
	// A parameter write makes the listings holding it stale.
	if _, err := ps.PutParameter(context.Background(), &ssm.PutParameterInput{Name: aws.String("/app/new"), Value: aws.String("v")}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.cache.stale, []string{"/app/new"}) {
		t.Errorf("StalePaths calls %v, want /app/new", w.cache.stale)
	}
}

// No value reaches the log, at debug level, whatever the request: served
// reads, batch reads, refused ones, forwarded writes carrying a value.
func TestValuesNeverLogged(t *testing.T) {
	var log syncBuffer
	w := newWorld(t)
	w.h.log = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w.cache.put(t, source.SecretKey("prod/db"))
	w.cache.put(t, source.SecretKey("prod/bin"))
	w.cache.put(t, source.ParameterKey("/app/key"))
	ctx := context.Background()
	sm, ps := w.sm(testCreds), w.ssm(testCreds)
	sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/db")})
	sm.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"prod/db", "prod/bin", "nope"}})
	ps.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/app/key", "/nope"}, WithDecryption: aws.Bool(true)})
	sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("prod/db"), SecretString: aws.String("written-secret-value")})
	ps.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/key"), Value: aws.String("written-parameter-value"), Overwrite: aws.Bool(true)})
	w.sm(aws.Credentials{AccessKeyID: "AKIDOTHER", SecretAccessKey: "x"}).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/db")})
	out := log.String()
	if !strings.Contains(out, "aws api read") || !strings.Contains(out, "aws api forwarded") {
		t.Fatalf("the requests were not logged:\n%s", out)
	}
	for _, v := range []string{"p<&>w", `p\u003c`, "s3cr3t", "AAEC/3g", "written-secret-value", "written-parameter-value", testCreds.SecretAccessKey, testCreds.SessionToken} {
		if strings.Contains(out, v) {
			t.Errorf("the log holds %q:\n%s", v, out)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStats(t *testing.T) {
	w := newWorld(t)
	w.cache.put(t, source.SecretKey("prod/db"))
	sm := w.sm(testCreds)
	sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/db")})
	sm.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String("prod/db")})
	w.sm(aws.Credentials{AccessKeyID: "AKIDOTHER", SecretAccessKey: "x"}).GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/db")})
	if got, want := w.h.Stats(), (Stats{Served: 1, Forwarded: 1, Refused: 1}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

// A request the extension itself sent (its LoopHeader) is refused: an
// endpoint naming the extension under a name it can't tell ends at the
// first hop, rather than looping.
func TestLoopRefused(t *testing.T) {
	w := newWorld(t)
	// Forward to itself, as an endpoint naming this extension would.
	w.h.sm.endpoint = w.srv.URL
	resp, err := http.DefaultClient.Do(w.signed(t, "secretsmanager.DescribeSecret", `{"SecretId":"x"}`, testCreds, "secretsmanager", testRegion, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusLoopDetected || !strings.Contains(string(got), `"LoopDetected"`) {
		t.Errorf("forwarded to itself: %d %s, want 508 LoopDetected", resp.StatusCode, got)
	}
	if s := w.h.Stats(); s.Forwarded != 1 || s.Refused != 1 {
		t.Errorf("Stats = %+v, want one forwarded (the caller's) and one refused (the hop)", s)
	}
	// Requests through MarkRequests carry the mark.
	var seen string
	c := MarkRequests(doer(func(r *http.Request) (*http.Response, error) {
		seen = r.Header.Get(LoopHeader)
		return nil, io.EOF
	}))
	r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	c.Do(r)
	if seen != "1" {
		t.Errorf("MarkRequests sent %s %q", LoopHeader, seen)
	}
}

type doer func(*http.Request) (*http.Response, error)

func (d doer) Do(r *http.Request) (*http.Response, error) { return d(r) }
