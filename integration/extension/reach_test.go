package extension_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

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
