package source

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// compatFile holds responses recorded from AWS's extension; see testdata/README.md.
const compatFile = "testdata/aws-extension-recorded-responses.json"

// recorded is one entry of compatFile, in file order.
type recorded struct {
	path     string
	response json.RawMessage // the recorded bytes, key order as recorded
}

// loadRecorded walks compatFile's top-level object with a json.Decoder, so
// the entries keep file order and every response keeps its recorded bytes
// (and with them its key order: nothing passes through a map).
func loadRecorded(t *testing.T) []recorded {
	t.Helper()
	data, err := os.ReadFile(compatFile)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: want a JSON object, got %v, %v", compatFile, tok, err)
	}
	var out []recorded
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Response json.RawMessage `json:"response"`
		}
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("%s: %v", tok, err)
		}
		out = append(out, recorded{path: tok.(string), response: e.Response})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		t.Fatalf("%s: want the end of the object, got %v, %v", compatFile, tok, err)
	}
	return out
}

// compact removes the recorded response's insignificant whitespace, leaving
// its bytes (key order, escapes) as recorded.
func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func parseISO(t *testing.T, s *string) *time.Time {
	t.Helper()
	if s == nil {
		return nil
	}
	tm, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		t.Fatal(err)
	}
	return &tm
}

// keyFor builds the Key the HTTP API derives from a recorded request path.
func keyFor(t *testing.T, path string) Key {
	t.Helper()
	u, err := url.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	switch u.Path {
	case "/secretsmanager/get":
		k := Key{Service: SecretsManager, ID: q.Get("secretId"), VersionID: q.Get("versionId"), VersionStage: q.Get("versionStage")}
		if k.VersionStage == "AWSCURRENT" {
			k.VersionStage = ""
		}
		return k
	case "/systemsmanager/parameters/get":
		k := Key{Service: ParameterStore, ID: q.Get("name"), Decrypt: q.Get("withDecryption") == "true"}
		if v := q.Get("version") + q.Get("label"); v != "" {
			k.Selector = ":" + v
		}
		return k
	}
	t.Fatalf("unknown path %q", path)
	return Key{}
}

// TestCompatGolden renders every success response recorded from AWS's
// extension from the SDK value AWS would have returned, and wants the same
// bytes: field order, nulls, millisecond UTC times, Selector, the
// /aws/reference/secretsmanager/ form, base64 SecretBinary, ResultMetadata.
func TestCompatGolden(t *testing.T) {
	// Features the recorded file must exercise, so a truncated copy fails.
	seen := map[string]bool{}
	want := []string{"secret string", "secret binary", "parameter", "selector", "reference form", "null value", "SecureString"}
	n := 0
	for _, rec := range loadRecorded(t) {
		var probe struct {
			Error     json.RawMessage
			Parameter json.RawMessage
		}
		if err := json.Unmarshal(rec.response, &probe); err != nil {
			t.Fatalf("%s: %v", rec.path, err)
		}
		if probe.Error != nil {
			continue // AWS's extension answers every failure alike; ours differ on purpose
		}
		n++
		t.Run(rec.path, func(t *testing.T) {
			want := compact(t, rec.response)
			key := keyFor(t, rec.path)
			var (
				it       *Item
				text     *string
				name     *string
				arn      *string
				isSecure bool
			)
			if probe.Parameter == nil {
				var r struct {
					ARN, Name, VersionId, SecretString, SecretBinary, CreatedDate *string
					VersionStages                                                 []string
				}
				if err := json.Unmarshal(rec.response, &r); err != nil {
					t.Fatal(err)
				}
				out := &secretsmanager.GetSecretValueOutput{
					ARN:           r.ARN,
					CreatedDate:   parseISO(t, r.CreatedDate),
					Name:          r.Name,
					SecretString:  r.SecretString,
					VersionId:     r.VersionId,
					VersionStages: r.VersionStages,
				}
				if r.SecretBinary != nil {
					b, err := base64.StdEncoding.DecodeString(*r.SecretBinary)
					if err != nil {
						t.Fatal(err)
					}
					out.SecretBinary = b
					seen["secret binary"] = true
				} else {
					seen["secret string"] = true
				}
				// As getSecret renders a GetSecretValue answer...
				it = secretItem(key, out.ARN, out.Name, out.VersionId, out.CreatedDate, out.SecretString, out.SecretBinary, out.VersionStages)
				// ...and fetchSecretBatch a BatchGetSecretValue entry.
				entry := secretEntryItem(key, &smtypes.SecretValueEntry{
					ARN: out.ARN, CreatedDate: out.CreatedDate, Name: out.Name, SecretBinary: out.SecretBinary,
					SecretString: out.SecretString, VersionId: out.VersionId, VersionStages: out.VersionStages,
				})
				if got := string(entry.Body); got != want {
					t.Errorf("batch entry body:\n got %s\nwant %s", got, want)
				}
				text, name, arn = out.SecretString, out.Name, out.ARN
			} else {
				seen["parameter"] = true
				var r struct {
					Parameter struct {
						ARN, DataType, LastModifiedDate, Name, Selector, SourceResult, Type, Value *string
						Version                                                                    int64
					}
				}
				if err := json.Unmarshal(rec.response, &r); err != nil {
					t.Fatal(err)
				}
				rp := r.Parameter
				p := &ssmtypes.Parameter{
					ARN:              rp.ARN,
					DataType:         rp.DataType,
					LastModifiedDate: parseISO(t, rp.LastModifiedDate),
					Name:             rp.Name,
					Selector:         rp.Selector,
					SourceResult:     rp.SourceResult,
					Type:             ssmtypes.ParameterType(aws.ToString(rp.Type)),
					Value:            rp.Value,
					Version:          rp.Version,
				}
				if p.Selector != nil {
					seen["selector"] = true
				}
				if strings.HasPrefix(aws.ToString(p.Name), SecretsManagerReferencePrefix) {
					seen["reference form"] = true
				}
				if p.Value == nil {
					seen["null value"] = true
				}
				isSecure = p.Type == ssmtypes.ParameterTypeSecureString
				if isSecure {
					seen["SecureString"] = true
				}
				it = parameterItem(key, p)
				text, name, arn = p.Value, p.Name, p.ARN
			}

			if got := string(it.Body); got != want {
				t.Errorf("body:\n got %s\nwant %s", got, want)
			}
			if it.Key != key {
				t.Errorf("Key = %+v, want %+v", it.Key, key)
			}
			if it.Text != nil {
				t.Errorf("Text = %q, want nil: the value's one copy is in Body", it.Text)
			}
			got, ok := it.StringValue()
			switch {
			case text == nil && ok:
				t.Errorf("StringValue = %q, want none", got)
			case text != nil && (!ok || string(got) != *text):
				t.Errorf("StringValue = %q, %v; want %q", got, ok, *text)
			}
			if it.Name != aws.ToString(name) || it.ARN != aws.ToString(arn) {
				t.Errorf("Name, ARN = %q, %q; want %q, %q", it.Name, it.ARN, aws.ToString(name), aws.ToString(arn))
			}
			if it.Secure != isSecure {
				t.Errorf("Secure = %v, want %v", it.Secure, isSecure)
			}
		})
	}
	if n < 14 {
		t.Errorf("%d success responses in %s, want at least 14", n, compatFile)
	}
	for _, f := range want {
		if !seen[f] {
			t.Errorf("%s has no success response with %s", compatFile, f)
		}
	}
}

func TestRenderEdgeCases(t *testing.T) {
	plus1 := time.FixedZone("UTC+1", 3600)
	// Nanoseconds are cut to milliseconds, as AWS stores them.
	created := time.Date(2022, 11, 16, 9, 22, 40, 362999999, plus1)
	tests := []struct {
		name string
		item *Item
		want string
	}{
		{
			name: "secret with nothing set",
			item: secretItem(SecretKey("s"), nil, nil, nil, nil, nil, nil, nil),
			want: `{"ARN":null,"CreatedDate":null,"Name":null,"SecretBinary":null,"SecretString":null,"VersionId":null,"VersionStages":null,"ResultMetadata":{}}`,
		},
		{
			name: "parameter with nothing set",
			item: parameterItem(ParameterKey("p"), &ssmtypes.Parameter{}),
			want: `{"Parameter":{"ARN":null,"DataType":null,"LastModifiedDate":null,"Name":null,"Selector":null,"SourceResult":null,"Type":null,"Value":null,"Version":0},"ResultMetadata":{}}`,
		},
		{
			name: "time in another zone, nanoseconds",
			item: secretItem(SecretKey("s"), nil, aws.String("s"), nil, &created, aws.String(""), nil, []string{"AWSCURRENT", "custom"}),
			want: `{"ARN":null,"CreatedDate":"2022-11-16T08:22:40.362Z","Name":"s","SecretBinary":null,"SecretString":"","VersionId":null,"VersionStages":["AWSCURRENT","custom"],"ResultMetadata":{}}`,
		},
		{
			name: "no HTML escaping",
			item: secretItem(SecretKey("s"), nil, nil, nil, nil, aws.String(`<a href="x">&amp;</a>\`), nil, nil),
			want: `{"ARN":null,"CreatedDate":null,"Name":null,"SecretBinary":null,"SecretString":"<a href=\"x\">&amp;</a>\\","VersionId":null,"VersionStages":null,"ResultMetadata":{}}`,
		},
		{
			name: "empty binary",
			item: secretItem(SecretKey("s"), nil, nil, nil, nil, nil, []byte{}, nil),
			want: `{"ARN":null,"CreatedDate":null,"Name":null,"SecretBinary":"","SecretString":null,"VersionId":null,"VersionStages":null,"ResultMetadata":{}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.item.Body); got != tt.want {
				t.Errorf("body:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestItemText(t *testing.T) {
	bin := secretItem(SecretKey("b"), nil, nil, nil, nil, nil, []byte("raw"), nil)
	if v, ok := bin.StringValue(); ok {
		t.Errorf("binary secret: StringValue = %q, want none", v)
	}
	empty := secretItem(SecretKey("e"), nil, nil, nil, nil, aws.String(""), nil, nil)
	if v, ok := empty.StringValue(); !ok || len(v) != 0 {
		t.Errorf("empty SecretString: StringValue = %#v, %v; want empty and present (a string, not binary)", v, ok)
	}
	// A value that needed no escaping is read in place; one that did is
	// decoded, exactly.
	for _, v := range []string{"plain", `{"user":"u","p":"\\ \" \u00e9 é 😀 <&>"}`, "line\nbreak\ttab", "\u2028\u2029 \x00"} {
		it := secretItem(SecretKey("s"), nil, aws.String(`"SecretString":"x`), nil, nil, aws.String(v), nil, nil)
		got, ok := it.StringValue()
		if !ok || string(got) != v {
			t.Errorf("StringValue = %q, %v; want %q", got, ok, v)
		}
		p := parameterItem(ParameterKey("p"), &ssmtypes.Parameter{Name: aws.String(`"Value":"x`), Value: aws.String(v)})
		if got, ok := p.StringValue(); !ok || string(got) != v {
			t.Errorf("parameter StringValue = %q, %v; want %q", got, ok, v)
		}
	}
	for typ, secure := range map[ssmtypes.ParameterType]bool{
		ssmtypes.ParameterTypeString:       false,
		ssmtypes.ParameterTypeStringList:   false,
		ssmtypes.ParameterTypeSecureString: true,
	} {
		it := parameterItem(ParameterKey("p"), &ssmtypes.Parameter{Type: typ, Value: aws.String("v")})
		if it.Secure != secure {
			t.Errorf("%s: Secure = %v, want %v", typ, it.Secure, secure)
		}
		if v, _ := it.StringValue(); string(v) != "v" {
			t.Errorf("%s: StringValue = %q, want %q", typ, v, "v")
		}
	}
}

func TestItemWipe(t *testing.T) {
	const value = "s3cr3t-value"
	str := value
	it := secretItem(SecretKey("s"), aws.String("arn"), aws.String("s"), nil, nil, &str, nil, nil)
	p := parameterItem(ParameterKey("p"), &ssmtypes.Parameter{Type: ssmtypes.ParameterTypeSecureString, Value: aws.String(value)})
	bin := secretItem(SecretKey("b"), nil, nil, nil, nil, nil, []byte(value), nil)
	for _, it := range []*Item{it, p, bin} {
		// Body is the one copy of the value: Wipe reaches it, and with it
		// the value StringValue reads in place.
		text, _ := it.StringValue()
		bodyLen := len(it.Body)
		it.Wipe()
		if len(it.Body) != bodyLen {
			t.Errorf("%s: Wipe changed the length", it.Key)
		}
		if bytes.ContainsFunc(it.Body, func(r rune) bool { return r != 0 }) || bytes.ContainsFunc(text, func(r rune) bool { return r != 0 }) {
			t.Errorf("%s: after Wipe Body = %q, value = %q; want all zero bytes", it.Key, it.Body, text)
		}
		if v, ok := it.StringValue(); ok && bytes.ContainsFunc(v, func(r rune) bool { return r != 0 }) {
			t.Errorf("%s: after Wipe StringValue = %q", it.Key, v)
		}
	}
	if str != value {
		t.Errorf("Wipe changed the caller's string")
	}
	var zero Item
	zero.Wipe() // no material: must not panic
}

// A body takes no more memory than its bytes: the cache holds a thousand
// of them, and the encoder's buffer grows by doubling.
func TestItemBodyExact(t *testing.T) {
	for _, n := range []int{0, 100, 4096, 5000, 65536} {
		v := strings.Repeat("v", n)
		for _, it := range []*Item{
			secretItem(SecretKey("s"), aws.String("arn"), aws.String("s"), nil, nil, &v, nil, nil),
			parameterItem(ParameterKey("p"), &ssmtypes.Parameter{Value: &v}),
		} {
			if cap(it.Body) != len(it.Body) {
				t.Errorf("%s with a %d-byte value: body of %d bytes in %d", it.Key, n, len(it.Body), cap(it.Body))
			}
		}
	}
}
