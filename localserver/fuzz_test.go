package localserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/secrets-prefetch/secrets-prefetch/internal/names"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// queryCorpus seeds both request parsers.
var queryCorpus = []string{
	"",
	"secretId=db",
	"secretId=%2Fapp%2Fdb&versionStage=AWSPREVIOUS",
	"secretId=db&versionStage=AWSCURRENT",
	"secretId=db&versionId=5ce2760a-2802-4c73-bd99-63d49ab6b5ef&jsonKey=password&refreshNow=true",
	"secretId=db&versionId=v&versionStage=s",
	"secretId=a&secretId=b",
	"secretId=%zz",
	"secretId=a%00b",
	"secretId=a%C2%85b",
	"secretId=%FF",
	"secretId=a+b%2B",
	"secretId=arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf",
	"name=%2Flambda-ext-test-param%2Fdummy-string-list&version=1",
	"name=%2Flambda-ext-test-param%2Fdummy-secure-string&label=Dev&withDecryption=true",
	"name=%2Faws%2Freference%2Fsecretsmanager%2Fdummy-binary-secret&label=AWSPREVIOUS&withDecryption=true",
	"name=/app/db:3",
	"name=/app/db:Dev&jsonKey=k",
	"name=/app/db:",
	"name=:3",
	"name=/app/db:0",
	"name=/app/db&version=0",
	"name=/app/db:3&version=3",
	"name=/app/db&label=3",
	"name=arn:aws:ssm:us-east-1:123456789012:parameter/app/db:7",
	"name=arn:x:y",
	"name=arn:x&label=L",
	"name=a:b:c",
	"name=a/b:c/d",
	"name=%3A%3A",
	"name=p&withDecryption=TRUE&refreshNow=False",
	"=&&=&",
	"jsonKey=&name=p",
}

// checkRequestError wants a refused query to carry a request error.
func checkRequestError(t *testing.T, q string, err error) {
	t.Helper()
	var rerr *requestError
	if !errors.As(err, &rerr) || rerr.code == "" || rerr.msg == "" {
		t.Fatalf("%q: error %v (%T) is not a *requestError with code and message", q, err, err)
	}
}

// checkID checks what every accepted id or name must be.
func checkID(t *testing.T, q, id string) {
	t.Helper()
	if id == "" || len(id) > maxIDLen || !utf8.ValidString(id) || !names.Printable(id) {
		t.Fatalf("%q: accepted id %q", q, id)
	}
}

func checkCommon(t *testing.T, q string, r request) {
	t.Helper()
	if r.hasJSONKey != (r.jsonKey != "") || len(r.jsonKey) > maxJSONKeyLen {
		t.Fatalf("%q: jsonKey %q, hasJSONKey %v", q, r.jsonKey, r.hasJSONKey)
	}
}

// rebuild renders the parsed parameters back into a query, for a round trip.
func rebuild(params ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		if params[i+1] != "" {
			v.Set(params[i], params[i+1])
		}
	}
	return v.Encode()
}

func boolParam(b bool) string {
	if b {
		return "true"
	}
	return ""
}

func FuzzParseSecretRequest(f *testing.F) {
	for _, q := range queryCorpus {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		r, err := parseSecretRequest(q)
		if err != nil {
			checkRequestError(t, q, err)
			return
		}
		k := r.key
		checkID(t, q, k.ID)
		if k.Service != source.SecretsManager || k.Selector != "" || k.Decrypt {
			t.Fatalf("%q: key %+v is not a plain secret key", q, k)
		}
		if k.VersionID != "" && k.VersionStage != "" {
			t.Fatalf("%q: both VersionID and VersionStage: %+v", q, k)
		}
		if k.VersionStage == "AWSCURRENT" {
			t.Fatalf("%q: AWSCURRENT kept: it must share the default key", q)
		}
		checkCommon(t, q, r)
		// The parse is a function of the parameters: rendering them again
		// gives the same request.
		again := rebuild("secretId", k.ID, "versionId", k.VersionID, "versionStage", k.VersionStage,
			"jsonKey", r.jsonKey, "refreshNow", boolParam(r.refreshNow))
		r2, err := parseSecretRequest(again)
		if err != nil || r2 != r {
			t.Fatalf("%q parsed to %+v; its rendering %q to %+v, %v", q, r, again, r2, err)
		}
	})
}

func FuzzParseParameterRequest(f *testing.F) {
	for _, q := range queryCorpus {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		r, err := parseParameterRequest(q)
		if err != nil {
			checkRequestError(t, q, err)
			return
		}
		k := r.key
		checkID(t, q, k.ID)
		if k.Service != source.ParameterStore || k.VersionID != "" || k.VersionStage != "" {
			t.Fatalf("%q: key %+v is not a parameter key", q, k)
		}
		if k.Selector != "" {
			sel, ok := strings.CutPrefix(k.Selector, ":")
			if !ok || !names.IsVersion(sel) && !names.IsLabel(sel) {
				t.Fatalf("%q: selector %q is not :version or :label", q, k.Selector)
			}
		}
		checkCommon(t, q, r)
		// SSM is asked for ID+Selector: it must name what we keyed, so
		// splitting it again gives the same ID and selector. (A slashless
		// "arn:" name is never split; SSM rejects such names anyway.)
		if !strings.HasPrefix(k.ID, "arn:") || strings.Contains(k.ID, "/") {
			id, sel := names.SplitSelector(k.ID + k.Selector)
			if id != k.ID || (sel == "") != (k.Selector == "") || sel != "" && ":"+sel != k.Selector {
				t.Fatalf("%q: key %+v: SSM would read %q as %q and %q", q, k, k.ID+k.Selector, id, sel)
			}
		}
		again := rebuild("name", k.ID+k.Selector, "withDecryption", boolParam(k.Decrypt),
			"jsonKey", r.jsonKey, "refreshNow", boolParam(r.refreshNow))
		r2, err := parseParameterRequest(again)
		if err != nil || r2 != r {
			if !strings.HasPrefix(k.ID, "arn:") || strings.Contains(k.ID, "/") {
				t.Fatalf("%q parsed to %+v; its rendering %q to %+v, %v", q, r, again, r2, err)
			}
		}
	})
}

func FuzzExtractJSONKey(f *testing.F) {
	for _, s := range []struct{ doc, key string }{
		{`{"user":"alice","password":"p"}`, "password"},
		{`{"user":"alice","password":"p"}`, "missing"},
		{`{"n":5432,"o":{"a":[1,2]},"z":null,"b":true}`, "o"},
		{`{"dup":"a","dup":"b"}`, "dup"},
		{`{"esc\u00e9":"x\"\\\/\b\f\n\r\t\u2028"}`, "escé"},
		{`{"bad":"\xff"}`, "bad"},
		{"{\"\xff\":\"v\"}", "\xff"},
		{"{\"\xff\":\"v\"}", "\ufffd"},
		{` { "k" : "v" } `, "k"},
		{`{"k":"v"} x`, "k"},
		{`{"k":"v"}]`, "k"},
		{`{"k":"v"}{}`, "k"},
		{`{"k":"v"`, "k"},
		{`{"k" "v"}`, "k"},
		{`{"k":"v",}`, "k"},
		{`{"k":1e999}`, "k"},
		{`{"k":01}`, "k"},
		{`["k"]`, "k"},
		{`"k"`, "k"},
		{`null`, "k"},
		{``, "k"},
		{`{}`, ""},
		{strings.Repeat("[", 100) + strings.Repeat("]", 100), "k"},
		{`{"k":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "k"},
	} {
		f.Add([]byte(s.doc), s.key)
	}
	f.Fuzz(func(t *testing.T, doc []byte, key string) {
		got, err := extractJSONKey(doc, key)
		if err != nil {
			var rerr *requestError
			if !errors.As(err, &rerr) || rerr.code == "" || rerr.msg == "" {
				t.Fatalf("error %v (%T) is not a *requestError with code and message", err, err)
			}
		}
		// What encoding/json makes of the same document.
		var m map[string]json.RawMessage
		if json.Unmarshal(doc, &m) != nil || m == nil {
			if err == nil {
				t.Fatalf("accepted %q, which encoding/json rejects as an object", doc)
			}
			return
		}
		raw, ok := m[key]
		switch {
		case !ok:
			var rerr *requestError
			if !errors.As(err, &rerr) || rerr.code != "JSONKeyNotFound" {
				t.Fatalf("%q has no key %q: got %q, %v; want JSONKeyNotFound", doc, key, got, err)
			}
		case err != nil:
			t.Fatalf("%q has key %q: got %v", doc, key, err)
		case len(raw) > 0 && raw[0] == '"':
			var want string
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			if string(got) != want {
				t.Fatalf("%q[%q] = %q, want %q", doc, key, got, want)
			}
		default:
			var a, b bytes.Buffer
			if json.Compact(&a, got) != nil || json.Compact(&b, raw) != nil || a.String() != b.String() {
				t.Fatalf("%q[%q] = %s, want %s", doc, key, got, raw)
			}
		}
	})
}

// FuzzSplitSelector checks names.SplitSelector, which the parameter parser
// relies on: it splits at a colon after the last '/', losing nothing.
func FuzzSplitSelector(f *testing.F) {
	for _, s := range []string{"", "/a/b", "/a/b:3", "/a/b:Dev", "a:b:c", ":3", "a:", "/a:b/c", "arn:aws:ssm:r:1:parameter/p:3", "arn:aws:ssm:r:1:parameter", "arn:x:y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		n, sel := names.SplitSelector(name)
		if n == name {
			if sel != "" {
				t.Fatalf("%q: unsplit but selector %q", name, sel)
			}
			return
		}
		if n+":"+sel != name {
			t.Fatalf("%q split into %q and %q", name, n, sel)
		}
		if strings.ContainsAny(sel, ":/") {
			t.Fatalf("%q: selector %q holds ':' or '/'", name, sel)
		}
	})
}
