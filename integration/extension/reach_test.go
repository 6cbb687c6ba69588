package extension_test

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/app"
	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
)

// An ARN of another region is fetched from that region's endpoint: the
// extension's SDK clients for it sign for that region, and the emulated
// AWS answers from that region's store only. Batches are per region.
func TestARNsOfAnotherRegion(t *testing.T) {
	const west = "us-west-2"
	var westARNs []string
	var westAWS *awstest.AWS
	env := map[string]string{"SECRETS_PREFETCH_REQUIRED": "true"}
	e := exttest.Start(t, exttest.Setup{
		Env: env,
		Seed: func(ctx context.Context, a *awstest.AWS) {
			westAWS = a.AddRegion(west)
			for _, n := range []string{"db", "api", "late"} {
				westARNs = append(westARNs, exttest.Must[string](t)(westAWS.PutSecretString(ctx, n, "wval-"+n)))
			}
			// The same names at home hold other values: a read routed to
			// the wrong region would show it.
			for _, n := range []string{"db", "home-only"} {
				exttest.Must[string](t)(a.PutSecretString(ctx, n, "home-"+n))
			}
			exttest.Must[int64](t)(westAWS.PutParameter(ctx, "/app/region", "west", "String"))
			exttest.Must[int64](t)(a.PutParameter(ctx, "/app/region", "home", "String"))
			env["SECRETS_PREFETCH_SECRETS"] = "db,home-only," + westARNs[0] + "," + westARNs[1]
			env["SECRETS_PREFETCH_PARAMETERS"] = "/app/region,arn:aws:ssm:" + west + ":000000000000:parameter/app/region"
		},
	})
	e.WaitReady(t)
	a := e.AWS

	for _, tc := range []struct{ path, want string }{
		{exttest.SecretPath("db"), "home-db"},
		{exttest.SecretPath("home-only"), "home-home-only"},
		{exttest.SecretPath(url.QueryEscape(westARNs[0])), "wval-db"},
		{exttest.SecretPath(url.QueryEscape(westARNs[1])), "wval-api"},
		{exttest.ParamPath("/app/region"), "home"},
		{exttest.ParamPath(url.QueryEscape("arn:aws:ssm:" + west + ":000000000000:parameter/app/region")), "west"},
	} {
		r := e.Get(t, tc.path)
		if v := exttest.ValueOf(t, r); v != tc.want || r.XCache != "hit" {
			t.Errorf("%s = %q (%s), want %q prefetched", tc.path, v, r.XCache, tc.want)
		}
	}
	// One batch per region: the home region never saw the other's ARNs.
	if a.Calls(awstest.OpBatchGetSecretValue) != 1 || a.Items(awstest.OpBatchGetSecretValue) != 2 {
		t.Errorf("home: %d batches of %d ids, want 1 of 2", a.Calls(awstest.OpBatchGetSecretValue), a.Items(awstest.OpBatchGetSecretValue))
	}
	if westAWS.Calls(awstest.OpBatchGetSecretValue) != 1 || westAWS.Items(awstest.OpBatchGetSecretValue) != 2 {
		t.Errorf("%s: %d batches of %d ids, want 1 of 2", west, westAWS.Calls(awstest.OpBatchGetSecretValue), westAWS.Items(awstest.OpBatchGetSecretValue))
	}
	if westAWS.Calls(awstest.OpGetParameter) != 1 || a.Calls(awstest.OpGetParameter) != 1 {
		t.Errorf("GetParameter: %s %d, home %d; want one each", west, westAWS.Calls(awstest.OpGetParameter), a.Calls(awstest.OpGetParameter))
	}

	// An unlisted ARN of that region is fetched there on first read.
	r := e.Get(t, exttest.SecretPath(url.QueryEscape(westARNs[2])))
	if v := exttest.ValueOf(t, r); v != "wval-late" || r.XCache != "miss" {
		t.Errorf("lazy read of a %s ARN = %q (%s), want wval-late (miss)", west, v, r.XCache)
	}
	if westAWS.Calls(awstest.OpGetSecretValue) != 1 || a.Calls(awstest.OpGetSecretValue) != 0 {
		t.Errorf("GetSecretValue: %s %d, home %d; want 1 and 0", west, westAWS.Calls(awstest.OpGetSecretValue), a.Calls(awstest.OpGetSecretValue))
	}
	// Refreshes keep to the region too.
	e.Clock.Advance(301e9)
	e.Invoke(t)
	if westAWS.Calls(awstest.OpBatchGetSecretValue) != 2 || a.Calls(awstest.OpBatchGetSecretValue) != 2 {
		t.Errorf("after a refresh: batches %s %d, home %d; want 2 each", west, westAWS.Calls(awstest.OpBatchGetSecretValue), a.Calls(awstest.OpBatchGetSecretValue))
	}
	if strings.Contains(e.Out.String(), "wval-") {
		t.Error("a value reached the log")
	}
}

// roleArn on reads and "|role" in prefetch entries: the extension reads as
// the role with credentials from sts:AssumeRole (the SDK's stscreds), keeps
// each role's entries apart, and bounds the roles.
func TestReadsAsRoles(t *testing.T) {
	const (
		reader = "arn:aws:iam::222222222222:role/reader"
		other  = "arn:aws:iam::222222222222:role/other"
		third  = "arn:aws:iam::222222222222:role/third"
	)
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":   "team/db|" + reader + ",open",
			"SECRETS_PREFETCH_MAX_ROLES": "2",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[string](t)(a.PutSecretString(ctx, "team/db", "rval-team"))
			exttest.Must[string](t)(a.PutSecretString(ctx, "open", "rval-open"))
			for _, r := range []string{reader, other, third} {
				a.CreateRole(r)
			}
			a.Only("team/db", reader)
		},
	})
	e.WaitReady(t)
	a := e.AWS
	as := func(id, role string) string {
		return exttest.SecretPath(url.QueryEscape(id)) + "&roleArn=" + url.QueryEscape(role)
	}

	r := e.Get(t, as("team/db", reader))
	if v := exttest.ValueOf(t, r); v != "rval-team" || r.XCache != "hit" {
		t.Errorf("team/db as reader = %q (%s), want the prefetched value", v, r.XCache)
	}
	// The entry is the role's: without it, or as another role, the read is
	// AWS's own answer for those credentials (refused), never that value.
	for _, path := range []string{exttest.SecretPath("team/db"), as("team/db", other)} {
		if r := e.Get(t, path); r.Status != 403 || r.Code() != awstest.CodeAccessDenied || strings.Contains(r.Body, "rval-") {
			t.Errorf("%s = %v, want 403 AccessDeniedException", path, r)
		}
	}
	if v := exttest.ValueOf(t, e.Get(t, as("open", other))); v != "rval-open" {
		t.Errorf("open as other = %q", v)
	}
	if a.RoleSessions(reader) != 1 || a.RoleSessions(other) != 1 {
		t.Errorf("AssumeRole sessions: reader %d, other %d; want one each, cached", a.RoleSessions(reader), a.RoleSessions(other))
	}
	// A third role is past SECRETS_PREFETCH_MAX_ROLES=2.
	if r := e.Get(t, as("open", third)); r.Status != 400 || r.Code() != "TooManyRoles" {
		t.Errorf("a third role = %v, want 400 TooManyRoles", r)
	}
	// A bad roleArn is the caller's mistake.
	if r := e.Get(t, exttest.SecretPath("open")+"&roleArn=reader"); r.Status != 400 || r.Code() != "InvalidParameterValue" {
		t.Errorf("roleArn=reader = %v, want 400 InvalidParameterValue", r)
	}
}

// A role that cannot be assumed is told apart from a read AWS refused.
func TestAssumeRoleFailures(t *testing.T) {
	const (
		nobody = "arn:aws:iam::222222222222:role/nobody"
		flaky  = "arn:aws:iam::222222222222:role/flaky"
	)
	e := exttest.Start(t, exttest.Setup{
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[string](t)(a.PutSecretString(ctx, "open", "rval-open"))
			a.CreateRole(flaky)
		},
	})
	e.WaitReady(t)
	as := func(role string) string { return exttest.SecretPath("open") + "&roleArn=" + url.QueryEscape(role) }
	r := e.Get(t, as(nobody))
	if r.Status != 403 || r.Code() != "AssumeRoleDenied" || !strings.Contains(r.Body, nobody) {
		t.Errorf("a role STS refuses = %v, want 403 AssumeRoleDenied naming the role", r)
	}
	e.AWS.Inject(awstest.OpAssumeRole, awstest.InternalError())
	r = e.Get(t, as(flaky))
	if r.Status != 502 || r.Code() != "AssumeRoleFailed" {
		t.Errorf("STS failing = %v, want 502 AssumeRoleFailed", r)
	}
	e.AWS.ClearFaults()
	e.Clock.Advance(2 * time.Second) // past the failure's backoff
	if v := exttest.ValueOf(t, e.Get(t, as(flaky))); v != "rval-open" {
		t.Errorf("after STS recovered = %q", v)
	}
	if out := e.Out.String(); strings.Contains(out, "awstest-role-") || strings.Contains(out, "rval-") {
		t.Error("role credentials or a value reached the log")
	}
}

// SECRETS_PREFETCH_FAILOVER_REGION: the home region's outage is served from
// the replicas (marked in the log and with a header naming the region), and
// the home region answers again once it is back.
func TestFailoverToReplicaAndBack(t *testing.T) {
	const west = "us-west-2"
	var westAWS *awstest.AWS
	var homeARN, replicaARN string
	env := map[string]string{"SECRETS_PREFETCH_FAILOVER_REGION": west, "SECRETS_PREFETCH_METRICS": "true"}
	e := exttest.Start(t, exttest.Setup{
		Env: env,
		Seed: func(ctx context.Context, a *awstest.AWS) {
			westAWS = a.AddRegion(west)
			homeARN = exttest.Must[string](t)(a.PutSecretString(ctx, "app/db", "fval-home"))
			exttest.Must[string](t)(a.PutSecretString(ctx, "app/api", "fval-api"))
			for _, n := range []string{"app/db", "app/api"} {
				arn := exttest.Must[string](t)(a.Replicate(ctx, n, westAWS))
				if n == "app/db" {
					replicaARN = arn
				}
			}
			// The replica's value differs, so a read shows which region answered.
			exttest.Must[string](t)(westAWS.UpdateSecret(ctx, "app/db", "fval-replica"))
			env["SECRETS_PREFETCH_SECRETS"] = "app/db,app/api," + homeARN
		},
	})
	e.WaitReady(t)
	if replicaARN != strings.Replace(homeARN, ":us-east-1:", ":"+west+":", 1) {
		t.Fatalf("replica ARN %s, want the primary's %s in %s", replicaARN, homeARN, west)
	}
	read := func(id string) exttest.Response { return e.Get(t, exttest.SecretPath(url.QueryEscape(id))) }
	for _, id := range []string{"app/db", homeARN} {
		if r := read(id); exttest.ValueOf(t, r) != "fval-home" || r.Region != "" {
			t.Errorf("%s before the outage: %v region %q", id, r, r.Region)
		}
	}

	// The home region fails (500s); a refresh reads the replicas.
	remove := e.AWS.Inject(awstest.OpAll, awstest.InternalError())
	e.Clock.Advance(301 * time.Second)
	e.Invoke(t)
	for _, id := range []string{"app/db", homeARN} {
		r := read(id)
		if v := exttest.ValueOf(t, r); v != "fval-replica" || r.Region != west || r.XCache != "hit" {
			t.Errorf("%s in the outage = %q region %q (%s), want the replica's value from %s", id, v, r.Region, r.XCache, west)
		}
	}
	if r := read("app/api"); exttest.ValueOf(t, r) != "fval-api" || r.Region != west {
		t.Errorf("app/api in the outage: %v region %q", r, r.Region)
	}
	if westAWS.Calls(awstest.OpBatchGetSecretValue) != 1 || westAWS.Items(awstest.OpBatchGetSecretValue) != 3 {
		t.Errorf("replica region: %v, want one batch of the three", westAWS.AllCalls())
	}
	if !strings.Contains(e.Out.String(), "reading replicas in the failover region") {
		t.Error("the failover is not in the log")
	}

	// Throttling is no outage: no replica is read for it.
	remove()
	westAWS.ResetCalls()
	removeThrottle := e.AWS.Inject(awstest.OpAll, awstest.Throttling())
	e.Clock.Advance(301 * time.Second)
	e.Invoke(t)
	if n := westAWS.Calls(awstest.OpBatchGetSecretValue) + westAWS.Calls(awstest.OpGetSecretValue); n != 0 {
		t.Errorf("throttled at home: %d calls to the replica region, want none", n)
	}
	removeThrottle()

	// Back: the next refresh is answered at home.
	e.Clock.Advance(301 * time.Second)
	e.Invoke(t)
	for _, id := range []string{"app/db", homeARN} {
		if r := read(id); exttest.ValueOf(t, r) != "fval-home" || r.Region != "" {
			t.Errorf("%s after recovery: %v region %q", id, r, r.Region)
		}
	}
	if !strings.Contains(e.Out.String(), "home region answers again") {
		t.Error("the recovery is not in the log")
	}
}

// tag:KEY=VALUE and prefix:NAME select secrets; each refresh lists them
// again, so newly tagged secrets join and untagged ones leave. A path
// listed again finds parameters added and deleted after Init.
func TestSelectionsAndPathsFollowAWS(t *testing.T) {
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":    "tag:team=payments,prefix:shared/",
			"SECRETS_PREFETCH_PARAMETERS": "/svc/*",
			"SECRETS_PREFETCH_LAZY":       "false", // so a read shows what is selected
			"SECRETS_PREFETCH_REQUIRED":   "true",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			for i := range 30 {
				n := fmt.Sprintf("pay/s%02d", i)
				exttest.Must[string](t)(a.PutSecretString(ctx, n, "sval-"+n))
				if err := a.TagSecret(ctx, n, map[string]string{"team": "payments"}); err != nil {
					t.Fatal(err)
				}
			}
			// AWS's filters match by prefix: these are not in the selection.
			exttest.Must[string](t)(a.PutSecretString(ctx, "near-miss", "sval-near"))
			if err := a.TagSecret(ctx, "near-miss", map[string]string{"teams": "payments-eu"}); err != nil {
				t.Fatal(err)
			}
			exttest.Must[string](t)(a.PutSecretString(ctx, "shared/a", "sval-shared"))
			exttest.Must[int64](t)(a.PutParameter(ctx, "/svc/one", "p1", "String"))
		},
	})
	e.WaitReady(t)
	a := e.AWS
	read := func(id string) exttest.Response { return e.Get(t, exttest.SecretPath(url.QueryEscape(id))) }
	for _, id := range []string{"pay/s00", "pay/s29", "shared/a"} {
		if r := read(id); exttest.ValueOf(t, r) != "sval-"+id && id != "shared/a" || r.XCache != "hit" {
			t.Errorf("%s = %v, want prefetched", id, r)
		}
	}
	if r := read("near-miss"); r.Status != 404 || r.Code() != "NotConfigured" {
		t.Errorf("near-miss = %v, want 404 NotConfigured: not in the selection", r)
	}
	// Listing: one ListSecrets per selection; values: 31 secrets in batches of 20.
	if a.Calls(awstest.OpListSecrets) != 2 || a.Calls(awstest.OpBatchGetSecretValue) != 2 || a.Items(awstest.OpBatchGetSecretValue) != 31 {
		t.Errorf("Init calls = %v, want 2 ListSecrets and 2 batches of 31 ids", a.AllCalls())
	}

	// A secret gains the tag, another loses it, a parameter is added.
	ctx := t.Context()
	exttest.Must[string](t)(a.PutSecretString(ctx, "pay/new", "sval-pay/new"))
	if err := a.TagSecret(ctx, "pay/new", map[string]string{"team": "payments"}); err != nil {
		t.Fatal(err)
	}
	if err := a.UntagSecret(ctx, "pay/s00", "team"); err != nil {
		t.Fatal(err)
	}
	exttest.Must[int64](t)(a.PutParameter(ctx, "/svc/two", "p2", "String"))
	a.ResetCalls()
	e.Clock.Advance(301 * time.Second)
	e.Invoke(t)

	if r := read("pay/new"); exttest.ValueOf(t, r) != "sval-pay/new" || r.XCache != "hit" {
		t.Errorf("newly tagged = %v, want it fetched at the refresh", r)
	}
	if r := read("pay/s00"); r.Status != 404 {
		t.Errorf("untagged = %v, want it gone (404)", r)
	}
	if r := e.Get(t, exttest.ParamPath("/svc/two")); exttest.ValueOf(t, r) != "p2" || r.XCache != "hit" {
		t.Errorf("/svc/two added after Init = %v, want found by the path's refresh", r)
	}
	// Per refresh: one ListSecrets per selection, the members' values in
	// batches of 20 (29 old + 1 shared/a, the new one fetched on joining),
	// one GetParametersByPath.
	t.Logf("AWS calls of the refresh: %v (ids in batches: %d)", a.AllCalls(), a.Items(awstest.OpBatchGetSecretValue))
	want := map[string]int{awstest.OpListSecrets: 2, awstest.OpBatchGetSecretValue: 2, awstest.OpGetSecretValue: 1, awstest.OpGetParametersByPath: 1}
	if got := a.AllCalls(); !maps.Equal(got, want) || a.Items(awstest.OpBatchGetSecretValue) != 30 {
		t.Errorf("refresh calls = %v (%d ids in batches), want %v (30 ids)", got, a.Items(awstest.OpBatchGetSecretValue), want)
	}

	// A parameter deleted leaves at the next refresh.
	if err := a.DeleteParameter(ctx, "/svc/one"); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(301 * time.Second)
	e.Invoke(t)
	if r := e.Get(t, exttest.ParamPath("/svc/one")); r.Status != 404 {
		t.Errorf("/svc/one deleted = %v, want 404", r)
	}
	if strings.Contains(e.Out.String(), "sval-") {
		t.Error("a value reached the log")
	}
}

// snapClocks are a wall and a monotonic clock a test moves: together
// (an environment frozen between invokes) or the wall alone (a SnapStart
// snapshot restored later).
type snapClocks struct {
	mu   sync.Mutex
	wall time.Time
	mono time.Duration
}

func (c *snapClocks) clocks() app.Clocks {
	return app.Clocks{
		Wall: func() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.wall },
		Mono: func() time.Duration { c.mu.Lock(); defer c.mu.Unlock(); return c.mono },
	}
}

func (c *snapClocks) advance(wall, mono time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wall, c.mono = c.wall.Add(wall), c.mono+mono
}

// Under SnapStart (include): values prefetched at Init are never served
// after a restore; the first read joins one batch that fetches them all.
func TestSnapStartRestoreExpiresEverything(t *testing.T) {
	clk := &snapClocks{wall: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
			"SECRETS_PREFETCH_SNAPSHOT":      "include",
			"SECRETS_PREFETCH_SECRETS":       "a,b",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[string](t)(a.PutSecretString(ctx, "a", "snap-a1"))
			exttest.Must[string](t)(a.PutSecretString(ctx, "b", "snap-b1"))
		},
		Clocks: clk.clocks(),
	})
	e.WaitReady(t)
	a := e.AWS
	if a.Calls(awstest.OpBatchGetSecretValue) != 1 {
		t.Fatalf("Init: %v, want one batch (include)", a.AllCalls())
	}
	// Frozen between invokes: both clocks move; the values stay fresh.
	clk.advance(2*time.Minute, 2*time.Minute)
	if r := e.Get(t, exttest.SecretPath("a")); exttest.ValueOf(t, r) != "snap-a1" || r.XCache != "hit" {
		t.Errorf("after a freeze: %v, want the cached value", r)
	}
	// The secrets change while the snapshot waits a week; the restored
	// environment's monotonic clock moved a second.
	exttest.Must[string](t)(a.UpdateSecret(t.Context(), "a", "snap-a2"))
	exttest.Must[string](t)(a.UpdateSecret(t.Context(), "b", "snap-b2"))
	a.ResetCalls()
	clk.advance(7*24*time.Hour, time.Second)
	r := e.Get(t, exttest.SecretPath("a"))
	if v := exttest.ValueOf(t, r); v != "snap-a2" || r.XCache != "miss" {
		t.Errorf("first read after restore = %q (%s), want the new value, fetched", v, r.XCache)
	}
	if r := e.Get(t, exttest.SecretPath("b")); exttest.ValueOf(t, r) != "snap-b2" {
		t.Errorf("b after restore = %v", r)
	}
	if got := a.AllCalls(); got[awstest.OpBatchGetSecretValue] != 1 || got[awstest.OpGetSecretValue] != 0 {
		t.Errorf("after restore: %v, want one batch for both", got)
	}
	if !strings.Contains(e.Out.String(), "SnapStart restore detected") {
		t.Error("the restore is not in the log")
	}
}

// SECRETS_PREFETCH_SNAPSHOT=exclude (the default under SnapStart): Init
// fetches nothing, so no value is in the snapshot; the first activity after
// it fetches everything in one batch.
func TestSnapStartExcludeFetchesAtRestore(t *testing.T) {
	clk := &snapClocks{wall: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
			"SECRETS_PREFETCH_SECRETS":       "a,b,c",
			"SECRETS_PREFETCH_LAZY":          "false",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			for _, n := range []string{"a", "b", "c"} {
				exttest.Must[string](t)(a.PutSecretString(ctx, n, "snapx-"+n))
			}
		},
		Clocks: clk.clocks(),
	})
	e.WaitReady(t)
	if n := len(e.AWS.AllCalls()); n != 0 {
		t.Fatalf("Init called AWS: %v; want nothing fetched into the snapshot", e.AWS.AllCalls())
	}
	clk.advance(time.Hour, time.Second)
	e.Invoke(t)
	for _, n := range []string{"a", "b", "c"} {
		if v := exttest.ValueOf(t, e.Get(t, exttest.SecretPath(n))); v != "snapx-"+n {
			t.Errorf("%s = %q", n, v)
		}
	}
	if got := e.AWS.AllCalls(); got[awstest.OpBatchGetSecretValue] != 1 || len(got) != 1 {
		t.Errorf("after restore: %v, want one batch", got)
	}
}
