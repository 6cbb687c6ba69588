package awstest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// OpListSecrets is Secrets Manager ListSecrets, as Calls and Inject name it.
const OpListSecrets = "secretsmanager.ListSecrets"

// maxListSecrets is ListSecrets' limit on MaxResults.
const maxListSecrets = 100

// Tags are kept by the front, per region, by secret name: kumo stores the
// tags CreateSecret gives but has no TagResource or UntagResource, and its
// ListSecrets applies no Filters.

// TagSecret adds (or changes) tags on a secret, as TagResource does.
func (a *AWS) TagSecret(ctx context.Context, name string, tags map[string]string) error {
	in := &secretsmanager.TagResourceInput{SecretId: &name}
	for k, v := range tags {
		in.Tags = append(in.Tags, smtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	_, err := a.seedSM.TagResource(ctx, in)
	return err
}

// UntagSecret removes tags from a secret, as UntagResource does.
func (a *AWS) UntagSecret(ctx context.Context, name string, keys ...string) error {
	_, err := a.seedSM.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: &name, TagKeys: keys})
	return err
}

type tag struct{ Key, Value string }

// secretName is the name a secret id (a name, or a full or partial ARN of
// this region) refers to.
func secretName(id string) string {
	_, rest, ok := strings.Cut(id, ":secret:")
	if !ok {
		return id
	}
	// A full ARN ends in "-" and six characters.
	if i := len(rest) - 7; i > 0 && rest[i] == '-' {
		return rest[:i]
	}
	return rest
}

// createSecret forwards CreateSecret to kumo and records its Tags.
func (a *AWS) createSecret(ctx context.Context, w http.ResponseWriter, body []byte) {
	var req struct {
		Name string
		Tags []tag
	}
	_ = json.Unmarshal(body, &req)
	status, out, e := a.kumoRaw(ctx, "secretsmanager.CreateSecret", body)
	if e == nil && status != http.StatusOK {
		e = kumoError("secretsmanager.CreateSecret", status, out)
	}
	if e != nil {
		writeError(w, e)
		return
	}
	a.mu.Lock()
	a.tags[req.Name] = map[string]string{}
	for _, t := range req.Tags {
		a.tags[req.Name][t.Key] = t.Value
	}
	a.mu.Unlock()
	writeRaw(w, out)
}

// tagResource serves TagResource and UntagResource for secrets that exist.
func (a *AWS) tagResource(ctx context.Context, w http.ResponseWriter, op string, body []byte) {
	var req struct {
		SecretID string `json:"SecretId"`
		Tags     []tag
		TagKeys  []string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, badRequest(codeSerializationFailed, "%v", err))
		return
	}
	var v struct{ Name string }
	if e := a.kumoJSON(ctx, "secretsmanager.DescribeSecret", map[string]string{"SecretId": req.SecretID}, &v); e != nil {
		writeError(w, e)
		return
	}
	a.mu.Lock()
	m := a.tags[v.Name]
	if m == nil {
		m = map[string]string{}
		a.tags[v.Name] = m
	}
	for _, t := range req.Tags {
		m[t.Key] = t.Value
	}
	for _, k := range req.TagKeys {
		delete(m, k)
	}
	a.mu.Unlock()
	writeRaw(w, []byte("{}"))
}

// filter is a ListSecrets (and BatchGetSecretValue) Filters entry.
type filter struct {
	Key    string
	Values []string
}

// matches applies Secrets Manager's filter rules: filters are ANDed, the
// values of one filter ORed; each value matches by prefix, and a value
// beginning with "!" negates. "tag-key" and "tag-value" each match any of
// the secret's tags, independently of each other.
func matches(filters []filter, name string, tags map[string]string) bool {
	for _, f := range filters {
		var candidates []string
		switch f.Key {
		case "name":
			candidates = []string{name}
		case "tag-key":
			for k := range tags {
				candidates = append(candidates, k)
			}
		case "tag-value":
			for _, v := range tags {
				candidates = append(candidates, v)
			}
		case "all":
			candidates = []string{name}
			for k, v := range tags {
				candidates = append(candidates, k, v)
			}
		default:
			return false
		}
		matched := false
		for _, v := range f.Values {
			neg := strings.HasPrefix(v, "!")
			v = strings.TrimPrefix(v, "!")
			hit := slices.ContainsFunc(candidates, func(c string) bool { return strings.HasPrefix(c, v) })
			if hit != neg {
				matched = true
			}
		}
		if !matched {
			return false
		}
	}
	return true
}

// listed is one secret as ListSecrets answers it.
type listed struct {
	ARN  string `json:"ARN"`
	Name string `json:"Name"`
	Tags []tag  `json:"Tags,omitempty"`
}

// selectSecrets lists this region's secrets that match filters, sorted by
// name.
func (a *AWS) selectSecrets(ctx context.Context, filters []filter) ([]listed, *apiError) {
	var all []listed
	token := ""
	for {
		in := map[string]any{"MaxResults": maxListSecrets}
		if token != "" {
			in["NextToken"] = token
		}
		raw, _ := json.Marshal(in)
		// Straight to kumo: its list holds every namespace, so this one's
		// are picked out by their prefix before the namespace comes off.
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.kumoURL+"/", bytes.NewReader(raw))
		if err != nil {
			return nil, internalError(OpListSecrets, err)
		}
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", OpListSecrets)
		kumoCallMu.Lock()
		resp, err := a.http.Do(req)
		var out struct {
			SecretList []listed
			NextToken  string
		}
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
		}
		kumoCallMu.Unlock()
		if err != nil {
			return nil, internalError(OpListSecrets, err)
		}
		for _, s := range out.SecretList {
			name, ok := strings.CutPrefix(s.Name, a.ns+"/")
			if !ok || strings.HasPrefix(name, "elsewhere/") {
				continue
			}
			s.ARN = string(a.fromKumo([]byte(s.ARN)))
			s.Name = name
			a.mu.Lock()
			tags := a.tags[name]
			s.Tags = s.Tags[:0]
			for k, v := range tags {
				s.Tags = append(s.Tags, tag{k, v})
			}
			ok = matches(filters, name, tags)
			a.mu.Unlock()
			slices.SortFunc(s.Tags, func(x, y tag) int { return strings.Compare(x.Key, y.Key) })
			if ok {
				all = append(all, s)
			}
		}
		if out.NextToken == "" || out.NextToken == token {
			break
		}
		token = out.NextToken
	}
	slices.SortFunc(all, func(x, y listed) int { return strings.Compare(x.Name, y.Name) })
	return all, nil
}

// page cuts a sorted list at NextToken (the index to start at) and
// MaxResults, returning the next token ("" at the end).
func page[T any](list []T, token string, maxResults, limit int) ([]T, string, *apiError) {
	start := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 || n > len(list) {
			return nil, "", badRequest(codeInvalidParameter, "Invalid NextToken")
		}
		start = n
	}
	if maxResults <= 0 {
		maxResults = limit
	}
	if maxResults > limit {
		return nil, "", badRequest(CodeValidation, "1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to %d", maxResults, limit)
	}
	end := min(start+maxResults, len(list))
	next := ""
	if end < len(list) {
		next = strconv.Itoa(end)
	}
	return list[start:end], next, nil
}

// listSecrets serves ListSecrets with Filters, MaxResults and NextToken.
func (a *AWS) listSecrets(ctx context.Context, w http.ResponseWriter, body []byte) {
	var req struct {
		Filters    []filter
		MaxResults int
		NextToken  string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, badRequest(codeSerializationFailed, "%v", err))
		return
	}
	all, e := a.selectSecrets(ctx, req.Filters)
	if e != nil {
		writeError(w, e)
		return
	}
	list, next, e := page(all, req.NextToken, req.MaxResults, maxListSecrets)
	if e != nil {
		writeError(w, e)
		return
	}
	out := map[string]any{"SecretList": list}
	if next != "" {
		out["NextToken"] = next
	}
	writeJSON(w, out)
}
