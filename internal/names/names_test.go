package names

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSplitSelector(t *testing.T) {
	const arn = "arn:aws:ssm:us-east-1:111122223333:parameter/app/db"
	tests := []struct {
		in, name, sel string
	}{
		{"/app/db", "/app/db", ""},
		{"db", "db", ""},
		{"/app/db:3", "/app/db", "3"},
		{"db:prod", "db", "prod"},
		{"/app/db:my-label_1.x", "/app/db", "my-label_1.x"},
		{arn, arn, ""},
		{arn + ":7", arn, "7"},
		{arn + ":prod", arn, "prod"},
		{"arn:aws:ssm:us-east-1:111122223333:parameter", "arn:aws:ssm:us-east-1:111122223333:parameter", ""},
		{"/a:b/c", "/a:b/c", ""}, // a colon before the last slash is not a selector
		{"/app/db:", "/app/db", ""},
		{":3", "", "3"},
	}
	for _, tt := range tests {
		name, sel := SplitSelector(tt.in)
		if name != tt.name || sel != tt.sel {
			t.Errorf("SplitSelector(%q) = %q, %q; want %q, %q", tt.in, name, sel, tt.name, tt.sel)
		}
	}
}

func TestQuote(t *testing.T) {
	long := strings.Repeat("é", 100)
	q := Quote(long)
	if !strings.HasSuffix(q, "...") || !utf8.ValidString(q) || len(q) > maxQuoted+10 {
		t.Errorf("Quote(long) = %q", q)
	}
}

func TestIsRoleARN(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"arn:aws:iam::123456789012:role/reader", true},
		{"arn:aws-us-gov:iam::123456789012:role/path/to/a+b=c,d.e@f_g-h", true},
		{"arn:aws:iam::123456789012:role/", false},
		{"arn:aws:iam::123456789012:role//x", false},
		{"arn:aws:iam::123456789012:role/x/", false},
		{"arn:aws:iam::123456789012:user/x", false},
		{"arn:aws:iam::12345678901:role/x", false},
		{"arn:aws:iam:us-east-1:123456789012:role/x", false},
		{"arn::iam::123456789012:role/x", false},
		{"arn:aws:iam::123456789012:role/x|y", false},
		{"arn:aws:iam::123456789012:role/x y", false},
		{"role/x", false},
	} {
		if got := IsRoleARN(tc.s); got != tc.want {
			t.Errorf("IsRoleARN(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func FuzzIsRoleARN(f *testing.F) {
	f.Add("arn:aws:iam::123456789012:role/reader")
	f.Add("arn:aws:iam::123456789012:role/a/b")
	f.Fuzz(func(t *testing.T, s string) {
		if !IsRoleARN(s) {
			return
		}
		if !strings.HasPrefix(s, "arn:") || !strings.Contains(s, ":iam::") || !strings.Contains(s, ":role/") ||
			strings.ContainsAny(s, "| \t\n\"'\\?#&%") || len(s) > 2048 {
			t.Fatalf("IsRoleARN(%q) = true", s)
		}
	})
}
