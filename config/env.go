package config

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/secrets-prefetch/secrets-prefetch/internal/names"
	"github.com/secrets-prefetch/secrets-prefetch/zerocode/mapping"
)

// Limits on list elements. AWS caps secret and parameter names (ARNs
// included) at 2048 characters; enforcing it here reports a typo at Init
// rather than as a ValidationException on the first fetch.
const maxNameLen = 2048

// VarError reports one bad environment variable, or one bad element of a
// comma-separated list. FromEnv joins them with errors.Join so that a single
// deploy shows every mistake at once; use errors.As or VarErrors to inspect.
type VarError struct {
	Name  string // the variable, e.g. SECRETS_MANAGER_TTL
	Value string // the rejected value or list element; "" when the variable is missing
	Index int    // 1-based position of Value in a comma-separated list; 0 for a whole value
	Want  string // the valid range or format
	// Unknown marks a config file key that is not one of the file's keys
	// (Name is the file and key; Want lists the valid keys).
	Unknown bool
}

// maxQuoted bounds how much of a bad value an error repeats, so that a
// runaway variable cannot flood the logs.
const maxQuoted = 128

func (e *VarError) Error() string {
	switch {
	case e.Unknown:
		return fmt.Sprintf("%s: unknown key: want %s", e.Name, e.Want)
	case e.Index > 0:
		return fmt.Sprintf("%s: element %d %s is not valid: want %s", e.Name, e.Index, names.Quote(e.Value), e.Want)
	case e.Value == "":
		return fmt.Sprintf("%s: not set: want %s", e.Name, e.Want)
	default:
		return fmt.Sprintf("%s: %s is not valid: want %s", e.Name, names.Quote(e.Value), e.Want)
	}
}

// VarErrors lists the *VarError values inside err, in order, looking through
// errors.Join and %w wrapping. It returns nil if there are none.
func VarErrors(err error) []*VarError {
	var out []*VarError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *VarError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// Default returns the configuration FromEnv builds from an empty
// environment, minus the token (which has no default).
func Default() Config {
	return Config{
		HTTPPort:       2773,
		CacheEnabled:   true,
		CacheSize:      1000,
		MaxConnections: 3,
		LogLevel:       LogInfo,
		SecretsTTL:     300 * time.Second,
		ParametersTTL:  300 * time.Second,
		SecretsTimeout: 5000 * time.Millisecond,
		ParamsTimeout:  5000 * time.Millisecond,
		InitTimeout:    5000 * time.Millisecond,
		RefreshAhead:   0.8,
		StaleIfError:   300 * time.Second,
		Lazy:           true,
		Concurrency:    16,
		MaxRoles:       20,
	}
}

// FromEnv builds the configuration from getenv (os.Getenv in production, a
// map lookup in tests). An unset or blank variable takes its default; any
// other value must be valid. Every problem is reported, each as a *VarError,
// joined with errors.Join; on error the returned Config is the zero value so
// that no caller runs on a half-valid configuration.
func FromEnv(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	c := p.config()
	c.Token = p.token()
	if len(p.errs) > 0 {
		return Config{}, errors.Join(p.errs...)
	}
	return c, nil
}

// config reads the variables both modes share (all but the token).
func (p *parser) config() Config {
	d := Default()
	// One variable per line; errors are reported in this order.
	var c Config
	c.HTTPPort = p.integer(EnvHTTPPort, 1, 65535, d.HTTPPort, "a whole number")
	c.CacheEnabled = p.boolean(EnvCacheEnabled, d.CacheEnabled)
	c.CacheSize = p.integer(EnvCacheSize, 1, 100000, d.CacheSize, "a whole number")
	c.MaxConnections = p.integer(EnvMaxConnections, 1, 1000, d.MaxConnections, "a whole number")
	c.LogLevel = p.logLevel(EnvLogLevel, d.LogLevel)
	c.SecretsTTL = p.seconds(EnvSecretsTTL, 0, 86400, d.SecretsTTL)
	c.ParametersTTL = p.seconds(EnvParametersTTL, 0, 86400, d.ParametersTTL)
	c.SecretsTimeout = p.millis(EnvSecretsTimeout, 0, 300000, d.SecretsTimeout)
	c.ParamsTimeout = p.millis(EnvParamsTimeout, 0, 300000, d.ParamsTimeout)
	c.Secrets, c.Selections = p.secrets(EnvSecrets)
	c.Parameters, c.ParameterPaths = p.parameters(EnvParameters)
	c.Required = p.boolean(EnvRequired, d.Required)
	c.InitTimeout = p.millis(EnvInitTimeout, 1, 900000, d.InitTimeout)
	c.RefreshAhead = p.fraction(EnvRefreshAhead, d.RefreshAhead)
	c.StaleIfError = p.seconds(EnvStaleIfError, 0, 86400, d.StaleIfError)
	c.Lazy = p.boolean(EnvLazy, d.Lazy)
	c.EnvMapping = p.mapping(EnvEnvMapping, mapping.EnvVar)
	c.FileMapping = p.mapping(EnvFileMapping, mapping.File)
	c.Metrics = p.boolean(EnvMetrics, d.Metrics)
	c.Concurrency = p.integer(EnvConcurrency, 1, 256, d.Concurrency, "a whole number")
	c.MaxRoles = p.integer(EnvMaxRoles, 1, 1000, d.MaxRoles, "a whole number")
	p.checkRoleCount(c.MaxRoles, c.Secrets, c.Parameters)
	c.FailoverRegion = p.region(EnvFailover)
	c.SnapStart = p.getenv(EnvInitType) == "snap-start"
	c.SnapshotExclude = p.snapshot(EnvSnapshot, c.SnapStart)
	c.LogJSON = p.logJSON(EnvLogFormat)
	return c
}

// parser reads variables and collects every problem instead of stopping at
// the first.
type parser struct {
	getenv func(string) string
	errs   []error
}

func (p *parser) fail(name, value string, index int, want string) {
	p.errs = append(p.errs, &VarError{Name: name, Value: value, Index: index, Want: want})
}

// lookup returns the variable's raw and trimmed value; a blank value counts
// as unset, as a template that renders `VAR=` means "no opinion".
func (p *parser) lookup(name string) (raw, v string, ok bool) {
	raw = p.getenv(name)
	v = strings.TrimSpace(raw)
	return raw, v, v != ""
}

// digits parses a whole decimal number: ASCII digits only, because
// strconv.Atoi's "+5" and time.ParseDuration's "5s" would hide a
// misunderstanding of the unit.
func digits(v string) (int, bool) {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

func (p *parser) integer(name string, lo, hi, def int, what string) int {
	raw, v, ok := p.lookup(name)
	if !ok {
		return def
	}
	n, ok := digits(v)
	if !ok || n < lo || n > hi {
		p.fail(name, raw, 0, fmt.Sprintf("%s from %d to %d", what, lo, hi))
		return def
	}
	return n
}

func (p *parser) seconds(name string, lo, hi int, def time.Duration) time.Duration {
	n := p.integer(name, lo, hi, int(def/time.Second), "whole seconds")
	return time.Duration(n) * time.Second
}

func (p *parser) millis(name string, lo, hi int, def time.Duration) time.Duration {
	n := p.integer(name, lo, hi, int(def/time.Millisecond), "whole milliseconds")
	return time.Duration(n) * time.Millisecond
}

// boolean accepts only true and false: "0", "no" and "off" are ambiguous
// enough across tools that guessing would be a silent default.
func (p *parser) boolean(name string, def bool) bool {
	raw, v, ok := p.lookup(name)
	switch {
	case !ok:
		return def
	case strings.EqualFold(v, "true"):
		return true
	case strings.EqualFold(v, "false"):
		return false
	}
	p.fail(name, raw, 0, "true or false")
	return def
}

var logLevels = [...]string{LogDebug: "debug", LogInfo: "info", LogWarn: "warn", LogError: "error", LogNone: "none"}

// String returns the level's name as PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL
// spells it.
func (l LogLevel) String() string {
	if l >= 0 && int(l) < len(logLevels) {
		return logLevels[l]
	}
	return "LogLevel(" + strconv.Itoa(int(l)) + ")"
}

func (p *parser) logLevel(name string, def LogLevel) LogLevel {
	raw, v, ok := p.lookup(name)
	if !ok {
		return def
	}
	for l, s := range logLevels {
		if strings.EqualFold(v, s) {
			return LogLevel(l)
		}
	}
	p.fail(name, raw, 0, "one of debug, info, warn, error, none")
	return def
}

// logJSON follows Lambda's own AWS_LAMBDA_LOG_FORMAT so the extension's
// lines match the function's.
func (p *parser) logJSON(name string) bool {
	raw, v, ok := p.lookup(name)
	switch {
	case !ok, strings.EqualFold(v, "Text"):
		return false
	case strings.EqualFold(v, "JSON"):
		return true
	}
	p.fail(name, raw, 0, "JSON or Text")
	return false
}

// fraction parses a plain decimal such as 0.8 or .5; exponents, signs, NaN
// and Inf are refused rather than given meaning.
func (p *parser) fraction(name string, def float64) float64 {
	raw, v, ok := p.lookup(name)
	if !ok {
		return def
	}
	if f, ok := decimal(v); ok && f > 0 && f <= 1 {
		return f
	}
	p.fail(name, raw, 0, "a decimal fraction greater than 0 and at most 1, e.g. 0.8")
	return def
}

func decimal(v string) (float64, bool) {
	seenDigit, seenDot := false, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= '0' && c <= '9':
			seenDigit = true
		case c == '.' && !seenDot:
			seenDot = true
		default:
			return 0, false
		}
	}
	if !seenDigit {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
}

// token is the credential callers of the HTTP API must present, as with
// AWS's extension. Under SnapStart Lambda provides
// AWS_CONTAINER_AUTHORIZATION_TOKEN instead of AWS_SESSION_TOKEN. Its value
// is never put into an error.
func (p *parser) token() string {
	if t := p.getenv(EnvSessionToken); t != "" {
		return t
	}
	if t := p.getenv(EnvContainerToken); t != "" {
		return t
	}
	p.fail(EnvSessionToken, "", 0, "a token in "+EnvSessionToken+" or, under SnapStart, "+
		EnvContainerToken+" (Lambda sets one; the HTTP API cannot authenticate callers without it)")
	return ""
}

// list splits a comma-separated variable and calls check on each non-blank,
// trimmed element with its 1-based position among all fields, so the
// position matches what the user counts in the value.
func (p *parser) list(name string, check func(index int, elem string)) {
	_, v, ok := p.lookup(name)
	if !ok {
		return
	}
	for i, elem := range strings.Split(v, ",") {
		if elem = strings.TrimSpace(elem); elem != "" {
			check(i+1, elem)
		}
	}
}

// checkName applies the rules shared by secret and parameter names. It
// refuses control characters and invalid UTF-8 because names end up in
// logs and URLs, and ".." because no AWS name needs it while it is the
// classic way to smuggle a different path into one.
func (p *parser) checkName(name string, index int, elem string) bool {
	want := ""
	switch {
	case !utf8.ValidString(elem) || strings.ContainsFunc(elem, unicode.IsControl):
		want = "UTF-8 text without control characters"
	case utf8.RuneCountInString(elem) > maxNameLen:
		want = fmt.Sprintf("at most %d characters", maxNameLen)
	case strings.Contains(elem, ".."):
		want = `no ".."`
	default:
		return true
	}
	p.fail(name, elem, index, want)
	return false
}

// snapshot reads include or exclude; exclude is the default under
// SnapStart (values fetched at Init would be thrown away at restore anyway,
// and would wait in the snapshot meanwhile). Outside SnapStart there is no
// snapshot: the variable is validated and has no effect.
func (p *parser) snapshot(name string, snapStart bool) bool {
	raw, v, ok := p.lookup(name)
	switch {
	case !ok:
		return snapStart
	case strings.EqualFold(v, "exclude"):
		return snapStart
	case strings.EqualFold(v, "include"):
		return false
	}
	p.fail(name, raw, 0, "include or exclude")
	return false
}

// region reads an AWS region name: letter groups and a final number,
// joined by "-", e.g. eu-west-1 or us-gov-west-1.
func (p *parser) region(name string) string {
	raw, v, ok := p.lookup(name)
	if !ok {
		return ""
	}
	if !isRegion(v) {
		p.fail(name, raw, 0, "an AWS region, e.g. us-west-2")
		return ""
	}
	return v
}

func isRegion(v string) bool {
	groups := strings.Split(v, "-")
	if len(groups) < 3 || len(v) > 64 {
		return false
	}
	for i, g := range groups {
		if g == "" {
			return false
		}
		last := i == len(groups)-1
		for j := 0; j < len(g); j++ {
			c := g[j]
			if last && (c < '0' || c > '9') || !last && (c < 'a' || c > 'z') {
				return false
			}
		}
	}
	return true
}

// roleSeparator ends an entry's name where a role follows: "|" appears in
// no secret name, parameter name, ARN or role ARN.
const roleSeparator = "|"

const wantRole = `a name, then optionally "|" and an IAM role ARN to read it as, e.g. "app/db|arn:aws:iam::123456789012:role/reader"`

// SplitRole takes a Secrets or Parameters entry apart: the name (or ARN,
// or parameter name with selector) and the role ARN after "|", "" if none.
func SplitRole(entry string) (id, role string) {
	id, role, _ = strings.Cut(entry, roleSeparator)
	return id, role
}

// checkRole checks the role part of an entry, if any.
func (p *parser) checkRole(name string, index int, elem string) bool {
	id, role, ok := strings.Cut(elem, roleSeparator)
	if !ok {
		return true
	}
	if strings.TrimSpace(id) != id || strings.TrimSpace(role) != role || id == "" || !names.IsRoleARN(role) {
		p.fail(name, elem, index, wantRole)
		return false
	}
	return true
}

// checkRoleCount refuses more roles in the entries than reads may use.
func (p *parser) checkRoleCount(maxRoles int, lists ...[]string) {
	roles := map[string]bool{}
	for _, l := range lists {
		for _, e := range l {
			if _, r := SplitRole(e); r != "" {
				roles[r] = true
			}
		}
	}
	if len(roles) > maxRoles {
		p.fail(EnvMaxRoles, strconv.Itoa(maxRoles), 0, fmt.Sprintf("at least %d, the roles %s and %s name", len(roles), EnvSecrets, EnvParameters))
	}
}

const wantSelection = `tag:KEY=VALUE (a tag key without "=" and a value, each of printable characters) or prefix:NAME, without a role`

// selection parses a tag:KEY=VALUE or prefix:NAME entry; ok is false when
// elem is neither form (a name or ARN: neither has ':' in that place).
func (p *parser) selection(name string, index int, elem string) (sel Selection, isSel bool) {
	if rest, ok := strings.CutPrefix(elem, "prefix:"); ok {
		if rest == "" || strings.Contains(rest, roleSeparator) || !names.Printable(rest) {
			p.fail(name, elem, index, wantSelection)
			return Selection{}, true
		}
		return Selection{Prefix: rest}, true
	}
	if rest, ok := strings.CutPrefix(elem, "tag:"); ok {
		k, v, ok := strings.Cut(rest, "=")
		if !ok || k == "" || v == "" || len(k) > 128 || len(v) > 256 || strings.Contains(rest, roleSeparator) || !names.Printable(rest) {
			p.fail(name, elem, index, wantSelection)
			return Selection{}, true
		}
		return Selection{TagKey: k, TagValue: v}, true
	}
	return Selection{}, false
}

func (p *parser) secrets(name string) ([]string, []Selection) {
	var out []string
	var sels []Selection
	seen := map[string]bool{}
	p.list(name, func(index int, elem string) {
		if !p.checkName(name, index, elem) {
			return
		}
		if sel, ok := p.selection(name, index, elem); ok {
			if sel != (Selection{}) && !slices.Contains(sels, sel) {
				sels = append(sels, sel)
			}
			return
		}
		if p.checkRole(name, index, elem) && !seen[elem] {
			seen[elem] = true
			out = append(out, elem)
		}
	})
	return out, sels
}

// badSelector reports whether a parameter entry's selector (after ':') is
// neither a version nor a label.
func badSelector(elem string) bool {
	_, sel := names.SplitSelector(elem)
	return sel != "" && !names.IsVersion(sel) && !names.IsLabel(sel)
}

const wantWildcard = `a wildcard only at the end, as "/*" (direct children) or "/**" (recursive), e.g. "/app/*"`

func (p *parser) parameters(name string) (names []string, paths []Path) {
	seenName := map[string]bool{}
	seenPath := map[Path]bool{}
	p.list(name, func(index int, entry string) {
		if !p.checkName(name, index, entry) || !p.checkRole(name, index, entry) {
			return
		}
		elem, role := SplitRole(entry)
		path, isPath, want := parsePath(elem)
		switch {
		case isPath && role != "":
			p.fail(name, entry, index, "a parameter name, not a path, before a role: paths are read with the function's own credentials")
		case want != "":
			p.fail(name, elem, index, want)
		case strings.HasSuffix(elem, ":") || badSelector(elem):
			p.fail(name, entry, index, `a version (from 1) or label (letters, digits, '.', '-', '_', not starting with a digit) after ':', as "name:3" or "name:prod"`)
		case isPath:
			if !seenPath[path] {
				seenPath[path] = true
				paths = append(paths, path)
			}
		case !seenName[entry]:
			// A selector suffix (name:3, name:label) stays on the name;
			// the fetch layer interprets it.
			seenName[entry] = true
			names = append(names, entry)
		}
	})
	return names, paths
}

// parsePath classifies a parameters entry: a path pattern (isPath), a plain
// name (neither isPath nor want), or a mistake described by want.
func parsePath(elem string) (path Path, isPath bool, want string) {
	prefix, recursive := "", false
	switch {
	case strings.HasSuffix(elem, "/**"):
		prefix, recursive = strings.TrimSuffix(elem, "/**"), true
	case strings.HasSuffix(elem, "/*"):
		prefix = strings.TrimSuffix(elem, "/*")
	default:
		if strings.Contains(elem, "*") {
			return Path{}, false, wantWildcard
		}
		return Path{}, false, ""
	}
	switch {
	case strings.Contains(prefix, "*"):
		return Path{}, false, wantWildcard
	case !strings.HasPrefix(elem, "/"):
		return Path{}, false, `a path pattern starting with "/", e.g. "/app/*"`
	case prefix == "":
		return Path{Prefix: "/", Recursive: recursive}, true, ""
	case strings.HasSuffix(prefix, "/") || strings.Contains(prefix, "//"):
		return Path{}, false, `a path pattern without empty segments ("//"), e.g. "/app/*"`
	}
	return Path{Prefix: prefix, Recursive: recursive}, true, ""
}

// mapping parses a zero-code mapping; each bad entry is a *VarError naming
// it by position and text.
func (p *parser) mapping(name string, target mapping.Target) []mapping.Entry {
	_, v, ok := p.lookup(name)
	if !ok {
		return nil
	}
	entries, errs := mapping.Parse(target, v)
	for _, e := range errs {
		p.fail(name, e.Text, e.Index, e.Want)
	}
	return entries
}
