package extension_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
)

// TestInitPrefetchOf140Items prefetches 100 parameters and 40 secrets with
// 50 ms added to every AWS call and checks the batching: 10 GetParameters
// and 2 BatchGetSecretValue calls, nothing else. It logs the time to ready
// (a figure, not asserted: the machine may be slow); the lower bound at the
// default concurrency of 3 is ceil(12/3) = 4 waves of 50 ms.
func TestInitPrefetchOf140Items(t *testing.T) {
	secrets, params := exttest.Names("fig-secret-", 40), exttest.Names("/fig/p", 100)
	var began time.Time
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":    strings.Join(secrets, ","),
			"SECRETS_PREFETCH_PARAMETERS": strings.Join(params, ","),
			"SECRETS_PREFETCH_REQUIRED":   "true",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			for _, s := range secrets {
				exttest.Must[string](t)(a.PutSecretString(ctx, s, "v"))
			}
			for _, p := range params {
				exttest.Must[int64](t)(a.PutParameter(ctx, p, "v", "String"))
			}
		},
		Faults: func(a *awstest.AWS) {
			a.Inject(awstest.OpAll, awstest.Latency(50*time.Millisecond))
			began = time.Now()
		},
	})
	e.WaitReady(t)
	elapsed := time.Since(began)
	calls := e.AWS.AllCalls()
	want := map[string]int{awstest.OpGetParameters: 10, awstest.OpBatchGetSecretValue: 2}
	for op, n := range want {
		if calls[op] != n {
			t.Errorf("%s calls = %d, want %d", op, calls[op], n)
		}
	}
	if len(calls) != len(want) {
		t.Errorf("AWS calls = %v, want only %v", calls, want)
	}
	t.Logf("140 items at 50 ms latency: ready in %v with %d AWS calls (lower bound 200 ms at concurrency 3)", elapsed.Round(time.Millisecond), calls[awstest.OpGetParameters]+calls[awstest.OpBatchGetSecretValue])
}
