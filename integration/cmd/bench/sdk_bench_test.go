package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// BenchmarkRefreshDueSDK is an INVOKE with 100 entries due (50 secrets, 50
// parameters) through the real fetcher and SDK clients, against the
// emulator with no latency: 3 BatchGetSecretValue and 5 GetParameters per
// iteration. The emulator runs in the benchmark's process, so its CPU and
// allocations are counted too; `make bench` measures the built binary's
// share alone (see the report's section 3). For profiles:
//
//	go test -run='^$' -bench=RefreshDueSDK -cpuprofile=cpu.out ./cmd/bench
func BenchmarkRefreshDueSDK(b *testing.B) {
	ctx := context.Background()
	a := awstest.Start(b)
	var keys []source.Key
	for i := range 50 {
		s, p := fmt.Sprintf("bench/sdk/secret-%02d", i), fmt.Sprintf("/bench/sdk/param-%02d", i)
		if _, err := a.PutSecretString(ctx, s, `{"password":"bench"}`); err != nil {
			b.Fatal(err)
		}
		if _, err := a.PutParameter(ctx, p, "bench", "SecureString"); err != nil {
			b.Fatal(err)
		}
		keys = append(keys, source.SecretKey(s), source.ParameterKey(p))
	}
	src := source.New(source.Options{
		SecretsManager: a.SecretsManagerClient(),
		SSM:            a.SSMClient(),
		MaxConcurrency: 3,
		SecretsTimeout: 5 * time.Second, ParametersTimeout: 5 * time.Second,
	})
	clock := exttest.NewClock()
	c := cache.New(cache.Options{
		Fetcher: src, SecretsTTL: 5 * time.Minute, ParametersTTL: 5 * time.Minute,
		RefreshAhead: 0.8, Size: 1000, Now: clock.Now,
	})
	if rep := c.Prefetch(ctx, keys, nil); rep.Fetched != len(keys) {
		b.Fatalf("prefetched %d of %d: %v", rep.Fetched, len(keys), rep.Failed)
	}
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		clock.Advance(5 * time.Minute)
		if rep := c.RefreshDue(ctx); rep.Refreshed != len(keys) {
			b.Fatalf("refreshed %d of %d", rep.Refreshed, len(keys))
		}
	}
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}
