package localserver

import (
	"net/url"
	"strings"

	"github.com/secrets-prefetch/secrets-prefetch/internal/names"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// Limits on what a request may name; AWS's own limits are lower.
const (
	maxIDLen      = 2048
	maxJSONKeyLen = 1024
)

// request is a parsed read.
type request struct {
	key        source.Key
	jsonKey    string
	hasJSONKey bool
	refreshNow bool
}

// requestError is a bad request: status 400 with a code and message.
type requestError struct {
	code, msg string
}

func (e *requestError) Error() string { return e.code + ": " + e.msg }

func badRequest(code, msg string) *requestError { return &requestError{code, msg} }

// query holds the parameters of a raw query string, refusing duplicates.
// A read names a handful, kept in an array and found by a scan, so parsing
// allocates no map per request; past that many, they go to a map.
type query struct {
	n     int
	small [8]struct{ k, v string }
	large map[string]string // all of them, once there are more than len(small)
}

// get returns the value of the parameter name and whether it was given.
func (q *query) get(name string) (string, bool) {
	if q.large != nil {
		v, ok := q.large[name]
		return v, ok
	}
	for _, p := range q.small[:q.n] {
		if p.k == name {
			return p.v, true
		}
	}
	return "", false
}

// val returns the value of the parameter name, "" if it was not given.
func (q *query) val(name string) string {
	v, _ := q.get(name)
	return v
}

// add adds a parameter that is not there yet.
func (q *query) add(k, v string) {
	switch {
	case q.large != nil:
		q.large[k] = v
	case q.n < len(q.small):
		q.small[q.n].k, q.small[q.n].v = k, v
		q.n++
	default:
		q.large = make(map[string]string, 2*len(q.small))
		for _, p := range q.small {
			q.large[p.k] = p.v
		}
		q.large[k] = v
	}
}

func parseQuery(raw string) (query, error) {
	var q query
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return query{}, badRequest("MalformedQueryString", "the query string is not valid percent-encoding")
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return query{}, badRequest("MalformedQueryString", "the query string is not valid percent-encoding")
		}
		if _, dup := q.get(key); dup {
			return query{}, badRequest("DuplicateParameter", "query parameter "+names.Quote(key)+" is given more than once")
		}
		q.add(key, val)
	}
	return q, nil
}

func (q *query) bool(name string) (bool, error) {
	v, ok := q.get(name)
	if !ok {
		return false, nil
	}
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, badRequest("InvalidParameterValue", name+" must be true or false")
}

// checkName validates an id or name a caller sent.
func checkName(param, v string) error {
	if v == "" {
		return badRequest("MissingParameter", "query parameter "+param+" is required")
	}
	if len(v) > maxIDLen {
		return badRequest("InvalidParameterValue", param+" is longer than 2048 characters")
	}
	if !names.Printable(v) {
		return badRequest("InvalidParameterValue", param+" contains control characters or is not UTF-8")
	}
	return nil
}

// common parses jsonKey, refreshNow and roleArn, shared by both endpoints.
func (q *query) common(r *request) error {
	var err error
	if role, ok := q.get("roleArn"); ok {
		// The Secrets Manager Agent's and Cloud Extensions' name for it.
		if !names.IsRoleARN(role) {
			return badRequest("InvalidParameterValue", "roleArn must be an IAM role ARN, arn:aws:iam::123456789012:role/NAME")
		}
		r.key.Role = role
	}
	if r.refreshNow, err = q.bool("refreshNow"); err != nil {
		return err
	}
	if k, ok := q.get("jsonKey"); ok {
		if k == "" || len(k) > maxJSONKeyLen {
			return badRequest("InvalidJSONKey", "jsonKey must be 1 to 1024 characters")
		}
		r.jsonKey, r.hasJSONKey = k, true
	}
	return nil
}

// parseSecretRequest parses /secretsmanager/get's query.
func parseSecretRequest(rawQuery string) (request, error) {
	q, err := parseQuery(rawQuery)
	if err != nil {
		return request{}, err
	}
	r := request{key: source.Key{Service: source.SecretsManager, ID: q.val("secretId")}}
	if err := checkName("secretId", r.key.ID); err != nil {
		return request{}, err
	}
	r.key.VersionID, r.key.VersionStage = q.val("versionId"), q.val("versionStage")
	if r.key.VersionID != "" && r.key.VersionStage != "" {
		return request{}, badRequest("ConflictingParameters", "give versionId or versionStage, not both")
	}
	for _, p := range [...]struct{ name, v string }{{"versionId", r.key.VersionID}, {"versionStage", r.key.VersionStage}} {
		if len(p.v) > 256 || !names.Printable(p.v) {
			return request{}, badRequest("InvalidParameterValue", p.name+" must be at most 256 printable characters")
		}
	}
	if r.key.VersionStage == "AWSCURRENT" {
		r.key.VersionStage = "" // the default: share the prefetched entry
	}
	return r, q.common(&r)
}

// parsePathRequest parses a path-route read, GET <prefix><secretId>?query:
// the id is the path after the prefix (already unescaped), and the query
// is /secretsmanager/get's, less secretId.
func parsePathRequest(id, rawQuery string) (request, error) {
	if id == "" {
		return request{}, badRequest("MissingParameter", "the path must name a secret after its prefix")
	}
	if err := checkName("secretId", id); err != nil {
		return request{}, err
	}
	q, err := parseQuery(rawQuery)
	if err != nil {
		return request{}, err
	}
	if _, ok := q.get("secretId"); ok {
		return request{}, badRequest("ConflictingParameters", "the secret is named by the path; give no secretId")
	}
	if len(rawQuery) > 0 {
		rawQuery += "&"
	}
	return parseSecretRequest(rawQuery + "secretId=" + url.QueryEscape(id))
}

// parseParameterRequest parses /systemsmanager/parameters/get's query. A
// selector may come in the name (name:3, name:label) or as version= / label=.
func parseParameterRequest(rawQuery string) (request, error) {
	q, err := parseQuery(rawQuery)
	if err != nil {
		return request{}, err
	}
	name := q.val("name")
	if err := checkName("name", name); err != nil {
		return request{}, err
	}
	full := name
	name, sel := names.SplitSelector(name)
	if name == "" {
		return request{}, badRequest("InvalidParameterValue", "name has a selector but no name")
	}
	if sel == "" && name != full {
		// "name:" would otherwise read name's latest version.
		return request{}, badRequest("InvalidParameterValue", "name ends in ':' without a version or label")
	}
	version, hasVersion := q.get("version")
	label, hasLabel := q.get("label")
	n := 0
	for _, b := range []bool{sel != "", hasVersion, hasLabel} {
		if b {
			n++
		}
	}
	if n > 1 {
		return request{}, badRequest("ConflictingParameters", "give one of a name selector, version and label")
	}
	switch {
	case sel != "":
		if err := checkSelector(sel); err != nil {
			return request{}, err
		}
	case hasVersion:
		if !names.IsVersion(version) {
			return request{}, badRequest("InvalidParameterValue", "version must be a whole number from 1")
		}
		sel = version
	case hasLabel:
		if !names.IsLabel(label) {
			return request{}, badRequest("InvalidParameterValue", "label must be 1 to 100 letters, digits, '.', '-' or '_', not beginning with a digit")
		}
		sel = label
	}
	if sel != "" {
		// SSM is asked for name:sel; it must read that back as name and
		// sel. ("arn" with label=L would reach it as "arn:L", an ARN.)
		if n, s := names.SplitSelector(name + ":" + sel); n != name || s != sel {
			return request{}, badRequest("InvalidParameterValue", "this name can't be given a version or label")
		}
	}
	r := request{key: source.Key{Service: source.ParameterStore, ID: name}}
	if sel != "" {
		r.key.Selector = ":" + sel
	}
	if r.key.Decrypt, err = q.bool("withDecryption"); err != nil {
		return request{}, err
	}
	return r, q.common(&r)
}

func checkSelector(sel string) error {
	if names.IsVersion(sel) || names.IsLabel(sel) {
		return nil
	}
	return badRequest("InvalidParameterValue", "a name selector must be :version or :label")
}
