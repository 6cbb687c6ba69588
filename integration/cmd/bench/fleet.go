package main

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// The fleet model: every environment holds the same items and refreshes
// them as the extension does, on the first INVOKE past the refresh-ahead
// point, in batches.
const (
	fleetSecrets      = 20  // secrets per environment: one BatchGetSecretValue
	fleetParameters   = 20  // parameters per environment: two GetParameters
	fleetRefreshAhead = 0.8 // SECRETS_PREFETCH_REFRESH_AHEAD's default
	fleetJitter       = 0.1 // the cache refreshes up to 10% of that earlier
	fleetStartWindow  = 10 * time.Second

	// Account quotas per region (transactions per second).
	quotaBatchGetSecretValue = 100
	quotaGetSecretValue      = 10000
	quotaSSMStandard         = 40

	pricePer10kCalls = 0.05 // USD: Secrets Manager; SSM at higher throughput
	secondsPerMonth  = 30 * 24 * 3600
)

// FleetRow is one setting of the fleet simulation.
type FleetRow struct {
	InvokesPerSecond float64 `json:"invokes_per_second"` // per environment
	TTLSeconds       int     `json:"ttl_seconds"`
	Jitter           bool    `json:"jitter"`
	// CycleSeconds is the mean time between two refreshes of an
	// environment: the refresh-ahead point (less the mean jitter) plus the
	// mean wait for the INVOKE that runs it.
	CycleSeconds float64 `json:"cycle_seconds"`
	// Mean calls per second per 1000 environments, in steady state.
	MeanBatchPer1000 float64 `json:"mean_batch_tps_per_1000"`
	MeanSSMPer1000   float64 `json:"mean_ssm_tps_per_1000"`
	// Peak calls in one second per 1000 environments after they all
	// started within fleetStartWindow (their Init calls left out).
	PeakBatchPer1000 float64 `json:"peak_batch_tps_per_1000"`
	PeakSSMPer1000   float64 `json:"peak_ssm_tps_per_1000"`
	// The largest fleets whose calls stay within the quotas: by the peak
	// after a burst of starts, and by the steady mean.
	MaxFleetBatchPeak int `json:"max_fleet_batch_peak"`
	MaxFleetSSMPeak   int `json:"max_fleet_ssm_peak"`
	MaxFleetBatchMean int `json:"max_fleet_batch_mean"`
	MaxFleetSSMMean   int `json:"max_fleet_ssm_mean"`
	// MaxFleetGetSecretMean is the same for secrets read one GetSecretValue
	// each (the fallback when BatchGetSecretValue is refused).
	MaxFleetGetSecretMean int `json:"max_fleet_getsecretvalue_mean"`
	// Monthly API cost per 1000 environments, USD.
	CostSecretsPer1000 float64 `json:"monthly_cost_secrets_per_1000_usd"`
	CostSSMPer1000     float64 `json:"monthly_cost_ssm_per_1000_usd"`
}

// Fleet is the simulation's settings and results.
type Fleet struct {
	Environments   int        `json:"environments_simulated"`
	HorizonSeconds int        `json:"horizon_seconds"`
	Secrets        int        `json:"secrets_per_environment"`
	Parameters     int        `json:"parameters_per_environment"`
	Rows           []FleetRow `json:"rows"`
	// Plot: GetParameters calls per second over time (mean per bucket)
	// for one setting without and with jitter.
	PlotSetting  string    `json:"plot_setting"`
	PlotBucketS  int       `json:"plot_bucket_seconds"`
	PlotNoJitter []float64 `json:"plot_no_jitter"`
	PlotJitter   []float64 `json:"plot_jitter"`
	// ScaleOut: environments starting together, their Init against the
	// quotas with the defaults, with and without the fallback.
	ScaleOut []ScaleOut `json:"scale_out"`
	// The largest fleet Secrets Manager's quotas allow, by the mean, at a
	// TTL of 300 s and 1 invoke/s, without and with the fallback, and the
	// calls made at the larger per the calls its refreshes need batched.
	FallbackFleetWithout int     `json:"fallback_fleet_without"`
	FallbackFleetWith    int     `json:"fallback_fleet_with"`
	FallbackCallRatio    float64 `json:"fallback_call_ratio"`
}

func (w *world) fleetSection(_ context.Context, rep *Report) error {
	p := w.plan
	f := Fleet{Environments: p.fleetEnvs, HorizonSeconds: int(p.fleetHorizon / time.Second), Secrets: fleetSecrets, Parameters: fleetParameters, PlotBucketS: max(1, int(p.fleetHorizon/time.Second)/120)}
	batch := float64(ceilDiv(fleetSecrets, secretsPerBatch))
	ssmCalls := float64(ceilDiv(fleetParameters, parametersPerBatch))
	for _, ttl := range p.fleetTTLs {
		for _, rate := range p.fleetRates {
			for _, jitter := range []bool{false, true} {
				r := FleetRow{InvokesPerSecond: rate, TTLSeconds: int(ttl / time.Second), Jitter: jitter}
				ahead := fleetRefreshAhead * ttl.Seconds()
				r.CycleSeconds = ahead + 1/rate
				if jitter {
					r.CycleSeconds -= ahead * fleetJitter / 2
				}
				perEnv := 1 / r.CycleSeconds // refreshes per second per environment
				r.MeanBatchPer1000 = 1000 * perEnv * batch
				r.MeanSSMPer1000 = 1000 * perEnv * ssmCalls
				perSecond := simulate(p.fleetEnvs, rate, ttl, jitter, p.fleetHorizon, 1)
				peak := 0
				for _, n := range perSecond {
					peak = max(peak, n)
				}
				r.PeakBatchPer1000 = 1000 * float64(peak) * batch / float64(p.fleetEnvs)
				r.PeakSSMPer1000 = 1000 * float64(peak) * ssmCalls / float64(p.fleetEnvs)
				r.MaxFleetBatchPeak = fleetLimit(quotaBatchGetSecretValue, r.PeakBatchPer1000)
				r.MaxFleetSSMPeak = fleetLimit(quotaSSMStandard, r.PeakSSMPer1000)
				r.MaxFleetBatchMean = fleetLimit(quotaBatchGetSecretValue, r.MeanBatchPer1000)
				r.MaxFleetSSMMean = fleetLimit(quotaSSMStandard, r.MeanSSMPer1000)
				r.MaxFleetGetSecretMean = fleetLimit(quotaGetSecretValue, 1000*perEnv*fleetSecrets)
				r.CostSecretsPer1000 = r.MeanBatchPer1000 * secondsPerMonth * pricePer10kCalls / 10000
				r.CostSSMPer1000 = r.MeanSSMPer1000 * secondsPerMonth * pricePer10kCalls / 10000
				f.Rows = append(f.Rows, r)

				if r.TTLSeconds == 300 && rate == 1 {
					f.PlotSetting = "TTL 300 s, 1 invoke/s per environment"
					buckets := bucket(perSecond, f.PlotBucketS, ssmCalls)
					if jitter {
						f.PlotJitter = buckets
					} else {
						f.PlotNoJitter = buckets
					}
				}
			}
		}
	}
	n := min(1000, p.fleetEnvs)
	for _, sc := range []struct {
		window   time.Duration
		fallback bool
	}{{60 * time.Second, true}, {10 * time.Second, true}, {5 * time.Second, false}, {5 * time.Second, true}} {
		f.ScaleOut = append(f.ScaleOut, simulateScaleOut(n, sc.window, sc.fallback, 1))
	}
	for _, r := range f.Rows {
		if r.TTLSeconds == 300 && r.InvokesPerSecond == 1 && r.Jitter {
			f.FallbackFleetWithout, f.FallbackFleetWith, f.FallbackCallRatio = fallbackFleet(1 / r.CycleSeconds)
		}
	}
	rep.Fleet = f
	return nil
}

// fleetLimit is the number of environments whose calls, at perThousand
// calls per second per 1000 environments, fit in quota.
func fleetLimit(quota, perThousand float64) int {
	if perThousand <= 0 {
		return 0
	}
	return int(math.Floor(quota * 1000 / perThousand))
}

// simulate returns the number of environments refreshing in each second of
// horizon: n environments start uniformly within fleetStartWindow (a
// deploy, a scale-out), are invoked at random (Poisson, rate per second
// each), and each refreshes at its first INVOKE past its refresh point,
// which the cache sets, after each fetch, at ahead × TTL, less up to 10%
// at random when jitter is on. Init's own fetch is not counted.
func simulate(n int, rate float64, ttl time.Duration, jitter bool, horizon time.Duration, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	h := horizon.Seconds()
	perSecond := make([]int, int(h)+1)
	ahead := fleetRefreshAhead * ttl.Seconds()
	for range n {
		t := rng.Float64() * fleetStartWindow.Seconds() // Init's fetch
		for {
			due := ahead
			if jitter {
				due -= ahead * fleetJitter * rng.Float64()
			}
			t += due + rng.ExpFloat64()/rate // the first INVOKE past the refresh point
			if t >= h {
				break
			}
			perSecond[int(t)]++
		}
	}
	return perSecond
}

// bucket averages per-second refresh counts over buckets of size seconds,
// as calls per second (callsPerRefresh each).
func bucket(perSecond []int, size int, callsPerRefresh float64) []float64 {
	var out []float64
	for i := 0; i < len(perSecond); i += size {
		sum := 0
		end := min(i+size, len(perSecond))
		for _, n := range perSecond[i:end] {
			sum += n
		}
		out = append(out, float64(sum)*callsPerRefresh/float64(end-i))
	}
	return out
}
