package source

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// ClientFactory makes the clients that reach region ("" the home region)
// with the credentials of role ("" the extension's own; never both "":
// those are Options' clients). The clients it makes should share the home
// clients' HTTP client, so that connection limits hold across regions and
// roles. It is called at most once per region and role, when a key first
// needs them.
type ClientFactory func(region, role string) (SecretsManagerAPI, SSMAPI, error)

// clients are the API clients of one region.
type clients struct {
	sm      SecretsManagerAPI
	ssm     SSMAPI
	noBatch atomic.Bool // set once BatchGetSecretValue has been refused here
}

// target is where and as whom a key is fetched: a region ("" the home
// region) and a role ("" the extension's own credentials).
type target struct {
	region, role string
}

// reach is the source's clients beyond the home region's.
type reach struct {
	homeRegion     string
	newClients     ClientFactory
	maxRoles       int
	failoverRegion string
	failedOver     atomic.Bool // the last answer for the home region came from the failover region

	mu     sync.Mutex // protects others and roles
	others map[target]*clients
	roles  map[string]bool // roles with clients
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
	if r == s.reach.homeRegion {
		r = ""
	}
	return target{region: r, role: key.Role}
}

// clientsFor returns the clients that fetch key, making them on first use.
func (s *Source) clientsFor(key Key) (*clients, *Error) {
	return s.clientsAt(s.targetOf(key), key)
}

// clientsAt returns the clients of t, making them on first use; key is
// for the error.
func (s *Source) clientsAt(t target, key Key) (*clients, *Error) {
	if t == (target{}) {
		return s.home, nil
	}
	if s.reach.newClients == nil {
		if t.role != "" {
			return nil, &Error{Class: ClassInvalid, Code: "RolesUnsupported", Message: "reading as another role is not available here", Key: key}
		}
		return s.home, nil // no other regions: the home clients answer as they can
	}
	s.reach.mu.Lock()
	defer s.reach.mu.Unlock()
	if cl := s.reach.others[t]; cl != nil {
		return cl, nil
	}
	if t.role != "" && !s.reach.roles[t.role] && len(s.reach.roles) >= s.reach.maxRoles {
		return nil, &Error{Class: ClassInvalid, Code: "TooManyRoles", Key: key,
			Message: fmt.Sprintf("already reading as %d roles, the most allowed (SECRETS_PREFETCH_MAX_ROLES)", s.reach.maxRoles)}
	}
	// Making a client does no I/O (credentials and endpoints resolve on
	// the first call), so holding mu here blocks no one for long.
	sm, ssm, err := s.reach.newClients(t.region, t.role)
	if err != nil {
		return nil, &Error{Class: ClassInvalid, Code: "ClientUnavailable", Message: "no client for region " + cmp.Or(t.region, s.reach.homeRegion) + ": " + err.Error(), Key: key, Err: err}
	}
	cl := &clients{sm: sm, ssm: ssm}
	s.reach.others[t] = cl
	if t.role != "" {
		s.reach.roles[t.role] = true
	}
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

// RoleCredentials wraps the credentials provider of role (stscreds' over
// sts:AssumeRole) so that its failures are told apart from the failures of
// the read itself: classify turns them into AssumeRole* codes. Its errors
// carry STS's code and message, which never hold credentials.
func RoleCredentials(role string, p aws.CredentialsProvider) aws.CredentialsProvider {
	return roleProvider{role: role, p: p}
}

type roleProvider struct {
	role string
	p    aws.CredentialsProvider
}

func (r roleProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := r.p.Retrieve(ctx)
	if err != nil {
		return aws.Credentials{}, &RoleError{Role: r.role, Err: err}
	}
	return c, nil
}

// RoleError is a failure to get the credentials of a role.
type RoleError struct {
	Role string
	Err  error
}

func (e *RoleError) Error() string {
	return "sts:AssumeRole of " + e.Role + " failed: " + e.Err.Error()
}
func (e *RoleError) Unwrap() error { return e.Err }

// classifyRole classifies a failure to assume a role: AssumeRoleDenied when
// STS refused (the role's trust policy, or the extension's own policy),
// else AssumeRoleFailed with the class of STS's error.
func classifyRole(key Key, re *RoleError) *Error {
	inner := classify(key, re.Err)
	out := &Error{Class: inner.Class, Key: key, Err: re,
		Message: "sts:AssumeRole of " + re.Role + " failed: " + inner.Code + ": " + inner.Message}
	switch inner.Class {
	case ClassAccessDenied, ClassInvalid, ClassNotFound:
		out.Class, out.Code = ClassAccessDenied, "AssumeRoleDenied"
	default:
		out.Code = "AssumeRoleFailed"
	}
	return out
}

// failover fetches keys, which the home region's clients cl failed with
// homeErr, from the replicas in the failover region, and reports whether it
// did (then every key has been delivered). Only secrets fetched from the
// home region fail over, only for failures a replica can cure: 5xx,
// resets, timeouts. Throttling is a quota, not an outage; not found and
// access denied are the same answer everywhere. A replica's own failure is
// not the key's: the home region's error is delivered instead, so a
// replica that lacks the secret never turns an outage into "not found".
func (s *Source) failover(ctx context.Context, cl *clients, keys []Key, homeErr error, deliver Deliver) bool {
	fr := s.reach.failoverRegion
	if fr == "" || fr == s.reach.homeRegion || ctx.Err() != nil || len(keys) == 0 || keys[0].Service != SecretsManager {
		return false
	}
	if c := classify(keys[0], homeErr).Class; c != ClassTransient && c != ClassTimeout {
		return false
	}
	home := s.home
	if keys[0].Role != "" {
		home, _ = s.clientsAt(target{role: keys[0].Role}, keys[0])
	}
	if cl != home {
		return false // not the home region's clients: an ARN of another region
	}
	fcl, cerr := s.clientsAt(target{region: fr, role: keys[0].Role}, keys[0])
	if cerr != nil {
		return false
	}
	orig := make(map[Key]Key, len(keys))
	replica := make([]Key, len(keys))
	for i, k := range keys {
		r := k
		r.ID = replicaID(k.ID, fr)
		replica[i] = r
		orig[r] = k
	}
	if !s.reach.failedOver.Swap(true) {
		s.log.Warn("home region failing; reading replicas in the failover region", "region", fr, "error", classify(keys[0], homeErr).Code)
	}
	s.stats.failovers.Add(uint64(len(keys)))
	var served int
	var mu sync.Mutex
	s.fetchGroup(ctx, fcl, replica, func(rk Key, item *Item, err error) {
		k := orig[rk]
		if err != nil {
			e := classify(k, homeErr)
			e.Batch = len(keys) > 1
			deliver(k, nil, e)
			return
		}
		mu.Lock()
		served++
		mu.Unlock()
		item.Key, item.Region = k, fr
		deliver(k, item, nil)
	})
	s.log.Debug("served from the failover region", "region", fr, "items", served, "asked", len(keys))
	return true
}

// homeAnswered notes a success of the home region's clients cl, ending a
// failover.
func (s *Source) homeAnswered(cl *clients) {
	if s.reach.failoverRegion != "" && cl == s.home && s.reach.failedOver.Swap(false) {
		s.log.Info("home region answers again; replicas no longer read", "region", s.reach.homeRegion)
	}
}

// replicaID is the id of a secret's replica in region: the same name, or
// the same ARN with the region changed (a replica keeps the primary's name
// and random suffix).
func replicaID(id, region string) string {
	rest, ok := strings.CutPrefix(id, "arn:")
	if !ok {
		return id
	}
	f := strings.SplitN(rest, ":", 5)
	if len(f) < 5 {
		return id
	}
	f[2] = region
	return "arn:" + strings.Join(f, ":")
}
