package source

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
)

func TestARNRegion(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"arn:aws:secretsmanager:eu-west-1:111111111111:secret:app/db-AbCdEf", "eu-west-1"},
		{"arn:aws:ssm:us-west-2:111111111111:parameter/app/port", "us-west-2"},
		{"arn:aws-cn:secretsmanager:cn-north-1:111111111111:secret:x", "cn-north-1"},
		{"arn:aws:secretsmanager::111111111111:secret:x", ""},
		{"arn:aws:secretsmanager:eu-west-1", ""},
		{"app/db", ""},
		{"/app/arn:aws:ssm:eu-west-1:1:parameter/x", ""},
		{"", ""},
	} {
		if got := ARNRegion(tc.id); got != tc.want {
			t.Errorf("ARNRegion(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
}

func FuzzARNRegion(f *testing.F) {
	f.Add("arn:aws:secretsmanager:eu-west-1:111111111111:secret:app/db-AbCdEf")
	f.Add("arn:aws:ssm:us-west-2:1:parameter/a")
	f.Add("arn::::")
	f.Fuzz(func(t *testing.T, id string) {
		r := ARNRegion(id)
		if r == "" {
			return
		}
		// A region is the fourth field of an ARN, never more than that.
		if !slices.Contains([]byte(id), ':') || len(r) >= len(id) {
			t.Fatalf("ARNRegion(%q) = %q", id, r)
		}
		for i := 0; i < len(r); i++ {
			if r[i] == ':' {
				t.Fatalf("ARNRegion(%q) = %q holds a colon", id, r)
			}
		}
	})
}

// regions is a ClientFactory over fakes, one pair per region, recording
// how often each region's clients were made.
type regions struct {
	mu    sync.Mutex
	sm    map[string]*fakeSM
	ssm   map[string]*fakeSSM
	made  map[string]int
	fails map[string]bool
}

func newRegions() *regions {
	return &regions{sm: map[string]*fakeSM{}, ssm: map[string]*fakeSSM{}, made: map[string]int{}, fails: map[string]bool{}}
}

func (r *regions) factory(region, _ string) (SecretsManagerAPI, SSMAPI, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.made[region]++
	if r.fails[region] {
		return nil, nil, errors.New("no such region")
	}
	if r.sm[region] == nil {
		r.sm[region], r.ssm[region] = &fakeSM{}, &fakeSSM{}
	}
	return r.sm[region], r.ssm[region], nil
}

func TestFetchRoutesByARNRegion(t *testing.T) {
	home, homeSSM := &fakeSM{}, &fakeSSM{}
	rs := newRegions()
	s := New(Options{SecretsManager: home, SSM: homeSSM, HomeRegion: "us-east-1", NewClients: rs.factory, MaxConcurrency: 4})

	arn := func(region, name string) string {
		return "arn:aws:secretsmanager:" + region + ":" + testAccount + ":secret:" + name + "-AbCdEf"
	}
	var keys []Key
	for _, n := range []string{"a", "b", "c"} {
		keys = append(keys, SecretKey(n), SecretKey(arn("us-east-1", n)), SecretKey(arn("eu-west-1", n)), SecretKey(arn("us-west-2", n)))
	}
	keys = append(keys,
		ParameterKey("arn:aws:ssm:eu-west-1:"+testAccount+":parameter/app/x"),
		ParameterKey("arn:aws:ssm:eu-west-1:"+testAccount+":parameter/app/y"),
		ParameterKey("/app/home"))
	d := newDeliveries()
	s.Fetch(context.Background(), keys, d.deliver)
	d.once(t, keys)

	batchIDs := func(f *fakeSM) []string {
		f.mu.Lock()
		defer f.mu.Unlock()
		var ids []string
		for _, b := range f.batches {
			ids = append(ids, b.SecretIdList...)
		}
		slices.Sort(ids)
		return ids
	}
	// The home region gets names and its own ARNs, in one batch.
	wantHome := []string{"a", "b", "c", arn("us-east-1", "a"), arn("us-east-1", "b"), arn("us-east-1", "c")}
	slices.Sort(wantHome)
	if got := batchIDs(home); !slices.Equal(got, wantHome) || home.batchCount() != 1 {
		t.Errorf("home batches: %d asking %q, want 1 asking %q", home.batchCount(), got, wantHome)
	}
	for _, region := range []string{"eu-west-1", "us-west-2"} {
		want := []string{arn(region, "a"), arn(region, "b"), arn(region, "c")}
		if got := batchIDs(rs.sm[region]); !slices.Equal(got, want) || rs.sm[region].batchCount() != 1 {
			t.Errorf("%s batches: %d asking %q, want 1 asking %q", region, rs.sm[region].batchCount(), got, want)
		}
	}
	rs.ssm["eu-west-1"].mu.Lock()
	if n := len(rs.ssm["eu-west-1"].paramsIns); n != 1 {
		t.Errorf("eu-west-1 GetParameters calls = %d, want 1 for both parameter ARNs", n)
	}
	rs.ssm["eu-west-1"].mu.Unlock()
	if n := homeSSM.callCount(); n != 1 {
		t.Errorf("home SSM calls = %d, want 1 (GetParameter /app/home)", n)
	}

	// Clients are made once per region, and reused.
	if _, err := s.FetchOne(context.Background(), SecretKey(arn("eu-west-1", "d"))); err != nil {
		t.Fatal(err)
	}
	if rs.made["eu-west-1"] != 1 || rs.made["us-west-2"] != 1 || rs.made["us-east-1"] != 0 {
		t.Errorf("clients made per region = %v, want eu-west-1 and us-west-2 once, the home region never", rs.made)
	}
}

func TestFetchRegionWithoutClients(t *testing.T) {
	rs := newRegions()
	rs.fails["mars-1"] = true
	s := New(Options{SecretsManager: &fakeSM{}, SSM: &fakeSSM{}, HomeRegion: "us-east-1", NewClients: rs.factory})
	k := SecretKey("arn:aws:secretsmanager:mars-1:" + testAccount + ":secret:x")
	d := newDeliveries()
	s.Fetch(context.Background(), []Key{k, SecretKey("home")}, d.deliver)
	got := d.once(t, []Key{k, SecretKey("home")})
	var serr *Error
	if !errors.As(got[k].err, &serr) || serr.Code != "ClientUnavailable" || serr.Class != ClassInvalid {
		t.Errorf("fetch in a region without clients = %v, want ClientUnavailable (invalid)", got[k].err)
	}
	if got[SecretKey("home")].err != nil {
		t.Errorf("home key failed alongside: %v", got[SecretKey("home")].err)
	}
}

// roleFactory records the (region, role) pairs it made clients for.
type roleFactory struct {
	mu   sync.Mutex
	made map[[2]string]*fakeSM
}

func (r *roleFactory) factory(region, role string) (SecretsManagerAPI, SSMAPI, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sm := &fakeSM{}
	r.made[[2]string{region, role}] = sm
	return sm, &fakeSSM{}, nil
}

func TestFetchAsRoles(t *testing.T) {
	const roleA, roleB, roleC = "arn:aws:iam::222222222222:role/a", "arn:aws:iam::222222222222:role/b", "arn:aws:iam::222222222222:role/c"
	home := &fakeSM{}
	rf := &roleFactory{made: map[[2]string]*fakeSM{}}
	s := New(Options{SecretsManager: home, SSM: &fakeSSM{}, HomeRegion: "us-east-1", NewClients: rf.factory, MaxRoles: 2})
	westARN := "arn:aws:secretsmanager:us-west-2:" + testAccount + ":secret:x-AbCdEf"
	as := func(k Key, role string) Key { k.Role = role; return k }
	keys := []Key{SecretKey("x"), SecretKey("y"), as(SecretKey("x"), roleA), as(SecretKey("y"), roleA), as(SecretKey("x"), roleB), as(SecretKey(westARN), roleA)}
	d := newDeliveries()
	s.Fetch(context.Background(), keys, d.deliver)
	got := d.once(t, keys)
	for _, k := range keys {
		if got[k].err != nil {
			t.Errorf("%s: %v", k, got[k].err)
		}
	}
	for pair, n := range map[[2]string]int{{"", roleA}: 2, {"", roleB}: 1, {"us-west-2", roleA}: 1} {
		sm := rf.made[pair]
		if sm == nil || sm.callCount() != 1 {
			t.Errorf("clients for %v: %v, want one call fetching %d", pair, sm, n)
		}
	}
	if home.batchCount() != 1 || len(rf.made) != 3 {
		t.Errorf("home batches %d, clients made %v; want 1 and 3", home.batchCount(), len(rf.made))
	}
	// A third role is refused, the two known still served.
	_, err := s.FetchOne(context.Background(), as(SecretKey("z"), roleC))
	var serr *Error
	if !errors.As(err, &serr) || serr.Code != "TooManyRoles" || serr.Class != ClassInvalid {
		t.Errorf("a third role: %v, want TooManyRoles", err)
	}
	if _, err := s.FetchOne(context.Background(), as(SecretKey("z"), roleB)); err != nil {
		t.Errorf("a known role after the limit: %v", err)
	}
}

func TestRoleErrorsAreTheirOwn(t *testing.T) {
	const role = "arn:aws:iam::222222222222:role/a"
	k := SecretKey("x")
	k.Role = role
	for _, tc := range []struct {
		inner     error
		code      string
		class     Class
		mentioned string
	}{
		{&smithyErr{code: "AccessDenied", msg: "not authorized to perform: sts:AssumeRole"}, "AssumeRoleDenied", ClassAccessDenied, "AccessDenied"},
		{&smithyErr{code: "RegionDisabledException", msg: "STS is not activated"}, "AssumeRoleFailed", ClassOther, "RegionDisabledException"},
		{&smithyErr{code: "Throttling", msg: "Rate exceeded"}, "AssumeRoleFailed", ClassThrottled, "Throttling"},
	} {
		// As the SDK's credentials cache wraps a provider's error.
		err := classify(k, fmt.Errorf("failed to refresh cached credentials, %w", &RoleError{Role: role, Err: tc.inner}))
		if err.Code != tc.code || err.Class != tc.class || !strings.Contains(err.Message, tc.mentioned) || !strings.Contains(err.Message, role) {
			t.Errorf("%v classified as %s/%s %q, want %s/%s naming %s and the role", tc.inner, err.Code, err.Class, err.Message, tc.code, tc.class, tc.mentioned)
		}
	}
}

type smithyErr struct{ code, msg string }

func (e *smithyErr) Error() string                 { return e.code + ": " + e.msg }
func (e *smithyErr) ErrorCode() string             { return e.code }
func (e *smithyErr) ErrorMessage() string          { return e.msg }
func (e *smithyErr) ErrorFault() smithy.ErrorFault { return smithy.FaultClient }

func TestFailoverToReplicas(t *testing.T) {
	const west = "us-west-2"
	homeARN := "arn:aws:secretsmanager:us-east-1:" + testAccount + ":secret:app/db-AbCdEf"
	westARN := "arn:aws:secretsmanager:us-west-2:" + testAccount + ":secret:app/db-AbCdEf"
	otherARN := "arn:aws:secretsmanager:eu-west-1:" + testAccount + ":secret:x-AbCdEf"
	var homeErr error
	home := &fakeSM{
		batch: func(*secretsmanager.BatchGetSecretValueInput) (*secretsmanager.BatchGetSecretValueOutput, error) {
			return nil, homeErr
		},
		get: func(in *secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error) {
			if homeErr != nil {
				return nil, homeErr
			}
			return getSecretOK(in)
		},
	}
	rs := newRegions()
	s := New(Options{SecretsManager: home, SSM: &fakeSSM{}, HomeRegion: "us-east-1", NewClients: rs.factory, FailoverRegion: west})
	keys := []Key{SecretKey("app/db"), SecretKey(homeARN), SecretKey("missing"), SecretKey(otherARN)}
	rs.factory(west, "") // make the replica region's fakes, to script them
	rs.sm[west].batch = func(in *secretsmanager.BatchGetSecretValueInput) (*secretsmanager.BatchGetSecretValueOutput, error) {
		out := &secretsmanager.BatchGetSecretValueOutput{}
		for _, id := range in.SecretIdList {
			if id != "missing" {
				out.SecretValues = append(out.SecretValues, batchEntry(id, id, "replica:"+id))
			}
		}
		return out, nil
	}
	rs.sm[west].get = func(in *secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error) {
		return nil, &smithyErr{code: "ResourceNotFoundException", msg: "no replica"}
	}

	for _, tc := range []struct {
		name     string
		err      error
		failover bool
	}{
		{"5xx", &smithyErr{code: "InternalServiceError", msg: "down"}, true},
		{"throttling", &smithyErr{code: "ThrottlingException", msg: "Rate exceeded"}, false},
		{"access denied", &smithyErr{code: "AccessDeniedException", msg: "no"}, false},
		{"not found", &smithyErr{code: "ResourceNotFoundException", msg: "no"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			homeErr = tc.err
			before := s.Stats().Failovers
			d := newDeliveries()
			s.Fetch(context.Background(), keys, d.deliver)
			got := d.once(t, keys)
			if !tc.failover {
				for _, k := range keys[:3] {
					if got[k].err == nil || got[k].item != nil {
						t.Errorf("%s: %v, want the home region's error", k, got[k])
					}
				}
				if s.Stats().Failovers != before {
					t.Errorf("failovers counted for %s", tc.name)
				}
				return
			}
			for k, want := range map[Key]string{keys[0]: "replica:app/db", keys[1]: "replica:" + westARN} {
				it := got[k].item
				if it == nil || string(it.Text) != want && !strings.Contains(string(it.Body), want) || it.Region != west || it.Key != k {
					t.Errorf("%s: %+v, want %s from %s under the original key", k, got[k], want, west)
				}
			}
			// The replica lacks it: the home region's error, not "not found".
			var serr *Error
			if !errors.As(got[keys[2]].err, &serr) || serr.Class != ClassTransient || serr.Key != keys[2] {
				t.Errorf("missing: %v, want the home region's transient error", got[keys[2]].err)
			}
			// An ARN of another region is not the home region's to fail over.
			if got[keys[3]].err != nil || got[keys[3]].item.Region != "" {
				t.Errorf("eu-west-1 ARN: %+v", got[keys[3]])
			}
			if n := s.Stats().Failovers - before; n != 3 {
				t.Errorf("failovers = %d, want 3", n)
			}
		})
	}
	// The home region answers again: no replica is read.
	homeErr = nil
	calls := rs.sm[west].callCount()
	it, err := s.FetchOne(context.Background(), SecretKey("app/db"))
	if err != nil || it.Region != "" || rs.sm[west].callCount() != calls {
		t.Errorf("after recovery: %v %v, replica calls %d -> %d", it, err, calls, rs.sm[west].callCount())
	}
}

func TestReplicaID(t *testing.T) {
	for id, want := range map[string]string{
		"app/db": "app/db",
		"arn:aws:secretsmanager:us-east-1:111111111111:secret:app/db-AbCdEf": "arn:aws:secretsmanager:us-west-2:111111111111:secret:app/db-AbCdEf",
		"arn:aws:secretsmanager:us-east-1:111111111111:secret:a:b-AbCdEf":    "arn:aws:secretsmanager:us-west-2:111111111111:secret:a:b-AbCdEf",
	} {
		if got := replicaID(id, "us-west-2"); got != want {
			t.Errorf("replicaID(%q) = %q, want %q", id, got, want)
		}
	}
}

// listingSM is a Secrets Manager client that lists a fixed set of secrets,
// two a page, applying no filter (the source must check every entry).
type listingSM struct {
	fakeSM
	entries []smtypes.SecretListEntry
	pages   int
	filters [][]smtypes.Filter
}

func (l *listingSM) ListSecrets(_ context.Context, in *secretsmanager.ListSecretsInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretsOutput, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pages++
	l.filters = append(l.filters, in.Filters)
	start := 0
	if in.NextToken != nil {
		fmt.Sscan(*in.NextToken, &start)
	}
	end := min(start+2, len(l.entries))
	out := &secretsmanager.ListSecretsOutput{SecretList: l.entries[start:end]}
	if end < len(l.entries) {
		out.NextToken = aws.String(fmt.Sprint(end))
	}
	return out, nil
}

func TestListSelection(t *testing.T) {
	entry := func(name string, tags ...string) smtypes.SecretListEntry {
		e := smtypes.SecretListEntry{Name: aws.String(name)}
		for i := 0; i+1 < len(tags); i += 2 {
			e.Tags = append(e.Tags, smtypes.Tag{Key: aws.String(tags[i]), Value: aws.String(tags[i+1])})
		}
		return e
	}
	sm := &listingSM{entries: []smtypes.SecretListEntry{
		entry("a", "team", "pay"), entry("b", "team", "payments"), entry("c", "teams", "pay"),
		entry("d", "x", "1", "team", "pay"), entry("app/e"), entry("apps/f", "team", "x"), entry("", "team", "pay"),
	}}
	s := New(Options{SecretsManager: sm, SSM: &fakeSSM{}})
	names, err := s.ListSelection(context.Background(), Selection{TagKey: "team", TagValue: "pay"})
	if err != nil || !slices.Equal(names, []string{"a", "d"}) {
		t.Errorf("tag:team=pay = %q, %v; want exactly a and d", names, err)
	}
	if sm.pages != 4 || s.Stats().Calls[APIListSecrets] != 4 {
		t.Errorf("pages %d, ListSecrets calls %d; want 4 (two entries a page)", sm.pages, s.Stats().Calls[APIListSecrets])
	}
	if f := sm.filters[0]; len(f) != 2 || f[0].Key != smtypes.FilterNameStringTypeTagKey || f[0].Values[0] != "team" || f[1].Values[0] != "pay" {
		t.Errorf("filters %+v, want tag-key team and tag-value pay", f)
	}
	names, err = s.ListSelection(context.Background(), Selection{Prefix: "app/"})
	if err != nil || !slices.Equal(names, []string{"app/e"}) {
		t.Errorf("prefix:app/ = %q, %v", names, err)
	}
	// A client that can't list.
	if _, err := New(Options{SecretsManager: &fakeSM{}, SSM: &fakeSSM{}}).ListSelection(context.Background(), Selection{Prefix: "x"}); err == nil {
		t.Error("listing with a client without ListSecrets succeeded")
	}
}
