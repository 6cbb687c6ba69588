package localserver

import (
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// The token may come in X-Vault-Token as well, as with the Secrets Manager
// Agent; a configured header list replaces the default one.
func TestTokenHeaders(t *testing.T) {
	s := newServer(&fakeCache{})
	const p = "/secretsmanager/get?secretId=db"
	if w := serve(s, http.MethodGet, p, "", VaultTokenHeader, testToken); w.Code != http.StatusOK {
		t.Errorf("X-Vault-Token: status %d, want 200", w.Code)
	}
	if w := serve(s, http.MethodGet, p, "", VaultTokenHeader, "wrong"); w.Code != http.StatusForbidden {
		t.Errorf("a wrong X-Vault-Token: status %d, want 403", w.Code)
	}
	only := newServer(&fakeCache{}, func(o *Options) { o.TokenHeaders = []string{"X-My-Token"} })
	if w := serve(only, http.MethodGet, p, "", "X-My-Token", testToken); w.Code != http.StatusOK {
		t.Errorf("configured header: status %d, want 200", w.Code)
	}
	w := serve(only, http.MethodGet, p, testToken)
	if code, _ := errorCode(t, w); w.Code != http.StatusUnauthorized || code != "MissingToken" {
		t.Errorf("a header no longer in the list: %d %s, want 401 MissingToken", w.Code, code)
	}
}

// SetToken swaps the token while requests are served: from then on the new
// one is accepted and the old one refused.
func TestSetToken(t *testing.T) {
	s := newServer(&fakeCache{})
	const p = "/secretsmanager/get?secretId=db"
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				// Either token may be current; each answer is 200 or 403.
				if w := serve(s, http.MethodGet, p, testToken); w.Code != http.StatusOK && w.Code != http.StatusForbidden {
					t.Errorf("status %d during a swap", w.Code)
				}
			}
		})
	}
	for i := range 50 {
		if i%2 == 0 {
			s.SetToken("rotated")
		} else {
			s.SetToken(testToken)
		}
	}
	wg.Wait()
	s.SetToken("rotated")
	if w := serve(s, http.MethodGet, p, "rotated"); w.Code != http.StatusOK {
		t.Errorf("the new token: status %d, want 200", w.Code)
	}
	if w := serve(s, http.MethodGet, p, testToken); w.Code != http.StatusForbidden {
		t.Errorf("the old token: status %d, want 403", w.Code)
	}
	s.SetToken("")
	if w := serve(s, http.MethodGet, p, "rotated"); w.Code != http.StatusForbidden {
		t.Errorf("no token: status %d, want 403", w.Code)
	}
	if w := serve(s, http.MethodGet, "/ping", ""); w.Code != http.StatusOK {
		t.Errorf("/ping without a token: status %d, want 200", w.Code)
	}
}

// The path route reads the secret the path names, with the query
// parameters of /secretsmanager/get, and checks the token.
func TestPathRoute(t *testing.T) {
	fc := &fakeCache{}
	s := newServer(fc)
	for _, tt := range []struct {
		target string
		want   source.Key
	}{
		{"/v1/db", source.SecretKey("db")},
		{"/v1/app/db?versionStage=AWSPREVIOUS", source.Key{Service: source.SecretsManager, ID: "app/db", VersionStage: "AWSPREVIOUS"}},
		{"/v1/" + url.PathEscape("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"), source.SecretKey("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf")},
		{"/v1/a%20b%2Fc", source.SecretKey("a b/c")},
	} {
		w := serve(s, http.MethodGet, tt.target, testToken)
		if w.Code != http.StatusOK {
			t.Errorf("%s: status %d, want 200: %s", tt.target, w.Code, w.Body)
			continue
		}
		calls := fc.recorded()
		if got := calls[len(calls)-1].key; got != tt.want {
			t.Errorf("%s: read %+v, want %+v", tt.target, got, tt.want)
		}
	}
	if w := serve(s, http.MethodGet, "/v1/db?jsonKey=user", testToken); w.Code != http.StatusOK || w.Body.String() != "u" {
		t.Errorf("jsonKey: %d %q, want 200 \"u\"", w.Code, w.Body)
	}
	for _, tt := range []struct {
		target, token string
		status        int
		code          string
	}{
		{"/v1/db", "", http.StatusUnauthorized, "MissingToken"},
		{"/v1/db", "wrong", http.StatusForbidden, "InvalidToken"},
		{"/v1/", testToken, http.StatusBadRequest, "MissingParameter"},
		{"/v1/db?secretId=other", testToken, http.StatusBadRequest, "ConflictingParameters"},
		{"/v1/db?versionId=a&versionStage=b", testToken, http.StatusBadRequest, "ConflictingParameters"},
		{"/v1/a%00b", testToken, http.StatusBadRequest, "InvalidParameterValue"},
		{"/v2/db", testToken, http.StatusNotFound, "UnknownPath"},
	} {
		w := serve(s, http.MethodGet, tt.target, tt.token)
		if code, _ := errorCode(t, w); w.Code != tt.status || code != tt.code {
			t.Errorf("%s: %d %s, want %d %s", tt.target, w.Code, code, tt.status, tt.code)
		}
	}
	custom := newServer(fc, func(o *Options) { o.PathPrefix = "/secrets/" })
	if w := serve(custom, http.MethodGet, "/secrets/db", testToken); w.Code != http.StatusOK {
		t.Errorf("a configured prefix: status %d, want 200", w.Code)
	}
	if w := serve(custom, http.MethodGet, "/v1/db", testToken); w.Code != http.StatusNotFound {
		t.Errorf("the default prefix once another is configured: status %d, want 404", w.Code)
	}
}

// FuzzParsePathRequest: a path-route read parses to the same request as
// /secretsmanager/get with that secretId, or is refused with a request error.
func FuzzParsePathRequest(f *testing.F) {
	for _, q := range queryCorpus {
		f.Add("db", q)
		f.Add("app/db", q)
	}
	f.Add("", "")
	f.Add("a\x00b", "")
	f.Add("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf", "versionStage=AWSPREVIOUS")
	f.Fuzz(func(t *testing.T, id, q string) {
		r, err := parsePathRequest(id, q)
		if err != nil {
			checkRequestError(t, q, err)
			return
		}
		checkID(t, q, r.key.ID)
		if r.key.ID != id {
			t.Fatalf("%q %q: read %q", id, q, r.key.ID)
		}
		qq := q
		if qq != "" {
			qq += "&"
		}
		r2, err := parseSecretRequest(qq + "secretId=" + url.QueryEscape(id))
		if err != nil || r2 != r {
			t.Fatalf("%q %q parsed to %+v; as a query to %+v, %v", id, q, r, r2, err)
		}
	})
}
