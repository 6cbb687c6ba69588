package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/secrets-prefetch/secrets-prefetch/internal/names"
)

const (
	roleA = "arn:aws:iam::123456789012:role/reader"
	roleB = "arn:aws-cn:iam::210987654321:role/team/a+b=c.d@e_f-g"
)

func TestRoleEntries(t *testing.T) {
	for _, tc := range []struct {
		name          string
		secrets       string
		params        string
		maxRoles      string
		wantSecrets   []string
		wantParams    []string
		wantErrVar    string
		wantErrSubstr string
	}{
		{name: "names and ARNs with roles",
			secrets:     "app/db|" + roleA + ", arn:aws:secretsmanager:eu-west-1:123456789012:secret:x@y+z=w.v-AbCdEf|" + roleB + ",app/db",
			params:      "/app/port:3|" + roleA + ",/app/port,arn:aws:ssm:eu-west-1:123456789012:parameter/a/b|" + roleB,
			wantSecrets: []string{"app/db|" + roleA, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x@y+z=w.v-AbCdEf|" + roleB, "app/db"},
			wantParams:  []string{"/app/port:3|" + roleA, "/app/port", "arn:aws:ssm:eu-west-1:123456789012:parameter/a/b|" + roleB}},
		{name: "duplicates by name and role", secrets: "a|" + roleA + ",a|" + roleA + ",a", wantSecrets: []string{"a|" + roleA, "a"}},
		{name: "not a role ARN", secrets: "a|arn:aws:iam::123456789012:user/bob", wantErrVar: EnvSecrets, wantErrSubstr: "IAM role ARN"},
		{name: "short account", secrets: "a|arn:aws:iam::1234:role/x", wantErrVar: EnvSecrets},
		{name: "no name", secrets: "|" + roleA, wantErrVar: EnvSecrets},
		{name: "two roles", secrets: "a|" + roleA + "|" + roleB, wantErrVar: EnvSecrets},
		{name: "space around the bar", secrets: "a |" + roleA, wantErrVar: EnvSecrets},
		{name: "a path with a role", params: "/app/*|" + roleA, wantErrVar: EnvParameters, wantErrSubstr: "not a path"},
		{name: "bad selector before a role", params: "/app/x:0|" + roleA, wantErrVar: EnvParameters},
		{name: "more roles than allowed", secrets: "a|" + roleA + ",b|" + roleB, maxRoles: "1", wantErrVar: EnvMaxRoles, wantErrSubstr: "at least 2"},
		{name: "as many roles as allowed", secrets: "a|" + roleA + ",b|" + roleB + ",c|" + roleA, maxRoles: "2",
			wantSecrets: []string{"a|" + roleA, "b|" + roleB, "c|" + roleA}},
		{name: "max roles out of range", maxRoles: "0", wantErrVar: EnvMaxRoles},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromEnv(env(map[string]string{EnvSecrets: tc.secrets, EnvParameters: tc.params, EnvMaxRoles: tc.maxRoles, EnvSessionToken: testToken}))
			if tc.wantErrVar != "" {
				ves := VarErrors(err)
				if len(ves) != 1 || ves[0].Name != tc.wantErrVar || !strings.Contains(ves[0].Error(), tc.wantErrSubstr) {
					t.Fatalf("error = %v, want one naming %s (%q)", err, tc.wantErrVar, tc.wantErrSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(c.Secrets, ",") != strings.Join(tc.wantSecrets, ",") || strings.Join(c.Parameters, ",") != strings.Join(tc.wantParams, ",") {
				t.Errorf("secrets %q, parameters %q; want %q, %q", c.Secrets, c.Parameters, tc.wantSecrets, tc.wantParams)
			}
		})
	}
}

// FuzzRoleEntry checks that an accepted entry splits into a name and a
// role ARN (or none), and that a valid name and role joined by "|" come
// back apart unchanged.
func FuzzRoleEntry(f *testing.F) {
	for _, s := range []string{"app/db", "a@b:c/d+e=f.g-h_i", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf", "/app/p:3", "|", "a||b", "a|"} {
		f.Add(s, roleA)
		f.Add(s, roleB)
		f.Add(s, "arn:aws:iam::123456789012:role/a,b")
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, id, role string) {
		entry := id
		if role != "" {
			entry += "|" + role
		}
		for _, v := range []string{EnvSecrets, EnvParameters} {
			c, err := FromEnv(env(map[string]string{v: entry, EnvSessionToken: testToken}))
			if err != nil {
				continue
			}
			for _, e := range append(c.Secrets, c.Parameters...) {
				gotID, gotRole := SplitRole(e)
				if gotID == "" || strings.Contains(gotID, "|") || gotRole != "" && !names.IsRoleARN(gotRole) {
					t.Fatalf("%s=%q accepted as %q: id %q, role %q", v, entry, e, gotID, gotRole)
				}
			}
			// One entry without a comma is one entry, taken apart exactly.
			if !strings.Contains(entry, ",") && strings.TrimSpace(entry) == entry && len(c.Secrets)+len(c.Parameters) == 1 {
				gotID, gotRole := SplitRole(append(c.Secrets, c.Parameters...)[0])
				if gotID != id || gotRole != role {
					t.Fatalf("%s=%q came back as %q and %q", v, entry, gotID, gotRole)
				}
			}
		}
	})
}

func TestFailoverRegion(t *testing.T) {
	for _, tc := range []struct {
		v, want string
		bad     bool
	}{
		{v: "", want: ""}, {v: "us-west-2", want: "us-west-2"}, {v: " us-gov-west-1 ", want: "us-gov-west-1"},
		{v: "eu-west", bad: true}, {v: "US-WEST-2", bad: true}, {v: "us--west-2", bad: true}, {v: "us-west-2a", bad: true},
		{v: "bad-value", bad: true}, {v: "us-west-2-", bad: true},
	} {
		c, err := FromEnv(env(map[string]string{EnvFailover: tc.v, EnvSessionToken: testToken}))
		ves := VarErrors(err)
		switch {
		case tc.bad && (len(ves) != 1 || ves[0].Name != EnvFailover || !strings.Contains(ves[0].Want, "us-west-2")):
			t.Errorf("%q: %v, want an error naming %s with an example", tc.v, err, EnvFailover)
		case !tc.bad && (err != nil || c.FailoverRegion != tc.want):
			t.Errorf("%q: %q, %v; want %q", tc.v, c.FailoverRegion, err, tc.want)
		}
	}
}

func TestSelectionEntries(t *testing.T) {
	c, err := FromEnv(env(map[string]string{EnvSessionToken: testToken,
		EnvSecrets: "app/db, tag:team=payments, prefix:app/, tag:a:b/c=d=e f, tag:team=payments, arn:aws:secretsmanager:eu-west-1:123456789012:secret:tag-AbCdEf"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []Selection{{TagKey: "team", TagValue: "payments"}, {Prefix: "app/"}, {TagKey: "a:b/c", TagValue: "d=e f"}}
	if !slices.Equal(c.Selections, want) || !slices.Equal(c.Secrets, []string{"app/db", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tag-AbCdEf"}) {
		t.Errorf("selections %+v, secrets %q", c.Selections, c.Secrets)
	}
	for _, bad := range []string{"tag:", "tag:team", "tag:=x", "tag:team=", "prefix:", "tag:team=x|" + roleA, "prefix:app/|" + roleA} {
		_, err := FromEnv(env(map[string]string{EnvSessionToken: testToken, EnvSecrets: bad}))
		ves := VarErrors(err)
		if len(ves) != 1 || ves[0].Name != EnvSecrets || !strings.Contains(ves[0].Want, "tag:KEY=VALUE") {
			t.Errorf("%q: %v, want an error showing the selection syntax", bad, err)
		}
	}
}

// FuzzSelectionEntry checks that an accepted selection is exactly what the
// entry said.
func FuzzSelectionEntry(f *testing.F) {
	for _, s := range []string{"tag:env=prod", "tag:a=b=c", "prefix:app/", "tag:=", "prefix:", "tag:k=v|x", "tag:k:=v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		c, err := FromEnv(env(map[string]string{EnvSessionToken: testToken, EnvSecrets: entry}))
		if err != nil {
			return
		}
		for _, sel := range c.Selections {
			var back string
			switch {
			case sel.Prefix != "" && sel.TagKey == "" && sel.TagValue == "":
				back = "prefix:" + sel.Prefix
			case sel.Prefix == "" && sel.TagKey != "" && sel.TagValue != "" && !strings.Contains(sel.TagKey, "="):
				back = "tag:" + sel.TagKey + "=" + sel.TagValue
			default:
				t.Fatalf("%q gave %+v", entry, sel)
			}
			if !strings.Contains(entry, back) || strings.Contains(back, "|") || strings.Contains(back, ",") {
				t.Fatalf("%q gave %+v", entry, sel)
			}
		}
		for _, s := range c.Secrets {
			if strings.HasPrefix(s, "tag:") || strings.HasPrefix(s, "prefix:") {
				t.Fatalf("%q kept %q as a name", entry, s)
			}
		}
	})
}

func TestSnapshotSetting(t *testing.T) {
	for _, tc := range []struct {
		initType, v      string
		snapStart, exclu bool
		bad              bool
	}{
		{"", "", false, false, false},
		{"on-demand", "exclude", false, false, false}, // no snapshot: no effect
		{"snap-start", "", true, true, false},         // the default under SnapStart
		{"snap-start", "EXCLUDE", true, true, false},
		{"snap-start", "include", true, false, false},
		{"snap-start", "yes", false, false, true},
	} {
		c, err := FromEnv(env(map[string]string{EnvSessionToken: testToken, EnvInitType: tc.initType, EnvSnapshot: tc.v}))
		if tc.bad {
			if ves := VarErrors(err); len(ves) != 1 || ves[0].Name != EnvSnapshot {
				t.Errorf("%s/%q: %v, want an error naming %s", tc.initType, tc.v, err, EnvSnapshot)
			}
			continue
		}
		if err != nil || c.SnapStart != tc.snapStart || c.SnapshotExclude != tc.exclu {
			t.Errorf("%s/%q: SnapStart %v exclude %v (%v); want %v %v", tc.initType, tc.v, c.SnapStart, c.SnapshotExclude, err, tc.snapStart, tc.exclu)
		}
	}
}
