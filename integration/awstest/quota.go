package awstest

import (
	"strings"
	"time"
)

// quota is a token bucket over the calls of one service, as AWS applies an
// account's transactions-per-second quota: each call takes a token, the
// bucket refills at rate per second up to burst, and a call finding it
// empty is answered ThrottlingException at once.
type quota struct {
	id        int
	service   string // "ssm" or "secretsmanager"; "ssm.GetParameters" for one operation
	rate      float64
	burst     float64
	tokens    float64
	last      time.Time
	throttled int
}

// SetQuota limits the calls of service ("ssm", "secretsmanager", or one
// operation such as OpBatchGetSecretValue) to tps per second, with a burst
// of one second's worth, until remove is called. Throttled calls are
// counted by Calls like any other; Throttled counts them apart. The seeding
// helpers' calls are never limited.
func (a *AWS) SetQuota(service string, tps int) (remove func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faultSeq++
	id := a.faultSeq
	a.quotas = append(a.quotas, &quota{id: id, service: service, rate: float64(tps), burst: float64(tps), tokens: float64(tps), last: time.Now()})
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		for i, q := range a.quotas {
			if q.id == id {
				a.quotas = append(a.quotas[:i], a.quotas[i+1:]...)
				return
			}
		}
	}
}

// Throttled returns how many calls the quotas have refused.
func (a *AWS) Throttled() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, q := range a.quotas {
		n += q.throttled
	}
	return n
}

// overQuota takes a token for op from each quota that covers it, and
// reports whether one of them had none.
func (a *AWS) overQuota(op string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	over := false
	for _, q := range a.quotas {
		if op != q.service && !strings.HasPrefix(op, q.service+".") {
			continue
		}
		q.tokens = min(q.burst, q.tokens+now.Sub(q.last).Seconds()*q.rate)
		q.last = now
		if q.tokens < 1 {
			q.throttled++
			over = true
			continue
		}
		q.tokens--
	}
	return over
}
