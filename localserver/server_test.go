package localserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

func TestAuthAndPing(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		target   string
		token    string // "" sends none
		header   []string
		notReady bool
		noToken  bool // the server was given no token

		wantStatus int
		wantCode   string // for errors
		wantBody   string // for successes
	}{
		{name: "ping ready, no token", target: "/ping", wantStatus: 200, wantBody: "ready"},
		{name: "ping ready, wrong token", target: "/ping", token: "wrong", wantStatus: 200, wantBody: "ready"},
		{name: "ping HEAD", method: http.MethodHead, target: "/ping", wantStatus: 200},
		{name: "ping prefetching", target: "/ping", notReady: true, wantStatus: 503, wantCode: "NotReady"},
		{name: "token missing", target: "/secretsmanager/get?secretId=db", wantStatus: 401, wantCode: "MissingToken"},
		{name: "token wrong", target: "/secretsmanager/get?secretId=db", token: "wrong", wantStatus: 403, wantCode: "InvalidToken"},
		{name: "token a prefix", target: "/secretsmanager/get?secretId=db", token: testToken[:5], wantStatus: 403, wantCode: "InvalidToken"},
		{name: "token longer", target: "/secretsmanager/get?secretId=db", token: testToken + "x", wantStatus: 403, wantCode: "InvalidToken"},
		{name: "token missing on parameters", target: "/systemsmanager/parameters/get?name=p", wantStatus: 401, wantCode: "MissingToken"},
		{name: "token missing on unknown path", target: "/nope", wantStatus: 401, wantCode: "MissingToken"},
		{name: "server without token refuses all", target: "/secretsmanager/get?secretId=db", token: "x", noToken: true, wantStatus: 403, wantCode: "InvalidToken"},
		{name: "token right", target: "/secretsmanager/get?secretId=db", token: testToken, wantStatus: 200, wantBody: string(defaultItem.Body)},
		{name: "forwarded", target: "/secretsmanager/get?secretId=db", token: testToken, header: []string{"X-Forwarded-For", "10.0.0.1"}, wantStatus: 403, wantCode: "ForwardedRequestRefused"},
		{name: "forwarded, empty value", target: "/secretsmanager/get?secretId=db", token: testToken, header: []string{"x-forwarded-for", ""}, wantStatus: 403, wantCode: "ForwardedRequestRefused"},
		{name: "forwarded ping", target: "/ping", header: []string{"X-Forwarded-For", "10.0.0.1"}, wantStatus: 403, wantCode: "ForwardedRequestRefused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := &fakeCache{}
			s := newServer(fc, func(o *Options) {
				o.Ready = func() bool { return !tt.notReady }
				if tt.noToken {
					o.Token = ""
				}
			})
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			w := serve(s, method, tt.target, tt.token, tt.header...)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantCode != "" {
				if code, _ := errorCode(t, w); code != tt.wantCode {
					t.Errorf("code = %q, want %q", code, tt.wantCode)
				}
				if n := len(fc.recorded()); n != 0 {
					t.Errorf("the cache was read %d times for a refused request", n)
				}
				return
			}
			if got := w.Body.String(); got != tt.wantBody {
				t.Errorf("body = %q, want %q", got, tt.wantBody)
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch, http.MethodTrace} {
		for _, target := range []string{"/secretsmanager/get?secretId=db", "/ping"} {
			t.Run(m+" "+target, func(t *testing.T) {
				fc := &fakeCache{}
				w := serve(newServer(fc), m, target, testToken)
				if w.Code != http.StatusMethodNotAllowed {
					t.Fatalf("status = %d, want 405", w.Code)
				}
				if got := w.Header().Get("Allow"); got != "GET, HEAD" {
					t.Errorf("Allow = %q, want %q", got, "GET, HEAD")
				}
				if code, _ := errorCode(t, w); code != "MethodNotAllowed" {
					t.Errorf("code = %q", code)
				}
				if len(fc.recorded()) != 0 {
					t.Error("the cache was read")
				}
			})
		}
	}
}

func TestHead(t *testing.T) {
	s := newServer(&fakeCache{})
	w := serve(s, http.MethodHead, "/secretsmanager/get?secretId=db", testToken)
	if w.Code != 200 {
		t.Fatalf("status = %d", w.Code)
	}
	if w.Body.Len() != 0 {
		t.Errorf("HEAD body = %q, want none", w.Body)
	}
	if got, want := w.Header().Get("Content-Length"), strconv.Itoa(len(defaultItem.Body)); got != want {
		t.Errorf("Content-Length = %q, want %q", got, want)
	}
	if got := w.Header().Get("X-Cache"); got != "hit" {
		t.Errorf("X-Cache = %q", got)
	}

	w = serve(s, http.MethodHead, "/secretsmanager/get", testToken)
	if w.Code != 400 || w.Body.Len() != 0 {
		t.Errorf("HEAD error: status %d body %q, want 400 and no body", w.Code, w.Body)
	}
	if w.Header().Get("Content-Length") == "" {
		t.Error("HEAD error: no Content-Length")
	}
}

func TestUnknownPath(t *testing.T) {
	for _, target := range []string{"/", "/nope", "/secretsmanager/get/", "/secretsmanager", "/systemsmanager/parameters/get/x", "//secretsmanager/get?secretId=db", "/SecretsManager/get?secretId=db"} {
		t.Run(target, func(t *testing.T) {
			fc := &fakeCache{}
			w := serve(newServer(fc), http.MethodGet, target, testToken)
			if w.Code != http.StatusNotFound {
				t.Fatalf("status = %d, want 404", w.Code)
			}
			if code, _ := errorCode(t, w); code != "UnknownPath" {
				t.Errorf("code = %q", code)
			}
			if len(fc.recorded()) != 0 {
				t.Error("the cache was read")
			}
		})
	}
}

// TestRequestKeys checks what each query reads from the cache, or which 400
// it gets without reading.
func TestRequestKeys(t *testing.T) {
	const arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
	const pARN = "arn:aws:ssm:us-east-1:123456789012:parameter/app/db"
	sm := func(id string) source.Key { return source.Key{Service: source.SecretsManager, ID: id} }
	ps := func(name, sel string, decrypt bool) source.Key {
		return source.Key{Service: source.ParameterStore, ID: name, Selector: sel, Decrypt: decrypt}
	}
	withVersionID := func(k source.Key, v string) source.Key { k.VersionID = v; return k }
	withStage := func(k source.Key, v string) source.Key { k.VersionStage = v; return k }
	long := strings.Repeat("a", maxIDLen)

	tests := []struct {
		target      string
		wantKey     source.Key
		wantRefresh bool
		wantCode    string // a 400 code; the cache must not be read
	}{
		// Secrets Manager.
		{target: "/secretsmanager/get?secretId=db", wantKey: sm("db")},
		{target: "/secretsmanager/get?secretId=%2Fapp%2Fdb", wantKey: sm("/app/db")},
		{target: "/secretsmanager/get?secretId=/app/db", wantKey: sm("/app/db")},
		{target: "/secretsmanager/get?secretId=a%2Bb%3D%40", wantKey: sm("a+b=@")},
		{target: "/secretsmanager/get?secretId=" + arn, wantKey: sm(arn)},
		{target: "/secretsmanager/get?secretId=db&unknown=1", wantKey: sm("db")},
		{target: "/secretsmanager/get?secretId=db&&", wantKey: sm("db")},
		{target: "/secretsmanager/get?secretId=" + long, wantKey: sm(long)},
		{target: "/secretsmanager/get?secretId=db&versionId=5ce2760a-2802-4c73-bd99-63d49ab6b5ef", wantKey: withVersionID(sm("db"), "5ce2760a-2802-4c73-bd99-63d49ab6b5ef")},
		{target: "/secretsmanager/get?secretId=db&versionStage=AWSPREVIOUS", wantKey: withStage(sm("db"), "AWSPREVIOUS")},
		{target: "/secretsmanager/get?secretId=db&versionStage=AWSCURRENT", wantKey: sm("db")}, // the prefetched entry
		{target: "/secretsmanager/get?secretId=db&refreshNow=true", wantKey: sm("db"), wantRefresh: true},
		{target: "/secretsmanager/get?secretId=db&refreshNow=TRUE", wantKey: sm("db"), wantRefresh: true},
		{target: "/secretsmanager/get?secretId=db&refreshNow=false", wantKey: sm("db")},
		{target: "/secretsmanager/get?secretId=db&refreshNow=1", wantCode: "InvalidParameterValue"},
		{target: "/secretsmanager/get", wantCode: "MissingParameter"},
		{target: "/secretsmanager/get?secretId=", wantCode: "MissingParameter"},
		{target: "/secretsmanager/get?secretid=db", wantCode: "MissingParameter"},
		{target: "/secretsmanager/get?secretId=db&versionId=v1&versionStage=AWSPREVIOUS", wantCode: "ConflictingParameters"},
		{target: "/secretsmanager/get?secretId=db&versionId=v1&versionStage=AWSCURRENT", wantCode: "ConflictingParameters"},
		{target: "/secretsmanager/get?secretId=a&secretId=b", wantCode: "DuplicateParameter"},
		{target: "/secretsmanager/get?secretId=a&secretId=a", wantCode: "DuplicateParameter"},
		{target: "/secretsmanager/get?secretId=a&secret%49d=b", wantCode: "DuplicateParameter"},
		{target: "/secretsmanager/get?secretId=db&versionStage=S&versionStage=S", wantCode: "DuplicateParameter"},
		{target: "/secretsmanager/get?secretId=db&refreshNow=true&refreshNow=false", wantCode: "DuplicateParameter"},
		{target: "/secretsmanager/get?secretId=%zz", wantCode: "MalformedQueryString"},
		{target: "/secretsmanager/get?secretId=db%", wantCode: "MalformedQueryString"},
		{target: "/secretsmanager/get?secretId=db%2", wantCode: "MalformedQueryString"},
		{target: "/secretsmanager/get?%g=1&secretId=db", wantCode: "MalformedQueryString"},
		{target: "/secretsmanager/get?secretId=a%00b", wantCode: "InvalidParameterValue"},
		{target: "/secretsmanager/get?secretId=a%0Ab", wantCode: "InvalidParameterValue"},
		{target: "/secretsmanager/get?secretId=a%0D", wantCode: "InvalidParameterValue"},
		{target: "/secretsmanager/get?secretId=%7F", wantCode: "InvalidParameterValue"},
		{target: "/secretsmanager/get?secretId=a%C2%85b", wantCode: "InvalidParameterValue"}, // U+0085, a C1 control
		{target: "/secretsmanager/get?secretId=a%FFb", wantCode: "InvalidParameterValue"},    // not UTF-8
		{target: "/secretsmanager/get?secretId=" + long + "a", wantCode: "InvalidParameterValue"},
		{target: "/secretsmanager/get?secretId=db&versionStage=a%09b", wantCode: "InvalidParameterValue"},
		{target: "/secretsmanager/get?secretId=db&versionId=" + strings.Repeat("v", 257), wantCode: "InvalidParameterValue"},
		{target: "/secretsmanager/get?secretId=db&jsonKey=", wantCode: "InvalidJSONKey"},
		{target: "/secretsmanager/get?secretId=db&jsonKey=" + strings.Repeat("k", maxJSONKeyLen+1), wantCode: "InvalidJSONKey"},
		{target: "/secretsmanager/get?secretId=db&jsonKey=a&jsonKey=b", wantCode: "DuplicateParameter"},

		// Parameter Store.
		{target: "/systemsmanager/parameters/get?name=%2Fapp%2Fdb", wantKey: ps("/app/db", "", false)},
		{target: "/systemsmanager/parameters/get?name=plain", wantKey: ps("plain", "", false)},
		{target: "/systemsmanager/parameters/get?name=/app/db&withDecryption=true", wantKey: ps("/app/db", "", true)},
		{target: "/systemsmanager/parameters/get?name=/app/db&withDecryption=false", wantKey: ps("/app/db", "", false)},
		{target: "/systemsmanager/parameters/get?name=/app/db&withDecryption=yes", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=/app/db&refreshNow=true", wantKey: ps("/app/db", "", false), wantRefresh: true},
		{target: "/systemsmanager/parameters/get?name=%2Fapp%2Fdb%3A3", wantKey: ps("/app/db", ":3", false)},
		{target: "/systemsmanager/parameters/get?name=/app/db:3", wantKey: ps("/app/db", ":3", false)},
		{target: "/systemsmanager/parameters/get?name=/app/db:Dev&withDecryption=true", wantKey: ps("/app/db", ":Dev", true)},
		{target: "/systemsmanager/parameters/get?name=db:prod-1.x_y", wantKey: ps("db", ":prod-1.x_y", false)},
		{target: "/systemsmanager/parameters/get?name=/app/db&version=3", wantKey: ps("/app/db", ":3", false)},
		{target: "/systemsmanager/parameters/get?name=/app/db&version=123456789012345678", wantKey: ps("/app/db", ":123456789012345678", false)},
		{target: "/systemsmanager/parameters/get?name=/app/db&label=Dev", wantKey: ps("/app/db", ":Dev", false)},
		{target: "/systemsmanager/parameters/get?name=" + pARN, wantKey: ps(pARN, "", false)},
		{target: "/systemsmanager/parameters/get?name=" + pARN + ":3", wantKey: ps(pARN, ":3", false)},
		{target: "/systemsmanager/parameters/get?name=" + pARN + "&label=Dev", wantKey: ps(pARN, ":Dev", false)},
		{target: "/systemsmanager/parameters/get?name=%2Faws%2Freference%2Fsecretsmanager%2Fdb&label=AWSPREVIOUS&withDecryption=true", wantKey: ps("/aws/reference/secretsmanager/db", ":AWSPREVIOUS", true)},
		{target: "/systemsmanager/parameters/get?name=/app/db:3&version=3", wantCode: "ConflictingParameters"},
		{target: "/systemsmanager/parameters/get?name=/app/db:Dev&label=Dev", wantCode: "ConflictingParameters"},
		{target: "/systemsmanager/parameters/get?name=/app/db:3&label=Dev", wantCode: "ConflictingParameters"},
		{target: "/systemsmanager/parameters/get?name=/app/db&version=3&label=Dev", wantCode: "ConflictingParameters"},
		{target: "/systemsmanager/parameters/get?name=/app/db&version=0", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=/app/db&version=01", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=/app/db&version=-1", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=/app/db&version=x", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=/app/db&version=", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=/app/db&version=1234567890123456789", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=/app/db:0", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=/app/db:01", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=/app/db:", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=/app/db:a%2Fb", wantKey: ps("/app/db:a/b", "", false)}, // '/' ends the selector search: SSM rejects the name
		{target: "/systemsmanager/parameters/get?name=/app/db:a$b", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=:3", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=/app/db&label=", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=/app/db&label=3", wantCode: "InvalidParameterValue"}, // labels can't begin with a digit
		{target: "/systemsmanager/parameters/get?name=/app/db&label=a%2Fb", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=/app/db&label=" + strings.Repeat("L", 101), wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get", wantCode: "MissingParameter"},
		{target: "/systemsmanager/parameters/get?name=", wantCode: "MissingParameter"},
		{target: "/systemsmanager/parameters/get?secretId=db", wantCode: "MissingParameter"},
		{target: "/systemsmanager/parameters/get?name=a&name=b", wantCode: "DuplicateParameter"},
		{target: "/systemsmanager/parameters/get?name=a&withDecryption=true&withDecryption=true", wantCode: "DuplicateParameter"},
		{target: "/systemsmanager/parameters/get?name=%E0%A4%A", wantCode: "MalformedQueryString"},
		{target: "/systemsmanager/parameters/get?name=a%1Fb", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=" + long + "a", wantCode: "InvalidParameterValue"},
		{target: "/systemsmanager/parameters/get?name=" + long, wantKey: ps(long, "", false)},
	}
	for _, tt := range tests {
		name := tt.target
		if len(name) > 120 {
			name = name[:120]
		}
		t.Run(name, func(t *testing.T) {
			fc := &fakeCache{}
			w := serve(newServer(fc), http.MethodGet, tt.target, testToken)
			calls := fc.recorded()
			if tt.wantCode != "" {
				if w.Code != http.StatusBadRequest {
					t.Fatalf("status = %d, want 400; body %s; calls %+v", w.Code, w.Body, calls)
				}
				if code, _ := errorCode(t, w); code != tt.wantCode {
					t.Errorf("code = %q, want %q", code, tt.wantCode)
				}
				if len(calls) != 0 {
					t.Errorf("the cache was read: %+v", calls)
				}
				return
			}
			if w.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
			}
			want := []getCall{{tt.wantKey, tt.wantRefresh}}
			if len(calls) != 1 || calls[0] != want[0] {
				t.Errorf("cache reads = %+v, want %+v", calls, want)
			}
		})
	}
}

func TestSuccess(t *testing.T) {
	tests := []struct {
		name     string
		result   cache.Result
		wantAge  string
		wantXHit string
	}{
		{name: "hit", result: cache.Result{Item: defaultItem, Status: cache.Hit}, wantAge: "0", wantXHit: "hit"},
		{name: "miss", result: cache.Result{Item: defaultItem, Status: cache.Miss, Age: 999 * time.Millisecond}, wantAge: "0", wantXHit: "miss"},
		{name: "stale", result: cache.Result{Item: defaultItem, Status: cache.Stale, Age: 90*time.Second + 500*time.Millisecond}, wantAge: "90", wantXHit: "stale"},
		{name: "negative age", result: cache.Result{Item: defaultItem, Status: cache.Hit, Age: -3 * time.Second}, wantAge: "0", wantXHit: "hit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := &fakeCache{get: func(context.Context, source.Key, bool) (cache.Result, error) { return tt.result, nil }}
			w := serve(newServer(fc), http.MethodGet, "/secretsmanager/get?secretId=db", testToken)
			if w.Code != 200 {
				t.Fatalf("status = %d", w.Code)
			}
			if got := w.Body.Bytes(); string(got) != string(tt.result.Item.Body) {
				t.Errorf("body = %s, want exactly Item.Body %s", got, tt.result.Item.Body)
			}
			h := w.Header()
			for k, want := range map[string]string{
				"Content-Type":   "application/json",
				"Content-Length": strconv.Itoa(len(tt.result.Item.Body)),
				"Cache-Control":  "no-store",
				"X-Cache":        tt.wantXHit,
				"Age":            tt.wantAge,
			} {
				if got := h.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestJSONKey(t *testing.T) {
	obj := `{"user":"alice","port":5432,"nested":{"a":[1, 2]},"esc":"x\"y\u00e9\n","nil":null,"dup":"first","dup":"last","":"empty key"}`
	tests := []struct {
		name     string
		text     []byte
		query    string
		want     string // body on 200
		wantCode string // code on 400
	}{
		{name: "string value", text: []byte(obj), query: "jsonKey=user", want: "alice"},
		{name: "number value", text: []byte(obj), query: "jsonKey=port", want: "5432"},
		{name: "object value", text: []byte(obj), query: "jsonKey=nested", want: `{"a":[1, 2]}`},
		{name: "escaped string", text: []byte(obj), query: "jsonKey=esc", want: "x\"y\u00e9\n"},
		{name: "null value", text: []byte(obj), query: "jsonKey=nil", want: "null"},
		{name: "duplicate key: last wins", text: []byte(obj), query: "jsonKey=dup", want: "last"},
		{name: "percent-encoded key", text: []byte(`{"a b/c":"v"}`), query: "jsonKey=a%20b%2Fc", want: "v"},
		{name: "whitespace around", text: []byte(" \n{ \"k\" : \"v\" }\n"), query: "jsonKey=k", want: "v"},
		{name: "missing key", text: []byte(obj), query: "jsonKey=password", wantCode: "JSONKeyNotFound"},
		{name: "key case differs", text: []byte(obj), query: "jsonKey=User", wantCode: "JSONKeyNotFound"},
		{name: "nested key is not top-level", text: []byte(obj), query: "jsonKey=a", wantCode: "JSONKeyNotFound"},
		{name: "not JSON", text: []byte("plain text"), query: "jsonKey=user", wantCode: "ValueNotJSON"},
		{name: "empty string value", text: []byte{}, query: "jsonKey=user", wantCode: "ValueNotJSON"},
		{name: "JSON array", text: []byte(`["user"]`), query: "jsonKey=user", wantCode: "ValueNotJSON"},
		{name: "JSON string", text: []byte(`"user"`), query: "jsonKey=user", wantCode: "ValueNotJSON"},
		{name: "JSON null", text: []byte(`null`), query: "jsonKey=user", wantCode: "ValueNotJSON"},
		{name: "truncated object", text: []byte(`{"user":"alice"`), query: "jsonKey=user", wantCode: "ValueNotJSON"},
		{name: "second object after", text: []byte(`{"user":"alice"}{}`), query: "jsonKey=user", wantCode: "ValueNotJSON"},
		{name: "garbage after", text: []byte(`{"user":"alice"} x`), query: "jsonKey=user", wantCode: "ValueNotJSON"},
		{name: "bracket after", text: []byte(`{"user":"alice"}]`), query: "jsonKey=user", wantCode: "ValueNotJSON"},
		{name: "binary", text: nil, query: "jsonKey=user", wantCode: "ValueNotJSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := &source.Item{Body: []byte(`{"whole":"body"}`), Text: tt.text}
			w := serve(newServer(itemCache(it)), http.MethodGet, "/secretsmanager/get?secretId=db&"+tt.query, testToken)
			if tt.wantCode != "" {
				if w.Code != http.StatusBadRequest {
					t.Fatalf("status = %d, want 400; body %q", w.Code, w.Body)
				}
				if code, _ := errorCode(t, w); code != tt.wantCode {
					t.Errorf("code = %q, want %q", code, tt.wantCode)
				}
				if w.Header().Get("X-Cache") != "" || w.Header().Get("Age") != "" {
					t.Error("an error has X-Cache or Age")
				}
				return
			}
			if w.Code != 200 {
				t.Fatalf("status = %d; body %q", w.Code, w.Body)
			}
			if got := w.Body.String(); got != tt.want {
				t.Errorf("body = %q, want %q", got, tt.want)
			}
			if ct := w.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if cl := w.Header().Get("Content-Length"); cl != strconv.Itoa(len(tt.want)) {
				t.Errorf("Content-Length = %q, want %d", cl, len(tt.want))
			}
		})
	}
	t.Run("parameters too", func(t *testing.T) {
		it := &source.Item{Body: []byte(`{}`), Text: []byte(`{"k":"v"}`)}
		w := serve(newServer(itemCache(it)), http.MethodGet, "/systemsmanager/parameters/get?name=p&jsonKey=k", testToken)
		if w.Code != 200 || w.Body.String() != "v" {
			t.Errorf("got %d %q, want 200 %q", w.Code, w.Body, "v")
		}
	})
}

func TestErrorMapping(t *testing.T) {
	key := source.SecretKey("db")
	serr := func(c source.Class, code string) error {
		return &source.Error{Class: c, Code: code, Message: "AWS says " + code, Key: key}
	}
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
	}{
		{"not configured", cache.ErrNotConfigured, 404, "NotConfigured"},
		{"not configured, wrapped", fmt.Errorf("read: %w", cache.ErrNotConfigured), 404, "NotConfigured"},
		{"closed", cache.ErrClosed, 503, "ShuttingDown"},
		{"secret not found", serr(source.ClassNotFound, "ResourceNotFoundException"), 404, "ResourceNotFoundException"},
		{"parameter not found", serr(source.ClassNotFound, "ParameterNotFound"), 404, "ParameterNotFound"},
		{"version not found", serr(source.ClassNotFound, "ParameterVersionNotFound"), 404, "ParameterVersionNotFound"},
		{"access denied", serr(source.ClassAccessDenied, "AccessDeniedException"), 403, "AccessDeniedException"},
		{"kms denied", serr(source.ClassAccessDenied, "KMSAccessDeniedException"), 403, "KMSAccessDeniedException"},
		{"invalid", serr(source.ClassInvalid, "ValidationException"), 400, "ValidationException"},
		{"other", serr(source.ClassOther, "UpstreamError"), 502, "UpstreamError"},
		{"throttled", serr(source.ClassThrottled, "ThrottlingException"), 502, "ThrottlingException"},
		{"transient", serr(source.ClassTransient, "InternalServiceError"), 502, "InternalServiceError"},
		{"timeout", serr(source.ClassTimeout, "UpstreamTimeout"), 504, "UpstreamTimeout"},
		{"source error, wrapped", fmt.Errorf("x: %w", serr(source.ClassAccessDenied, "AccessDenied")), 403, "AccessDenied"},
		{"source error without message", &source.Error{Class: source.ClassOther, Code: "Weird"}, 502, "Weird"},
		{"unknown error", errors.New("boom"), 500, "InternalError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, buf := debugLogger()
			s := newServer(errCache(tt.err), func(o *Options) { o.Logger = log })
			w := serve(s, http.MethodGet, "/secretsmanager/get?secretId=db", testToken)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			code, msg := errorCode(t, w)
			if code != tt.wantCode {
				t.Errorf("code = %q, want %q", code, tt.wantCode)
			}
			if strings.Contains(msg, "boom") {
				t.Errorf("an unexpected error's text reached the caller: %q", msg)
			}
			if w.Header().Get("X-Cache") != "" || w.Header().Get("Age") != "" {
				t.Error("an error has X-Cache or Age")
			}
			if !strings.Contains(buf.String(), "read failed") {
				t.Errorf("the failure was not logged at debug level:\n%s", buf)
			}
		})
	}
}

// TestTooManyRequests fills every slot with reads blocked in the cache; the
// next read gets 429 at once, and slots come back when reads finish.
func TestTooManyRequests(t *testing.T) {
	const max = 2
	entered := make(chan struct{})
	release := make(chan struct{})
	fc := &fakeCache{get: func(ctx context.Context, key source.Key, _ bool) (cache.Result, error) {
		if key.ID == "fail" {
			return cache.Result{}, &source.Error{Class: source.ClassNotFound, Code: "ResourceNotFoundException", Key: key}
		}
		if key.ID == "block" {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return cache.Result{}, ctx.Err()
			}
		}
		return cache.Result{Item: defaultItem, Status: cache.Miss}, nil
	}}
	s := newServer(fc, func(o *Options) { o.MaxInFlight = max })

	var wg sync.WaitGroup
	codes := make([]int, max)
	for i := range max {
		wg.Go(func() {
			codes[i] = serve(s, http.MethodGet, "/secretsmanager/get?secretId=block", testToken).Code
		})
	}
	for range max {
		<-entered
	}

	w := serve(s, http.MethodGet, "/secretsmanager/get?secretId=other", testToken)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("status = %d, want 429", w.Code)
	}
	if code, _ := errorCode(t, w); code != "TooManyRequests" {
		t.Errorf("code = %q", code)
	}
	if n := len(fc.recorded()); n != max {
		t.Errorf("cache reads = %d, want %d (a refused read must not reach it)", n, max)
	}
	// A bad request is refused as such, without a slot.
	if w := serve(s, http.MethodGet, "/secretsmanager/get", testToken); w.Code != http.StatusBadRequest {
		t.Errorf("bad request while full: status %d, want 400", w.Code)
	}
	if w := serve(s, http.MethodGet, "/ping", ""); w.Code != http.StatusOK {
		t.Errorf("ping while full: status %d, want 200", w.Code)
	}

	close(release)
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("blocked read %d: status %d, want 200", i, c)
		}
	}
	// Every slot came back, after successes and failures alike.
	for i := range 3 * max {
		id := "other"
		if i%2 == 0 {
			id = "fail"
		}
		if w := serve(s, http.MethodGet, "/secretsmanager/get?secretId="+id, testToken); w.Code == http.StatusTooManyRequests {
			t.Fatalf("read %d after release: 429", i)
		}
	}
}

func TestListenLoopbackOnly(t *testing.T) {
	l, err := Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		t.Fatalf("address %v is not TCP", l.Addr())
	}
	if !addr.IP.IsLoopback() || addr.IP.To4() == nil || !addr.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("listening on %v, want 127.0.0.1 only", addr)
	}
}

// TestServeAndShutdown runs the server on a real loopback listener: a read
// over TCP, then Shutdown makes Serve return nil.
func TestServeAndShutdown(t *testing.T) {
	l, err := Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(&fakeCache{})
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()

	req, err := http.NewRequest(http.MethodGet, "http://"+l.Addr().String()+"/secretsmanager/get?secretId=db", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(TokenHeader, testToken)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || string(body) != string(defaultItem.Body) {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
	client.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve returned %v after Shutdown, want nil", err)
	}
}

// TestValuesNeverLeak seeds distinctive values and drives every kind of
// request: error bodies and debug logs must never carry them.
func TestValuesNeverLeak(t *testing.T) {
	const (
		secret = "Zq9-SEEDED-SECRET-VALUE-41x"
		other  = "Kp3-OTHER-VALUE-77y"
	)
	items := map[string]*source.Item{
		"json":      {Text: []byte(`{"user":"` + other + `","password":"` + secret + `"}`)},
		"plain":     {Text: []byte(secret + " plain")},
		"string":    {Text: []byte(`"` + secret + `"`)},
		"array":     {Text: []byte(`["` + secret + `"]`)},
		"truncated": {Text: []byte(`{"password":"` + secret + `"`)},
		"trailing":  {Text: []byte(`{"password":"x"} ` + secret)},
		"badkey":    {Text: []byte(`{"password":"` + secret + `",` + secret + `}`)},
		"binary":    {},
	}
	for id, it := range items {
		it.Body = []byte(`{"Name":"` + id + `","SecretString":"` + secret + `"}`)
	}
	fc := &fakeCache{get: func(_ context.Context, key source.Key, _ bool) (cache.Result, error) {
		if it := items[key.ID]; it != nil {
			return cache.Result{Item: it, Status: cache.Hit}, nil
		}
		return cache.Result{}, &source.Error{Class: source.ClassAccessDenied, Code: "AccessDeniedException", Message: "not allowed", Key: key}
	}}
	log, buf := debugLogger()
	s := newServer(fc, func(o *Options) { o.Logger = log })

	var errors, successes int
	for id := range items {
		for _, q := range []string{"", "&jsonKey=password", "&jsonKey=missing", "&jsonKey=user", "&refreshNow=true"} {
			for _, path := range []string{"/secretsmanager/get?secretId=", "/systemsmanager/parameters/get?name="} {
				w := serve(s, http.MethodGet, path+id+q, testToken)
				if w.Code == http.StatusOK {
					successes++
					continue
				}
				errors++
				mustNotContain(t, "error body", w.Body.String(), secret, other)
			}
		}
	}
	for _, target := range []string{"/secretsmanager/get?secretId=denied", "/secretsmanager/get?secretId=x&versionId=a&versionStage=b", "/nope"} {
		w := serve(s, http.MethodGet, target, testToken)
		errors++
		mustNotContain(t, "error body", w.Body.String(), secret, other)
	}
	if errors == 0 || successes == 0 {
		t.Fatalf("%d errors and %d successes: the test exercised too little", errors, successes)
	}
	logs := buf.String()
	if strings.Count(logs, "msg=request") < errors+successes {
		t.Fatalf("debug log has fewer request lines than requests:\n%s", logs)
	}
	mustNotContain(t, "debug log", logs, secret, other)
}

// POST / goes to the AWS API endpoint when there is one, untouched (it
// checks signatures itself); every other POST, and POST / without one, is
// refused as before.
func TestAWSAPIRoute(t *testing.T) {
	var got []string
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
	})
	s := newServer(&fakeCache{}, func(o *Options) { o.AWSAPI = api })
	if w := serve(s, http.MethodPost, "/", ""); w.Code != http.StatusTeapot {
		t.Errorf("POST / = %d, want the AWS API's answer", w.Code)
	}
	for _, c := range []struct{ method, target string }{{http.MethodPost, "/ping"}, {http.MethodPut, "/"}, {http.MethodPost, "/secretsmanager/get?secretId=db"}} {
		if w := serve(s, c.method, c.target, testToken); w.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s = %d, want 405", c.method, c.target, w.Code)
		}
	}
	if len(got) != 1 {
		t.Errorf("the AWS API got %v, want only POST /", got)
	}
	if w := serve(newServer(&fakeCache{}), http.MethodPost, "/", testToken); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST / without an AWS API = %d, want 405", w.Code)
	}
}
