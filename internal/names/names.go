// Package names holds the rules for the names callers and configuration give
// the extension — SSM selectors, versions, labels — and how to quote such a
// name in a message. The HTTP API, the configuration and the zero-code
// mappings all follow them, so an item is read the same way wherever it is
// named.
package names

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxQuoted bounds how much of a caller's text a message repeats.
const maxQuoted = 128

// Quote renders s Go-quoted, so control characters cannot forge log lines,
// cut to 128 bytes on a rune boundary.
func Quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	n := maxQuoted
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strconv.Quote(s[:n]) + "..."
}

// SplitSelector splits "name:3" or "name:label" into the name and the
// selector without its colon. Parameter names can't contain ':', but ARNs
// can, before the name part.
func SplitSelector(name string) (string, string) {
	tail := name[strings.LastIndexByte(name, '/')+1:]
	i := strings.LastIndexByte(tail, ':')
	if i < 0 || strings.HasPrefix(name, "arn:") && !strings.Contains(name, "/") {
		return name, ""
	}
	cut := len(name) - len(tail) + i
	return name[:cut], name[cut+1:]
}

// IsVersion reports whether s is a parameter version: a whole number from 1.
func IsVersion(s string) bool {
	if s == "" || len(s) > 18 || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// IsLabel reports whether s is a parameter label (or, in the
// /aws/reference/secretsmanager/ form, a version stage). SSM labels can't
// begin with a digit, which keeps "name:0" and "label=3" from passing as one.
func IsLabel(s string) bool {
	if s == "" || len(s) > 100 || '0' <= s[0] && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Printable reports whether s is valid UTF-8 without control characters.
func Printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		} else if c >= utf8.RuneSelf {
			return utf8.ValidString(s[i:]) && !strings.ContainsFunc(s[i:], unicode.IsControl)
		}
	}
	return true
}

// UnderPath reports whether the parameter name falls under the path prefix:
// directly (one more segment), or at any depth when recursive. This is
// GetParametersByPath's rule, which /app/* and /app/** entries follow.
func UnderPath(name, prefix string, recursive bool) bool {
	if prefix != "/" {
		prefix += "/"
	}
	if len(name) <= len(prefix) || name[:len(prefix)] != prefix {
		return false
	}
	return recursive || !strings.Contains(name[len(prefix):], "/")
}

// IsRoleARN reports whether s is an IAM role ARN:
// arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME, the account twelve digits,
// the path and name of the characters IAM allows (letters, digits and
// + = , . @ _ - /), not ending in "/".
func IsRoleARN(s string) bool {
	rest, ok := strings.CutPrefix(s, "arn:")
	if !ok || len(s) > 2048 {
		return false
	}
	partition, rest, ok := strings.Cut(rest, ":iam::")
	if !ok || partition == "" || strings.Trim(partition, "abcdefghijklmnopqrstuvwxyz-") != "" {
		return false
	}
	account, name, ok := strings.Cut(rest, ":role/")
	if !ok || len(account) != 12 || strings.Trim(account, "0123456789") != "" {
		return false
	}
	if name == "" || strings.HasSuffix(name, "/") || strings.HasPrefix(name, "/") || strings.Contains(name, "//") {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("+=,.@_-/", c) >= 0) {
			return false
		}
	}
	return true
}
