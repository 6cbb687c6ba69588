package source

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// ---- fakes ----

// callGate, when given to the fakes, holds every call in flight until the
// test releases it, and counts the calls in flight.
type callGate struct {
	release chan struct{}

	mu       sync.Mutex // protects inflight and peak
	inflight int
	peak     int
}

func newCallGate() *callGate { return &callGate{release: make(chan struct{})} }

func (g *callGate) pass() {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.inflight++
	g.peak = max(g.peak, g.inflight)
	g.mu.Unlock()
	<-g.release
	g.mu.Lock()
	g.inflight--
	g.mu.Unlock()
}

func (g *callGate) counts() (inflight, peak int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inflight, g.peak
}

// callRecord is what a fake saw of one call's context.
type callRecord struct {
	op          string
	hasDeadline bool
	remaining   time.Duration // until the deadline, when the call was made
}

func recordCall(ctx context.Context, op string) callRecord {
	dl, ok := ctx.Deadline()
	r := callRecord{op: op, hasDeadline: ok}
	if ok {
		r.remaining = dl.Sub(time.Now())
	}
	return r
}

const testAccount = "111111111111"

func secretARNOf(name string) string {
	return "arn:aws:secretsmanager:us-east-1:" + testAccount + ":secret:" + name + "-AbCdEf"
}

func parameterARNOf(name string) string {
	return "arn:aws:ssm:us-east-1:" + testAccount + ":parameter" + name
}

// fakeSM is a Secrets Manager client: it records each call's input and
// answers with the scripted function, or by default with a value derived
// from the id ("get:ID|VERSION" or "batch:ID").
type fakeSM struct {
	gate  *callGate
	get   func(*secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error)
	batch func(*secretsmanager.BatchGetSecretValueInput) (*secretsmanager.BatchGetSecretValueOutput, error)

	mu      sync.Mutex // protects the fields below
	gets    []secretsmanager.GetSecretValueInput
	batches []secretsmanager.BatchGetSecretValueInput
	calls   []callRecord
}

func (f *fakeSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.mu.Lock()
	f.gets = append(f.gets, *in)
	f.calls = append(f.calls, recordCall(ctx, "GetSecretValue"))
	f.mu.Unlock()
	f.gate.pass()
	if f.get != nil {
		return f.get(in)
	}
	return getSecretOK(in)
}

func getSecretOK(in *secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error) {
	id := aws.ToString(in.SecretId)
	return &secretsmanager.GetSecretValueOutput{
		Name:         aws.String(id),
		ARN:          aws.String(secretARNOf(id)),
		SecretString: aws.String("get:" + id + "|" + aws.ToString(in.VersionId) + aws.ToString(in.VersionStage)),
	}, nil
}

func (f *fakeSM) BatchGetSecretValue(ctx context.Context, in *secretsmanager.BatchGetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error) {
	f.mu.Lock()
	in2 := *in
	in2.SecretIdList = slices.Clone(in.SecretIdList)
	f.batches = append(f.batches, in2)
	f.calls = append(f.calls, recordCall(ctx, "BatchGetSecretValue"))
	f.mu.Unlock()
	f.gate.pass()
	if f.batch != nil {
		return f.batch(in)
	}
	out := &secretsmanager.BatchGetSecretValueOutput{}
	for _, id := range in.SecretIdList {
		out.SecretValues = append(out.SecretValues, batchEntry(id, secretARNOf(id), "batch:"+id))
	}
	return out, nil
}

func batchEntry(name, arn, value string) smtypes.SecretValueEntry {
	return smtypes.SecretValueEntry{Name: aws.String(name), ARN: aws.String(arn), SecretString: aws.String(value)}
}

func (f *fakeSM) getIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, in := range f.gets {
		ids = append(ids, aws.ToString(in.SecretId))
	}
	slices.Sort(ids)
	return ids
}

func (f *fakeSM) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeSM) batchCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.batches)
}

// fakeSSM is an SSM client, like fakeSM. By default GetParameter answers
// "get:NAME|decrypt=BOOL" and GetParameters "batch:NAME|decrypt=BOOL".
type fakeSSM struct {
	gate   *callGate
	param  func(*ssm.GetParameterInput) (*ssm.GetParameterOutput, error)
	params func(*ssm.GetParametersInput) (*ssm.GetParametersOutput, error)
	path   func(*ssm.GetParametersByPathInput) (*ssm.GetParametersByPathOutput, error)

	mu        sync.Mutex // protects the fields below
	paramIns  []ssm.GetParameterInput
	paramsIns []ssm.GetParametersInput
	pathIns   []ssm.GetParametersByPathInput
	calls     []callRecord
}

func (f *fakeSSM) GetParameter(ctx context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	f.mu.Lock()
	f.paramIns = append(f.paramIns, *in)
	f.calls = append(f.calls, recordCall(ctx, "GetParameter"))
	f.mu.Unlock()
	f.gate.pass()
	if f.param != nil {
		return f.param(in)
	}
	name := aws.ToString(in.Name)
	return &ssm.GetParameterOutput{Parameter: param(name, fmt.Sprintf("get:%s|decrypt=%t", name, aws.ToBool(in.WithDecryption)))}, nil
}

func param(name, value string) *ssmtypes.Parameter {
	return &ssmtypes.Parameter{Name: aws.String(name), ARN: aws.String(parameterARNOf(name)), Value: aws.String(value), Type: ssmtypes.ParameterTypeString, Version: 1}
}

func (f *fakeSSM) GetParameters(ctx context.Context, in *ssm.GetParametersInput, _ ...func(*ssm.Options)) (*ssm.GetParametersOutput, error) {
	f.mu.Lock()
	in2 := *in
	in2.Names = slices.Clone(in.Names)
	f.paramsIns = append(f.paramsIns, in2)
	f.calls = append(f.calls, recordCall(ctx, "GetParameters"))
	f.mu.Unlock()
	f.gate.pass()
	if f.params != nil {
		return f.params(in)
	}
	out := &ssm.GetParametersOutput{}
	for _, n := range in.Names {
		out.Parameters = append(out.Parameters, *param(n, fmt.Sprintf("batch:%s|decrypt=%t", n, aws.ToBool(in.WithDecryption))))
	}
	return out, nil
}

func (f *fakeSSM) GetParametersByPath(ctx context.Context, in *ssm.GetParametersByPathInput, _ ...func(*ssm.Options)) (*ssm.GetParametersByPathOutput, error) {
	f.mu.Lock()
	f.pathIns = append(f.pathIns, *in) // a copy: the source reuses its input across pages
	f.calls = append(f.calls, recordCall(ctx, "GetParametersByPath"))
	f.mu.Unlock()
	f.gate.pass()
	if f.path != nil {
		return f.path(in)
	}
	return &ssm.GetParametersByPathOutput{}, nil
}

func (f *fakeSSM) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeSSM) paramNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for _, in := range f.paramIns {
		names = append(names, aws.ToString(in.Name))
	}
	slices.Sort(names)
	return names
}

// ---- deliveries ----

type delivery struct {
	item *Item
	err  error
}

// deliveries records what a Fetch delivered, per key.
type deliveries struct {
	mu  sync.Mutex // protects got
	got map[Key][]delivery
}

func newDeliveries() *deliveries { return &deliveries{got: map[Key][]delivery{}} }

func (d *deliveries) deliver(k Key, it *Item, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got[k] = append(d.got[k], delivery{it, err})
}

// once checks that every key was delivered exactly once, that nothing else
// was, and that each delivery is an item for that key or an *Error for it.
func (d *deliveries) once(t *testing.T, keys []Key) map[Key]delivery {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	want := map[Key]bool{}
	for _, k := range keys {
		want[k] = true
	}
	res := map[Key]delivery{}
	for k, ds := range d.got {
		if !want[k] {
			t.Errorf("delivered %v, which was not asked for", k)
			continue
		}
		if len(ds) != 1 {
			t.Errorf("%v delivered %d times, want once", k, len(ds))
			continue
		}
		dl := ds[0]
		switch {
		case (dl.item == nil) == (dl.err == nil):
			t.Errorf("%v: delivered item %v and error %v; want exactly one", k, dl.item, dl.err)
		case dl.item != nil && dl.item.Key != k:
			t.Errorf("%v: item has key %v", k, dl.item.Key)
		case dl.err != nil:
			var e *Error
			if !errors.As(dl.err, &e) {
				t.Errorf("%v: error %T %v, want *Error", k, dl.err, dl.err)
			} else if e.Key != k {
				t.Errorf("%v: error has key %v", k, e.Key)
			}
		}
		res[k] = dl
	}
	for k := range want {
		if len(d.got[k]) == 0 {
			t.Errorf("%v never delivered", k)
		}
	}
	return res
}

// outcome renders a delivery compactly: the item's text, or the error's
// class, code and batch flag.
func (dl delivery) outcome() string {
	if dl.err != nil {
		var e *Error
		if !errors.As(dl.err, &e) {
			return "non-*Error: " + dl.err.Error()
		}
		s := "error " + e.Class.String() + " " + e.Code
		if e.Batch {
			s += " batch"
		}
		return s
	}
	if dl.item == nil {
		return "nothing"
	}
	v, _ := dl.item.StringValue()
	return string(v)
}

func secretKeys(prefix string, n int) []Key {
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = SecretKey(fmt.Sprintf("%s%02d", prefix, i))
	}
	return keys
}

func parameterKeys(prefix string, n int, decrypt bool) []Key {
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = Key{Service: ParameterStore, ID: fmt.Sprintf("%s%02d", prefix, i), Decrypt: decrypt}
	}
	return keys
}

func ids(keys []Key) []string {
	var s []string
	for _, k := range keys {
		s = append(s, k.ID)
	}
	slices.Sort(s)
	return s
}

// ---- tests ----

func TestFetchPartitionsKeys(t *testing.T) {
	type getIn struct{ id, versionID, stage string }
	type paramIn struct {
		name    string
		decrypt bool
	}
	versioned := []Key{
		{Service: SecretsManager, ID: "app/db", VersionID: "v-1"},
		{Service: SecretsManager, ID: "app/db", VersionStage: "AWSPREVIOUS"},
		{Service: SecretsManager, ID: "app/api", VersionStage: "AWSCURRENT"},
	}
	selected := []Key{
		{Service: ParameterStore, ID: "/app/port", Selector: ":3", Decrypt: true},
		{Service: ParameterStore, ID: "/app/port", Selector: ":prod"},
		ParameterKey(SecretsManagerReferencePrefix + "app/db"),
		ParameterKey(SecretsManagerReferencePrefix + "app/api"),
	}
	tests := []struct {
		name       string
		keys       []Key
		batchSizes []int             // BatchGetSecretValue SecretIdList lengths, sorted
		batchIDs   []string          // all ids asked for in batches, sorted
		gets       []getIn           // GetSecretValue inputs, sorted by id then version
		paramsSize map[bool][]int    // GetParameters Names lengths by WithDecryption, sorted
		paramsIDs  map[bool][]string // GetParameters names by WithDecryption, sorted
		params     []paramIn         // GetParameter inputs, sorted
	}{
		{
			name:       "45 plain secrets make three batches",
			keys:       secretKeys("s", 45),
			batchSizes: []int{5, 20, 20},
			batchIDs:   ids(secretKeys("s", 45)),
		},
		{
			name: "one plain secret uses GetSecretValue",
			keys: []Key{SecretKey("only")},
			gets: []getIn{{id: "only"}},
		},
		{
			name: "21 plain secrets: a batch of 20, then one alone",
			keys: secretKeys("s", 21),
			// The chunk of one goes to GetSecretValue.
			batchSizes: []int{20},
			batchIDs:   ids(secretKeys("s", 20)),
			gets:       []getIn{{id: "s20"}},
		},
		{
			name: "versioned secrets one by one",
			keys: versioned,
			gets: []getIn{
				{id: "app/api", stage: "AWSCURRENT"},
				{id: "app/db", stage: "AWSPREVIOUS"},
				{id: "app/db", versionID: "v-1"},
			},
		},
		{
			name:       "plain parameters in tens, grouped by decryption",
			keys:       append(parameterKeys("/p/", 12, true), parameterKeys("/q/", 3, false)...),
			paramsSize: map[bool][]int{true: {2, 10}, false: {3}},
			paramsIDs: map[bool][]string{
				true:  ids(parameterKeys("/p/", 12, true)),
				false: ids(parameterKeys("/q/", 3, false)),
			},
		},
		{
			name:   "one plain parameter uses GetParameter",
			keys:   parameterKeys("/p/", 1, false),
			params: []paramIn{{"/p/00", false}},
		},
		{
			name: "selectors and secret references one by one",
			keys: selected,
			params: []paramIn{
				{"/app/port:3", true},
				{"/app/port:prod", false},
				{SecretsManagerReferencePrefix + "app/api", true},
				{SecretsManagerReferencePrefix + "app/db", true},
			},
		},
		{
			name: "everything at once",
			keys: slices.Concat(secretKeys("s", 25), versioned, parameterKeys("/p/", 10, true),
				parameterKeys("/q/", 2, false), selected),
			batchSizes: []int{5, 20},
			batchIDs:   ids(secretKeys("s", 25)),
			gets: []getIn{
				{id: "app/api", stage: "AWSCURRENT"},
				{id: "app/db", stage: "AWSPREVIOUS"},
				{id: "app/db", versionID: "v-1"},
			},
			paramsSize: map[bool][]int{true: {10}, false: {2}},
			paramsIDs: map[bool][]string{
				true:  ids(parameterKeys("/p/", 10, true)),
				false: ids(parameterKeys("/q/", 2, false)),
			},
			params: []paramIn{
				{"/app/port:3", true},
				{"/app/port:prod", false},
				{SecretsManagerReferencePrefix + "app/api", true},
				{SecretsManagerReferencePrefix + "app/db", true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm, ps := &fakeSM{}, &fakeSSM{}
			src := New(Options{SecretsManager: sm, SSM: ps, MaxConcurrency: 4})
			d := newDeliveries()
			src.Fetch(t.Context(), tt.keys, d.deliver)

			got := d.once(t, tt.keys)
			for k, dl := range got {
				if dl.err != nil {
					t.Errorf("%v: unexpected error %v", k, dl.err)
				}
			}

			var sizes []int
			var batchIDs []string
			for _, in := range sm.batches {
				sizes = append(sizes, len(in.SecretIdList))
				batchIDs = append(batchIDs, in.SecretIdList...)
			}
			slices.Sort(sizes)
			slices.Sort(batchIDs)
			if !slices.Equal(sizes, tt.batchSizes) || !slices.Equal(batchIDs, tt.batchIDs) {
				t.Errorf("BatchGetSecretValue sizes %v ids %v; want %v %v", sizes, batchIDs, tt.batchSizes, tt.batchIDs)
			}

			var gets []getIn
			for _, in := range sm.gets {
				gets = append(gets, getIn{aws.ToString(in.SecretId), aws.ToString(in.VersionId), aws.ToString(in.VersionStage)})
			}
			slices.SortFunc(gets, func(a, b getIn) int {
				return cmp.Or(cmp.Compare(a.id, b.id), cmp.Compare(a.versionID, b.versionID), cmp.Compare(a.stage, b.stage))
			})
			if !slices.Equal(gets, tt.gets) {
				t.Errorf("GetSecretValue inputs %+v; want %+v", gets, tt.gets)
			}

			paramsSize, paramsIDs := map[bool][]int{}, map[bool][]string{}
			for _, in := range ps.paramsIns {
				if in.WithDecryption == nil {
					t.Errorf("GetParameters without WithDecryption: %v", in.Names)
				}
				dec := aws.ToBool(in.WithDecryption)
				paramsSize[dec] = append(paramsSize[dec], len(in.Names))
				paramsIDs[dec] = append(paramsIDs[dec], in.Names...)
			}
			for _, dec := range []bool{false, true} {
				slices.Sort(paramsSize[dec])
				slices.Sort(paramsIDs[dec])
				if !slices.Equal(paramsSize[dec], tt.paramsSize[dec]) || !slices.Equal(paramsIDs[dec], tt.paramsIDs[dec]) {
					t.Errorf("GetParameters(WithDecryption=%t) sizes %v names %v; want %v %v",
						dec, paramsSize[dec], paramsIDs[dec], tt.paramsSize[dec], tt.paramsIDs[dec])
				}
			}

			var params []paramIn
			for _, in := range ps.paramIns {
				params = append(params, paramIn{aws.ToString(in.Name), aws.ToBool(in.WithDecryption)})
			}
			slices.SortFunc(params, func(a, b paramIn) int { return cmp.Compare(a.name, b.name) })
			if !slices.Equal(params, tt.params) {
				t.Errorf("GetParameter inputs %v; want %v", params, tt.params)
			}

			// Each item comes from the call that fetched it.
			for k, dl := range got {
				if dl.item == nil {
					continue
				}
				var want string
				switch {
				case k.Service == SecretsManager && slices.Contains(tt.batchIDs, k.ID) && k.Plain():
					want = "batch:" + k.ID
				case k.Service == SecretsManager:
					want = "get:" + k.ID + "|" + k.VersionID + k.VersionStage
				case slices.Contains(tt.paramsIDs[k.Decrypt], k.ID):
					want = fmt.Sprintf("batch:%s|decrypt=%t", k.ID, k.Decrypt)
				default:
					want = fmt.Sprintf("get:%s|decrypt=%t", k.ID+k.Selector, k.Decrypt)
				}
				if v, _ := dl.item.StringValue(); string(v) != want {
					t.Errorf("%v: text %q, want %q", k, v, want)
				}
			}
		})
	}
}

func TestFetchDeliversOncePerKey(t *testing.T) {
	keys := slices.Concat(
		secretKeys("s", 25), // batches of 20 and 5
		[]Key{{Service: SecretsManager, ID: "v", VersionStage: "AWSPREVIOUS"}},
		parameterKeys("/p/", 10, true),
		parameterKeys("/q/", 3, false),
		[]Key{{Service: ParameterStore, ID: "/r", Selector: ":2"}},
	)
	throttled := apiError(400, "ThrottlingException")
	tests := []struct {
		name   string
		sm     *fakeSM
		ssm    *fakeSSM
		wantOK int
	}{
		{name: "all succeed", sm: &fakeSM{}, ssm: &fakeSSM{}, wantOK: len(keys)},
		{
			name: "every call fails",
			sm: &fakeSM{
				get: func(*secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error) {
					return nil, throttled
				},
				batch: func(*secretsmanager.BatchGetSecretValueInput) (*secretsmanager.BatchGetSecretValueOutput, error) {
					return nil, throttled
				},
			},
			ssm: &fakeSSM{
				param:  func(*ssm.GetParameterInput) (*ssm.GetParameterOutput, error) { return nil, throttled },
				params: func(*ssm.GetParametersInput) (*ssm.GetParametersOutput, error) { return nil, throttled },
			},
			wantOK: 0,
		},
		{
			name: "batches answer nothing: every key fetched alone",
			sm: &fakeSM{batch: func(*secretsmanager.BatchGetSecretValueInput) (*secretsmanager.BatchGetSecretValueOutput, error) {
				return &secretsmanager.BatchGetSecretValueOutput{}, nil
			}},
			ssm: &fakeSSM{params: func(*ssm.GetParametersInput) (*ssm.GetParametersOutput, error) {
				return &ssm.GetParametersOutput{}, nil
			}},
			wantOK: len(keys),
		},
		{
			name: "mixed: values, entry errors, unmatched ids, failed fallbacks, empty answers",
			sm: &fakeSM{
				batch: func(in *secretsmanager.BatchGetSecretValueInput) (*secretsmanager.BatchGetSecretValueOutput, error) {
					if len(in.SecretIdList) == 5 {
						return nil, throttled // s20..s24
					}
					out := &secretsmanager.BatchGetSecretValueOutput{}
					for _, id := range in.SecretIdList {
						switch {
						case id < "s10": // s00..s09: values
							out.SecretValues = append(out.SecretValues, batchEntry(id, secretARNOf(id), "batch:"+id))
						case id < "s15": // s10..s14: entry errors; s15..s19 unmentioned
							out.Errors = append(out.Errors, smtypes.APIErrorType{SecretId: aws.String(id), ErrorCode: aws.String("ResourceNotFoundException")})
						}
					}
					// An entry for an id nobody asked for is ignored.
					out.SecretValues = append(out.SecretValues, batchEntry("stranger", secretARNOf("stranger"), "x"))
					return out, nil
				},
				get: func(in *secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error) {
					if id := aws.ToString(in.SecretId); id >= "s18" || id == "v" { // s18, s19, v fail
						return nil, opError("GetSecretValue", responseError(400, &smtypes.ResourceNotFoundException{Message: aws.String("gone")}))
					}
					return getSecretOK(in)
				},
			},
			ssm: &fakeSSM{
				params: func(in *ssm.GetParametersInput) (*ssm.GetParametersOutput, error) {
					if !aws.ToBool(in.WithDecryption) {
						return nil, apiError(500, "InternalServerError") // /q/*
					}
					out := &ssm.GetParametersOutput{}
					for _, n := range in.Names {
						switch {
						case n < "/p/05":
							out.Parameters = append(out.Parameters, *param(n, "batch:"+n))
						case n < "/p/08":
							out.InvalidParameters = append(out.InvalidParameters, n)
						} // /p/08, /p/09 unmentioned
					}
					return out, nil
				},
				param: func(in *ssm.GetParameterInput) (*ssm.GetParameterOutput, error) {
					switch aws.ToString(in.Name) {
					case "/p/08":
						return &ssm.GetParameterOutput{Parameter: param("/p/08", "get")}, nil
					case "/r:2":
						return &ssm.GetParameterOutput{}, nil // no parameter: malformed
					}
					return nil, opError("GetParameter", responseError(400, &ssmtypes.ParameterNotFound{}))
				},
			},
			// s00..s09, s15..s17, /p/00../p/04, /p/08
			wantOK: 10 + 3 + 5 + 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := New(Options{SecretsManager: tt.sm, SSM: tt.ssm, MaxConcurrency: 3})
			d := newDeliveries()
			src.Fetch(t.Context(), keys, d.deliver)
			ok := 0
			for _, dl := range d.once(t, keys) {
				if dl.item != nil {
					ok++
				}
			}
			if ok != tt.wantOK {
				t.Errorf("%d items, want %d", ok, tt.wantOK)
			}
		})
	}
}

func TestFetchSecretBatchMatching(t *testing.T) {
	const otherAccount = "222222222222"
	otherARN := "arn:aws:secretsmanager:us-east-1:" + otherAccount + ":secret:db-XyZ123"
	otherPartial := "arn:aws:secretsmanager:us-east-1:" + otherAccount + ":secret:db"
	tests := []struct {
		name  string
		keys  []Key
		batch func(*secretsmanager.BatchGetSecretValueInput) *secretsmanager.BatchGetSecretValueOutput
		want  map[string]string // key ID → outcome
		gets  []string          // GetSecretValue ids, sorted
	}{
		{
			name: "by name",
			keys: []Key{SecretKey("a"), SecretKey("b")},
			batch: func(*secretsmanager.BatchGetSecretValueInput) *secretsmanager.BatchGetSecretValueOutput {
				return &secretsmanager.BatchGetSecretValueOutput{SecretValues: []smtypes.SecretValueEntry{
					batchEntry("b", secretARNOf("b"), "B"), batchEntry("a", secretARNOf("a"), "A"),
				}}
			},
			want: map[string]string{"a": "A", "b": "B"},
		},
		{
			name: "by full ARN",
			keys: []Key{SecretKey(secretARNOf("a")), SecretKey(secretARNOf("b"))},
			batch: func(*secretsmanager.BatchGetSecretValueInput) *secretsmanager.BatchGetSecretValueOutput {
				return &secretsmanager.BatchGetSecretValueOutput{SecretValues: []smtypes.SecretValueEntry{
					batchEntry("a", secretARNOf("a"), "A"), batchEntry("b", secretARNOf("b"), "B"),
				}}
			},
			want: map[string]string{secretARNOf("a"): "A", secretARNOf("b"): "B"},
		},
		{
			name: "error entries",
			keys: []Key{SecretKey("gone"), SecretKey("locked"), SecretKey("flaky"), SecretKey("ok")},
			batch: func(*secretsmanager.BatchGetSecretValueInput) *secretsmanager.BatchGetSecretValueOutput {
				return &secretsmanager.BatchGetSecretValueOutput{
					SecretValues: []smtypes.SecretValueEntry{batchEntry("ok", secretARNOf("ok"), "OK")},
					Errors: []smtypes.APIErrorType{
						{SecretId: aws.String("gone"), ErrorCode: aws.String("ResourceNotFoundException"), Message: aws.String("not found")},
						{SecretId: aws.String("locked"), ErrorCode: aws.String("DecryptionFailure"), Message: aws.String("kms")},
						{SecretId: aws.String("flaky"), ErrorCode: aws.String("InternalServiceError")},
					},
				}
			},
			want: map[string]string{
				"gone":   "error not_found ResourceNotFoundException",
				"locked": "error access_denied DecryptionFailure",
				"flaky":  "error transient InternalServiceError",
				"ok":     "OK",
			},
		},
		{
			name: "a partial ARN the response does not name is fetched alone",
			keys: []Key{SecretKey("a"), SecretKey("arn:aws:secretsmanager:us-east-1:" + testAccount + ":secret:b")},
			batch: func(*secretsmanager.BatchGetSecretValueInput) *secretsmanager.BatchGetSecretValueOutput {
				return &secretsmanager.BatchGetSecretValueOutput{SecretValues: []smtypes.SecretValueEntry{
					batchEntry("a", secretARNOf("a"), "A"), batchEntry("b", secretARNOf("b"), "B"),
				}}
			},
			want: map[string]string{
				"a": "A",
				"arn:aws:secretsmanager:us-east-1:" + testAccount + ":secret:b": "get:arn:aws:secretsmanager:us-east-1:" + testAccount + ":secret:b|",
			},
			gets: []string{"arn:aws:secretsmanager:us-east-1:" + testAccount + ":secret:b"},
		},
		{
			// Another account's secret of the same name must not answer for
			// this account's, whatever the order of the entries.
			name: "same name in another account, by full ARN",
			keys: []Key{SecretKey("db"), SecretKey(otherARN)},
			batch: func(*secretsmanager.BatchGetSecretValueInput) *secretsmanager.BatchGetSecretValueOutput {
				return &secretsmanager.BatchGetSecretValueOutput{SecretValues: []smtypes.SecretValueEntry{
					batchEntry("db", otherARN, "OTHER"), batchEntry("db", secretARNOf("db"), "MINE"),
				}}
			},
			want: map[string]string{"db": "MINE", otherARN: "OTHER"},
		},
		{
			name: "same name in another account, by partial ARN",
			keys: []Key{SecretKey("db"), SecretKey(otherPartial)},
			batch: func(*secretsmanager.BatchGetSecretValueInput) *secretsmanager.BatchGetSecretValueOutput {
				return &secretsmanager.BatchGetSecretValueOutput{SecretValues: []smtypes.SecretValueEntry{
					batchEntry("db", otherARN, "OTHER"), batchEntry("db", secretARNOf("db"), "MINE"),
				}}
			},
			want: map[string]string{"db": "MINE", otherPartial: "get:" + otherPartial + "|"},
			gets: []string{otherPartial},
		},
		{
			name: "an entry without name or ARN answers nothing",
			keys: []Key{SecretKey("a"), SecretKey("b")},
			batch: func(*secretsmanager.BatchGetSecretValueInput) *secretsmanager.BatchGetSecretValueOutput {
				return &secretsmanager.BatchGetSecretValueOutput{
					SecretValues: []smtypes.SecretValueEntry{{SecretString: aws.String("?")}, batchEntry("a", secretARNOf("a"), "A")},
					Errors:       []smtypes.APIErrorType{{ErrorCode: aws.String("ResourceNotFoundException")}},
				}
			},
			want: map[string]string{"a": "A", "b": "get:b|"},
			gets: []string{"b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := &fakeSM{batch: func(in *secretsmanager.BatchGetSecretValueInput) (*secretsmanager.BatchGetSecretValueOutput, error) {
				return tt.batch(in), nil
			}}
			src := New(Options{SecretsManager: sm, SSM: &fakeSSM{}, MaxConcurrency: 2})
			d := newDeliveries()
			src.Fetch(t.Context(), tt.keys, d.deliver)
			for k, dl := range d.once(t, tt.keys) {
				if got := dl.outcome(); got != tt.want[k.ID] {
					t.Errorf("%v: %s, want %s", k, got, tt.want[k.ID])
				}
			}
			if sm.batchCount() != 1 {
				t.Errorf("%d BatchGetSecretValue calls, want 1", sm.batchCount())
			}
			if got := sm.getIDs(); !slices.Equal(got, tt.gets) {
				t.Errorf("GetSecretValue for %v, want %v", got, tt.gets)
			}
		})
	}
}

func TestFetchSecretBatchEntryError(t *testing.T) {
	sm := &fakeSM{batch: func(*secretsmanager.BatchGetSecretValueInput) (*secretsmanager.BatchGetSecretValueOutput, error) {
		return &secretsmanager.BatchGetSecretValueOutput{
			SecretValues: []smtypes.SecretValueEntry{batchEntry("b", secretARNOf("b"), "B")},
			Errors: []smtypes.APIErrorType{{
				SecretId: aws.String("a"), ErrorCode: aws.String("ResourceNotFoundException"), Message: aws.String("no such secret"),
			}},
		}, nil
	}}
	src := New(Options{SecretsManager: sm, SSM: &fakeSSM{}})
	d := newDeliveries()
	keys := []Key{SecretKey("a"), SecretKey("b")}
	src.Fetch(t.Context(), keys, d.deliver)
	var e *Error
	if !errors.As(d.once(t, keys)[SecretKey("a")].err, &e) {
		t.Fatal("no *Error for a")
	}
	want := Error{Class: ClassNotFound, Code: "ResourceNotFoundException", Message: "no such secret", Key: SecretKey("a")}
	if *e != want {
		t.Errorf("error %+v, want %+v", *e, want)
	}
}

func TestFetchSecretBatchRefused(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"access denied", apiError(400, "AccessDeniedException")},
		{"unknown operation", apiError(400, "UnknownOperationException")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := &fakeSM{batch: func(*secretsmanager.BatchGetSecretValueInput) (*secretsmanager.BatchGetSecretValueOutput, error) {
				return nil, tt.err
			}}
			src := New(Options{SecretsManager: sm, SSM: &fakeSSM{}, MaxConcurrency: 2})

			first := secretKeys("a", 3)
			d := newDeliveries()
			src.Fetch(t.Context(), first, d.deliver)
			for k, dl := range d.once(t, first) {
				if want := "get:" + k.ID + "|"; dl.outcome() != want {
					t.Errorf("%v: %s, want %s", k, dl.outcome(), want)
				}
			}
			if got := sm.getIDs(); !slices.Equal(got, ids(first)) {
				t.Errorf("GetSecretValue for %v, want %v", got, ids(first))
			}

			second := secretKeys("b", 3)
			d = newDeliveries()
			src.Fetch(t.Context(), second, d.deliver)
			for k, dl := range d.once(t, second) {
				if dl.item == nil {
					t.Errorf("%v: %s", k, dl.outcome())
				}
			}
			if n := sm.batchCount(); n != 1 {
				t.Errorf("%d BatchGetSecretValue calls, want 1: a refused batch API is not asked again", n)
			}
			if got, want := sm.getIDs(), ids(slices.Concat(first, second)); !slices.Equal(got, want) {
				t.Errorf("GetSecretValue for %v, want %v", got, want)
			}
		})
	}
}

func TestFetchSecretBatchFails(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string // every key's outcome
	}{
		{"throttled", apiError(400, "ThrottlingException"), "error throttled ThrottlingException batch"},
		{"internal error", opError("BatchGetSecretValue", responseError(500, &smtypes.InternalServiceError{})), "error transient InternalServiceError batch"},
		{"unknown code, 503", apiError(503, "SomethingNew"), "error transient SomethingNew batch"},
		{"timeout", opError("BatchGetSecretValue", sendError(context.DeadlineExceeded)), "error timeout UpstreamTimeout batch"},
		{"connection reset", connReset(), "error transient UpstreamUnavailable batch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := &fakeSM{batch: func(*secretsmanager.BatchGetSecretValueInput) (*secretsmanager.BatchGetSecretValueOutput, error) {
				return nil, tt.err
			}}
			src := New(Options{SecretsManager: sm, SSM: &fakeSSM{}})
			keys := secretKeys("s", 4)
			for range 2 { // the batch API is still used after a failure
				d := newDeliveries()
				src.Fetch(t.Context(), keys, d.deliver)
				for k, dl := range d.once(t, keys) {
					if got := dl.outcome(); got != tt.want {
						t.Errorf("%v: %s, want %s", k, got, tt.want)
					}
					if !errors.Is(dl.err, tt.err) {
						t.Errorf("%v: error does not wrap the SDK error", k)
					}
				}
			}
			if n := sm.batchCount(); n != 2 {
				t.Errorf("%d BatchGetSecretValue calls, want 2", n)
			}
			if got := sm.getIDs(); len(got) != 0 {
				t.Errorf("GetSecretValue for %v after a failed batch; want none", got)
			}
		})
	}
}

func TestFetchParameterBatch(t *testing.T) {
	const otherARN = "arn:aws:ssm:us-east-1:222222222222:parameter/db"
	tests := []struct {
		name    string
		keys    []Key
		params  func(*ssm.GetParametersInput) (*ssm.GetParametersOutput, error)
		want    map[string]string // key ID → outcome
		singles []string          // GetParameter names, sorted
	}{
		{
			name: "by name, in any order",
			keys: parameterKeys("/p/", 3, true),
			params: func(*ssm.GetParametersInput) (*ssm.GetParametersOutput, error) {
				return &ssm.GetParametersOutput{Parameters: []ssmtypes.Parameter{*param("/p/02", "2"), *param("/p/00", "0"), *param("/p/01", "1")}}, nil
			},
			want: map[string]string{"/p/00": "0", "/p/01": "1", "/p/02": "2"},
		},
		{
			name: "by ARN",
			keys: []Key{ParameterKey(parameterARNOf("/a")), ParameterKey(parameterARNOf("/b"))},
			params: func(*ssm.GetParametersInput) (*ssm.GetParametersOutput, error) {
				return &ssm.GetParametersOutput{Parameters: []ssmtypes.Parameter{*param("/a", "A"), *param("/b", "B")}}, nil
			},
			want: map[string]string{parameterARNOf("/a"): "A", parameterARNOf("/b"): "B"},
		},
		{
			name: "invalid parameters are not found",
			keys: parameterKeys("/p/", 3, true),
			params: func(*ssm.GetParametersInput) (*ssm.GetParametersOutput, error) {
				return &ssm.GetParametersOutput{Parameters: []ssmtypes.Parameter{*param("/p/01", "1")}, InvalidParameters: []string{"/p/00", "/p/02"}}, nil
			},
			want: map[string]string{
				"/p/00": "error not_found ParameterNotFound",
				"/p/01": "1",
				"/p/02": "error not_found ParameterNotFound",
			},
		},
		{
			name: "names in neither list are fetched alone",
			keys: parameterKeys("/p/", 4, true),
			params: func(*ssm.GetParametersInput) (*ssm.GetParametersOutput, error) {
				return &ssm.GetParametersOutput{Parameters: []ssmtypes.Parameter{*param("/p/01", "1")}, InvalidParameters: []string{"/p/03"}}, nil
			},
			want: map[string]string{
				"/p/00": "get:/p/00|decrypt=true",
				"/p/01": "1",
				"/p/02": "get:/p/02|decrypt=true",
				"/p/03": "error not_found ParameterNotFound",
			},
			singles: []string{"/p/00", "/p/02"},
		},
		{
			// A parameter shared from another account, asked for by ARN,
			// must not answer for this account's parameter of that name.
			name: "same name in another account",
			keys: []Key{ParameterKey("/db"), ParameterKey(otherARN)},
			params: func(*ssm.GetParametersInput) (*ssm.GetParametersOutput, error) {
				other := param("/db", "OTHER")
				other.ARN = aws.String(otherARN)
				return &ssm.GetParametersOutput{Parameters: []ssmtypes.Parameter{*other, *param("/db", "MINE")}}, nil
			},
			want: map[string]string{"/db": "MINE", otherARN: "OTHER"},
		},
		{
			// IAM judges every name of the call: one denied name must not
			// deny its neighbours, so each gets its own GetParameter.
			name: "a denied call is retried name by name",
			keys: parameterKeys("/p/", 3, true),
			params: func(*ssm.GetParametersInput) (*ssm.GetParametersOutput, error) {
				return nil, apiError(400, "AccessDeniedException")
			},
			want: map[string]string{
				"/p/00": "get:/p/00|decrypt=true",
				"/p/01": "get:/p/01|decrypt=true",
				"/p/02": "get:/p/02|decrypt=true",
			},
			singles: []string{"/p/00", "/p/01", "/p/02"},
		},
		{
			name: "a failed call fails every key, without fallback",
			keys: parameterKeys("/p/", 3, false),
			params: func(*ssm.GetParametersInput) (*ssm.GetParametersOutput, error) {
				return nil, apiError(400, "ThrottlingException")
			},
			want: map[string]string{
				"/p/00": "error throttled ThrottlingException batch",
				"/p/01": "error throttled ThrottlingException batch",
				"/p/02": "error throttled ThrottlingException batch",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := &fakeSSM{params: tt.params}
			src := New(Options{SecretsManager: &fakeSM{}, SSM: ps, MaxConcurrency: 2})
			d := newDeliveries()
			src.Fetch(t.Context(), tt.keys, d.deliver)
			for k, dl := range d.once(t, tt.keys) {
				if got := dl.outcome(); got != tt.want[k.ID] {
					t.Errorf("%v: %s, want %s", k, got, tt.want[k.ID])
				}
			}
			if n := len(ps.paramsIns); n != 1 {
				t.Errorf("%d GetParameters calls, want 1", n)
			}
			if got := ps.paramNames(); !slices.Equal(got, tt.singles) {
				t.Errorf("GetParameter for %v, want %v", got, tt.singles)
			}
		})
	}
}

func TestFetchOne(t *testing.T) {
	notFound := opError("GetParameter", responseError(400, &ssmtypes.ParameterVersionNotFound{}))
	tests := []struct {
		name string
		key  Key
		want string
		call string // the input the fake saw, rendered
	}{
		{"secret version", Key{Service: SecretsManager, ID: "db", VersionID: "v-2"}, "get:db|v-2", "GetSecretValue db v-2"},
		{"plain secret", SecretKey("db"), "get:db|", "GetSecretValue db "},
		{"parameter label", Key{Service: ParameterStore, ID: "/p", Selector: ":prod", Decrypt: true}, "get:/p:prod|decrypt=true", "GetParameter /p:prod true"},
		{"plain parameter", Key{Service: ParameterStore, ID: "/p"}, "get:/p|decrypt=false", "GetParameter /p false"},
		{"missing version", Key{Service: ParameterStore, ID: "/gone", Selector: ":9"}, "error not_found ParameterVersionNotFound", "GetParameter /gone:9 false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := &fakeSM{}
			ps := &fakeSSM{param: func(in *ssm.GetParameterInput) (*ssm.GetParameterOutput, error) {
				if aws.ToString(in.Name) == "/gone:9" {
					return nil, notFound
				}
				n := aws.ToString(in.Name)
				return &ssm.GetParameterOutput{Parameter: param(n, fmt.Sprintf("get:%s|decrypt=%t", n, aws.ToBool(in.WithDecryption)))}, nil
			}}
			src := New(Options{SecretsManager: sm, SSM: ps})
			item, err := src.FetchOne(t.Context(), tt.key)
			if got := (delivery{item, err}).outcome(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if item != nil && item.Key != tt.key {
				t.Errorf("item key %v, want %v", item.Key, tt.key)
			}
			var calls []string
			for _, in := range sm.gets {
				calls = append(calls, "GetSecretValue "+aws.ToString(in.SecretId)+" "+aws.ToString(in.VersionId))
			}
			for _, in := range ps.paramIns {
				calls = append(calls, fmt.Sprintf("GetParameter %s %t", aws.ToString(in.Name), aws.ToBool(in.WithDecryption)))
			}
			if !slices.Equal(calls, []string{tt.call}) {
				t.Errorf("calls %q, want %q", calls, tt.call)
			}
		})
	}
}

func TestFetchPath(t *testing.T) {
	page := func(token string, names ...string) *ssm.GetParametersByPathOutput {
		out := &ssm.GetParametersByPathOutput{}
		if token != "" {
			out.NextToken = aws.String(token)
		}
		for _, n := range names {
			out.Parameters = append(out.Parameters, *param(n, "v"+n))
		}
		return out
	}
	tests := []struct {
		name      string
		recursive bool
		pages     map[string]*ssm.GetParametersByPathOutput // by NextToken asked with
		fail      map[string]error                          // by NextToken asked with
		wantN     int
		wantErr   string // outcome of the error, "" for none
		wantNames []string
		wantTok   []string // NextToken of each call
	}{
		{
			name:      "three pages, recursive",
			recursive: true,
			pages: map[string]*ssm.GetParametersByPathOutput{
				"":   page("t1", "/app/a", "/app/b"),
				"t1": page("t2", "/app/x/c"),
				"t2": page("", "/app/x/d", "/app/y/e"),
			},
			wantN:     5,
			wantNames: []string{"/app/a", "/app/b", "/app/x/c", "/app/x/d", "/app/y/e"},
			wantTok:   []string{"", "t1", "t2"},
		},
		{
			name:      "one page, not recursive",
			pages:     map[string]*ssm.GetParametersByPathOutput{"": page("", "/app/a")},
			wantN:     1,
			wantNames: []string{"/app/a"},
			wantTok:   []string{""},
		},
		{
			name:      "an empty page with a token is followed",
			pages:     map[string]*ssm.GetParametersByPathOutput{"": page("t1"), "t1": page("", "/app/a")},
			wantN:     1,
			wantNames: []string{"/app/a"},
			wantTok:   []string{"", "t1"},
		},
		{
			name:      "the second page fails",
			recursive: true,
			pages:     map[string]*ssm.GetParametersByPathOutput{"": page("t1", "/app/a", "/app/b")},
			fail:      map[string]error{"t1": apiError(400, "ThrottlingException")},
			wantN:     2,
			wantErr:   "error throttled ThrottlingException",
			wantNames: []string{"/app/a", "/app/b"},
			wantTok:   []string{"", "t1"},
		},
		{
			name:    "the first page fails",
			fail:    map[string]error{"": apiError(400, "AccessDeniedException")},
			wantErr: "error access_denied AccessDeniedException",
			wantTok: []string{""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := &fakeSSM{path: func(in *ssm.GetParametersByPathInput) (*ssm.GetParametersByPathOutput, error) {
				tok := aws.ToString(in.NextToken)
				if err := tt.fail[tok]; err != nil {
					return nil, err
				}
				if p := tt.pages[tok]; p != nil {
					return p, nil
				}
				return nil, fmt.Errorf("unexpected token %q", tok)
			}}
			src := New(Options{SecretsManager: &fakeSM{}, SSM: ps})
			var delivered []string
			n, err := src.FetchPath(t.Context(), "/app", tt.recursive, func(k Key, it *Item, err error) {
				if err != nil || it == nil || k != ParameterKey(k.ID) || it.Key != k || textOf(it) != "v"+k.ID {
					t.Errorf("delivered %v, %v, %v", k, it, err)
				}
				delivered = append(delivered, k.ID)
			})
			if n != tt.wantN {
				t.Errorf("n = %d, want %d", n, tt.wantN)
			}
			if !slices.Equal(delivered, tt.wantNames) {
				t.Errorf("delivered %v, want %v", delivered, tt.wantNames)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tt.wantErr != "":
				if got := (delivery{err: err}).outcome(); err == nil || got != tt.wantErr {
					t.Errorf("error %v (%s), want %s", err, got, tt.wantErr)
				}
				var e *Error
				if errors.As(err, &e) && e.Key != (Key{Service: ParameterStore, ID: "/app"}) {
					t.Errorf("error key %v", e.Key)
				}
			}
			var toks []string
			for _, in := range ps.pathIns {
				toks = append(toks, aws.ToString(in.NextToken))
				if aws.ToString(in.Path) != "/app" || in.Recursive == nil || *in.Recursive != tt.recursive ||
					!aws.ToBool(in.WithDecryption) || aws.ToInt32(in.MaxResults) != 10 {
					t.Errorf("input Path=%q Recursive=%v WithDecryption=%v MaxResults=%v",
						aws.ToString(in.Path), in.Recursive, in.WithDecryption, aws.ToInt32(in.MaxResults))
				}
			}
			if !slices.Equal(toks, tt.wantTok) {
				t.Errorf("NextTokens %q, want %q", toks, tt.wantTok)
			}
		})
	}
}

func TestMaxConcurrency(t *testing.T) {
	keys := slices.Concat(
		secretKeys("s", 25), // 2 BatchGetSecretValue
		[]Key{ // 3 GetSecretValue
			{Service: SecretsManager, ID: "v", VersionID: "1"},
			{Service: SecretsManager, ID: "v", VersionID: "2"},
			{Service: SecretsManager, ID: "v", VersionStage: "AWSPREVIOUS"},
		},
		parameterKeys("/p/", 12, true), // 2 GetParameters
		parameterKeys("/q/", 3, false), // 1 GetParameters
		[]Key{ // 4 GetParameter
			{Service: ParameterStore, ID: "/r", Selector: ":1"},
			{Service: ParameterStore, ID: "/r", Selector: ":2"},
			{Service: ParameterStore, ID: "/r", Selector: ":3"},
			ParameterKey(SecretsManagerReferencePrefix + "db"),
		},
	)
	const calls = 2 + 3 + 2 + 1 + 4
	for _, limit := range []int{1, 3, 8, calls + 5} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newCallGate()
				src := New(Options{SecretsManager: &fakeSM{gate: g}, SSM: &fakeSSM{gate: g}, MaxConcurrency: limit})
				d := newDeliveries()
				done := make(chan struct{})
				go func() {
					defer close(done)
					src.Fetch(t.Context(), keys, d.deliver)
				}()
				for released := range calls {
					synctest.Wait() // every goroutine is in a call or waiting for a slot
					want := min(limit, calls-released)
					if inflight, _ := g.counts(); inflight != want {
						t.Fatalf("after %d calls ended: %d in flight, want %d", released, inflight, want)
					}
					g.release <- struct{}{}
				}
				<-done
				if _, peak := g.counts(); peak != min(limit, calls) {
					t.Errorf("peak %d calls in flight, want %d", peak, min(limit, calls))
				}
				d.once(t, keys)
			})
		})
	}
}

func TestCallTimeouts(t *testing.T) {
	tests := []struct {
		name        string
		smTO, ssmTO time.Duration
		want        map[string]time.Duration // per operation; absent: no deadline
	}{
		{
			name: "both",
			smTO: 2 * time.Second, ssmTO: 5 * time.Second,
			want: map[string]time.Duration{
				"GetSecretValue": 2 * time.Second, "BatchGetSecretValue": 2 * time.Second,
				"GetParameter": 5 * time.Second, "GetParameters": 5 * time.Second, "GetParametersByPath": 5 * time.Second,
			},
		},
		{
			name: "secrets only",
			smTO: 3 * time.Second,
			want: map[string]time.Duration{"GetSecretValue": 3 * time.Second, "BatchGetSecretValue": 3 * time.Second},
		},
		{
			name:  "parameters only",
			ssmTO: time.Second,
			want: map[string]time.Duration{
				"GetParameter": time.Second, "GetParameters": time.Second, "GetParametersByPath": time.Second,
			},
		},
		{name: "none", want: map[string]time.Duration{}},
	}
	keys := slices.Concat(
		[]Key{{Service: SecretsManager, ID: "v", VersionID: "1"}}, // GetSecretValue
		secretKeys("s", 2),            // BatchGetSecretValue
		parameterKeys("/p/", 2, true), // GetParameters
		[]Key{{Service: ParameterStore, ID: "/r", Selector: ":1"}}, // GetParameter
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// In a bubble the clock stands still while the code runs, so the
			// time left is exactly the timeout.
			synctest.Test(t, func(t *testing.T) {
				sm, ps := &fakeSM{}, &fakeSSM{}
				src := New(Options{SecretsManager: sm, SSM: ps, MaxConcurrency: 4, SecretsTimeout: tt.smTO, ParametersTimeout: tt.ssmTO})
				d := newDeliveries()
				src.Fetch(t.Context(), keys, d.deliver)
				if _, err := src.FetchPath(t.Context(), "/p", false, d.deliver); err != nil {
					t.Fatal(err)
				}
				seen := map[string]bool{}
				for _, c := range slices.Concat(sm.calls, ps.calls) {
					seen[c.op] = true
					want, ok := tt.want[c.op]
					if c.hasDeadline != ok || c.remaining != want {
						t.Errorf("%s: deadline %t in %v; want %t in %v", c.op, c.hasDeadline, c.remaining, ok, want)
					}
				}
				if len(seen) != 5 {
					t.Errorf("saw operations %v, want all five", seen)
				}
			})
		})
	}
}

func TestCanceledWaitingForSlot(t *testing.T) {
	tests := []struct {
		name     string
		key      Key
		ctx      func(context.Context) (context.Context, context.CancelFunc)
		cancel   bool // cancel, rather than wait for the deadline
		wantCode string
		wantErr  error
	}{
		{
			name: "secret, canceled",
			key:  Key{Service: SecretsManager, ID: "waiter", VersionStage: "AWSPREVIOUS"},
			ctx:  context.WithCancel, cancel: true, wantCode: "Canceled", wantErr: context.Canceled,
		},
		{
			name: "parameter, deadline",
			key:  ParameterKey("/waiter"),
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, time.Second)
			},
			wantCode: "UpstreamTimeout", wantErr: context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newCallGate()
				sm, ps := &fakeSM{gate: g}, &fakeSSM{gate: g}
				src := New(Options{SecretsManager: sm, SSM: ps, MaxConcurrency: 1})

				holderDone := make(chan struct{})
				go func() {
					defer close(holderDone)
					src.Fetch(t.Context(), []Key{SecretKey("holder")}, func(Key, *Item, error) {})
				}()
				synctest.Wait() // the holder's call has the only slot

				ctx, cancel := tt.ctx(t.Context())
				defer cancel()
				d := newDeliveries()
				waiterDone := make(chan struct{})
				go func() {
					defer close(waiterDone)
					src.Fetch(ctx, []Key{tt.key}, d.deliver)
				}()
				synctest.Wait() // the waiter waits for the slot
				if tt.cancel {
					cancel()
				}
				<-waiterDone // with every goroutine blocked, the bubble's clock reaches any deadline

				dl := d.once(t, []Key{tt.key})[tt.key]
				var e *Error
				if !errors.As(dl.err, &e) || e.Class != ClassTimeout || e.Code != tt.wantCode {
					t.Errorf("delivered %s, want timeout %s", dl.outcome(), tt.wantCode)
				}
				if !errors.Is(dl.err, tt.wantErr) {
					t.Errorf("error %v does not wrap %v", dl.err, tt.wantErr)
				}
				if n := sm.callCount() + ps.callCount(); n != 1 {
					t.Errorf("%d calls made, want only the holder's", n)
				}
				g.release <- struct{}{}
				<-holderDone
			})
		})
	}
}

func textOf(it *Item) string {
	v, _ := it.StringValue()
	return string(v)
}
