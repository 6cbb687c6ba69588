package awstest

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// The seeding helpers set up a test's secrets and parameters. They go
// through the front like any client, so the parameter history is recorded,
// but sign with their own key: their calls are not counted in Calls and
// faults never apply to them, so a test may seed after injecting faults and
// needs no ResetCalls after seeding.

// PutSecretString creates a secret with a string value and returns its ARN.
func (a *AWS) PutSecretString(ctx context.Context, name, value string) (arn string, err error) {
	out, err := a.seedSM.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: &name, SecretString: &value})
	if err != nil {
		return "", fmt.Errorf("awstest: create secret %q: %w", name, err)
	}
	return aws.ToString(out.ARN), nil
}

// PutSecretBinary creates a secret with a binary value and returns its ARN.
func (a *AWS) PutSecretBinary(ctx context.Context, name string, value []byte) (arn string, err error) {
	out, err := a.seedSM.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: &name, SecretBinary: value})
	if err != nil {
		return "", fmt.Errorf("awstest: create secret %q: %w", name, err)
	}
	return aws.ToString(out.ARN), nil
}

// UpdateSecret gives a secret a new string value: a new version that is
// AWSCURRENT, the one before becoming AWSPREVIOUS. It returns the new
// VersionId. (kumo leaves AWSPREVIOUS on every older version too, so read
// AWSPREVIOUS after a single update only.)
func (a *AWS) UpdateSecret(ctx context.Context, name, value string) (versionID string, err error) {
	out, err := a.seedSM.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: &name, SecretString: &value})
	if err != nil {
		return "", fmt.Errorf("awstest: update secret %q: %w", name, err)
	}
	return aws.ToString(out.VersionId), nil
}

// DeleteSecret deletes a secret at once, without a recovery window.
func (a *AWS) DeleteSecret(ctx context.Context, name string) error {
	_, err := a.seedSM.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: &name, ForceDeleteWithoutRecovery: aws.Bool(true)})
	if err != nil {
		return fmt.Errorf("awstest: delete secret %q: %w", name, err)
	}
	return nil
}

// PutParameter creates or overwrites a parameter; typ is "String",
// "StringList" or "SecureString". It returns the new version.
func (a *AWS) PutParameter(ctx context.Context, name, value, typ string) (version int64, err error) {
	out, err := a.seedSSM.PutParameter(ctx, &ssm.PutParameterInput{
		Name: &name, Value: &value, Type: ssmtypes.ParameterType(typ), Overwrite: aws.Bool(true),
	})
	if err != nil {
		return 0, fmt.Errorf("awstest: put parameter %q: %w", name, err)
	}
	return out.Version, nil
}

// LabelParameterVersion attaches labels to a version of a parameter,
// moving them off any other version. A label SSM would refuse is an error.
func (a *AWS) LabelParameterVersion(ctx context.Context, name string, version int64, labels ...string) error {
	out, err := a.seedSSM.LabelParameterVersion(ctx, &ssm.LabelParameterVersionInput{
		Name: &name, ParameterVersion: &version, Labels: labels,
	})
	if err != nil {
		return fmt.Errorf("awstest: label parameter %q: %w", name, err)
	}
	if len(out.InvalidLabels) > 0 {
		return fmt.Errorf("awstest: label parameter %q: invalid labels %q", name, out.InvalidLabels)
	}
	return nil
}

// DeleteParameter deletes a parameter and all its versions.
func (a *AWS) DeleteParameter(ctx context.Context, name string) error {
	if _, err := a.seedSSM.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: &name}); err != nil {
		return fmt.Errorf("awstest: delete parameter %q: %w", name, err)
	}
	return nil
}
