package awstest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

func TestListSecretsFiltersAndTags(t *testing.T) {
	a, sm, _ := start(t)
	for i := range 25 {
		name := fmt.Sprintf("team/s%02d", i)
		try(a.PutSecretString(t.Context(), name, "v"+name)).must(t)
		if i%2 == 0 {
			if err := a.TagSecret(t.Context(), name, map[string]string{"env": "prod"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	try(a.PutSecretString(t.Context(), "other", "o")).must(t)
	if err := a.TagSecret(t.Context(), "other", map[string]string{"environment": "production"}); err != nil {
		t.Fatal(err)
	}
	list := func(filters []smtypes.Filter, max int32) (names []string, pages int) {
		p := secretsmanager.NewListSecretsPaginator(sm, &secretsmanager.ListSecretsInput{Filters: filters, MaxResults: aws.Int32(max)})
		for p.HasMorePages() {
			out := try(p.NextPage(t.Context())).must(t)
			pages++
			for _, s := range out.SecretList {
				names = append(names, aws.ToString(s.Name))
			}
		}
		return names, pages
	}
	tagged := []smtypes.Filter{{Key: smtypes.FilterNameStringTypeTagKey, Values: []string{"env"}}, {Key: smtypes.FilterNameStringTypeTagValue, Values: []string{"prod"}}}
	names, pages := list(tagged, 5)
	// AWS's filters match by prefix, each on any tag: "environment=production" too.
	if len(names) != 14 || pages != 3 || !slices.Contains(names, "other") {
		t.Errorf("tag filters: %d names in %d pages %q; want 13 tagged + other, 3 pages", len(names), pages, names)
	}
	names, _ = list([]smtypes.Filter{{Key: smtypes.FilterNameStringTypeName, Values: []string{"team/s1"}}}, 100)
	if len(names) != 10 {
		t.Errorf("name prefix team/s1: %q", names)
	}
	if err := a.UntagSecret(t.Context(), "team/s00", "env"); err != nil {
		t.Fatal(err)
	}
	if names, _ = list(tagged, 100); slices.Contains(names, "team/s00") || len(names) != 13 {
		t.Errorf("after untagging team/s00: %q", names)
	}
	out := try(sm.ListSecrets(t.Context(), &secretsmanager.ListSecretsInput{Filters: tagged[:1], MaxResults: aws.Int32(1)})).must(t)
	if len(out.SecretList) != 1 || len(out.SecretList[0].Tags) == 0 {
		t.Errorf("ListSecrets entries carry their tags: %+v", out.SecretList)
	}

	// BatchGetSecretValue with Filters: values, at most 20 a page.
	var got []string
	p := secretsmanager.NewBatchGetSecretValuePaginator(sm, &secretsmanager.BatchGetSecretValueInput{Filters: tagged, MaxResults: aws.Int32(20)})
	calls := 0
	for p.HasMorePages() {
		out := try(p.NextPage(t.Context())).must(t)
		calls++
		for _, v := range out.SecretValues {
			if aws.ToString(v.SecretString) != "v"+aws.ToString(v.Name) && aws.ToString(v.Name) != "other" {
				t.Errorf("%s = %q", aws.ToString(v.Name), aws.ToString(v.SecretString))
			}
			got = append(got, aws.ToString(v.Name))
		}
	}
	if len(got) != 13 || calls != 1 {
		t.Errorf("filtered batch: %d values in %d calls", len(got), calls)
	}
	_, err := sm.BatchGetSecretValue(t.Context(), &secretsmanager.BatchGetSecretValueInput{Filters: tagged, MaxResults: aws.Int32(21)})
	wantAPIError(t, err, CodeValidation, 400)
}
