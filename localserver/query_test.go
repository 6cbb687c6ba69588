package localserver

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// parseQuery keeps up to 8 parameters in an array and the rest in a map:
// lookups and the duplicate check must work the same on both sides.
func TestParseQueryManyParameters(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var parts []string
			for i := range n {
				parts = append(parts, fmt.Sprintf("p%d=v%d", i, i))
			}
			raw := strings.Join(parts, "&")
			q, err := parseQuery(raw)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if v, ok := q.get(fmt.Sprintf("p%d", i)); !ok || v != fmt.Sprintf("v%d", i) {
					t.Errorf("p%d = %q, %t", i, v, ok)
				}
			}
			if v, ok := q.get("missing"); ok || v != "" {
				t.Errorf("missing = %q, %t", v, ok)
			}
			for i := range n {
				_, err := parseQuery(raw + fmt.Sprintf("&p%d=again", i))
				var rerr *requestError
				if !errors.As(err, &rerr) || rerr.code != "DuplicateParameter" {
					t.Errorf("p%d given twice: %v", i, err)
				}
			}
		})
	}
}

func TestSecretRequestAmongManyParameters(t *testing.T) {
	raw := "a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&secretId=db&jsonKey=user"
	r, err := parseSecretRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if r.key.ID != "db" || !r.hasJSONKey || r.jsonKey != "user" {
		t.Errorf("request %+v", r)
	}
}

func TestRoleARNParameter(t *testing.T) {
	const role = "arn:aws:iam::123456789012:role/team/reader"
	for _, tc := range []struct {
		parse func(string) (request, error)
		raw   string
	}{
		{parseSecretRequest, "secretId=db&roleArn=" + role},
		{parseParameterRequest, "name=/app/p&withDecryption=true&roleArn=" + role},
		{parseSecretRequest, "roleArn=" + role + "&secretId=db&jsonKey=user"},
		{func(q string) (request, error) { return parsePathRequest("db", q) }, "roleArn=" + role}, // GET /v1/db?roleArn=
	} {
		r, err := tc.parse(tc.raw)
		if err != nil || r.key.Role != role {
			t.Errorf("%s: role %q, error %v; want %s", tc.raw, r.key.Role, err, role)
		}
	}
	for _, raw := range []string{"secretId=db&roleArn=", "secretId=db&roleArn=arn:aws:iam::123456789012:user/bob", "secretId=db&roleArn=reader"} {
		_, err := parseSecretRequest(raw)
		var rerr *requestError
		if !errors.As(err, &rerr) || rerr.code != "InvalidParameterValue" || !strings.Contains(rerr.msg, "roleArn") {
			t.Errorf("%s: %v, want InvalidParameterValue naming roleArn", raw, err)
		}
	}
	if r, err := parseSecretRequest("secretId=db"); err != nil || r.key.Role != "" {
		t.Errorf("no roleArn: role %q, %v", r.key.Role, err)
	}
}
