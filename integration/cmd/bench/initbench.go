package main

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
)

// defaultConcurrency is SECRETS_PREFETCH_CONCURRENCY's default.
const defaultConcurrency = 16

// Batch sizes of the APIs the extension uses (as package source batches).
const (
	secretsPerBatch    = 20 // BatchGetSecretValue
	parametersPerBatch = 10 // GetParameters
)

// InitResult is one Init prefetch configuration, measured.
type InitResult struct {
	Fetcher    string `json:"fetcher"` // "secrets-prefetch" or "sequential"
	Items      int    `json:"items"`
	Secrets    int    `json:"secrets"`
	Parameters int    `json:"parameters"`
	LatencyMS  int    `json:"latency_ms"`
	// MaxConnections is SECRETS_PREFETCH_CONCURRENCY, the bound on the
	// prefetch's calls in flight (1 for the sequential fetcher).
	MaxConnections int            `json:"concurrency"`
	RunsMS         []float64      `json:"runs_ms"`
	MedianMS       float64        `json:"median_ms"`
	Calls          map[string]int `json:"calls"` // AWS calls of one run, by operation
	// MinCalls is the fewest calls that can fetch the items (full batches);
	// LowerBoundMS is one latency per wave of MinCalls at MaxConnections.
	// Defaults marks a run with no concurrency variable set.
	Defaults     bool    `json:"defaults,omitempty"`
	MinCalls     int     `json:"min_calls"`
	LowerBoundMS float64 `json:"lower_bound_ms"`
}

// TotalCalls is the number of AWS calls of one run.
func (r InitResult) TotalCalls() int {
	n := 0
	for _, c := range r.Calls {
		n += c
	}
	return n
}

func (w *world) initSection(ctx context.Context, rep *Report) error {
	p := w.plan
	for _, n := range p.initItems {
		secrets, params := w.initSecrets[:n/2], w.initParams[:n-n/2]
		for _, lat := range p.initLatencies {
			for _, conns := range p.initConns {
				r, err := w.initExtension(secrets, params, lat, conns)
				if err != nil {
					return err
				}
				w.log("  init %4d items, %2d ms, %2d connections: %7.1f ms (lower bound %6.1f ms, %d calls)", n, lat.Milliseconds(), conns, r.MedianMS, r.LowerBoundMS, r.TotalCalls())
				rep.Init = append(rep.Init, r)
			}
			if n == 100 && lat == 50*time.Millisecond {
				// The case: 40 secrets + 100 parameters with the
				// defaults, beside the same at a concurrency of 3 (the old
				// default: MAX_CONNECTIONS bounded the prefetch too).
				for _, conns := range []int{0, 3} {
					r, err := w.initExtension(w.initSecrets[:40], w.initParams[:100], lat, conns)
					if err != nil {
						return err
					}
					w.log("  init 40 + 100 items, 50 ms, concurrency %d (defaults: %v): %7.1f ms (lower bound %6.1f ms, %d calls)", r.MaxConnections, r.Defaults, r.MedianMS, r.LowerBoundMS, r.TotalCalls())
					rep.Init = append(rep.Init, r)
				}
			}
			if n <= p.seqMaxItems {
				r, err := w.initSequential(ctx, secrets, params, lat)
				if err != nil {
					return err
				}
				w.log("  sequential %4d items, %2d ms: %7.1f ms", n, lat.Milliseconds(), r.MedianMS)
				rep.Init = append(rep.Init, r)
			}
		}
	}
	return w.quotaInit(rep, 40, 10*time.Millisecond)
}

// QuotaInit is an Init prefetch of many parameters against an emulated SSM
// quota (a token bucket in the emulator's front).
type QuotaInit struct {
	Parameters int     `json:"parameters"`
	QuotaTPS   int     `json:"quota_tps"`
	LatencyMS  int     `json:"latency_ms"`
	MS         float64 `json:"ms"`        // start to ready, every parameter fetched (SECRETS_PREFETCH_REQUIRED=true)
	MinCalls   int     `json:"min_calls"` // the batches: one GetParameters per 10
	Calls      int     `json:"calls"`     // every call the emulator received, throttled ones included
	Throttled  int     `json:"throttled"` // calls the quota refused
	BoundMS    float64 `json:"bound_ms"`  // the quota's own bound: (MinCalls - burst) / TPS
	AllFetched bool    `json:"all_fetched"`
}

// quotaInit runs the extension's Init for every quota parameter with SSM
// limited to quota calls per second.
func (w *world) quotaInit(rep *Report, quota int, lat time.Duration) error {
	q := QuotaInit{Parameters: len(w.quotaParams), QuotaTPS: quota, LatencyMS: int(lat.Milliseconds())}
	q.MinCalls = ceilDiv(q.Parameters, parametersPerBatch)
	q.BoundMS = max(0, float64(q.MinCalls-quota)) / float64(quota) * 1000
	env := itemsEnv(nil, w.quotaParams)
	env["SECRETS_PREFETCH_INIT_TIMEOUT_MILLIS"] = "120000"
	env["SECRETS_PREFETCH_REQUIRED"] = "true"
	w.injectLatency(lat)
	defer w.aws.ClearFaults()
	remove := w.aws.SetQuota("ssm", quota)
	defer remove()
	x, err := startInProcess(env)
	if err != nil {
		return err
	}
	d, err := x.waitReady(3 * time.Minute)
	for _, n := range w.aws.AllCalls() {
		q.Calls += n
	}
	q.Throttled = w.aws.Throttled()
	if err := cmpOr(err, x.stop()); err != nil {
		return err
	}
	q.MS, q.AllFetched = ms(d), true
	w.log("  init %d parameters under an SSM quota of %d TPS: %.0f ms, %d calls (%d batches + %d throttled)", q.Parameters, quota, q.MS, q.Calls, q.MinCalls, q.Throttled)
	rep.Quota = append(rep.Quota, q)
	return nil
}

// injectLatency makes every AWS call wait lat and zeroes the call counts.
func (w *world) injectLatency(lat time.Duration) {
	w.aws.ClearFaults()
	if lat > 0 {
		w.aws.Inject(awstest.OpAll, awstest.Latency(lat))
	}
	w.aws.ResetCalls()
}

// initExtension measures app.Run from its start to the end of prefetch.
func (w *world) initExtension(secrets, params []string, lat time.Duration, conns int) (InitResult, error) {
	r := InitResult{
		Fetcher: "secrets-prefetch", Items: len(secrets) + len(params), Secrets: len(secrets), Parameters: len(params),
		LatencyMS: int(lat.Milliseconds()), MaxConnections: conns,
	}
	r.MinCalls = ceilDiv(len(secrets), secretsPerBatch) + ceilDiv(len(params), parametersPerBatch)
	r.LowerBoundMS = float64(ceilDiv(r.MinCalls, max(conns, 1))) * float64(lat) / float64(time.Millisecond)
	env := itemsEnv(secrets, params)
	if conns > 0 {
		env["SECRETS_PREFETCH_CONCURRENCY"] = strconv.Itoa(conns)
	} else {
		r.Defaults, r.MaxConnections = true, defaultConcurrency
		r.LowerBoundMS = float64(ceilDiv(r.MinCalls, defaultConcurrency)) * float64(lat) / float64(time.Millisecond)
	}
	env["SECRETS_PREFETCH_INIT_TIMEOUT_MILLIS"] = "120000"
	defer w.aws.ClearFaults()
	for range w.plan.initRepeats {
		w.injectLatency(lat)
		x, err := startInProcess(env)
		if err != nil {
			return r, err
		}
		d, err := x.waitReady(2 * time.Minute)
		if err != nil {
			x.stop()
			return r, err
		}
		r.Calls = w.aws.AllCalls()
		if err := x.stop(); err != nil {
			return r, err
		}
		r.RunsMS = append(r.RunsMS, ms(d))
	}
	r.MedianMS = median(r.RunsMS)
	return r, nil
}

// initSequential is the naive baseline: one GetSecretValue or GetParameter
// per item, one after another, as the aws-samples cache demo fetches.
func (w *world) initSequential(ctx context.Context, secrets, params []string, lat time.Duration) (InitResult, error) {
	r := InitResult{
		Fetcher: "sequential", Items: len(secrets) + len(params), Secrets: len(secrets), Parameters: len(params),
		LatencyMS: int(lat.Milliseconds()), MaxConnections: 1,
	}
	r.MinCalls = r.Items
	r.LowerBoundMS = float64(r.Items) * float64(lat) / float64(time.Millisecond)
	defer w.aws.ClearFaults()
	repeats := w.plan.initRepeats
	if r.Items > 100 {
		repeats = 1 // a minute at 1000 items and 50 ms
	}
	sm, pm := w.aws.SecretsManagerClient(), w.aws.SSMClient()
	for range repeats {
		w.injectLatency(lat)
		start := time.Now()
		for _, s := range secrets {
			if _, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s)}); err != nil {
				return r, fmt.Errorf("sequential GetSecretValue %s: %w", s, err)
			}
		}
		for _, p := range params {
			if _, err := pm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(p), WithDecryption: aws.Bool(true)}); err != nil {
				return r, fmt.Errorf("sequential GetParameter %s: %w", p, err)
			}
		}
		r.RunsMS = append(r.RunsMS, ms(time.Since(start)))
		r.Calls = maps.Clone(w.aws.AllCalls())
	}
	r.MedianMS = median(r.RunsMS)
	return r, nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
