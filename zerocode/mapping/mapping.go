// Package mapping parses the zero-code mappings, SECRETS_PREFETCH_ENV and
// SECRETS_PREFETCH_FILES: which environment variable or file gets which
// secret or parameter value. It is pure and uses only the standard library,
// so config can validate the mappings without depending on what acts on them.
//
// A mapping is a comma-separated list of entries
//
//	TARGET[?]=secret:SECRET-ID[#JSON-KEY]
//	TARGET[?]=param:PARAMETER-NAME[:VERSION-OR-LABEL][#JSON-KEY]
//
// TARGET is an environment variable name (SECRETS_PREFETCH_ENV) or an
// absolute path under /tmp (SECRETS_PREFETCH_FILES). A "?" after it marks the
// entry optional: if its value can't be had, the target is left alone rather
// than failing Init. "#KEY" takes one top-level key of a JSON value. Spaces
// around entries and around "=" are ignored; empty entries are skipped.
package mapping

import (
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/secrets-prefetch/secrets-prefetch/internal/names"
)

// Kind is the service an entry reads from.
type Kind uint8

const (
	Secret    Kind = iota + 1 // secret:ID, Secrets Manager
	Parameter                 // param:NAME, SSM Parameter Store
)

func (k Kind) String() string {
	switch k {
	case Secret:
		return "secret"
	case Parameter:
		return "param"
	}
	return "unknown"
}

// Target tells what an entry's left-hand side names.
type Target uint8

const (
	EnvVar Target = iota + 1 // an environment variable name
	File                     // a file path under Root
)

// Root is the only directory files may be mapped under: Lambda's writable,
// per-environment scratch space.
const Root = "/tmp"

// Limits. AWS caps secret and parameter names at 2048 characters and the
// extension's API caps JSON keys at 1024.
const (
	maxNameLen    = 2048
	maxJSONKeyLen = 1024
	maxVarLen     = 256
	maxPathLen    = 1024
	maxSegmentLen = 255 // NAME_MAX
)

// Entry is one parsed mapping entry. It holds names only, never values, so
// it is safe to log.
type Entry struct {
	Index    int    // 1-based position among the comma-separated fields, as the user counts them
	Text     string // the entry as written, trimmed
	Target   string // variable name or absolute file path
	Optional bool   // written "TARGET?=": a failure leaves the target alone
	Kind     Kind
	ID       string // secret name or ARN; parameter name (or ARN) without selector
	Selector string // parameter version or label without the colon; "" = latest
	JSONKey  string // top-level key to take from a JSON value; "" = the whole value
}

// Source renders where the value comes from, e.g. "secret:prod/db#password".
func (e Entry) Source() string {
	s := e.Kind.String() + ":" + e.ID
	if e.Selector != "" {
		s += ":" + e.Selector
	}
	if e.JSONKey != "" {
		s += "#" + e.JSONKey
	}
	return s
}

// String renders the entry in canonical form; Parse of it yields the same
// entry (but for Index and Text).
func (e Entry) String() string {
	opt := ""
	if e.Optional {
		opt = "?"
	}
	return e.Target + opt + "=" + e.Source()
}

// Error reports one bad entry. Its message has the shape of the config
// package's errors for list elements, and never holds a value (a mapping
// holds names only).
type Error struct {
	Index int    // 1-based position of the entry
	Text  string // the entry as written, trimmed
	Want  string // what a valid entry looks like
}

func (e *Error) Error() string {
	return fmt.Sprintf("element %d %s is not valid: want %s", e.Index, names.Quote(e.Text), e.Want)
}

// Parse parses a mapping for target. It returns the valid entries and an
// error for each bad one, in order; a bad entry is never half-used.
func Parse(target Target, s string) ([]Entry, []*Error) {
	var (
		entries []Entry
		errs    []*Error
		seen    = map[string]int{} // target -> index of its entry
		dirs    = map[string]int{} // (files) directory of a target -> index of its entry
	)
	for i, field := range strings.Split(s, ",") {
		text := strings.TrimSpace(field)
		if text == "" {
			continue
		}
		e, want := parseEntry(target, text)
		if want == "" {
			want = conflict(target, e.Target, seen, dirs)
		}
		if want != "" {
			errs = append(errs, &Error{Index: i + 1, Text: text, Want: want})
			continue
		}
		e.Index, e.Text = i+1, text
		seen[e.Target] = e.Index
		if target == File {
			for d := path.Dir(e.Target); d != Root; d = path.Dir(d) {
				dirs[d] = e.Index
			}
		}
		entries = append(entries, e)
	}
	return entries, errs
}

// conflict reports a target already mapped, or (files) one that would have
// to be both a file and a directory.
func conflict(target Target, t string, seen, dirs map[string]int) string {
	if j, dup := seen[t]; dup {
		return fmt.Sprintf("a target not already mapped (element %d maps %s)", j, t)
	}
	if target != File {
		return ""
	}
	j, isDir := dirs[t]
	for d := path.Dir(t); d != Root && !isDir; d = path.Dir(d) {
		j, isDir = seen[d]
	}
	if isDir {
		return fmt.Sprintf("a file that is not inside, or a directory of, the file of element %d", j)
	}
	return ""
}

func example(target Target) string {
	if target == File {
		return `e.g. "/tmp/tls/key.pem=secret:prod/tls#key"`
	}
	return `e.g. "DB_PASSWORD=secret:prod/db#password"`
}

// parseEntry parses one trimmed, non-empty entry; want says what is wrong.
func parseEntry(target Target, text string) (Entry, string) {
	var e Entry
	lhs, rhs, ok := strings.Cut(text, "=")
	if !ok {
		side := "NAME"
		if target == File {
			side = "/tmp/PATH"
		}
		return e, fmt.Sprintf(`%s=secret:ID or %s=param:NAME, %s`, side, side, example(target))
	}
	lhs = strings.TrimSpace(lhs)
	if t, opt := strings.CutSuffix(lhs, "?"); opt {
		e.Optional, lhs = true, strings.TrimSpace(t)
	}
	var want string
	if target == File {
		want = checkPath(lhs)
	} else {
		want = checkVar(lhs)
	}
	if want != "" {
		return e, want
	}
	e.Target = lhs
	return e, parseSource(&e, strings.TrimSpace(rhs), target)
}

// reservedPrefixes are variables the wrapper must not set from a stored
// value: Lambda's own (credentials, the Runtime API address, the runtime's
// settings), the dynamic loader's, and this extension's configuration.
var reservedPrefixes = []string{"AWS_", "LAMBDA_", "_", "LD_", "SECRETS_PREFETCH_", "PARAMETERS_SECRETS_EXTENSION_"}

// codeLoading are variables that decide which program runs or what code a
// runtime loads before the handler: a stored value must not set them.
var codeLoading = map[string]bool{
	"PATH": true, "NODE_OPTIONS": true, "NODE_PATH": true, "JAVA_TOOL_OPTIONS": true,
	"JDK_JAVA_OPTIONS": true, "_JAVA_OPTIONS": true, "PYTHONPATH": true, "PYTHONHOME": true,
	"PYTHONSTARTUP": true, "RUBYOPT": true, "RUBYLIB": true, "PERL5OPT": true, "PERL5LIB": true,
	"BASH_ENV": true, "ENV": true, "DOTNET_STARTUP_HOOKS": true, "GCONV_PATH": true,
}

const wantVarName = "a variable name of ASCII letters, digits and '_', not starting with a digit, e.g. DB_PASSWORD"

func checkVar(name string) string {
	if name == "" || len(name) > maxVarLen {
		return fmt.Sprintf("%s (1 to %d characters) before '='", wantVarName, maxVarLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9') {
			return wantVarName
		}
	}
	if codeLoading[name] {
		return "a variable other than " + name + " (it decides what code the runtime loads)"
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return "a variable outside the reserved AWS_*, LAMBDA_*, _*, LD_*, PATH, SECRETS_PREFETCH_* and PARAMETERS_SECRETS_EXTENSION_* (Lambda's, the loader's and this extension's own)"
		}
	}
	return ""
}

func checkPath(p string) string {
	switch {
	case !strings.HasPrefix(p, Root+"/") || len(p) == len(Root)+1:
		return fmt.Sprintf("an absolute file path under %s/, e.g. %s/tls/key.pem", Root, Root)
	case len(p) > maxPathLen:
		return fmt.Sprintf("a path of at most %d bytes", maxPathLen)
	case !names.Printable(p):
		return "a path of UTF-8 text without control characters"
	case path.Clean(p) != p:
		return `a clean path: no "..", "." or empty segments and no trailing "/"`
	}
	for seg := range strings.SplitSeq(p, "/") {
		if len(seg) > maxSegmentLen {
			return fmt.Sprintf("path segments of at most %d bytes", maxSegmentLen)
		}
	}
	return ""
}

// parseSource parses the right-hand side "secret:ID[#KEY]" or
// "param:NAME[:SEL][#KEY]" into e.
func parseSource(e *Entry, rhs string, target Target) string {
	kind, rest, _ := strings.Cut(rhs, ":")
	switch kind {
	case "secret":
		e.Kind = Secret
	case "param":
		e.Kind = Parameter
	default:
		return fmt.Sprintf(`a source "secret:ID" or "param:NAME" after '=', %s`, example(target))
	}
	id, key, hasKey := strings.Cut(rest, "#")
	if hasKey {
		if key == "" || len(key) > maxJSONKeyLen || !names.Printable(key) {
			return fmt.Sprintf("a JSON key of 1 to %d printable characters after '#'", maxJSONKeyLen)
		}
		e.JSONKey = key
	}
	if want := checkName(e.Kind, id); want != "" {
		return want
	}
	e.ID = id
	if e.Kind == Parameter {
		name, sel := names.SplitSelector(id)
		switch {
		case name != id && sel == "":
			return "a version or label after the parameter name's ':', e.g. param:/app/db:3 or param:/app/db:prod"
		case name == "":
			return "a parameter name before its selector, e.g. param:/app/db:3"
		case sel != "" && !names.IsVersion(sel) && !names.IsLabel(sel):
			return "a selector that is a version (1, 2, ...) or a label (letters, digits, '.', '-', '_', not starting with a digit)"
		}
		e.ID, e.Selector = name, sel
	}
	return ""
}

func checkName(kind Kind, id string) string {
	switch {
	case id == "":
		return fmt.Sprintf("a name after %q", kind.String()+":")
	case utf8.RuneCountInString(id) > maxNameLen:
		return fmt.Sprintf("a name of at most %d characters", maxNameLen)
	case !names.Printable(id):
		return "a name of UTF-8 text without control characters"
	case strings.ContainsFunc(id, unicode.IsSpace):
		return "a name without spaces (no AWS name has them)"
	case strings.Contains(id, ".."):
		return `a name without ".."`
	case kind == Parameter && strings.Contains(id, "*"):
		return "a single parameter name: a path pattern (/app/*) can't be mapped to one target"
	}
	return ""
}
