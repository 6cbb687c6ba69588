package mapping

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseEnv(t *testing.T) {
	entries, errs := Parse(EnvVar, " DB_PASSWORD=secret:prod/db#password, API_URL = param:/app/api-url ,,"+
		"OLD=param:/app/x:3,TOKEN?=secret:optional-one, LABELED=param:/app/x:prod ,"+
		"ARN=secret:arn:aws:secretsmanager:us-east-1:123456789012:secret:api-AbCdEf#a#b,"+
		"PARN=param:arn:aws:ssm:us-east-1:123456789012:parameter/app/y:2,"+
		"REF=param:/aws/reference/secretsmanager/prod/db:AWSPREVIOUS#user,"+
		"lower_case1 ?= secret:a=b")
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	want := []Entry{
		{Index: 1, Text: "DB_PASSWORD=secret:prod/db#password", Target: "DB_PASSWORD", Kind: Secret, ID: "prod/db", JSONKey: "password"},
		{Index: 2, Text: "API_URL = param:/app/api-url", Target: "API_URL", Kind: Parameter, ID: "/app/api-url"},
		{Index: 4, Text: "OLD=param:/app/x:3", Target: "OLD", Kind: Parameter, ID: "/app/x", Selector: "3"},
		{Index: 5, Text: "TOKEN?=secret:optional-one", Target: "TOKEN", Optional: true, Kind: Secret, ID: "optional-one"},
		{Index: 6, Text: "LABELED=param:/app/x:prod", Target: "LABELED", Kind: Parameter, ID: "/app/x", Selector: "prod"},
		{Index: 7, Text: "ARN=secret:arn:aws:secretsmanager:us-east-1:123456789012:secret:api-AbCdEf#a#b", Target: "ARN", Kind: Secret,
			ID: "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-AbCdEf", JSONKey: "a#b"},
		{Index: 8, Text: "PARN=param:arn:aws:ssm:us-east-1:123456789012:parameter/app/y:2", Target: "PARN", Kind: Parameter,
			ID: "arn:aws:ssm:us-east-1:123456789012:parameter/app/y", Selector: "2"},
		{Index: 9, Text: "REF=param:/aws/reference/secretsmanager/prod/db:AWSPREVIOUS#user", Target: "REF", Kind: Parameter,
			ID: "/aws/reference/secretsmanager/prod/db", Selector: "AWSPREVIOUS", JSONKey: "user"},
		{Index: 10, Text: "lower_case1 ?= secret:a=b", Target: "lower_case1", Optional: true, Kind: Secret, ID: "a=b"},
	}
	if !reflect.DeepEqual(entries, want) {
		t.Errorf("entries:\n got %+v\nwant %+v", entries, want)
	}
	if got := entries[0].Source(); got != "secret:prod/db#password" {
		t.Errorf("Source = %q", got)
	}
	if got := entries[3].String(); got != "TOKEN?=secret:optional-one" {
		t.Errorf("String = %q", got)
	}
}

func TestParseFiles(t *testing.T) {
	entries, errs := Parse(File, "/tmp/tls/cert.pem=secret:prod/tls#cert, /tmp/tls/key.pem?=secret:prod/tls#key, /tmp/app.json=param:/app/config")
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	var targets []string
	for _, e := range entries {
		targets = append(targets, e.Target)
	}
	if want := []string{"/tmp/tls/cert.pem", "/tmp/tls/key.pem", "/tmp/app.json"}; !reflect.DeepEqual(targets, want) {
		t.Errorf("targets = %q, want %q", targets, want)
	}
	if !entries[1].Optional || entries[0].Optional {
		t.Errorf("optional flags wrong: %+v", entries)
	}
}

// TestParseErrors checks that every bad entry is reported by its position
// and text, with what a valid one looks like, and that the rest still parse.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		target Target
		in     string
		index  int    // of the one bad entry
		want   string // in its Want
	}{
		{EnvVar, "OK=secret:a, DB_PASSWORD", 2, "NAME=secret:ID"},
		{EnvVar, "OK=secret:a,DB=sekret:prod/db", 2, `"secret:ID" or "param:NAME"`},
		{EnvVar, "OK=secret:a,DB=Secret:prod/db", 2, `"secret:ID"`},
		{EnvVar, "DB=secret:", 1, `a name after "secret:"`},
		{EnvVar, "DB=param:", 1, `a name after "param:"`},
		{EnvVar, "DB=secret:x#", 1, "JSON key"},
		{EnvVar, "DB=secret:x#a\x01", 1, "JSON key"},
		{EnvVar, "DB=secret:x#" + strings.Repeat("k", 1025), 1, "JSON key of 1 to 1024"},
		{EnvVar, "DB=secret:pro d", 1, "without spaces"},
		{EnvVar, "DB=secret:../x", 1, `".."`},
		{EnvVar, "DB=secret:a\x1bb", 1, "control characters"},
		{EnvVar, "DB=secret:\xff", 1, "control characters"},
		{EnvVar, "DB=secret:" + strings.Repeat("a", 2049), 1, "at most 2048"},
		{EnvVar, "DB=param:/app/*", 1, "path pattern"},
		{EnvVar, "DB=param:/app/x:", 1, "version or label after"},
		{EnvVar, "DB=param::3", 1, "name before its selector"},
		{EnvVar, "DB=param:/app/x:03", 1, "a version (1, 2, ...) or a label"},
		{EnvVar, "DB=param:/app/x:3abc", 1, "a version (1, 2, ...) or a label"},
		{EnvVar, "=secret:x", 1, "variable name"},
		{EnvVar, "?=secret:x", 1, "variable name"},
		{EnvVar, "1DB=secret:x", 1, "variable name"},
		{EnvVar, "DB-PASS=secret:x", 1, "variable name"},
		{EnvVar, "DB PASS=secret:x", 1, "variable name"},
		{EnvVar, "DÉ=secret:x", 1, "variable name"},
		{EnvVar, strings.Repeat("A", 257) + "=secret:x", 1, "1 to 256"},
		{EnvVar, "AWS_SECRET_ACCESS_KEY=secret:x", 1, "reserved"},
		{EnvVar, "AWS_REGION=param:/x", 1, "reserved"},
		{EnvVar, "LAMBDA_TASK_ROOT=param:/x", 1, "reserved"},
		{EnvVar, "_HANDLER=param:/x", 1, "reserved"},
		{EnvVar, "LD_PRELOAD=param:/x", 1, "reserved"},
		{EnvVar, "SECRETS_PREFETCH_SECRETS=param:/x", 1, "reserved"},
		{EnvVar, "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT=param:/x", 1, "reserved"},
		{EnvVar, "PATH=param:/x", 1, "PATH"},
		{EnvVar, "NODE_OPTIONS=param:/x", 1, "NODE_OPTIONS"},
		{EnvVar, "PYTHONPATH=param:/x", 1, "PYTHONPATH"},
		{EnvVar, "JAVA_TOOL_OPTIONS=param:/x", 1, "JAVA_TOOL_OPTIONS"},
		{EnvVar, "A=secret:x, B=secret:y, A=param:/z", 3, "element 1 maps A"},
		{File, "/etc/passwd=secret:x", 1, "under /tmp/"},
		{File, "tmp/x=secret:x", 1, "under /tmp/"},
		{File, "/tmp=secret:x", 1, "under /tmp/"},
		{File, "/tmp/=secret:x", 1, "under /tmp/"},
		{File, "/tmpx/a=secret:x", 1, "under /tmp/"},
		{File, "/tmp/../etc/passwd=secret:x", 1, "clean path"},
		{File, "/tmp/a/../../etc=secret:x", 1, "clean path"},
		{File, "/tmp/a/./b=secret:x", 1, "clean path"},
		{File, "/tmp/a//b=secret:x", 1, "clean path"},
		{File, "/tmp/a/=secret:x", 1, "clean path"},
		{File, "/tmp/a\nb=secret:x", 1, "control characters"},
		{File, "/tmp/" + strings.Repeat("a", 256) + "=secret:x", 1, "255"},
		{File, "/tmp/" + strings.Repeat("a/", 600) + "b=secret:x", 1, "1024"},
		{File, "/tmp/a=secret:x,/tmp/a=secret:y", 2, "already mapped"},
		{File, "/tmp/a=secret:x,/tmp/a/b=secret:y", 2, "inside, or a directory of"},
		{File, "/tmp/a/b=secret:x,/tmp/a=secret:y", 2, "inside, or a directory of"},
		{File, "DB=secret:x", 1, "under /tmp/"},
	}
	for _, tc := range tests {
		t.Run(tc.in[:min(len(tc.in), 40)], func(t *testing.T) {
			entries, errs := Parse(tc.target, tc.in)
			if len(errs) != 1 {
				t.Fatalf("errors = %v, want one", errs)
			}
			e := errs[0]
			if e.Index != tc.index || !strings.Contains(e.Want, tc.want) {
				t.Errorf("error = %+v, want index %d and a want holding %q", e, tc.index, tc.want)
			}
			fields := strings.Split(tc.in, ",")
			if e.Text != strings.TrimSpace(fields[tc.index-1]) {
				t.Errorf("error text %q is not the entry %q", e.Text, fields[tc.index-1])
			}
			msg := e.Error()
			if !strings.Contains(msg, "element ") || !utf8.ValidString(msg) || strings.ContainsAny(msg, "\n\x1b") {
				t.Errorf("message %q does not name the element safely", msg)
			}
			if len(entries)+len(errs) != countFields(tc.in) {
				t.Errorf("%d entries + %d errors for %d fields", len(entries), len(errs), countFields(tc.in))
			}
		})
	}
}

func TestEveryBadEntryReported(t *testing.T) {
	_, errs := Parse(EnvVar, "A=secret:x, B, C=nope:y, D=param:/ok, AWS_X=secret:z")
	var idx []int
	for _, e := range errs {
		idx = append(idx, e.Index)
	}
	if !reflect.DeepEqual(idx, []int{2, 3, 5}) {
		t.Errorf("bad indices = %v, want [2 3 5]", idx)
	}
}

func countFields(s string) int {
	n := 0
	for f := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(f) != "" {
			n++
		}
	}
	return n
}

// FuzzParse checks Parse's contract on any input: every non-empty field is
// either an entry or an error naming it; entries are valid and round-trip
// through their canonical form; nothing panics.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", ",", "DB=secret:prod/db#password", "A?=param:/x:3, B=param:/x:prod#k",
		"/tmp/a/b=secret:x", "/tmp/../x=secret:y", "X=secret:a=b#c=d", "X==secret:a",
		"X?=", "?=", "X=param:arn:aws:ssm:r:1:parameter/a:2", "X=param:a:b:c", "X=secret:#", "é=secret:x",
		"/tmp/a?=secret:x", "/tmp/a??=secret:x", "X=param:/a/*", "X = secret: a", "X=secret:a# b ",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, files bool) {
		target := EnvVar
		if files {
			target = File
		}
		entries, errs := Parse(target, s)
		if len(entries)+len(errs) != countFields(s) {
			t.Fatalf("%d entries + %d errors for %d non-empty fields of %q", len(entries), len(errs), countFields(s), s)
		}
		fields := strings.Split(s, ",")
		for _, e := range errs {
			if e.Index < 1 || e.Index > len(fields) || e.Text != strings.TrimSpace(fields[e.Index-1]) || e.Want == "" {
				t.Fatalf("error %+v does not name its entry in %q", e, s)
			}
		}
		targets := map[string]bool{}
		for _, e := range entries {
			if e.Index < 1 || e.Index > len(fields) || e.Text != strings.TrimSpace(fields[e.Index-1]) {
				t.Fatalf("entry %+v does not match its field in %q", e, s)
			}
			if e.Kind != Secret && e.Kind != Parameter || e.ID == "" || e.Target == "" || targets[e.Target] {
				t.Fatalf("invalid entry %+v from %q", e, s)
			}
			targets[e.Target] = true
			if e.Kind == Secret && e.Selector != "" {
				t.Fatalf("secret with a selector: %+v", e)
			}
			if target == File && checkPath(e.Target) != "" || target == EnvVar && checkVar(e.Target) != "" {
				t.Fatalf("invalid target accepted: %+v", e)
			}
			again, errs := Parse(target, e.String())
			if len(errs) != 0 || len(again) != 1 {
				t.Fatalf("canonical form %q of %+v does not parse: %v", e.String(), e, errs)
			}
			a := again[0]
			a.Index, a.Text = e.Index, e.Text
			if a != e {
				t.Fatalf("round trip of %q: got %+v, want %+v", e.String(), a, e)
			}
		}
	})
}
