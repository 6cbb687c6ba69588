package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func agentEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestAgentDefaults(t *testing.T) {
	a, err := AgentFromEnv(agentEnv(map[string]string{EnvToken: "t"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Listen != "127.0.0.1:2773" || a.MetricsListen != "" || a.ShutdownTimeout != 5*time.Second ||
		a.Token != "t" || a.TokenVar != EnvToken || a.TokenFile != "" || a.MaxInFlight != 800 ||
		!slices.Equal(a.TokenVars, DefaultTokenVars) || a.PathPrefix != "" || a.TokenHeaders != nil {
		t.Errorf("defaults: %v", a)
	}
	if a.SecretsTTL != 300*time.Second || a.CacheSize != 1000 {
		t.Errorf("the shared settings are not the defaults: %v", a.Config)
	}
	a, err = AgentFromEnv(agentEnv(map[string]string{EnvToken: "t", EnvHTTPPort: "8080"}), nil)
	if err != nil || a.Listen != "127.0.0.1:8080" {
		t.Errorf("with the port set: %q, %v", a.Listen, err)
	}
}

// The token comes from the first of the variables set, as a value or a
// file:// path; none set is an error naming them all.
func TestAgentToken(t *testing.T) {
	for _, tt := range []struct {
		env             map[string]string
		token, from, fn string
	}{
		{map[string]string{EnvToken: "a", EnvSessionToken: "b"}, "a", EnvToken, ""},
		{map[string]string{EnvToken: " ", EnvSessionToken: "b", EnvContainerToken: "c"}, "b", EnvSessionToken, ""},
		{map[string]string{EnvContainerToken: "c"}, "c", EnvContainerToken, ""},
		{map[string]string{EnvToken: "file:///run/agent/token"}, "", EnvToken, "/run/agent/token"},
	} {
		a, err := AgentFromEnv(agentEnv(tt.env), nil)
		if err != nil || a.Token != tt.token || a.TokenVar != tt.from || a.TokenFile != tt.fn {
			t.Errorf("%v: token %q from %s file %q, %v; want %q from %s file %q", tt.env, a.Token, a.TokenVar, a.TokenFile, err, tt.token, tt.from, tt.fn)
		}
	}
	_, err := AgentFromEnv(agentEnv(map[string]string{}), nil)
	if err == nil {
		t.Fatal("no token: no error")
	}
	for _, v := range DefaultTokenVars {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("the error %q does not name %s", err, v)
		}
	}
	if _, err := AgentFromEnv(agentEnv(map[string]string{EnvToken: "file://"}), nil); err == nil {
		t.Error("file:// without a path: no error")
	}
}

func TestAgentListen(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:1", "[::1]:2773", "0.0.0.0:65535", ":2773", "localhost:80"} {
		if a, err := AgentFromEnv(agentEnv(map[string]string{EnvToken: "t", EnvListen: ok}), nil); err != nil || a.Listen != ok {
			t.Errorf("%q: %q, %v", ok, a.Listen, err)
		}
	}
	for _, bad := range []string{"2773", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:+1", "::1:2773", "a b:1"} {
		_, err := AgentFromEnv(agentEnv(map[string]string{EnvToken: "t", EnvListen: bad}), nil)
		if ves := VarErrors(err); len(ves) != 1 || ves[0].Name != EnvListen {
			t.Errorf("%q: %v, want one error naming %s", bad, err, EnvListen)
		}
	}
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "127.1.2.3:1": true, "[::1]:1": true, "localhost:1": true, "0.0.0.0:1": false, ":1": false, "10.0.0.1:1": false, "example.com:1": false} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// fullFile sets every key the file knows.
const fullFile = `
log_level = "DEBUG"
log_to_file = true
http_port = 8443
region = "eu-west-1"
ttl_seconds = 120
cache_size = 50
ssrf_headers = ["X-My-Token", "X-Vault-Token"]
ssrf_env_variables = ["MY_TOKEN", "AWS_TOKEN"]
path_prefix = "/secrets"
max_conn = 10

[prefetch]
secrets = ["db", "api"]
parameters = ["/app/*", "/flag"]
required = true
init_timeout_millis = 2000
refresh_ahead = 0.5
stale_if_error_seconds = 60
lazy = false
files = "/tmp/db.json=secret:db"
listen = "127.0.0.1:9000"
metrics_listen = "127.0.0.1:9102"
shutdown_timeout_millis = 3000
concurrency = 8
max_roles = 5
failover_region = "us-west-2"
`

func TestAgentFile(t *testing.T) {
	f, err := ParseFile("agent.toml", []byte(fullFile))
	if err != nil {
		t.Fatal(err)
	}
	a, err := AgentFromEnv(agentEnv(map[string]string{"MY_TOKEN": "m"}), f)
	if err != nil {
		t.Fatal(err)
	}
	c := a.Config
	if c.LogLevel != LogDebug || c.HTTPPort != 8443 || c.SecretsTTL != 120*time.Second || c.ParametersTTL != 120*time.Second ||
		c.CacheSize != 50 || !slices.Equal(c.Secrets, []string{"db", "api"}) || !slices.Equal(c.Parameters, []string{"/flag"}) ||
		len(c.ParameterPaths) != 1 || !c.Required || c.InitTimeout != 2*time.Second || c.RefreshAhead != 0.5 ||
		c.StaleIfError != time.Minute || c.Lazy || len(c.FileMapping) != 1 || c.Concurrency != 8 || c.MaxRoles != 5 ||
		c.FailoverRegion != "us-west-2" {
		t.Errorf("shared settings from the file: %v", c)
	}
	if a.Region != "eu-west-1" || !slices.Equal(a.TokenHeaders, []string{"X-My-Token", "X-Vault-Token"}) ||
		a.Token != "m" || a.TokenVar != "MY_TOKEN" || a.PathPrefix != "/secrets/" || a.MaxInFlight != 10 ||
		a.Listen != "127.0.0.1:9000" || a.MetricsListen != "127.0.0.1:9102" || a.ShutdownTimeout != 3*time.Second {
		t.Errorf("agent settings from the file: %v", a)
	}
	if len(a.Warnings) != 1 || !strings.Contains(a.Warnings[0], "log_to_file") {
		t.Errorf("warnings: %q, want one about log_to_file", a.Warnings)
	}

	// A variable that is set wins over the file; one set blank does not.
	a, err = AgentFromEnv(agentEnv(map[string]string{"MY_TOKEN": "m", EnvSecretsTTL: "30", EnvCacheSize: " ", EnvListen: "127.0.0.1:9999"}), f)
	if err != nil {
		t.Fatal(err)
	}
	if a.SecretsTTL != 30*time.Second || a.ParametersTTL != 120*time.Second || a.CacheSize != 50 || a.Listen != "127.0.0.1:9999" {
		t.Errorf("with variables set: secrets TTL %v, parameters TTL %v, cache size %d, listen %s", a.SecretsTTL, a.ParametersTTL, a.CacheSize, a.Listen)
	}
	// The token variables are the file's list: AWS_SESSION_TOKEN is not in it.
	if _, err := AgentFromEnv(agentEnv(map[string]string{EnvSessionToken: "s"}), f); err == nil || !strings.Contains(err.Error(), "MY_TOKEN, AWS_TOKEN") {
		t.Errorf("a token outside ssrf_env_variables: %v, want an error naming the file's variables", err)
	}
}

// Each bad key is reported by its name in the file and its valid range,
// all of them at once; a bad variable is still named as the variable.
func TestAgentFileErrors(t *testing.T) {
	f, err := ParseFile("agent.toml", []byte(`
http_port = "27x3"
ttl_seconds = 100000
cache_size = 0
unknown_key = 1
max_conn = 5000
ssrf_headers = []
ssrf_env_variables = ["1BAD"]
path_prefix = "v1"
region = "EU WEST"
[prefetch]
secrets = ["a,b"]
refresh_ahead = 2.5
lazy = "yes"
env = "X=y"
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = AgentFromEnv(agentEnv(map[string]string{EnvToken: "t", EnvStaleIfError: "-1"}), f)
	var names []string
	for _, ve := range VarErrors(err) {
		names = append(names, ve.Name)
		if ve.Want == "" {
			t.Errorf("%v: no valid range", ve)
		}
	}
	want := []string{
		"agent.toml: cache_size", "agent.toml: http_port", "agent.toml: max_conn", "agent.toml: path_prefix",
		"agent.toml: prefetch.env", "agent.toml: prefetch.lazy", "agent.toml: prefetch.refresh_ahead",
		"agent.toml: prefetch.secrets", "agent.toml: region", "agent.toml: ssrf_env_variables",
		"agent.toml: ssrf_headers", "agent.toml: ttl_seconds", "agent.toml: unknown_key", EnvStaleIfError,
	}
	slices.Sort(want)
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Errorf("errors name\n%q\nwant\n%q\n(%v)", names, want, err)
	}
	if !strings.Contains(err.Error(), "agent.toml: ttl_seconds: \"100000\" is not valid: want whole seconds from 0 to 86400") {
		t.Errorf("the ttl_seconds error is not named once by its key with its range:\n%v", err)
	}
	if n := strings.Count(err.Error(), "agent.toml: ttl_seconds"); n != 1 {
		t.Errorf("ttl_seconds reported %d times, want once", n)
	}

	if _, err := ParseFile("agent.toml", []byte("http_port = \n")); err == nil || !strings.Contains(err.Error(), "agent.toml: line 1") {
		t.Errorf("a syntax error: %v, want one naming the file and line", err)
	}
	if _, err := ParseFile("agent.toml", []byte("a = 1\na = 2\n")); err == nil {
		t.Error("a duplicate key: no error")
	}
}

// FuzzParseFile: any text either fails to parse with an error naming the
// file, or yields a configuration or errors that each name a key or a
// variable with a valid range; never a panic, never a value from a refused
// key in the configuration.
func FuzzParseFile(f *testing.F) {
	f.Add(fullFile)
	f.Add("")
	f.Add("[prefetch]\nsecrets = [1]\n")
	f.Add("ttl_seconds = 1e3\n")
	f.Add("refresh_ahead = 0.5\n[prefetch]\nrefresh_ahead = 1\n")
	f.Add("prefetch = 1\n")
	f.Add("[[prefetch]]\nsecrets=[]\n")
	f.Add("http_port = 9223372036854775807\n")
	f.Add("path_prefix = \"/v1/\x00\"\n")
	f.Fuzz(func(t *testing.T, text string) {
		fl, err := ParseFile("f.toml", []byte(text))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.toml: ") {
				t.Fatalf("parse error %q does not name the file", err)
			}
			return
		}
		a, err := AgentFromEnv(agentEnv(map[string]string{EnvToken: "t"}), fl)
		if err != nil {
			for _, e := range unwrapJoin(err) {
				var ve *VarError
				if !errors.As(e, &ve) || ve.Name == "" || ve.Want == "" {
					t.Fatalf("error %q is not a *VarError with a name and range", e)
				}
			}
			return
		}
		if a.HTTPPort < 1 || a.HTTPPort > 65535 || a.CacheSize < 1 || a.MaxInFlight < 1 || a.MaxInFlight > 1000 ||
			a.RefreshAhead <= 0 || a.RefreshAhead > 1 || a.Listen == "" || a.Token != "t" {
			t.Fatalf("an accepted configuration out of range: %v", a)
		}
		if a.PathPrefix != "" && (!strings.HasPrefix(a.PathPrefix, "/") || !strings.HasSuffix(a.PathPrefix, "/")) {
			t.Fatalf("path prefix %q", a.PathPrefix)
		}
	})
}

func unwrapJoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// The Secrets Manager Agent's own files, as it reads them: numbers and
// booleans may be quoted; http_address, ignore_transient_errors and
// validate_credentials are its keys too.
func TestAgentFileAsTheSecretsManagerAgentWritesIt(t *testing.T) {
	f, err := ParseFile("config.toml", []byte(`
log_level = "DEBUG"
http_address = "0.0.0.0"
http_port = "8080"
ttl_seconds = "60"
cache_size = "500"
max_conn = "20"
log_to_file = "false"
ignore_transient_errors = false
validate_credentials = "true"
`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := AgentFromEnv(agentEnv(map[string]string{EnvToken: "t"}), f)
	if err != nil {
		t.Fatal(err)
	}
	if a.Listen != "0.0.0.0:8080" || a.SecretsTTL != time.Minute || a.CacheSize != 500 || a.MaxInFlight != 20 ||
		a.StaleIfError != 0 || a.LogLevel != LogDebug || len(a.Warnings) != 0 {
		t.Errorf("the agent's file: %v (warnings %q)", a, a.Warnings)
	}
	if addr, err := ListenAddress(agentEnv(nil), f); err != nil || addr != "0.0.0.0:8080" {
		t.Errorf("ListenAddress: %q, %v", addr, err)
	}
	// stale_if_error_seconds, ours, wins over ignore_transient_errors.
	f, err = ParseFile("config.toml", []byte("ignore_transient_errors = false\n[prefetch]\nstale_if_error_seconds = 30\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a, err := AgentFromEnv(agentEnv(map[string]string{EnvToken: "t"}), f); err != nil || a.StaleIfError != 30*time.Second {
		t.Errorf("stale_if_error_seconds with ignore_transient_errors = false: %v, %v", a.StaleIfError, err)
	}
	for _, bad := range []string{`http_address = "localhost"`, `validate_credentials = "yes"`, `max_conn = "20x"`, `ignore_transient_errors = 1`} {
		f, err := ParseFile("config.toml", []byte(bad))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := AgentFromEnv(agentEnv(map[string]string{EnvToken: "t"}), f); err == nil || !strings.Contains(err.Error(), "config.toml: "+strings.Fields(bad)[0]) {
			t.Errorf("%s: %v, want an error naming the key", bad, err)
		}
	}
}
