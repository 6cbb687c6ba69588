// Package source fetches secrets and parameters from AWS Secrets Manager and
// SSM Parameter Store: batched, in parallel and with errors classified by
// their AWS error code. It knows nothing about caching or HTTP.
package source

import "strings"

// Service tells which AWS service an item lives in.
type Service uint8

const (
	SecretsManager Service = iota + 1
	ParameterStore
)

func (s Service) String() string {
	switch s {
	case SecretsManager:
		return "secretsmanager"
	case ParameterStore:
		return "ssm"
	}
	return "unknown"
}

// Key names one cacheable item: a secret or parameter together with the
// version selector it was asked for. Keys are comparable and used as map keys.
//
// For a secret, ID is the name or ARN and at most one of VersionID and
// VersionStage is set. For a parameter, ID is the name without selector,
// Selector is "" or ":3" / ":label" (with the colon, as SSM reports it), and
// Decrypt tells whether SecureString values are decrypted.
//
// Role is the IAM role ARN whose credentials (from sts:AssumeRole) fetch the
// item, "" for the extension's own: entries of different roles are
// different entries, so one role's value is never served to a read for
// another. The region is not a field: an ARN names its own, and a name
// lives in the home region.
type Key struct {
	Service      Service
	ID           string
	VersionID    string
	VersionStage string
	Selector     string
	Decrypt      bool
	Role         string
}

// SecretKey is the key of a secret's current version.
func SecretKey(id string) Key { return Key{Service: SecretsManager, ID: id} }

// ParameterKey is the key of a parameter's latest version, decrypted.
func ParameterKey(name string) Key { return Key{Service: ParameterStore, ID: name, Decrypt: true} }

// Plain reports whether the key asks for the default version (no selector),
// the only kind the batch APIs can fetch.
func (k Key) Plain() bool {
	return k.VersionID == "" && k.VersionStage == "" && k.Selector == ""
}

// String renders the key for logs: the item's name and selector, never a value.
func (k Key) String() string {
	var b strings.Builder
	b.WriteString(k.Service.String())
	b.WriteByte(':')
	b.WriteString(k.ID)
	switch {
	case k.VersionID != "":
		b.WriteString("?versionId=" + k.VersionID)
	case k.VersionStage != "":
		b.WriteString("?versionStage=" + k.VersionStage)
	case k.Selector != "":
		b.WriteString(k.Selector)
	}
	if k.Role != "" {
		b.WriteString(" as " + k.Role)
	}
	return b.String()
}

// SecretsManagerReferencePrefix is the parameter name prefix through which SSM
// serves Secrets Manager secrets.
const SecretsManagerReferencePrefix = "/aws/reference/secretsmanager/"
