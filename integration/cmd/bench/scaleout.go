package main

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// ScaleOut is a fleet of environments starting within a window, each
// prefetching in its Init against the account's quotas, as the extension
// does with the new defaults: its calls all at once (SECRETS_PREFETCH_CONCURRENCY
// 16 is more than one environment's calls), the SDK's three attempts, then
// the source's own back-off; a throttled BatchGetSecretValue falls back to
// GetSecretValue per secret when Fallback is set.
type ScaleOut struct {
	Environments int     `json:"environments"`
	WindowS      float64 `json:"window_seconds"`
	Fallback     bool    `json:"fallback"`
	// Init: from an environment's start to its last item, or to the Init
	// budget (SECRETS_PREFETCH_INIT_TIMEOUT_MILLIS, 5 s) for those it cut.
	InitP50MS    float64 `json:"init_p50_ms"`
	InitP99MS    float64 `json:"init_p99_ms"`
	WithinBudget float64 `json:"within_budget"` // fraction of environments with every item by the budget
	ItemsMissing int     `json:"items_missing"` // items left to be fetched on first read
	// Calls per second, the busiest second, per operation; throttled
	// answers; all calls.
	PeakSSM       int `json:"peak_ssm_tps"`
	PeakBatch     int `json:"peak_batch_tps"`
	PeakGetSecret int `json:"peak_getsecretvalue_tps"`
	Throttled     int `json:"throttled"`
	Calls         int `json:"calls"`
}

// Scale-out model settings.
const (
	scaleLatency   = 50 * time.Millisecond // an answered call
	scaleThrottled = 5 * time.Millisecond  // a throttled answer comes quickly
	scaleBudget    = 5 * time.Second       // the Init budget
	scaleSDKTries  = 3                     // the SDK's attempts per call
)

type scaleAPI int

const (
	apiSSM scaleAPI = iota
	apiBatch
	apiGetSecret
	numScaleAPIs
)

// tokenBucket is a token bucket with a burst of one second's worth.
type tokenBucket struct {
	rate, tokens float64
	last         time.Duration
}

func (b *tokenBucket) take(now time.Duration) bool {
	b.tokens = min(b.rate, b.tokens+(now-b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// scaleCall is one call an environment makes, and the items it brings.
type scaleCall struct {
	env       int
	api       scaleAPI
	items     int
	sdkTry    int // attempts made within the current SDK call
	ownTries  int // the source's retries after the SDK gave up
	holdsSlot bool
}

type scaleEvent struct {
	at   time.Duration
	seq  int
	call *scaleCall
}

type eventQueue []scaleEvent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(scaleEvent)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// scaleEnv is one environment's Init: its limiter (as source's) and progress.
type scaleEnv struct {
	start           time.Duration
	left            int // items still to come
	done            time.Duration
	limit, inFlight int
	gen             int
	streak          int
	waiting         []*scaleCall
	cut             bool
}

// simulateScaleOut runs the model for n environments starting uniformly
// within window.
func simulateScaleOut(n int, window time.Duration, fallback bool, seed uint64) ScaleOut {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	res := ScaleOut{Environments: n, WindowS: window.Seconds(), Fallback: fallback}
	buckets := [numScaleAPIs]*tokenBucket{
		{rate: quotaSSMStandard, tokens: quotaSSMStandard},
		{rate: quotaBatchGetSecretValue, tokens: quotaBatchGetSecretValue},
		{rate: quotaGetSecretValue, tokens: quotaGetSecretValue},
	}
	perSecond := [numScaleAPIs]map[int]int{{}, {}, {}}
	envs := make([]*scaleEnv, n)
	var q eventQueue
	seq := 0
	push := func(at time.Duration, c *scaleCall) {
		seq++
		heap.Push(&q, scaleEvent{at: at, seq: seq, call: c})
	}
	// send starts a call now if its environment has a slot, else queues it.
	var send func(now time.Duration, c *scaleCall)
	send = func(now time.Duration, c *scaleCall) {
		e := envs[c.env]
		if e.inFlight >= e.limit {
			e.waiting = append(e.waiting, c)
			return
		}
		e.inFlight++
		c.holdsSlot = true
		push(now, c)
	}
	release := func(now time.Duration, c *scaleCall, throttled bool) {
		e := envs[c.env]
		e.inFlight--
		c.holdsSlot = false
		if throttled {
			e.limit = max(1, e.limit/2)
			e.streak = 0
		} else if e.limit < defaultConcurrency {
			if e.streak++; e.streak >= e.limit {
				e.limit++
				e.streak = 0
			}
		}
		for e.inFlight < e.limit && len(e.waiting) > 0 {
			w := e.waiting[0]
			e.waiting = e.waiting[1:]
			e.inFlight++
			w.holdsSlot = true
			push(now, w)
		}
	}
	for i := range envs {
		start := time.Duration(rng.Float64() * float64(window))
		envs[i] = &scaleEnv{start: start, left: fleetSecrets + fleetParameters, limit: defaultConcurrency}
		for range ceilDiv(fleetSecrets, secretsPerBatch) {
			push(start, &scaleCall{env: i, api: apiBatch, items: min(fleetSecrets, secretsPerBatch), holdsSlot: true})
		}
		for k := range ceilDiv(fleetParameters, parametersPerBatch) {
			items := min(parametersPerBatch, fleetParameters-k*parametersPerBatch)
			push(start, &scaleCall{env: i, api: apiSSM, items: items, holdsSlot: true})
		}
		envs[i].inFlight = ceilDiv(fleetSecrets, secretsPerBatch) + ceilDiv(fleetParameters, parametersPerBatch)
	}
	for q.Len() > 0 {
		ev := heap.Pop(&q).(scaleEvent)
		now, c := ev.at, ev.call
		e := envs[c.env]
		if now-e.start >= scaleBudget {
			// The Init budget ran out: the prefetch stops; what is left is
			// fetched on first read.
			e.cut = true
			if c.holdsSlot {
				e.inFlight--
			}
			continue
		}
		if !c.holdsSlot {
			send(now, c) // a source-level retry, back from its back-off
			continue
		}
		res.Calls++
		perSecond[c.api][int(now/time.Second)]++
		if buckets[c.api].take(now) {
			// Answered: the items arrive one latency later.
			e.left -= c.items
			if e.left == 0 {
				e.done = now + scaleLatency - e.start
			}
			release(now+scaleLatency, c, false)
			continue
		}
		res.Throttled++
		if c.sdkTry++; c.sdkTry < scaleSDKTries {
			// The SDK's retry: jittered, at most 1 s.
			push(now+scaleThrottled+time.Duration(rng.Float64()*float64(time.Second)), c)
			continue
		}
		release(now+scaleThrottled, c, true)
		if c.api == apiBatch && fallback {
			for range c.items {
				send(now+scaleThrottled, &scaleCall{env: c.env, api: apiGetSecret, items: 1})
			}
			continue
		}
		// The source's own back-off (throttleBackoff), then a new SDK call.
		d := time.Second
		if c.ownTries < 5 {
			d = min(time.Second, 50*time.Millisecond<<c.ownTries)
		}
		c.ownTries++
		c.sdkTry = 0
		push(now+scaleThrottled+d/2+time.Duration(rng.Float64()*float64(d/2)), c)
	}
	var inits []float64
	within := 0
	for _, e := range envs {
		if e.left == 0 && e.done <= scaleBudget {
			within++
			inits = append(inits, float64(e.done)/float64(time.Millisecond))
		} else {
			res.ItemsMissing += e.left
			inits = append(inits, float64(scaleBudget)/float64(time.Millisecond))
		}
	}
	slices.Sort(inits)
	res.InitP50MS, res.InitP99MS = percentile(inits, 50), percentile(inits, 99)
	res.WithinBudget = float64(within) / float64(n)
	peak := func(m map[int]int) int {
		p := 0
		for _, v := range m {
			p = max(p, v)
		}
		return p
	}
	res.PeakSSM, res.PeakBatch, res.PeakGetSecret = peak(perSecond[apiSSM]), peak(perSecond[apiBatch]), peak(perSecond[apiGetSecret])
	return res
}

// fallbackFleet is the largest fleet whose steady refreshes stay within
// Secrets Manager's quotas, by the mean, without and with the fallback:
// without, every refresh is a BatchGetSecretValue; with, the batches past
// its quota become GetSecretValue calls, one per secret.
func fallbackFleet(perEnvRefreshesPerSecond float64) (without, with int, costRatioAtWith float64) {
	batches := float64(ceilDiv(fleetSecrets, secretsPerBatch))
	perEnvBatch := perEnvRefreshesPerSecond * batches
	without = int(math.Floor(quotaBatchGetSecretValue / perEnvBatch))
	// With: batches up to the quota, the rest spilled as GetSecretValue.
	spillPerEnv := perEnvRefreshesPerSecond * float64(fleetSecrets)
	with = without + int(math.Floor(quotaGetSecretValue/spillPerEnv))
	// Calls (and so cost) at that fleet, per the calls the same fleet
	// would make by batches alone.
	callsWith := quotaBatchGetSecretValue + float64(with-without)*spillPerEnv
	costRatioAtWith = callsWith / (float64(with) * perEnvBatch)
	return without, with, costRatioAtWith
}
