package container_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/container"
)

// TestHealthcheckAndStop runs the image as a container: podman's healthcheck
// (the image's HEALTHCHECK, the healthcheck subcommand) is unhealthy while
// the prefetch is held at the emulated AWS and healthy once it is done; the
// agent's process runs as 65532, not root; and `podman stop` (SIGTERM) ends
// it with exit code 0, not podman's SIGKILL after the grace period (137).
func TestHealthcheckAndStop(t *testing.T) {
	requirePodman(t)
	ctx := testCtx(t)
	_, emu := startEmulator(t,
		map[string]string{"hc/one": "hc-value-1", "hc/two": "hc-value-2"},
		map[string]string{"/hc/param": "hc-param-value"})
	held := emu.Hold(func(op string, _ []byte) bool { return op == awstest.OpBatchGetSecretValue })

	name := "secrets-prefetch-test-health"
	removeAfter(t, name)
	env := append(emu.Env(),
		"AWS_TOKEN=health-test-token",
		"SECRETS_PREFETCH_SECRETS=hc/one,hc/two",
		"SECRETS_PREFETCH_PARAMETERS=/hc/param",
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug",
		// The prefetch is held at the door for as long as the test takes:
		// neither its budget nor the call's bound may end it first.
		"SECRETS_PREFETCH_INIT_TIMEOUT_MILLIS=600000",
		"SECRETS_MANAGER_TIMEOUT_MILLIS=300000",
	)
	podman(t, ctx, append(append([]string{"run", "-d", "--name", name}, envArgs(env)...), container.AgentImage)...)
	logs, err := container.FollowLogs(ctx, name)
	if err != nil {
		t.Fatal(err)
	}

	select {
	case <-held.Arrived():
	case <-ctx.Done():
		t.Fatalf("the agent's prefetch never reached the emulated AWS:\n%s", logs)
	}
	if _, err := logs.WaitFor(ctx, "the agent serving", container.Msg("serving")); err != nil {
		t.Fatal(err)
	}
	pid := podman(t, ctx, "inspect", "--format", "{{.State.Pid}}", name)
	status, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		t.Fatalf("the agent's process: %v", err)
	}
	for _, want := range []string{"Uid:\t65532\t65532\t65532\t65532", "Gid:\t65532\t65532\t65532\t65532"} {
		if !strings.Contains(string(status), want+"\n") {
			t.Errorf("the agent's process does not run as 65532:65532; want %q in /proc/%s/status:\n%s", want, pid, status)
		}
	}

	if code, out := exitCode(ctx, "healthcheck", "run", name); code != 1 || !strings.Contains(out, "unhealthy") {
		t.Errorf("podman healthcheck run during the prefetch: exit %d %q, want 1 (unhealthy)", code, out)
	}
	if got := podman(t, ctx, "inspect", "--format", "{{json .State.Health.Log}}", name); !strings.Contains(got, "503") {
		t.Errorf("the healthcheck's output should say why (/ping's 503): %s", got)
	}

	held.Open()
	if _, err := logs.WaitFor(ctx, "the agent ready", container.Msg("ready")); err != nil {
		t.Fatal(err)
	}
	if code, out := exitCode(ctx, "healthcheck", "run", name); code != 0 {
		t.Errorf("podman healthcheck run after the prefetch: exit %d %q, want 0 (healthy)", code, out)
	}

	// 30 s of grace: far more than a drain with nothing in flight takes.
	podman(t, ctx, "stop", "-t", "30", name)
	if code := podman(t, ctx, "inspect", "--format", "{{.State.ExitCode}}", name); code != "0" {
		t.Errorf("exit code after podman stop: %s, want 0 (137: killed after the grace period)\n%s", code, logs)
	}
	if _, err := logs.WaitFor(ctx, "the agent's stop", container.Msg("stopped")); err != nil {
		t.Error(err)
	}
	checkNoValues(t, logs.String(), "hc-value-1", "hc-value-2", "hc-param-value")
}

// TestStopDrainsReadInFlight stops the agent while an app container in its
// pod waits on a read the agent is fetching from AWS: the read is answered
// (with the value: the fetch finishes within the drain), then the agent
// exits 0.
func TestStopDrainsReadInFlight(t *testing.T) {
	requirePodman(t)
	ctx := testCtx(t)
	_, emu := startEmulator(t,
		map[string]string{"drain/listed": "drain-listed-value", "drain/lazy": "drain-lazy-value"}, nil)
	held := emu.Hold(func(_ string, body []byte) bool { return strings.Contains(string(body), "drain/lazy") })

	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("drain-test-token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := "secrets-prefetch-test-drain"
	_, _ = container.Podman(ctx, "pod", "rm", "-f", "-t", "0", pod)
	t.Cleanup(func() { _, _ = container.Podman(ctx, "pod", "rm", "-f", "-t", "0", pod) })
	podman(t, ctx, "pod", "create", "--name", pod)
	mount := "type=bind,source=" + token + ",target=/run/token,readonly"

	agent := pod + "-agent"
	env := append(emu.Env(),
		"AWS_TOKEN=file:///run/token",
		"SECRETS_PREFETCH_SECRETS=drain/listed",
		// Room for the test to release the read after the SIGTERM, however
		// loaded the machine is: neither the drain's bound nor the call's
		// may end it first.
		"SECRETS_PREFETCH_SHUTDOWN_TIMEOUT_MILLIS=60000",
		"SECRETS_MANAGER_TIMEOUT_MILLIS=300000",
	)
	podman(t, ctx, append(append([]string{"run", "-d", "--pod", pod, "--name", agent, "--mount", mount}, envArgs(env)...), container.AgentImage)...)
	logs, err := container.FollowLogs(ctx, agent)
	if err != nil {
		t.Fatal(err)
	}
	app := pod + "-app"
	podman(t, ctx, "run", "-d", "--pod", pod, "--name", app, "--mount", mount, "-e", "SECRETS_AGENT_TOKEN_FILE=/run/token",
		container.AppImage, "secret:drain/lazy")

	select {
	case <-held.Arrived():
	case <-ctx.Done():
		t.Fatalf("the app's read never reached the emulated AWS:\n%s", logs)
	}
	stopped := make(chan error, 1)
	go func() {
		_, err := container.Podman(ctx, "stop", "-t", "90", agent)
		stopped <- err
	}()
	if _, err := logs.WaitFor(ctx, "the agent stopping", container.Msg("stopping")); err != nil {
		t.Fatal(err)
	}
	held.Open()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if code := podman(t, ctx, "inspect", "--format", "{{.State.ExitCode}}", agent); code != "0" {
		t.Errorf("the agent's exit code: %s, want 0\n%s", code, logs)
	}
	if code := podman(t, ctx, "wait", app); code != "0" {
		t.Errorf("the app's exit code: %s, want 0", code)
	}
	lines := appLines(t, podman(t, ctx, "logs", app))
	if len(lines) != 1 || lines[0].Status != 200 || lines[0].Value != "drain-lazy-value" {
		t.Errorf("the read in flight at SIGTERM got %+v, want 200 with its value", lines)
	}
}

// checkNoValues fails if a secret value appears in the agent's output.
func checkNoValues(t *testing.T, out string, values ...string) {
	t.Helper()
	for _, v := range values {
		if strings.Contains(out, v) {
			t.Errorf("a secret value (%q) appears in the agent's output", v)
		}
	}
	if out == "" {
		t.Error("the agent wrote nothing (the scan for values would prove nothing)")
	}
}
