package awstest

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// The region a client is made for decides which store answers: the SDK
// signs for it, and the front routes by the signature's scope.
func TestRegionsAreSeparateStores(t *testing.T) {
	a, homeSM, homeSSM := start(t)
	west := a.AddRegion("us-west-2")
	if a.AddRegion("us-west-2") != west || a.InRegion("us-west-2") != west || west.URL != a.URL {
		t.Fatal("AddRegion must return the one store of a region, on the same front")
	}
	westARN := try(west.PutSecretString(t.Context(), "db", "west-value")).must(t)
	homeARN := try(a.PutSecretString(t.Context(), "db", "home-value")).must(t)
	if !strings.HasPrefix(westARN, "arn:aws:secretsmanager:us-west-2:"+accountID+":secret:db-") ||
		!strings.HasPrefix(homeARN, "arn:aws:secretsmanager:us-east-1:"+accountID+":secret:db-") {
		t.Fatalf("ARNs %q and %q must carry their regions", westARN, homeARN)
	}
	try(west.PutParameter(t.Context(), "/app/only-west", "w", "String")).must(t)

	westSM := secretsmanager.NewFromConfig(west.Config(t.Context()), func(o *secretsmanager.Options) { o.RetryMaxAttempts = 1 })
	westSSM := ssm.NewFromConfig(a.Config(t.Context()), func(o *ssm.Options) { o.Region = "us-west-2"; o.RetryMaxAttempts = 1 })
	for _, tc := range []struct {
		c        *secretsmanager.Client
		id, want string
	}{
		{homeSM, "db", "home-value"}, {westSM, "db", "west-value"},
		{homeSM, homeARN, "home-value"}, {westSM, westARN, "west-value"},
	} {
		out := try(tc.c.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: &tc.id})).must(t)
		if aws.ToString(out.SecretString) != tc.want {
			t.Errorf("GetSecretValue(%s) in %s = %q, want %q", tc.id, tc.c.Options().Region, aws.ToString(out.SecretString), tc.want)
		}
	}
	// An ARN of one region is not found at another's endpoint.
	_, err := homeSM.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: &westARN})
	wantAPIError(t, err, CodeResourceNotFound, 400)
	out := try(westSM.BatchGetSecretValue(t.Context(), &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{westARN, homeARN}})).must(t)
	if len(out.SecretValues) != 1 || aws.ToString(out.SecretValues[0].ARN) != westARN || len(out.Errors) != 1 {
		t.Errorf("batch in us-west-2 = %d values, %d errors; want only its own ARN answered", len(out.SecretValues), len(out.Errors))
	}

	// Parameters, by name and by ARN.
	_, err = getParameter(t, homeSSM, "/app/only-west", true)
	wantAPIError(t, err, CodeParameterNotFound, 400)
	p := try(getParameter(t, westSSM, "/app/only-west", true)).must(t)
	parn := "arn:aws:ssm:us-west-2:" + accountID + ":parameter/app/only-west"
	if aws.ToString(p.ARN) != parn {
		t.Errorf("ARN = %q, want %q", aws.ToString(p.ARN), parn)
	}
	p = try(getParameter(t, westSSM, parn, true)).must(t)
	if aws.ToString(p.Name) != parn || aws.ToString(p.Value) != "w" {
		t.Errorf("by ARN: name %q value %q, want the ARN and w", aws.ToString(p.Name), aws.ToString(p.Value))
	}
	_, err = getParameter(t, homeSSM, parn, true)
	wantAPIError(t, err, CodeParameterNotFound, 400)

	// Calls are counted in the region that answered.
	if west.Calls(OpGetSecretValue) != 2 || a.Calls(OpGetSecretValue) != 3 {
		t.Errorf("GetSecretValue calls: us-west-2 %d, us-east-1 %d; want 2 and 3", west.Calls(OpGetSecretValue), a.Calls(OpGetSecretValue))
	}
	// A region the AWS lacks is refused as a bad signature scope.
	_, err = secretsmanager.NewFromConfig(a.Config(t.Context()), func(o *secretsmanager.Options) { o.Region = "eu-west-9"; o.RetryMaxAttempts = 1 }).
		GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("db")})
	wantAPIError(t, err, CodeInvalidSignature, 400)
}

// AssumeRole hands out credentials of their own per role, and a store
// restricted to a role tells who signed.
func TestAssumeRole(t *testing.T) {
	a, homeSM, _ := start(t)
	const reader, other = "arn:aws:iam::222222222222:role/reader", "arn:aws:iam::222222222222:role/other"
	a.CreateRole(reader)
	a.CreateRole(other)
	try(a.PutSecretString(t.Context(), "shared", "s")).must(t)
	try(a.PutSecretString(t.Context(), "open", "o")).must(t)
	a.Only("shared", reader)

	cfg := a.Config(t.Context())
	stsClient := sts.NewFromConfig(cfg)
	asRole := func(role string) *secretsmanager.Client {
		c := cfg.Copy()
		c.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, role))
		return secretsmanager.NewFromConfig(c, func(o *secretsmanager.Options) { o.RetryMaxAttempts = 1 })
	}
	get := func(c *secretsmanager.Client, id string) error {
		_, err := c.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: &id})
		return err
	}
	readerSM, otherSM := asRole(reader), asRole(other)
	if err := get(readerSM, "shared"); err != nil {
		t.Fatalf("the reader role reading its secret: %v", err)
	}
	wantAPIError(t, get(otherSM, "shared"), CodeAccessDenied, 400)
	wantAPIError(t, get(homeSM, "shared"), CodeAccessDenied, 400)
	if err := get(otherSM, "open"); err != nil {
		t.Errorf("another role reading an unrestricted secret: %v", err)
	}
	out := try(otherSM.BatchGetSecretValue(t.Context(), &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"shared", "open"}})).must(t)
	if len(out.SecretValues) != 1 || len(out.Errors) != 1 || aws.ToString(out.Errors[0].ErrorCode) != CodeAccessDenied {
		t.Errorf("batch by another role: %d values, errors %v; want shared refused in Errors", len(out.SecretValues), out.Errors)
	}
	// Credentials were fetched once per role and cached by the SDK.
	if a.RoleSessions(reader) != 1 || a.RoleSessions(other) != 1 || a.Calls(OpAssumeRole) != 2 {
		t.Errorf("AssumeRole: reader %d, other %d sessions, %d calls; want 1, 1, 2", a.RoleSessions(reader), a.RoleSessions(other), a.Calls(OpAssumeRole))
	}
	// A role the caller may not assume.
	err := get(asRole("arn:aws:iam::222222222222:role/nobody"), "open")
	if code := errorCode(err); code != "AccessDenied" || !strings.Contains(err.Error(), "sts:AssumeRole") {
		t.Errorf("assuming an unknown role: %v, want STS AccessDenied", err)
	}
	// Faults apply to STS like any operation.
	a.Inject(OpAssumeRole, InternalError().Times(1))
	fresh := cfg.Copy()
	fresh.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg, func(o *sts.Options) { o.RetryMaxAttempts = 1 }), reader))
	err = get(secretsmanager.NewFromConfig(fresh, func(o *secretsmanager.Options) { o.RetryMaxAttempts = 1 }), "shared")
	if err == nil || !strings.Contains(err.Error(), "AssumeRole") {
		t.Errorf("AssumeRole failing: %v, want the STS error", err)
	}
}
