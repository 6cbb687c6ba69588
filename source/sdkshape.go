package source

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// The AWS API endpoint answers with the SDK's own shapes. An item keeps one
// rendering, Body; these turn it back into the SDK's types. Body holds every
// member of the API's answer, with times to the millisecond, which is what
// the services send and what the SDKs keep.

// SecretValue returns a secret item as the SDK's SecretValueEntry (the
// members of GetSecretValue's answer too).
func (it *Item) SecretValue() (smtypes.SecretValueEntry, error) {
	var b struct {
		ARN           *string
		CreatedDate   *isoTime
		Name          *string
		SecretBinary  []byte
		SecretString  *string
		VersionID     *string `json:"VersionId"`
		VersionStages []string
	}
	if it.Key.Service != SecretsManager {
		return smtypes.SecretValueEntry{}, errors.New("not a secret")
	}
	if err := json.Unmarshal(it.Body, &b); err != nil {
		return smtypes.SecretValueEntry{}, fmt.Errorf("decoding the item of %s: %w", it.Key, err)
	}
	return smtypes.SecretValueEntry{
		ARN: b.ARN, CreatedDate: b.CreatedDate.timePtr(), Name: b.Name,
		SecretBinary: b.SecretBinary, SecretString: b.SecretString,
		VersionId: b.VersionID, VersionStages: b.VersionStages,
	}, nil
}

// Parameter returns a parameter item as the SDK's Parameter.
func (it *Item) Parameter() (ssmtypes.Parameter, error) {
	var b struct {
		Parameter struct {
			ARN              *string
			DataType         *string
			LastModifiedDate *isoTime
			Name             *string
			Selector         *string
			SourceResult     *string
			Type             *string
			Value            *string
			Version          int64
		}
	}
	if it.Key.Service != ParameterStore {
		return ssmtypes.Parameter{}, errors.New("not a parameter")
	}
	if err := json.Unmarshal(it.Body, &b); err != nil {
		return ssmtypes.Parameter{}, fmt.Errorf("decoding the item of %s: %w", it.Key, err)
	}
	p := b.Parameter
	return ssmtypes.Parameter{
		ARN: p.ARN, DataType: p.DataType, LastModifiedDate: p.LastModifiedDate.timePtr(), Name: p.Name,
		Selector: p.Selector, SourceResult: p.SourceResult, Type: ssmtypes.ParameterType(deref(p.Type)),
		Value: p.Value, Version: p.Version,
	}, nil
}

func (t *isoTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(isoMillis, s)
	if err != nil {
		return err
	}
	*t = isoTime(v)
	return nil
}

func (t *isoTime) timePtr() *time.Time {
	if t == nil {
		return nil
	}
	v := time.Time(*t)
	return &v
}
