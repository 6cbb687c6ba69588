package rie

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/testfunc"
)

// A function under RIE reads secrets of two regions and through a role:
// the extension's SDK clients sign for the region an ARN names and with
// the credentials sts:AssumeRole gave for the role.
func TestE2EReachRegionsAndRole(t *testing.T) {
	t.Parallel()
	requireSupported(t)
	const role = "arn:aws:iam::222222222222:role/reader"
	a := awstest.Start(t)
	west := a.AddRegion("us-west-2")
	ctx := t.Context()
	must := func(_ string, err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.PutSecretString(ctx, "app/db", "home-v"))
	westARN, err := west.PutSecretString(ctx, "app/db", "west-v")
	if err != nil {
		t.Fatal(err)
	}
	must(a.PutSecretString(ctx, "team/db", "team-v"))
	a.CreateRole(role)
	a.Only("team/db", role)

	e := Start(t, Options{Env: append(a.Env(),
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug",
		"SECRETS_PREFETCH_SECRETS=app/db,"+westARN+",team/db|"+role,
	)})
	w := &world{aws: a, env: e}
	get := func(id, role string) string {
		p := "/secretsmanager/get?secretId=" + url.QueryEscape(id)
		if role != "" {
			p += "&roleArn=" + url.QueryEscape(role)
		}
		return p
	}
	resp := w.invoke(t, testfunc.Request{Paths: []string{
		get("app/db", ""), get(westARN, ""), get("team/db", role), get("team/db", ""),
	}})
	for i, want := range []string{"home-v", "west-v", "team-v"} {
		r := resp.Reads[i]
		var body struct{ SecretString string }
		if r.Status != 200 || json.Unmarshal([]byte(r.Value), &body) != nil || body.SecretString != want || r.XCache != "hit" {
			t.Errorf("read %s = %d %s %q, want %s prefetched", r.Path, r.Status, r.XCache, r.Value, want)
		}
	}
	if r := resp.Reads[3]; r.Status != 403 {
		t.Errorf("team/db with the function's own credentials = %d %s, want 403", r.Status, r.Value)
	}
	if west.Items(awstest.OpGetSecretValue)+west.Items(awstest.OpBatchGetSecretValue) != 1 || a.RoleSessions(role) != 1 {
		t.Errorf("us-west-2 answered %v, role sessions %d; want one read there and one session", west.AllCalls(), a.RoleSessions(role))
	}
}

// The home region's outage under RIE: the replica in the failover region
// is served, marked with the region that answered; once the home region
// answers again, it serves.
func TestE2EFailoverAndRecovery(t *testing.T) {
	t.Parallel()
	requireSupported(t)
	const west = "us-west-2"
	a := awstest.Start(t)
	westAWS := a.AddRegion(west)
	ctx := t.Context()
	if _, err := a.PutSecretString(ctx, "app/db", "home-v"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Replicate(ctx, "app/db", westAWS); err != nil {
		t.Fatal(err)
	}
	if _, err := westAWS.UpdateSecret(ctx, "app/db", "replica-v"); err != nil {
		t.Fatal(err)
	}
	e := Start(t, Options{Env: append(a.Env(),
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug",
		"SECRETS_PREFETCH_SECRETS=app/db", "SECRETS_MANAGER_TTL=1",
		"SECRETS_PREFETCH_FAILOVER_REGION="+west,
	)})
	w := &world{aws: a, env: e}
	req := testfunc.Request{Secrets: []string{"app/db"}}
	if r := w.invoke(t, req).Reads[0]; r.Value != "home-v" || r.Region != "" {
		t.Fatalf("before the outage: %+v", r)
	}
	remove := a.Inject(awstest.OpAll, awstest.InternalError())
	w.invokeUntil(t, req, 20*time.Second, func(resp testfunc.Response) bool {
		r := resp.Reads[0]
		if r.Status != 200 {
			t.Fatalf("in the outage: %+v, want a value", r)
		}
		return r.Value == "replica-v" && r.Region == west
	})
	remove()
	w.invokeUntil(t, req, 20*time.Second, func(resp testfunc.Response) bool {
		r := resp.Reads[0]
		return r.Status == 200 && r.Value == "home-v" && r.Region == ""
	})
}

// Under RIE: a tag selection gains and loses members across refreshes, and
// a prefetched path gains a parameter added after Init.
func TestE2ESelectionAndPathDiscovery(t *testing.T) {
	t.Parallel()
	requireSupported(t)
	a := awstest.Start(t)
	ctx := t.Context()
	for _, n := range []string{"pay/a", "pay/b"} {
		if _, err := a.PutSecretString(ctx, n, "v-"+n); err != nil {
			t.Fatal(err)
		}
		if err := a.TagSecret(ctx, n, map[string]string{"team": "payments"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.PutSecretString(ctx, "pay/c", "v-pay/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutParameter(ctx, "/svc/one", "p1", "String"); err != nil {
		t.Fatal(err)
	}
	e := Start(t, Options{Env: append(a.Env(),
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug",
		"SECRETS_PREFETCH_SECRETS=tag:team=payments", "SECRETS_PREFETCH_PARAMETERS=/svc/*",
		"SECRETS_MANAGER_TTL=1", "SSM_PARAMETER_STORE_TTL=1", "SECRETS_PREFETCH_LAZY=false",
	)})
	w := &world{aws: a, env: e}
	req := testfunc.Request{Secrets: []string{"pay/a", "pay/b", "pay/c"}, Parameters: []string{"/svc/two"}}
	r := w.invoke(t, req)
	if r.Reads[0].Value != "v-pay/a" || r.Reads[1].Value != "v-pay/b" || r.Reads[2].Status != 404 || r.Reads[3].Status != 200 && r.Reads[3].Status != 404 {
		t.Fatalf("at the start: %+v", r.Reads)
	}
	if err := a.TagSecret(ctx, "pay/c", map[string]string{"team": "payments"}); err != nil {
		t.Fatal(err)
	}
	if err := a.UntagSecret(ctx, "pay/a", "team"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutParameter(ctx, "/svc/two", "p2", "String"); err != nil {
		t.Fatal(err)
	}
	w.invokeUntil(t, req, 20*time.Second, func(resp testfunc.Response) bool {
		r := resp.Reads
		return r[0].Status == 404 && r[1].Value == "v-pay/b" && r[2].Value == "v-pay/c" && r[2].XCache == "hit" && r[3].Value == "p2"
	})
}
