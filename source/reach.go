package source

import (
	"strings"
	"sync"
	"sync/atomic"
)

// ClientFactory makes the clients that reach region (never the home region
// with the extension's own credentials: those are Options' clients). The
// clients it makes should share the home clients' HTTP client, so that
// connection limits hold across regions. It is called at most once per
// region, when a key first needs it.
type ClientFactory func(region string) (SecretsManagerAPI, SSMAPI, error)

// clients are the API clients of one region.
type clients struct {
	sm      SecretsManagerAPI
	ssm     SSMAPI
	noBatch atomic.Bool // set once BatchGetSecretValue has been refused here
}

// target is where a key is fetched: a region ("" the home region).
type target struct {
	region string
}

// reach is the source's clients beyond the home region's.
type reach struct {
	homeRegion string
	newClients ClientFactory

	mu     sync.Mutex // protects others
	others map[target]*clients
}

// ARNRegion returns the region an ARN names (arn:partition:service:region:
// account:resource), or "" when id is not an ARN or names no region.
func ARNRegion(id string) string {
	rest, ok := strings.CutPrefix(id, "arn:")
	if !ok {
		return ""
	}
	f := strings.SplitN(rest, ":", 5)
	if len(f) < 5 {
		return ""
	}
	return f[2]
}

// targetOf is where key is fetched: the region its ARN names, when that is
// not the home region.
func (s *Source) targetOf(key Key) target {
	r := ARNRegion(key.ID)
	if r == s.reach.homeRegion || s.reach.newClients == nil {
		r = ""
	}
	return target{region: r}
}

// clientsFor returns the clients that fetch key, making them on first use.
func (s *Source) clientsFor(key Key) (*clients, *Error) {
	t := s.targetOf(key)
	if t == (target{}) {
		return s.home, nil
	}
	s.reach.mu.Lock()
	defer s.reach.mu.Unlock()
	if cl := s.reach.others[t]; cl != nil {
		return cl, nil
	}
	// Making a client does no I/O (credentials and endpoints resolve on
	// the first call), so holding mu here blocks no one for long.
	sm, ssm, err := s.reach.newClients(t.region)
	if err != nil {
		return nil, &Error{Class: ClassInvalid, Code: "RegionUnavailable", Message: "no client for region " + t.region + ": " + err.Error(), Key: key, Err: err}
	}
	cl := &clients{sm: sm, ssm: ssm}
	s.reach.others[t] = cl
	return cl, nil
}

// group sorts keys by the clients that fetch them, delivering at once the
// keys no clients can be made for.
func (s *Source) group(keys []Key, deliver Deliver) map[*clients][]Key {
	groups := map[*clients][]Key{}
	for _, k := range keys {
		cl, err := s.clientsFor(k)
		if err != nil {
			deliver(k, nil, err)
			continue
		}
		groups[cl] = append(groups[cl], k)
	}
	return groups
}
