// Package deploy_test checks the deployment examples that need no container
// engine: examples/ecs's task definition (decoded into the ECS SDK's own
// RegisterTaskDefinition input, unknown keys refused; its ordering, health
// check and configuration) and examples/ec2's install script and systemd
// unit (installed into a temporary root, then the agent started as the unit
// starts it, as its user, against the emulated AWS). examples/kubernetes is
// played under podman by ../container.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/secrets-prefetch/secrets-prefetch/config"
	"github.com/secrets-prefetch/secrets-prefetch/integration/rie"
)

// TestECSTaskDefinition decodes examples/ecs/task-definition.json as the
// input of ecs:RegisterTaskDefinition (`aws ecs register-task-definition
// --cli-input-json`), refusing any key the API does not have, and checks
// what the README promises of it.
func TestECSTaskDefinition(t *testing.T) {
	data := readExample(t, "ecs", "task-definition.json")
	var td ecs.RegisterTaskDefinitionInput
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&td); err != nil {
		t.Fatalf("task-definition.json is not a RegisterTaskDefinition input: %v", err)
	}

	if td.NetworkMode != ecstypes.NetworkModeAwsvpc {
		t.Errorf("networkMode %q: want awsvpc, where the task's containers share localhost", td.NetworkMode)
	}
	if td.TaskRoleArn == nil || *td.TaskRoleArn == "" {
		t.Error("no taskRoleArn: the agent's credentials are the task role's")
	}
	var agent, app *ecstypes.ContainerDefinition
	for i := range td.ContainerDefinitions {
		switch c := &td.ContainerDefinitions[i]; *c.Name {
		case "secrets-prefetch":
			agent = c
		case "app":
			app = c
		}
	}
	if agent == nil || app == nil {
		t.Fatalf("want containers secrets-prefetch and app")
	}
	if hc := agent.HealthCheck; hc == nil || !slices.Equal(hc.Command, []string{"CMD", "/secrets-prefetch", "healthcheck"}) {
		t.Errorf("the agent's healthCheck = %+v, want the healthcheck subcommand (the image has no shell)", agent.HealthCheck)
	}
	if agent.Essential == nil || !*agent.Essential {
		t.Error("the agent should be essential: the app cannot run without it")
	}
	want := []ecstypes.ContainerDependency{{ContainerName: agent.Name, Condition: ecstypes.ContainerConditionHealthy}}
	if len(app.DependsOn) != 1 || *app.DependsOn[0].ContainerName != *want[0].ContainerName || app.DependsOn[0].Condition != want[0].Condition {
		t.Errorf("the app's dependsOn = %+v, want the agent HEALTHY", app.DependsOn)
	}
	tokenFrom := func(c *ecstypes.ContainerDefinition) string {
		for _, s := range c.Secrets {
			if *s.Name == config.EnvToken {
				return *s.ValueFrom
			}
		}
		return ""
	}
	if a, b := tokenFrom(agent), tokenFrom(app); a == "" || a != b {
		t.Errorf("the agent's and the app's %s come from %q and %q, want the same secret", config.EnvToken, a, b)
	}

	// The agent's environment is a valid agent configuration.
	env := map[string]string{config.EnvToken: "token-from-secrets-manager"}
	for _, kv := range agent.Environment {
		env[*kv.Name] = *kv.Value
	}
	if _, err := config.AgentFromEnv(func(k string) string { return env[k] }, nil); err != nil {
		t.Errorf("the agent's environment is not a valid configuration: %v", err)
	}
}

func readExample(t *testing.T, elem ...string) []byte {
	t.Helper()
	root, err := rie.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(append([]string{root, "examples"}, elem...)...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}
