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
// cached read costs no encoding. Text is the string value (SecretString or the
// parameter's Value), nil when the item has none (a binary secret); it backs
// jsonKey extraction. Both hold secret material: they are byte slices so Wipe
// can overwrite them.
type Item struct {
	Key  Key
	Body []byte
	Text []byte

	Name string // the name AWS reports; may differ from Key.ID (an ARN, say)
	ARN  string
	// Secure marks a SecureString parameter, whose value differs with and
	// without decryption.
	Secure bool
}

// Wipe overwrites the item's secret material. Copies made elsewhere (by the
// AWS SDK while decoding, say) are beyond its reach.
func (it *Item) Wipe() {
	clear(it.Body)
	clear(it.Text)
}

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
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
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
	it := &Item{Key: key, Body: marshal(body), Name: deref(name), ARN: deref(arn)}
	if str != nil {
		it.Text = []byte(*str)
	}
	return it
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
	it := &Item{Key: key, Body: marshal(body), Name: deref(p.Name), ARN: deref(p.ARN), Secure: p.Type == ssmtypes.ParameterTypeSecureString}
	if p.Value != nil {
		it.Text = []byte(*p.Value)
	}
	return it
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
