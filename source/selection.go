package source

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// secretsPerListPage is ListSecrets' largest MaxResults.
const secretsPerListPage = 100

// Selection picks secrets by a tag (TagKey=TagValue, both exact) or by
// the beginning of their names (Prefix).
type Selection struct {
	TagKey, TagValue string
	Prefix           string
}

// String renders the selection as it is configured: tag:KEY=VALUE or
// prefix:NAME.
func (s Selection) String() string {
	if s.Prefix != "" {
		return "prefix:" + s.Prefix
	}
	return "tag:" + s.TagKey + "=" + s.TagValue
}

// SecretListerAPI is the part of the Secrets Manager client a selection
// lists secrets with.
type SecretListerAPI interface {
	ListSecrets(context.Context, *secretsmanager.ListSecretsInput, ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretsOutput, error)
}

// ListSelection returns the names of the home region's secrets sel picks,
// listed with ListSecrets (up to 100 a page) and its Filters. AWS's filters
// match by prefix and "tag-key" and "tag-value" each match any tag, so
// every secret is checked again here against the exact tag or prefix: a
// secret tagged environment=production is not in tag:env=prod. ListSecrets
// rather than BatchGetSecretValue's Filters because only ListSecrets
// answers with the tags that check needs; the members' values are then
// fetched and refreshed in batches of 20 like any listed secret.
func (s *Source) ListSelection(ctx context.Context, sel Selection) ([]string, error) {
	ctx = batchContext(ctx)
	lister, ok := s.home.sm.(SecretListerAPI)
	key := Key{Service: SecretsManager, ID: sel.String()}
	if !ok {
		return nil, &Error{Class: ClassInvalid, Code: "ListUnsupported", Message: "this client cannot list secrets", Key: key}
	}
	in := &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(secretsPerListPage)}
	if sel.Prefix != "" {
		in.Filters = []smtypes.Filter{{Key: smtypes.FilterNameStringTypeName, Values: []string{sel.Prefix}}}
	} else {
		in.Filters = []smtypes.Filter{
			{Key: smtypes.FilterNameStringTypeTagKey, Values: []string{sel.TagKey}},
			{Key: smtypes.FilterNameStringTypeTagValue, Values: []string{sel.TagValue}},
		}
	}
	var names []string
	seen := map[string]bool{} // NextTokens followed
	for {
		var out *secretsmanager.ListSecretsOutput
		err := s.call(ctx, APIListSecrets, func(ctx context.Context) (err error) {
			out, err = lister.ListSecrets(ctx, in)
			return err
		})
		if err != nil {
			return names, classify(key, err)
		}
		for _, e := range out.SecretList {
			if sel.picks(&e) {
				names = append(names, aws.ToString(e.Name))
			}
		}
		next := aws.ToString(out.NextToken)
		if next == "" {
			return names, nil
		}
		if seen[next] {
			return names, &Error{Class: ClassOther, Code: "MalformedResponse", Message: "ListSecrets returned a NextToken it had returned before", Key: key}
		}
		seen[next] = true
		in.NextToken = out.NextToken
	}
}

// picks reports whether a listed secret is exactly in the selection.
func (sel Selection) picks(e *smtypes.SecretListEntry) bool {
	name := aws.ToString(e.Name)
	if name == "" {
		return false
	}
	if sel.Prefix != "" {
		return strings.HasPrefix(name, sel.Prefix)
	}
	for _, t := range e.Tags {
		if aws.ToString(t.Key) == sel.TagKey && aws.ToString(t.Value) == sel.TagValue {
			return true
		}
	}
	return false
}
