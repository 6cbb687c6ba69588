package awstest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// TestParameterFields checks that a plain name's answer carries every field
// real SSM sends, as the SDK decodes them.
func TestParameterFields(t *testing.T) {
	a, _, ps := start(t)
	ctx := t.Context()
	before := time.Now().Add(-time.Second)
	for _, typ := range []string{"String", "StringList", "SecureString"} {
		t.Run(typ, func(t *testing.T) {
			name := "/fields/" + typ
			try(a.PutParameter(ctx, name, "a,b", typ)).must(t)
			if v := try(a.PutParameter(ctx, name, "c,d", typ)).must(t); v != 2 {
				t.Fatalf("second PutParameter version = %d, want 2", v)
			}
			p := try(getParameter(t, ps, name, true)).must(t)
			if aws.ToString(p.Name) != name || string(p.Type) != typ || aws.ToString(p.Value) != "c,d" || p.Version != 2 ||
				aws.ToString(p.ARN) != "arn:aws:ssm:us-east-1:000000000000:parameter/fields/"+typ ||
				aws.ToString(p.DataType) != "text" || p.Selector != nil || p.SourceResult != nil {
				t.Errorf("parameter = %+v", describe(p))
			}
			if p.LastModifiedDate == nil || p.LastModifiedDate.Before(before) {
				t.Errorf("LastModifiedDate = %v, want after %v", p.LastModifiedDate, before)
			}
		})
	}
}

// TestSecureStringCiphertext checks that every read without WithDecryption
// gets the ciphertext, and that it is KMS-like base64 hiding the value.
func TestSecureStringCiphertext(t *testing.T) {
	a, _, ps := start(t)
	ctx := t.Context()
	try(a.PutParameter(ctx, "/sec/pw", "hunter2", "SecureString")).must(t)
	try(a.PutParameter(ctx, "/sec/plain", "open", "String")).must(t)
	want := Ciphertext("hunter2")
	if !strings.HasPrefix(want, "AQICAH") {
		t.Errorf("Ciphertext = %q, want KMS-like base64 (AQICAH...)", want)
	}
	if raw, err := base64.StdEncoding.DecodeString(want); err != nil || !strings.HasSuffix(string(raw), "hunter2") {
		t.Errorf("Ciphertext does not decode to the plaintext: %v", err)
	}

	for _, decrypt := range []bool{false, true} {
		wantPW := map[bool]string{false: want, true: "hunter2"}[decrypt]
		t.Run(fmt.Sprint("WithDecryption=", decrypt), func(t *testing.T) {
			p := try(getParameter(t, ps, "/sec/pw", decrypt)).must(t)
			if got := aws.ToString(p.Value); got != wantPW {
				t.Errorf("GetParameter = %q, want %q", got, wantPW)
			}
			p = try(getParameter(t, ps, "/sec/pw:1", decrypt)).must(t)
			if got := aws.ToString(p.Value); got != wantPW {
				t.Errorf("GetParameter :1 = %q, want %q", got, wantPW)
			}
			many := try(ps.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/sec/pw", "/sec/plain"}, WithDecryption: &decrypt})).must(t)
			byPath := try(ps.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("/sec"), WithDecryption: &decrypt})).must(t)
			for what, list := range map[string][]ssmtypes.Parameter{"GetParameters": many.Parameters, "GetParametersByPath": byPath.Parameters} {
				got := map[string]string{}
				for _, p := range list {
					got[aws.ToString(p.Name)] = aws.ToString(p.Value)
				}
				if got["/sec/pw"] != wantPW || got["/sec/plain"] != "open" {
					t.Errorf("%s = %v, want /sec/pw %q and /sec/plain open", what, got, wantPW)
				}
			}
		})
	}
}

func TestSelectorsAndLabels(t *testing.T) {
	a, _, ps := start(t)
	ctx := t.Context()
	for _, v := range []string{"v1", "v2", "v3"} {
		try(a.PutParameter(ctx, "/sel/p", v, "String")).must(t)
	}
	if err := a.LabelParameterVersion(ctx, "/sel/p", 1, "Dev", "Stage"); err != nil {
		t.Fatal(err)
	}
	if err := a.LabelParameterVersion(ctx, "/sel/p", 2, "Prod"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name         string
		wantValue    string
		wantVersion  int64
		wantSelector string
		wantCode     string
	}{
		{name: "/sel/p", wantValue: "v3", wantVersion: 3},
		{name: "/sel/p:1", wantValue: "v1", wantVersion: 1, wantSelector: ":1"},
		{name: "/sel/p:3", wantValue: "v3", wantVersion: 3, wantSelector: ":3"},
		{name: "/sel/p:Dev", wantValue: "v1", wantVersion: 1, wantSelector: ":Dev"},
		{name: "/sel/p:Prod", wantValue: "v2", wantVersion: 2, wantSelector: ":Prod"},
		{name: "/sel/p:9", wantCode: CodeVersionNotFound},
		{name: "/sel/p:0", wantCode: CodeVersionNotFound},
		{name: "/sel/p:Nope", wantCode: CodeParameterNotFound},
		{name: "/sel/p:1:2", wantCode: CodeParameterNotFound},
		{name: "/sel/missing:1", wantCode: CodeParameterNotFound},
		{name: "/sel/missing", wantCode: CodeParameterNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := getParameter(t, ps, tt.name, true)
			if tt.wantCode != "" {
				wantAPIError(t, err, tt.wantCode, http.StatusBadRequest)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(p.Name) != "/sel/p" || aws.ToString(p.Value) != tt.wantValue || p.Version != tt.wantVersion ||
				aws.ToString(p.Selector) != tt.wantSelector || aws.ToString(p.ARN) == "" || p.LastModifiedDate == nil {
				t.Errorf("got %+v, want value %q version %d selector %q", describe(p), tt.wantValue, tt.wantVersion, tt.wantSelector)
			}
		})
	}

	t.Run("label moves", func(t *testing.T) {
		out := try(ps.LabelParameterVersion(ctx, &ssm.LabelParameterVersionInput{Name: aws.String("/sel/p"), Labels: []string{"Dev"}})).must(t)
		if out.ParameterVersion != 3 || len(out.InvalidLabels) != 0 {
			t.Fatalf("LabelParameterVersion = version %d invalid %v, want 3 and none", out.ParameterVersion, out.InvalidLabels)
		}
		if p := try(getParameter(t, ps, "/sel/p:Dev", true)).must(t); p.Version != 3 {
			t.Errorf("Dev is on version %d, want 3", p.Version)
		}
		if p := try(getParameter(t, ps, "/sel/p:Stage", true)).must(t); p.Version != 1 {
			t.Errorf("Stage is on version %d, want 1 still", p.Version)
		}
	})
	t.Run("invalid labels", func(t *testing.T) {
		out := try(ps.LabelParameterVersion(ctx, &ssm.LabelParameterVersionInput{
			Name: aws.String("/sel/p"), ParameterVersion: aws.Int64(2), Labels: []string{"ok-1", "1st", "awsX", "SSMy", "a/b"},
		})).must(t)
		if !slices.Equal(out.InvalidLabels, []string{"1st", "awsX", "SSMy", "a/b"}) {
			t.Errorf("InvalidLabels = %v", out.InvalidLabels)
		}
	})
	t.Run("unknown version", func(t *testing.T) {
		_, err := ps.LabelParameterVersion(ctx, &ssm.LabelParameterVersionInput{Name: aws.String("/sel/p"), ParameterVersion: aws.Int64(9), Labels: []string{"x"}})
		wantAPIError(t, err, CodeVersionNotFound, http.StatusBadRequest)
	})
	t.Run("too many labels", func(t *testing.T) {
		var labels []string
		for i := range 10 {
			labels = append(labels, fmt.Sprint("l", i))
		}
		_, err := ps.LabelParameterVersion(ctx, &ssm.LabelParameterVersionInput{Name: aws.String("/sel/p"), ParameterVersion: aws.Int64(1), Labels: labels})
		wantAPIError(t, err, CodeLabelLimitExceeded, http.StatusBadRequest)
	})
	t.Run("delete forgets versions", func(t *testing.T) {
		try(a.PutParameter(ctx, "/sel/gone", "x", "String")).must(t)
		try(a.PutParameter(ctx, "/sel/gone", "y", "String")).must(t)
		if err := a.DeleteParameter(ctx, "/sel/gone"); err != nil {
			t.Fatal(err)
		}
		if v := try(a.PutParameter(ctx, "/sel/gone", "z", "String")).must(t); v != 1 {
			t.Errorf("version after delete = %d, want 1", v)
		}
		_, err := getParameter(t, ps, "/sel/gone:2", true)
		wantAPIError(t, err, CodeVersionNotFound, 0)
	})
}

func TestGetParameters(t *testing.T) {
	a, _, ps := start(t)
	ctx := t.Context()
	try(a.PutParameter(ctx, "/gp/a", "a1", "String")).must(t)
	try(a.PutParameter(ctx, "/gp/a", "a2", "String")).must(t)
	try(a.PutParameter(ctx, "plain", "p1", "String")).must(t)
	if err := a.LabelParameterVersion(ctx, "/gp/a", 1, "Old"); err != nil {
		t.Fatal(err)
	}
	try(a.PutSecretString(ctx, "sec", "s1")).must(t)
	ref := "/aws/reference/secretsmanager/sec"

	names := []string{"/gp/a:Old", "/gp/missing", "/gp/a", ref, "/gp/a:7", "plain", ref + "-missing", "/gp/a:Nope"}
	out := try(ps.GetParameters(ctx, &ssm.GetParametersInput{Names: names, WithDecryption: aws.Bool(true)})).must(t)
	var got []string
	for _, p := range out.Parameters {
		got = append(got, fmt.Sprintf("%s%s=%s", aws.ToString(p.Name), aws.ToString(p.Selector), aws.ToString(p.Value)))
	}
	want := []string{"/gp/a:Old=a1", "/gp/a=a2", ref + "=s1", "plain=p1"}
	if !slices.Equal(got, want) {
		t.Errorf("Parameters = %v, want %v", got, want)
	}
	wantInvalid := []string{"/gp/missing", "/gp/a:7", ref + "-missing", "/gp/a:Nope"}
	if !slices.Equal(out.InvalidParameters, wantInvalid) {
		t.Errorf("InvalidParameters = %v, want %v", out.InvalidParameters, wantInvalid)
	}

	// A reference without WithDecryption is an invalid name here, not an error.
	out = try(ps.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{ref, "plain"}})).must(t)
	if len(out.Parameters) != 1 || !slices.Equal(out.InvalidParameters, []string{ref}) {
		t.Errorf("without decryption: %d parameters, invalid %v; want 1 and [%s]", len(out.Parameters), out.InvalidParameters, ref)
	}

	var eleven []string
	for i := range 11 {
		eleven = append(eleven, fmt.Sprint("/gp/n", i))
	}
	_, err := ps.GetParameters(ctx, &ssm.GetParametersInput{Names: eleven})
	wantAPIError(t, err, CodeValidation, http.StatusBadRequest)
}

func TestSecretsManagerReference(t *testing.T) {
	a, _, ps := start(t)
	ctx := t.Context()
	arn := try(a.PutSecretString(ctx, "ref/text", "first")).must(t)
	current := try(a.UpdateSecret(ctx, "ref/text", "second")).must(t)
	binARN := try(a.PutSecretBinary(ctx, "ref/bin", []byte("bytes"))).must(t)
	const prefix = "/aws/reference/secretsmanager/"

	p := try(getParameter(t, ps, prefix+"ref/text", true)).must(t)
	if aws.ToString(p.Name) != prefix+"ref/text" || p.Type != ssmtypes.ParameterTypeSecureString || aws.ToString(p.Value) != "second" ||
		p.Version != 0 || aws.ToString(p.ARN) != arn || p.DataType != nil || p.Selector != nil || p.LastModifiedDate == nil {
		t.Errorf("reference = %+v", describe(p))
	}
	var src struct {
		ARN           string
		Name          string `json:"name"`
		VersionID     string `json:"versionId"`
		SecretString  string `json:"secretString"`
		VersionStages []string
		CreatedDate   string `json:"createdDate"`
	}
	if err := json.Unmarshal([]byte(aws.ToString(p.SourceResult)), &src); err != nil {
		t.Fatalf("SourceResult %q: %v", aws.ToString(p.SourceResult), err)
	}
	if src.ARN != arn || src.Name != "ref/text" || src.VersionID != current || src.SecretString != "second" ||
		!slices.Equal(src.VersionStages, []string{"AWSCURRENT"}) {
		t.Errorf("SourceResult = %+v", src)
	}
	if _, err := time.Parse("Jan 2, 2006, 3:04:05 PM", src.CreatedDate); err != nil {
		t.Errorf("SourceResult createdDate %q: %v", src.CreatedDate, err)
	}

	tests := []struct {
		name, wantValue, wantSelector, wantCode string
		withDecryption                          bool
	}{
		{name: "ref/text:AWSPREVIOUS", wantValue: "first", wantSelector: ":AWSPREVIOUS", withDecryption: true},
		{name: "ref/text:" + current, wantValue: "second", wantSelector: ":" + current, withDecryption: true},
		{name: "ref/text", wantCode: CodeValidation},
		{name: "ref/missing", wantCode: CodeParameterNotFound, withDecryption: true},
		{name: "ref/text:NOSUCHSTAGE", wantCode: CodeParameterNotFound, withDecryption: true},
		{name: "ref/text:a:b", wantCode: CodeValidation, withDecryption: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := getParameter(t, ps, prefix+tt.name, tt.withDecryption)
			if tt.wantCode != "" {
				wantAPIError(t, err, tt.wantCode, http.StatusBadRequest)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(p.Value) != tt.wantValue || aws.ToString(p.Selector) != tt.wantSelector {
				t.Errorf("got value %q selector %q, want %q %q", aws.ToString(p.Value), aws.ToString(p.Selector), tt.wantValue, tt.wantSelector)
			}
		})
	}

	t.Run("binary", func(t *testing.T) {
		p := try(getParameter(t, ps, prefix+"ref/bin", true)).must(t)
		if p.Value != nil || aws.ToString(p.ARN) != binARN {
			t.Errorf("binary reference Value = %v ARN %q, want no value and %q", p.Value, aws.ToString(p.ARN), binARN)
		}
		var src struct {
			SecretBinary struct{ HB []byte } `json:"secretBinary"`
		}
		if err := json.Unmarshal([]byte(aws.ToString(p.SourceResult)), &src); err != nil || string(src.SecretBinary.HB) != "bytes" {
			t.Errorf("SourceResult %q: hb %v, %v", aws.ToString(p.SourceResult), src.SecretBinary.HB, err)
		}
	})
}

func TestGetParametersByPathPaging(t *testing.T) {
	a, _, ps := start(t)
	ctx := t.Context()
	for i := range 23 {
		try(a.PutParameter(ctx, fmt.Sprintf("/page/p%02d", i), fmt.Sprint(i), "String")).must(t)
	}
	for i := range 4 {
		try(a.PutParameter(ctx, fmt.Sprintf("/page/deep/q%d", i), fmt.Sprint(i), "String")).must(t)
	}
	try(a.PutParameter(ctx, "/pages", "not under /page", "String")).must(t)

	tests := []struct {
		recursive bool
		want      int
		pages     int
	}{
		{recursive: false, want: 23, pages: 3},
		{recursive: true, want: 27, pages: 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("recursive=", tt.recursive), func(t *testing.T) {
			a.ResetCalls()
			seen := map[string]bool{}
			pages := ssm.NewGetParametersByPathPaginator(ps, &ssm.GetParametersByPathInput{
				Path: aws.String("/page"), Recursive: aws.Bool(tt.recursive), MaxResults: aws.Int32(10),
			})
			n := 0
			for pages.HasMorePages() {
				out := try(pages.NextPage(ctx)).must(t)
				n++
				if len(out.Parameters) > 10 {
					t.Errorf("page %d has %d parameters, want at most 10", n, len(out.Parameters))
				}
				for _, p := range out.Parameters {
					name := aws.ToString(p.Name)
					if seen[name] {
						t.Errorf("%s seen twice", name)
					}
					seen[name] = true
				}
			}
			if len(seen) != tt.want || n != tt.pages || a.Calls(OpGetParametersByPath) != tt.pages {
				t.Errorf("got %d parameters in %d pages (%d calls), want %d in %d", len(seen), n, a.Calls(OpGetParametersByPath), tt.want, tt.pages)
			}
		})
	}

	_, err := ps.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("/page"), MaxResults: aws.Int32(11)})
	wantAPIError(t, err, CodeValidation, http.StatusBadRequest)
}

func TestReservedParameterNames(t *testing.T) {
	a, _, _ := start(t)
	for _, name := range []string{"/aws/reference/secretsmanager/x", "ssm-x", "/a:b"} {
		_, err := a.PutParameter(t.Context(), name, "v", "String")
		wantAPIError(t, err, CodeValidation, http.StatusBadRequest)
	}
}

// describe renders a parameter for a failure message.
func describe(p *ssmtypes.Parameter) string {
	return fmt.Sprintf("{Name:%q Type:%s Value:%q Version:%d ARN:%q DataType:%q Selector:%q LastModified:%v SourceResult:%q}",
		aws.ToString(p.Name), p.Type, aws.ToString(p.Value), p.Version, aws.ToString(p.ARN), aws.ToString(p.DataType),
		aws.ToString(p.Selector), p.LastModifiedDate, aws.ToString(p.SourceResult))
}
