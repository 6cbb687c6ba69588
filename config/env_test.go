package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/secrets-prefetch/secrets-prefetch/internal/names"
)

const testToken = "tok-3f9c1a-do-not-print"

// env returns a getenv over m, with a session token unless m sets one of
// the token variables itself.
func env(m map[string]string) func(string) string {
	_, s := m[EnvSessionToken]
	_, c := m[EnvContainerToken]
	if !s && !c {
		m[EnvSessionToken] = testToken
	}
	return func(k string) string { return m[k] }
}

func withToken(c Config) Config {
	c.Token = testToken
	return c
}

func TestDefaults(t *testing.T) {
	got, err := FromEnv(env(map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		HTTPPort:       2773,
		CacheEnabled:   true,
		CacheSize:      1000,
		MaxConnections: 3,
		LogLevel:       LogInfo,
		SecretsTTL:     300 * time.Second,
		ParametersTTL:  300 * time.Second,
		SecretsTimeout: 5 * time.Second,
		ParamsTimeout:  5 * time.Second,
		InitTimeout:    5 * time.Second,
		RefreshAhead:   0.8,
		StaleIfError:   300 * time.Second,
		Lazy:           true,
		Concurrency:    16,
		MaxRoles:       20,
		Token:          testToken,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FromEnv(empty) =\n%#v\nwant\n%#v", got, want)
	}
	if d := withToken(Default()); !reflect.DeepEqual(d, want) {
		t.Errorf("Default() =\n%#v\nwant\n%#v", d, want)
	}
}

// scalarCase sets one variable; if want is nil the value must be rejected
// with a *VarError naming that variable.
type scalarCase struct {
	name  string
	value string
	field func(Config) any
	want  any
}

func TestScalars(t *testing.T) {
	port := func(c Config) any { return c.HTTPPort }
	cacheOn := func(c Config) any { return c.CacheEnabled }
	size := func(c Config) any { return c.CacheSize }
	conns := func(c Config) any { return c.MaxConnections }
	level := func(c Config) any { return c.LogLevel }
	jsonLog := func(c Config) any { return c.LogJSON }
	sTTL := func(c Config) any { return c.SecretsTTL }
	pTTL := func(c Config) any { return c.ParametersTTL }
	sTO := func(c Config) any { return c.SecretsTimeout }
	pTO := func(c Config) any { return c.ParamsTimeout }
	req := func(c Config) any { return c.Required }
	initTO := func(c Config) any { return c.InitTimeout }
	ahead := func(c Config) any { return c.RefreshAhead }
	stale := func(c Config) any { return c.StaleIfError }
	lazy := func(c Config) any { return c.Lazy }
	conc := func(c Config) any { return c.Concurrency }

	sec := func(n int) time.Duration { return time.Duration(n) * time.Second }
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }

	var cases []scalarCase
	add := func(name string, field func(Config) any, pairs ...any) {
		for i := 0; i < len(pairs); i += 2 {
			cases = append(cases, scalarCase{name, pairs[i].(string), field, pairs[i+1]})
		}
	}
	// Integers: boundaries, blank = default, then the forms we refuse.
	badInts := []any{"abc", nil, "-1", nil, "+5", nil, "1e3", nil, "5s", nil, "1 0", nil,
		"0x10", nil, "1.0", nil, "1_000", nil, "99999999999999999999999", nil, "٣", nil}
	add(EnvHTTPPort, port, "", 2773, "   ", 2773, "1", 1, "65535", 65535, " 8080 ", 8080, "02773", 2773,
		"0", nil, "65536", nil)
	add(EnvHTTPPort, port, badInts...)
	add(EnvCacheSize, size, "", 1000, "1", 1, "100000", 100000, "0", nil, "100001", nil)
	add(EnvCacheSize, size, badInts...)
	add(EnvMaxConnections, conns, "", 3, "1", 1, "1000", 1000, "0", nil, "1001", nil)
	add(EnvMaxConnections, conns, badInts...)
	add(EnvConcurrency, conc, "", 16, "1", 1, "256", 256, "0", nil, "257", nil)
	add(EnvConcurrency, conc, badInts...)
	add(EnvSecretsTTL, sTTL, "", sec(300), "0", sec(0), "86400", sec(86400), "86401", nil, "300s", nil)
	add(EnvSecretsTTL, sTTL, badInts...)
	add(EnvParametersTTL, pTTL, "", sec(300), "0", sec(0), "86400", sec(86400), "86401", nil, "5m", nil)
	add(EnvParametersTTL, pTTL, badInts...)
	add(EnvSecretsTimeout, sTO, "", ms(5000), "0", ms(0), "300000", ms(300000), "300001", nil)
	add(EnvSecretsTimeout, sTO, badInts...)
	add(EnvParamsTimeout, pTO, "", ms(5000), "0", ms(0), "300000", ms(300000), "300001", nil)
	add(EnvParamsTimeout, pTO, badInts...)
	add(EnvInitTimeout, initTO, "", ms(5000), "1", ms(1), "900000", ms(900000), "0", nil, "900001", nil)
	add(EnvInitTimeout, initTO, badInts...)
	add(EnvStaleIfError, stale, "", sec(300), "0", sec(0), "86400", sec(86400), "86401", nil)
	add(EnvStaleIfError, stale, badInts...)

	// Booleans: true/false in any case only.
	badBools := []any{"1", nil, "0", nil, "yes", nil, "no", nil, "on", nil, "t", nil, "truee", nil, "tr ue", nil}
	add(EnvCacheEnabled, cacheOn, "", true, "false", false, "FALSE", false, "True", true, " false ", false)
	add(EnvCacheEnabled, cacheOn, badBools...)
	add(EnvRequired, req, "", false, "true", true, "TRUE", true, "false", false)
	add(EnvRequired, req, badBools...)
	add(EnvLazy, lazy, "", true, "false", false, "fAlSe", false, "true", true)
	add(EnvLazy, lazy, badBools...)

	add(EnvLogLevel, level, "", LogInfo, "debug", LogDebug, "INFO", LogInfo, "Warn", LogWarn,
		"error", LogError, "none", LogNone, " debug ", LogDebug,
		"warning", nil, "trace", nil, "fatal", nil, "off", nil, "0", nil, "de bug", nil)
	add(EnvLogFormat, jsonLog, "", false, "Text", false, "text", false, "TEXT", false, "JSON", true, "json", true,
		"Json", true, "yaml", nil, "JSONL", nil, "plain", nil)

	add(EnvRefreshAhead, ahead, "", 0.8, "0.8", 0.8, "1", 1.0, "1.0", 1.0, "1.000", 1.0, ".5", 0.5, "0.5", 0.5,
		"0.001", 0.001, "1.", 1.0, " 0.25 ", 0.25,
		"0", nil, "0.0", nil, ".0", nil, "-0.5", nil, "+0.5", nil, "1.0001", nil, "2", nil, "NaN", nil,
		"nan", nil, "Inf", nil, "+Inf", nil, "1e-1", nil, "8e-1", nil, "0x1p-1", nil, ".", nil,
		"0.5.", nil, "0,5", nil, "80%", nil, "0.0000000000000000000000000000000000001e0", nil)

	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s=%q", tc.name, tc.value), func(t *testing.T) {
			c, err := FromEnv(env(map[string]string{tc.name: tc.value}))
			if tc.want == nil {
				if err == nil {
					t.Fatalf("accepted %q as %v; want an error", tc.value, tc.field(c))
				}
				assertOnlyVars(t, err, tc.name)
				if !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.value)) {
					t.Errorf("error %q does not quote the value", err)
				}
				if !reflect.DeepEqual(c, Config{}) {
					t.Errorf("returned a non-zero Config on error: %v", c)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got := tc.field(c); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// assertOnlyVars checks that err holds exactly one *VarError per name, in
// order, and nothing else.
func assertOnlyVars(t *testing.T, err error, names ...string) {
	t.Helper()
	var ve *VarError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v holds no *VarError", err)
	}
	var got []string
	for _, e := range VarErrors(err) {
		got = append(got, e.Name)
	}
	if !slices.Equal(got, names) {
		t.Errorf("errors name %q, want %q; error: %v", got, names, err)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(names) {
		t.Errorf("error has %d lines, want %d: %v", n, len(names), err)
	}
}

func TestErrorMessages(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{EnvSecretsTTL: "abc"},
			`SECRETS_MANAGER_TTL: "abc" is not valid: want whole seconds from 0 to 86400`},
		{map[string]string{EnvSecretsTTL: " 5s "},
			`SECRETS_MANAGER_TTL: " 5s " is not valid: want whole seconds from 0 to 86400`},
		{map[string]string{EnvHTTPPort: "0"},
			`PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: "0" is not valid: want a whole number from 1 to 65535`},
		{map[string]string{EnvInitTimeout: "0"},
			`SECRETS_PREFETCH_INIT_TIMEOUT_MILLIS: "0" is not valid: want whole milliseconds from 1 to 900000`},
		{map[string]string{EnvLazy: "yes"},
			`SECRETS_PREFETCH_LAZY: "yes" is not valid: want true or false`},
		{map[string]string{EnvLogLevel: "warning"},
			`PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL: "warning" is not valid: want one of debug, info, warn, error, none`},
		{map[string]string{EnvLogFormat: "yaml"},
			`AWS_LAMBDA_LOG_FORMAT: "yaml" is not valid: want JSON or Text`},
		{map[string]string{EnvRefreshAhead: "0"},
			`SECRETS_PREFETCH_REFRESH_AHEAD: "0" is not valid: want a decimal fraction greater than 0 and at most 1, e.g. 0.8`},
		{map[string]string{EnvParameters: "/a, /b/*/c"},
			`SECRETS_PREFETCH_PARAMETERS: element 2 "/b/*/c" is not valid: want a wildcard only at the end, as "/*" (direct children) or "/**" (recursive), e.g. "/app/*"`},
		{map[string]string{EnvParameters: "/a:3, /b:"},
			`SECRETS_PREFETCH_PARAMETERS: element 2 "/b:" is not valid: want a version (from 1) or label (letters, digits, '.', '-', '_', not starting with a digit) after ':', as "name:3" or "name:prod"`},
		{map[string]string{EnvParameters: "/a:prod, /b:0"},
			`SECRETS_PREFETCH_PARAMETERS: element 2 "/b:0" is not valid: want a version (from 1) or label (letters, digits, '.', '-', '_', not starting with a digit) after ':', as "name:3" or "name:prod"`},
		{map[string]string{EnvSecrets: "a,,b\x1bc"},
			`SECRETS_PREFETCH_SECRETS: element 3 "b\x1bc" is not valid: want UTF-8 text without control characters`},
		{map[string]string{EnvSecretsTTL: strings.Repeat("9", 200)},
			`SECRETS_MANAGER_TTL: "` + strings.Repeat("9", maxQuoted) + `"... is not valid: want whole seconds from 0 to 86400`},
		{map[string]string{EnvSessionToken: "", EnvContainerToken: ""},
			`AWS_SESSION_TOKEN: not set: want a token in AWS_SESSION_TOKEN or, under SnapStart, AWS_CONTAINER_AUTHORIZATION_TOKEN (Lambda sets one; the HTTP API cannot authenticate callers without it)`},
	}
	for _, tc := range tests {
		_, err := FromEnv(env(tc.env))
		if err == nil || err.Error() != tc.want {
			t.Errorf("FromEnv(%q) error =\n%v\nwant\n%s", tc.env, err, tc.want)
		}
	}
}

func TestQuoteTruncatesOnRuneBoundary(t *testing.T) {
	v := strings.Repeat("é", 100) // 200 bytes
	q := names.Quote(v)
	if !strings.HasSuffix(q, `"...`) || !utf8.ValidString(q) || strings.Contains(q, `\x`) {
		t.Errorf("quote = %s", q)
	}
}

func TestAllErrorsReported(t *testing.T) {
	_, err := FromEnv(env(map[string]string{
		EnvSessionToken:   "",
		EnvHTTPPort:       "http",
		EnvCacheEnabled:   "1",
		EnvCacheSize:      "0",
		EnvMaxConnections: "-3",
		EnvLogLevel:       "loud",
		EnvLogFormat:      "xml",
		EnvSecretsTTL:     "5m",
		EnvParametersTTL:  "1e3",
		EnvSecretsTimeout: "300001",
		EnvParamsTimeout:  "1.5",
		EnvSecrets:        "ok,bad..name",
		EnvParameters:     "/ok,*,app/*",
		EnvRequired:       "yes",
		EnvInitTimeout:    "0",
		EnvRefreshAhead:   "1.5",
		EnvStaleIfError:   "forever",
		EnvLazy:           "no",
		EnvConcurrency:    "0",
	}))
	assertOnlyVars(t, err,
		EnvHTTPPort, EnvCacheEnabled, EnvCacheSize, EnvMaxConnections, EnvLogLevel,
		EnvSecretsTTL, EnvParametersTTL, EnvSecretsTimeout, EnvParamsTimeout,
		EnvSecrets, EnvParameters, EnvParameters, EnvRequired, EnvInitTimeout, EnvRefreshAhead,
		EnvStaleIfError, EnvLazy, EnvConcurrency, EnvLogFormat, EnvSessionToken)
}

func TestToken(t *testing.T) {
	tests := []struct {
		name             string
		session, contain string
		want             string
	}{
		{"session", "s-tok", "", "s-tok"},
		{"SnapStart container token", "", "c-tok", "c-tok"},
		{"session wins", "s-tok", "c-tok", "s-tok"},
		{"neither", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromEnv(env(map[string]string{EnvSessionToken: tc.session, EnvContainerToken: tc.contain}))
			if tc.want == "" {
				assertOnlyVars(t, err, EnvSessionToken)
				if msg := err.Error(); !strings.Contains(msg, EnvSessionToken) || !strings.Contains(msg, EnvContainerToken) {
					t.Errorf("error %q does not name both variables", msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Token != tc.want {
				t.Errorf("Token = %q, want %q", c.Token, tc.want)
			}
		})
	}
}

// TestTokenNeverPrinted checks the token stays out of errors (with every
// other variable bad) and out of every way of printing a Config.
func TestTokenNeverPrinted(t *testing.T) {
	for _, v := range []string{EnvSessionToken, EnvContainerToken} {
		m := map[string]string{v: testToken, EnvSecrets: "a\x00", EnvParameters: "*"}
		for _, name := range allVars {
			if _, ok := m[name]; !ok && name != EnvSessionToken && name != EnvContainerToken {
				m[name] = "bad-value"
			}
		}
		_, err := FromEnv(env(m))
		if n := len(VarErrors(err)); n != len(allVars)-2 {
			t.Fatalf("got %d errors, want %d: %v", n, len(allVars)-2, err)
		}
		if strings.Contains(err.Error(), testToken) {
			t.Errorf("with %s set, the error shows the token: %v", v, err)
		}
	}

	c, err := FromEnv(env(map[string]string{EnvSecrets: "db"}))
	if err != nil {
		t.Fatal(err)
	}
	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("config", "config", c)
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("config", "config", c)
	for _, s := range []string{
		fmt.Sprint(c), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%s", c),
		fmt.Sprint(&c), jsonLog.String(), textLog.String(),
	} {
		if strings.Contains(s, testToken) {
			t.Errorf("printed config contains the token: %s", s)
		}
		if !strings.Contains(s, "db") || !strings.Contains(s, redacted) {
			t.Errorf("printed config lacks its fields or the redaction mark: %s", s)
		}
	}
}

var allVars = []string{
	EnvHTTPPort, EnvCacheEnabled, EnvCacheSize, EnvMaxConnections, EnvLogLevel, EnvSecretsTTL,
	EnvParametersTTL, EnvSecretsTimeout, EnvParamsTimeout, EnvSecrets, EnvParameters, EnvRequired,
	EnvInitTimeout, EnvRefreshAhead, EnvStaleIfError, EnvLazy, EnvSessionToken, EnvContainerToken, EnvLogFormat,
	EnvEnvMapping, EnvFileMapping, EnvMaxRoles, EnvFailover, EnvSnapshot,
}

func TestLists(t *testing.T) {
	long := "/" + strings.Repeat("a", maxNameLen-1)
	tests := []struct {
		name       string
		secrets    string
		params     string
		wantSecs   []string
		wantParams []string
		wantPaths  []Path
		wantErrs   []string // "VAR#index" per error
	}{
		{name: "empty"},
		{name: "blank and commas only", secrets: " , ,, ", params: ",", wantSecs: nil},
		{name: "spaces and empties",
			secrets: " db-creds , ,arn:aws:secretsmanager:us-east-1:123456789012:secret:api-AbCdEf,\tx\t,",
			params:  " /app/db/url ,, my-param ",
			wantSecs: []string{"db-creds",
				"arn:aws:secretsmanager:us-east-1:123456789012:secret:api-AbCdEf", "x"},
			wantParams: []string{"/app/db/url", "my-param"}},
		{name: "duplicates keep first order",
			secrets:    "b,a,b, a ,c",
			params:     "/y,/x,/y,/app/*,/app/*,/app/**, /app/** ,/x",
			wantSecs:   []string{"b", "a", "c"},
			wantParams: []string{"/y", "/x"},
			wantPaths:  []Path{{"/app", false}, {"/app", true}}},
		{name: "patterns",
			params: "/app/*,/app/cfg/**,/*,/**,/a.b/c-d_e/*",
			wantPaths: []Path{{"/app", false}, {"/app/cfg", true}, {"/", false}, {"/", true},
				{"/a.b/c-d_e", false}}},
		{name: "selectors stay on names",
			params:     "/app/db:3,/app/db:prod,/app/db,arn:aws:ssm:us-east-1:123456789012:parameter/app/x",
			wantParams: []string{"/app/db:3", "/app/db:prod", "/app/db", "arn:aws:ssm:us-east-1:123456789012:parameter/app/x"}},
		{name: "secrets may hold anything printable",
			secrets:  "a*b,ünïcødé,with space,/path/like",
			wantSecs: []string{"a*b", "ünïcødé", "with space", "/path/like"}},
		{name: "length limit", secrets: long + "," + long + "b", params: long + "," + long + "/*",
			wantSecs: []string{long}, wantParams: []string{long},
			wantErrs: []string{EnvSecrets + "#2", EnvParameters + "#2"}},
		{name: "bad wildcards",
			params:     "*,**,/app*,/app/*/x,/app/x*,/app/***,/*/*,/**/x,app/*,app/**,*/x,/app/*:3,/ok",
			wantParams: []string{"/ok"},
			wantErrs: []string{EnvParameters + "#1", EnvParameters + "#2", EnvParameters + "#3",
				EnvParameters + "#4", EnvParameters + "#5", EnvParameters + "#6", EnvParameters + "#7",
				EnvParameters + "#8", EnvParameters + "#9", EnvParameters + "#10", EnvParameters + "#11",
				EnvParameters + "#12"}},
		{name: "empty path segments", params: "//*,/app//*,/app//**,//**",
			wantErrs: []string{EnvParameters + "#1", EnvParameters + "#2", EnvParameters + "#3", EnvParameters + "#4"}},
		{name: "dot dot", secrets: "../x,ok,a..b", params: "/app/../*,/a/..",
			wantSecs: []string{"ok"},
			wantErrs: []string{EnvSecrets + "#1", EnvSecrets + "#3", EnvParameters + "#1", EnvParameters + "#2"}},
		{name: "control characters and bad UTF-8",
			secrets: "a\x00b,ok,c\x7fd,e\u0085f,\xff", params: "/a\x1b[31m,/b\r/c,/ok",
			wantSecs: []string{"ok"}, wantParams: []string{"/ok"},
			wantErrs: []string{EnvSecrets + "#1", EnvSecrets + "#3", EnvSecrets + "#4", EnvSecrets + "#5",
				EnvParameters + "#1", EnvParameters + "#2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromEnv(env(map[string]string{EnvSecrets: tc.secrets, EnvParameters: tc.params}))
			var gotErrs []string
			for _, e := range VarErrors(err) {
				gotErrs = append(gotErrs, fmt.Sprintf("%s#%d", e.Name, e.Index))
			}
			if !slices.Equal(gotErrs, tc.wantErrs) {
				t.Fatalf("errors %q, want %q; error: %v", gotErrs, tc.wantErrs, err)
			}
			if err != nil {
				// Validate the accepted elements with the bad ones removed.
				m := map[string]string{EnvSecrets: tc.secrets, EnvParameters: tc.params}
				for _, e := range VarErrors(err) {
					fields := strings.Split(m[e.Name], ",")
					fields[e.Index-1] = ""
					m[e.Name] = strings.Join(fields, ",")
				}
				if c, err = FromEnv(env(m)); err != nil {
					t.Fatalf("still failing with the bad elements removed: %v", err)
				}
			}
			if !slices.Equal(c.Secrets, tc.wantSecs) {
				t.Errorf("Secrets = %q, want %q", c.Secrets, tc.wantSecs)
			}
			if !slices.Equal(c.Parameters, tc.wantParams) {
				t.Errorf("Parameters = %q, want %q", c.Parameters, tc.wantParams)
			}
			if !slices.Equal(c.ParameterPaths, tc.wantPaths) {
				t.Errorf("ParameterPaths = %v, want %v", c.ParameterPaths, tc.wantPaths)
			}
		})
	}
}

func TestPathMatches(t *testing.T) {
	app := Path{Prefix: "/app"}
	appR := Path{Prefix: "/app", Recursive: true}
	root := Path{Prefix: "/"}
	rootR := Path{Prefix: "/", Recursive: true}
	tests := []struct {
		p    Path
		name string
		want bool
	}{
		{app, "/app/x", true},
		{app, "/app/x:3", true},
		{app, "/app/x/y", false},
		{app, "/app", false},
		{app, "/app/", false},
		{app, "/app2/x", false},
		{app, "/ap/x", false},
		{app, "/apps", false},
		{app, "app/x", false},
		{app, "/other/app/x", false},
		{app, "", false},
		{appR, "/app/x", true},
		{appR, "/app/x/y/z", true},
		{appR, "/app", false},
		{appR, "/app/", false},
		{appR, "/app2/x", false},
		{appR, "/app2/x/y", false},
		{root, "/x", true},
		{root, "/x/y", false},
		{root, "/", false},
		{root, "", false},
		{rootR, "/x", true},
		{rootR, "/x/y/z", true},
		{rootR, "/", false},
		{Path{Prefix: "/a/b"}, "/a/b/c", true},
		{Path{Prefix: "/a/b"}, "/a/bc/d", false},
		{Path{Prefix: "/a/b", Recursive: true}, "/a/bc/d", false},
	}
	for _, tc := range tests {
		if got := tc.p.Matches(tc.name); got != tc.want {
			t.Errorf("%v.Matches(%q) = %v, want %v", tc.p, tc.name, got, tc.want)
		}
	}
}

func TestPathString(t *testing.T) {
	for _, s := range []string{"/app/*", "/app/**", "/*", "/**", "/a/b/*"} {
		c, err := FromEnv(env(map[string]string{EnvParameters: s}))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.ParameterPaths[0].String(); got != s {
			t.Errorf("String() = %q, want %q", got, s)
		}
	}
}

func TestLogLevelString(t *testing.T) {
	for l, want := range map[LogLevel]string{LogDebug: "debug", LogInfo: "info", LogWarn: "warn",
		LogError: "error", LogNone: "none", -1: "LogLevel(-1)", 5: "LogLevel(5)"} {
		if got := l.String(); got != want {
			t.Errorf("LogLevel(%d).String() = %q, want %q", int(l), got, want)
		}
	}
}

// checkRanges is the fuzz oracle: every field of an accepted Config within
// the range documented on it.
func checkRanges(c Config) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	inRange := func(field string, v, lo, hi int64) {
		if v < lo || v > hi {
			bad("%s = %d, want %d..%d", field, v, lo, hi)
		}
	}
	inRange("MaxRoles", int64(c.MaxRoles), 1, 1000)
	for _, e := range append(append([]string{}, c.Secrets...), c.Parameters...) {
		if id, role := SplitRole(e); id == "" || role != "" && !names.IsRoleARN(role) || strings.Contains(role, "|") {
			bad("entry %q: id %q role %q", e, id, role)
		}
	}
	inRange("HTTPPort", int64(c.HTTPPort), 1, 65535)
	inRange("CacheSize", int64(c.CacheSize), 1, 100000)
	inRange("MaxConnections", int64(c.MaxConnections), 1, 1000)
	inRange("LogLevel", int64(c.LogLevel), int64(LogDebug), int64(LogNone))
	for _, d := range []struct {
		field  string
		v      time.Duration
		lo, hi int64
		unit   time.Duration
	}{
		{"SecretsTTL", c.SecretsTTL, 0, 86400, time.Second},
		{"ParametersTTL", c.ParametersTTL, 0, 86400, time.Second},
		{"SecretsTimeout", c.SecretsTimeout, 0, 300000, time.Millisecond},
		{"ParamsTimeout", c.ParamsTimeout, 0, 300000, time.Millisecond},
		{"InitTimeout", c.InitTimeout, 1, 900000, time.Millisecond},
		{"StaleIfError", c.StaleIfError, 0, 86400, time.Second},
	} {
		if d.v%d.unit != 0 {
			bad("%s = %v, not whole %v", d.field, d.v, d.unit)
		}
		inRange(d.field, int64(d.v/d.unit), d.lo, d.hi)
	}
	if !(c.RefreshAhead > 0 && c.RefreshAhead <= 1) || math.IsNaN(c.RefreshAhead) {
		bad("RefreshAhead = %v, want 0 < f <= 1", c.RefreshAhead)
	}
	if c.Token == "" {
		bad("Token empty")
	}
	checkList := func(field string, list []string) {
		seen := map[string]bool{}
		for _, s := range list {
			switch {
			case s == "" || s != strings.TrimSpace(s) || strings.Contains(s, ","):
				bad("%s element %q not trimmed and non-empty", field, s)
			case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
				bad("%s element %q has control characters", field, s)
			case utf8.RuneCountInString(s) > maxNameLen:
				bad("%s element too long", field)
			case strings.Contains(s, ".."):
				bad("%s element %q contains ..", field, s)
			case seen[s]:
				bad("%s element %q duplicated", field, s)
			}
			seen[s] = true
		}
	}
	checkList("Secrets", c.Secrets)
	checkList("Parameters", c.Parameters)
	for _, s := range c.Parameters {
		if strings.Contains(s, "*") {
			bad("Parameters element %q has a wildcard", s)
		}
	}
	seen := map[Path]bool{}
	for _, p := range c.ParameterPaths {
		if seen[p] {
			bad("path %v duplicated", p)
		}
		seen[p] = true
		if !strings.HasPrefix(p.Prefix, "/") || strings.Contains(p.Prefix, "*") || strings.Contains(p.Prefix, "//") ||
			(p.Prefix != "/" && strings.HasSuffix(p.Prefix, "/")) || strings.Contains(p.Prefix, "..") {
			bad("path prefix %q malformed", p.Prefix)
		}
	}
	return errors.Join(errs...)
}

var knownVars = func() map[string]bool {
	m := map[string]bool{}
	for _, v := range allVars {
		m[v] = true
	}
	return m
}()

// FuzzFromEnv feeds one value to several variables at once (a scalar, both
// lists, the session token) and checks FromEnv's contract.
func FuzzFromEnv(f *testing.F) {
	for _, s := range []string{
		"", " ", "0", "1", "65535", "65536", "-1", "+1", "1e3", "5s", "0x10", "1_0", "٣",
		"99999999999999999999", "true", "FALSE", "yes", "debug", "NONE", "warning", "JSON", "text",
		"0.8", ".5", "1.", ".", "NaN", "Inf", "1e-1", "0.0000000000000000000000000001",
		"/app/*", "/app/**", "/*", "/**", "//*", "/app//**", "/a/*/b", "*", "app/*", "/app/*:3",
		"a,,b, a ,b", "../x", "a\x00b", "\xff", "é", "/app/db:prod", " , , ", "a\u2028b",
	} {
		for i := range len(allVars) {
			f.Add(i, s, s)
			f.Add(i, s, "")
		}
	}
	f.Fuzz(func(t *testing.T, which int, value, token string) {
		if which < 0 {
			which = -(which + 1)
		}
		name := allVars[which%len(allVars)]
		m := map[string]string{
			name:            value,
			EnvSecrets:      value,
			EnvParameters:   value,
			EnvSessionToken: token,
		}
		if name == EnvSessionToken {
			m[EnvSessionToken] = value
		}
		getenv := func(k string) string { return m[k] }
		c, err := FromEnv(getenv)
		if err == nil {
			if rerr := checkRanges(c); rerr != nil {
				t.Fatalf("accepted out-of-range config from %q: %v\n%#v", value, rerr, c)
			}
			return
		}
		if !reflect.DeepEqual(c, Config{}) {
			t.Errorf("non-zero Config with error: %#v", c)
		}
		ves := VarErrors(err)
		if len(ves) == 0 {
			t.Fatalf("error holds no *VarError: %v", err)
		}
		if j, ok := err.(interface{ Unwrap() []error }); !ok || len(j.Unwrap()) != len(ves) {
			t.Fatalf("error is not a join of *VarError: %T %v", err, err)
		}
		for _, e := range ves {
			if !knownVars[e.Name] {
				t.Errorf("error names unknown variable %q", e.Name)
			}
			if e.Want == "" {
				t.Errorf("error without a valid range: %v", e)
			}
			msg := e.Error()
			if !strings.HasPrefix(msg, e.Name+": ") || !strings.Contains(msg, ": want ") {
				t.Errorf("malformed message %q", msg)
			}
			if strings.ContainsFunc(msg, unicode.IsControl) || !utf8.ValidString(msg) {
				t.Errorf("message carries control characters or bad UTF-8: %q", msg)
			}
		}
		// The token is never echoed: token errors carry no value and arise
		// only when no token is set, and no other error's value can hold
		// the token unless the user put it in that variable too.
		for _, e := range ves {
			if e.Name == EnvSessionToken || e.Name == EnvContainerToken {
				if e.Value != "" || m[EnvSessionToken] != "" || m[EnvContainerToken] != "" {
					t.Errorf("token error %q with a token set", e)
				}
			} else if token != "" && strings.Contains(e.Value, token) && !strings.Contains(value, token) {
				t.Errorf("error %q shows the token", e)
			}
		}
	})
}

// FuzzPathMatches checks Matches against a segment-by-segment reference.
func FuzzPathMatches(f *testing.F) {
	for _, s := range [][2]string{
		{"/app", "/app/x"}, {"/app", "/app2/x"}, {"/app", "/app/x/y"}, {"/", "/x"}, {"/", "/x/y"},
		{"/app", "/app"}, {"/app", "/app/"}, {"/a/b", "/a/b/c/d"}, {"/", "x"}, {"/", ""},
	} {
		f.Add(s[0], s[1], false)
		f.Add(s[0], s[1], true)
	}
	f.Fuzz(func(t *testing.T, prefix, name string, recursive bool) {
		// Only prefixes FromEnv can produce.
		c, err := FromEnv(func(k string) string {
			switch k {
			case EnvParameters:
				if recursive {
					return prefix + "/**"
				}
				return prefix + "/*"
			case EnvSessionToken:
				return "t"
			}
			return ""
		})
		if err != nil || len(c.ParameterPaths) != 1 {
			return
		}
		p := c.ParameterPaths[0]
		var want bool
		var pSegs []string
		if p.Prefix != "/" {
			pSegs = strings.Split(p.Prefix, "/")[1:]
		}
		if strings.HasPrefix(name, "/") {
			nSegs := strings.Split(name, "/")[1:]
			if len(nSegs) > len(pSegs) && slices.Equal(nSegs[:len(pSegs)], pSegs) {
				rest := nSegs[len(pSegs):]
				want = (recursive || len(rest) == 1) && strings.Join(rest, "/") != ""
			}
		}
		if got := p.Matches(name); got != want {
			t.Errorf("%v.Matches(%q) = %v, want %v", p, name, got, want)
		}
	})
}
