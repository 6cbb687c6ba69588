package config

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

// File is a parsed Secrets Manager Agent config file (TOML) for agent mode:
// the agent's own keys at the top level, ours in a [prefetch] table. Its
// values reach the configuration through the same validation as the
// environment's (see AgentFromEnv); a variable that is set wins.
type File struct {
	name   string              // the file's name, for messages
	getenv func(string) string // the environment under the file (set by layer)
	env    map[string]string   // variable name -> the value the file gives it
	keys   map[string]string   // variable name -> the file key that set it

	tokenVars, tokenHeaders []string
	pathPrefix, region      string
	listenHost              string // http_address
	maxInFlight             int
	warnings                []string
	errs                    []error // unknown keys, wrong types, bad values of file-only keys
}

// fileKey is one key the file may hold: the TOML type it must have, and
// the variables it sets (its value checked there) or, for a key without a
// variable, how it is checked here.
type fileKey struct {
	kind string   // "string", "integer", "boolean", "float", "strings" (an array of strings)
	vars []string // the variables it sets; nil for a file-only key
	want string   // the valid range, for a wrong type
}

// The Secrets Manager Agent's keys, with our ranges where wider.
var agentKeys = map[string]fileKey{
	"log_level":               {"string", []string{EnvLogLevel}, "one of DEBUG, INFO, WARN, ERROR, NONE"},
	"log_to_file":             {"boolean", nil, "true or false"},
	"http_port":               {"integer", []string{EnvHTTPPort}, "a whole number from 1 to 65535"},
	"region":                  {"string", nil, "an AWS region name, e.g. us-east-1"},
	"ttl_seconds":             {"integer", []string{EnvSecretsTTL, EnvParametersTTL}, "whole seconds from 0 to 86400"},
	"cache_size":              {"integer", []string{EnvCacheSize}, "a whole number from 1 to 100000"},
	"ssrf_headers":            {"strings", nil, "a non-empty array of HTTP header names"},
	"ssrf_env_variables":      {"strings", nil, "a non-empty array of environment variable names"},
	"path_prefix":             {"string", nil, `a path starting with "/", e.g. "/v1/"`},
	"max_conn":                {"integer", nil, "a whole number from 1 to 1000"},
	"http_address":            {"string", nil, "an IP address to listen on, e.g. 127.0.0.1"},
	"ignore_transient_errors": {"boolean", nil, "true or false"},
	"validate_credentials":    {"boolean", nil, "true or false"},
}

// Ours, in [prefetch]: SECRETS_PREFETCH_<KEY> in lower case.
var prefetchKeys = map[string]fileKey{
	"secrets":                 {"strings", []string{EnvSecrets}, "an array of secret names or ARNs"},
	"parameters":              {"strings", []string{EnvParameters}, `an array of parameter names or paths ("/app/*", "/app/**")`},
	"required":                {"boolean", []string{EnvRequired}, "true or false"},
	"init_timeout_millis":     {"integer", []string{EnvInitTimeout}, "whole milliseconds from 1 to 900000"},
	"refresh_ahead":           {"float", []string{EnvRefreshAhead}, "a decimal fraction greater than 0 and at most 1, e.g. 0.8"},
	"stale_if_error_seconds":  {"integer", []string{EnvStaleIfError}, "whole seconds from 0 to 86400"},
	"lazy":                    {"boolean", []string{EnvLazy}, "true or false"},
	"files":                   {"string", []string{EnvFileMapping}, "a SECRETS_PREFETCH_FILES mapping"},
	"listen":                  {"string", []string{EnvListen}, "host:port, e.g. 127.0.0.1:2773"},
	"metrics_listen":          {"string", []string{EnvMetricsListen}, "host:port, e.g. 127.0.0.1:9102"},
	"shutdown_timeout_millis": {"integer", []string{EnvShutdownTimeout}, "whole milliseconds from 1 to 600000"},
	"concurrency":             {"integer", []string{EnvConcurrency}, "a whole number from 1 to 256"},
	"max_roles":               {"integer", []string{EnvMaxRoles}, "a whole number from 1 to 1000"},
	"failover_region":         {"string", []string{EnvFailover}, "an AWS region name, e.g. us-west-2"},
}

// prefetchTable is the name of our table in the file.
const prefetchTable = "prefetch"

// Compiled on first use, by the file's parser alone: a counted repetition
// ({1,256}) compiles to that many copies, and compiling these three at
// package initialisation took a millisecond and half a megabyte before
// every start of the extension could register.
var (
	headerName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[!#$%&'*+.^_|~0-9A-Za-z-]{1,256}$`) })
	envName    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,255}$`) })
	regionName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`) })
)

// ParseFile parses a config file's text. A TOML syntax error is returned
// at once; every other problem (an unknown key, a wrong type, a bad value)
// is reported by AgentFromEnv, with the environment's, each naming its key.
func ParseFile(name string, data []byte) (*File, error) {
	var m map[string]any
	if _, err := toml.Decode(string(data), &m); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("%s: line %d: %s", name, perr.Position.Line, perr.Message)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f := &File{name: name, env: map[string]string{}, keys: map[string]string{}}
	for _, k := range sortedKeys(m) {
		v := m[k]
		if k == prefetchTable {
			t, ok := v.(map[string]any)
			if !ok {
				f.fail(k, v, "a table: [prefetch]")
				continue
			}
			for _, pk := range sortedKeys(t) {
				f.set(prefetchTable+"."+pk, prefetchKeys, pk, t[pk])
			}
			continue
		}
		f.set(k, agentKeys, k, v)
	}
	return f, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// set takes one key's value: checked for its type, then given to its
// variables as text, or checked here for a file-only key.
func (f *File) set(full string, table map[string]fileKey, key string, v any) {
	fk, ok := table[key]
	if !ok {
		f.errs = append(f.errs, &VarError{Name: f.name + ": " + full, Unknown: true, Want: "one of " + knownKeys(table)})
		return
	}
	text, list, ok := asKind(fk.kind, v)
	if !ok {
		f.fail(full, v, kindNames[fk.kind]+": "+fk.want)
		return
	}
	for _, name := range fk.vars {
		f.env[name], f.keys[name] = text, full
	}
	switch key {
	case "log_to_file":
		if text == "true" {
			f.warnings = append(f.warnings, "log_to_file = true is ignored: logs go to stdout and stderr (journald, the container's log)")
		}
	case "http_address":
		if ip := net.ParseIP(v.(string)); ip == nil {
			f.fail(full, v, fk.want)
		} else {
			f.listenHost = ip.String()
		}
	case "ignore_transient_errors":
		// false: no stale value when a refresh fails, unless
		// [prefetch] stale_if_error_seconds (read after it) says otherwise.
		if text == "false" {
			f.env[EnvStaleIfError], f.keys[EnvStaleIfError] = "0", full
		}
	case "validate_credentials":
		// The prefetch is the check: a credential that doesn't work fails
		// it (exit 3 under SECRETS_PREFETCH_REQUIRED=true), and is logged.
	case "region":
		if s := v.(string); !regionName().MatchString(s) || len(s) > 64 {
			f.fail(full, v, fk.want)
		} else {
			f.region = s
		}
	case "ssrf_headers":
		if len(list) == 0 || slices.ContainsFunc(list, func(h string) bool { return !headerName().MatchString(h) }) {
			f.fail(full, v, fk.want)
		} else {
			f.tokenHeaders = list
		}
	case "ssrf_env_variables":
		if len(list) == 0 || slices.ContainsFunc(list, func(h string) bool { return !envName().MatchString(h) }) {
			f.fail(full, v, fk.want)
		} else {
			f.tokenVars = list
		}
	case "path_prefix":
		s := v.(string)
		if !strings.HasPrefix(s, "/") || len(s) > 256 || strings.Contains(s, "..") || strings.ContainsAny(s, "?#%") || strings.ContainsFunc(s, isControl) {
			f.fail(full, v, fk.want)
		} else {
			if !strings.HasSuffix(s, "/") {
				s += "/"
			}
			f.pathPrefix = s
		}
	case "max_conn":
		if n, ok := digits(text); !ok || n < 1 || n > 1000 {
			f.fail(full, v, fk.want)
		} else {
			f.maxInFlight = n
		}
	case "secrets", "parameters":
		for i, s := range list {
			if strings.Contains(s, ",") {
				f.errs = append(f.errs, &VarError{Name: f.name + ": " + full, Value: s, Index: i + 1, Want: "a name without ','"})
				delete(f.env, fk.vars[0])
			}
		}
	}
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

var kindNames = map[string]string{
	"string": "a TOML string", "integer": "a TOML integer", "boolean": "a TOML boolean",
	"float": "a TOML number", "strings": "a TOML array of strings",
}

// asKind checks a decoded TOML value's type and renders it as the text a
// variable would hold; list is an array's elements.
func asKind(kind string, v any) (text string, list []string, ok bool) {
	switch kind {
	case "string":
		s, ok := v.(string)
		return s, nil, ok
	case "integer":
		// The Secrets Manager Agent reads its numbers as strings, so its
		// files may quote them (http_port = "2773"): both are taken, and
		// the text is checked as a variable's would be.
		switch n := v.(type) {
		case int64:
			return strconv.FormatInt(n, 10), nil, true
		case string:
			return n, nil, true
		}
		return "", nil, false
	case "boolean":
		switch b := v.(type) {
		case bool:
			return strconv.FormatBool(b), nil, true
		case string: // likewise "true" / "false"
			if strings.EqualFold(b, "true") || strings.EqualFold(b, "false") {
				return strings.ToLower(b), nil, true
			}
		}
		return "", nil, false
	case "float":
		switch n := v.(type) {
		case float64:
			return strconv.FormatFloat(n, 'f', -1, 64), nil, true
		case int64: // refresh_ahead = 1
			return strconv.FormatInt(n, 10), nil, true
		}
		return "", nil, false
	case "strings":
		arr, ok := v.([]any)
		if !ok {
			return "", nil, false
		}
		list = make([]string, len(arr))
		for i, e := range arr {
			s, ok := e.(string)
			if !ok {
				return "", nil, false
			}
			list[i] = s
		}
		return strings.Join(list, ","), list, true
	}
	return "", nil, false
}

// fail records a bad value of a key.
func (f *File) fail(key string, v any, want string) {
	f.errs = append(f.errs, &VarError{Name: f.name + ": " + key, Value: describe(v), Want: want})
}

// describe renders a TOML value for an error: a string quoted as it was
// written, other values with their type.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		return "(a table)"
	case []any, []map[string]any:
		return fmt.Sprintf("(an array) %v", v)
	}
	return fmt.Sprint(v)
}

func knownKeys(table map[string]fileKey) string {
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if _, ok := table["http_port"]; ok {
		keys = append(keys, "[prefetch]")
	}
	return strings.Join(keys, ", ")
}

// layer returns a getenv that answers a variable that is not set from the
// file.
func (f *File) layer(getenv func(string) string) func(string) string {
	f.getenv = getenv
	return func(name string) string {
		if v := getenv(name); strings.TrimSpace(v) != "" {
			return v
		}
		return f.env[name]
	}
}

// rename names, in errors about values that came from the file, the file's
// key instead of the variable; a key that sets two variables (ttl_seconds)
// is reported once.
func (f *File) rename(errs []error) []error {
	out := errs[:0:0]
	seen := map[string]bool{}
	for _, err := range errs {
		ve, ok := err.(*VarError)
		key, fromFile := "", false
		if ok {
			key, fromFile = f.keys[ve.Name]
		}
		if fromFile && f.env[ve.Name] != "" && !f.setInEnv(ve.Name) {
			r := *ve
			r.Name = f.name + ": " + key
			if seen[r.Error()] {
				continue
			}
			seen[r.Error()] = true
			out = append(out, &r)
			continue
		}
		out = append(out, err)
	}
	return out
}

// setInEnv reports whether the environment itself sets the variable.
func (f *File) setInEnv(name string) bool {
	return f.getenv != nil && strings.TrimSpace(f.getenv(name)) != ""
}
