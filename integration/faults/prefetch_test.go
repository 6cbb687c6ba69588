package faults_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
)

// TestPrefetchConcurrencyReachesAWS: with the defaults, the Init prefetch's
// calls are all in flight at once, through the real SDK and its connection
// pool (which must allow SECRETS_PREFETCH_CONCURRENCY connections, not only
// MAX_CONNECTIONS'), though MAX_CONNECTIONS is 3.
func TestPrefetchConcurrencyReachesAWS(t *testing.T) {
	const params, batches = 60, 6 // GetParameters takes 10 names
	var names []string
	for i := range params {
		names = append(names, fmt.Sprintf("/wave/p%02d", i))
	}
	g := newGate(awstest.OpGetParameters)
	e := exttest.Start(t, exttest.Setup{
		Env:      map[string]string{"SECRETS_PREFETCH_PARAMETERS": strings.Join(names, ","), "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS": "3"},
		Endpoint: g.wrap,
		Seed: func(ctx context.Context, a *awstest.AWS) {
			for _, n := range names {
				exttest.Must[int64](t)(a.PutParameter(ctx, n, "v-"+n, "SecureString"))
			}
		},
	})
	t.Cleanup(g.open)
	// Every batch reaches AWS while none has been answered: one wave.
	for i := range batches {
		recv(t, g.arrived, fmt.Sprintf("GetParameters %d of %d in flight at once", i+1, batches))
	}
	g.open()
	e.WaitReady(t)
	for _, n := range names {
		if r := e.Get(t, exttest.ParamPath(n)); r.Status != http.StatusOK || r.XCache != "hit" {
			t.Fatalf("%s after the prefetch: %v", n, r)
		}
	}
	if got := e.AWS.Calls(awstest.OpGetParameters); got != batches {
		t.Errorf("%d GetParameters, want %d", got, batches)
	}
}
