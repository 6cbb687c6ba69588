package source

import (
	"bytes"
	"encoding/json"
	"time"

	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// Item is one fetched secret or parameter, pre-rendered for the HTTP API.
//
// Body is the response body AWS's Parameters and Secrets extension returns for
// the item (its GetSecretValue or GetParameter JSON), rendered once here so a
// cached read costs no encoding. It is the only copy of the value an item
// from the Source keeps: StringValue reads the value out of it when asked
// (jsonKey, the zero-code modes). Body is a byte slice so Wipe can overwrite
// it.
type Item struct {
	Key  Key
	Body []byte
	// Text, when set, is the string value (SecretString or the parameter's
	// Value) held apart from Body. Items from the Source leave it nil (one
	// copy of each value); items made by hand (fakes, tests) may set it.
	Text []byte

	Name string // the name AWS reports; may differ from Key.ID (an ARN, say)
	ARN  string
	// Secure marks a SecureString parameter, whose value differs with and
	// without decryption.
	Secure bool
	// Region is the failover region when a replica there answered for the
	// home region; "" otherwise.
	Region string
}

// Wipe overwrites the item's secret material. Copies made elsewhere (by the
// AWS SDK while decoding, say) are beyond its reach.
func (it *Item) Wipe() {
	clear(it.Body)
	clear(it.Text)
}

// StringValue returns the item's string value (SecretString, or the
// parameter's Value) and true, or false when it has none (a binary secret).
// When the value needed no escaping in Body the result is a sub-slice of
// Body, else a copy decoded from it; either way it must not be modified.
func (it *Item) StringValue() ([]byte, bool) {
	if it.Text != nil {
		return it.Text, true
	}
	field := secretStringField
	if it.Key.Service == ParameterStore {
		field = parameterValueField
	}
	// In the JSON of Body a key's quotes are bare, and every quote inside a
	// string is escaped, so the field's key can't be matched inside a value.
	i := bytes.Index(it.Body, field)
	if i < 0 {
		return nil, false // "SecretString":null, or not a body of ours
	}
	start := i + len(field) // just past the opening quote
	escaped := false
	for j := start; j < len(it.Body); j++ {
		switch it.Body[j] {
		case '\\':
			escaped = true
			j++ // the escaped character can't end the string
		case '"':
			if !escaped {
				return it.Body[start:j:j], true
			}
			var s string
			if err := json.Unmarshal(it.Body[start-1:j+1], &s); err != nil {
				return nil, false
			}
			return []byte(s), true
		}
	}
	return nil, false
}

// The keys StringValue looks for, each with its value's opening quote.
var (
	secretStringField   = []byte(`"SecretString":"`)
	parameterValueField = []byte(`"Value":"`)
)

// isoMillis is the time format AWS's extension uses: UTC, milliseconds, "Z".
const isoMillis = "2006-01-02T15:04:05.000Z"

type isoTime time.Time

func (t isoTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format(isoMillis) + `"`), nil
}

func isoTimePtr(t *time.Time) *isoTime {
	if t == nil {
		return nil
	}
	v := isoTime(*t)
	return &v
}

// emptyObject renders as {} (AWS's extension always sends an empty ResultMetadata).
type emptyObject struct{}

// The field order and null handling below match the bodies recorded from AWS's
// extension (shared/compat): every field present, absent ones as null.
type secretBody struct {
	ARN            *string     `json:"ARN"`
	CreatedDate    *isoTime    `json:"CreatedDate"`
	Name           *string     `json:"Name"`
	SecretBinary   []byte      `json:"SecretBinary"` // base64, null when absent
	SecretString   *string     `json:"SecretString"`
	VersionID      *string     `json:"VersionId"`
	VersionStages  []string    `json:"VersionStages"`
	ResultMetadata emptyObject `json:"ResultMetadata"`
}

type parameterFields struct {
	ARN              *string  `json:"ARN"`
	DataType         *string  `json:"DataType"`
	LastModifiedDate *isoTime `json:"LastModifiedDate"`
	Name             *string  `json:"Name"`
	Selector         *string  `json:"Selector"`
	SourceResult     *string  `json:"SourceResult"`
	Type             *string  `json:"Type"`
	Value            *string  `json:"Value"`
	Version          int64    `json:"Version"`
}

type parameterBody struct {
	Parameter      parameterFields `json:"Parameter"`
	ResultMetadata emptyObject     `json:"ResultMetadata"`
}

func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // AWS's extension does not escape <, > and &
	if err := enc.Encode(v); err != nil {
		// Only strings, byte slices, times and ints are encoded: this cannot fail.
		panic("source: encoding a response body: " + err.Error())
	}
	// The buffer grew by doubling, so up to half of it is spare: the body
	// the cache keeps is an exact copy, and the buffer, which held the
	// value too, is wiped.
	b := buf.Bytes()
	body := make([]byte, len(b)-1) // less the encoder's newline
	copy(body, b)
	clear(b[:cap(b)])
	return body
}

// secretItem renders a secret version; GetSecretValue and
// BatchGetSecretValue return the same fields.
func secretItem(key Key, arn, name, versionID *string, created *time.Time, str *string, bin []byte, stages []string) *Item {
	body := secretBody{
		ARN:           arn,
		CreatedDate:   isoTimePtr(created),
		Name:          name,
		SecretBinary:  bin,
		SecretString:  str,
		VersionID:     versionID,
		VersionStages: stages,
	}
	return &Item{Key: key, Body: marshal(body), Name: deref(name), ARN: deref(arn)}
}

func secretEntryItem(key Key, e *smtypes.SecretValueEntry) *Item {
	return secretItem(key, e.ARN, e.Name, e.VersionId, e.CreatedDate, e.SecretString, e.SecretBinary, e.VersionStages)
}

func parameterItem(key Key, p *ssmtypes.Parameter) *Item {
	var typ *string
	if p.Type != "" {
		t := string(p.Type)
		typ = &t
	}
	body := parameterBody{Parameter: parameterFields{
		ARN:              p.ARN,
		DataType:         p.DataType,
		LastModifiedDate: isoTimePtr(p.LastModifiedDate),
		Name:             p.Name,
		Selector:         p.Selector,
		SourceResult:     p.SourceResult,
		Type:             typ,
		Value:            p.Value,
		Version:          p.Version,
	}}
	return &Item{Key: key, Body: marshal(body), Name: deref(p.Name), ARN: deref(p.ARN), Secure: p.Type == ssmtypes.ParameterTypeSecureString}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
