package container_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/secrets-prefetch/secrets-prefetch/integration/container"
	"github.com/secrets-prefetch/secrets-prefetch/integration/rie"
)

// The images of examples/kubernetes/deployment.yaml and their substitutes.
var kubeImages = map[string]string{
	"busybox:1.36": container.BusyboxImage,
	"registry.example.com/secrets-prefetch:latest": container.AgentImage,
	"registry.example.com/my-app:latest":           container.AppImage,
}

// TestKubernetesExample plays examples/kubernetes/deployment.yaml with
// `podman kube play`, changed only as container.ForPodman says (images,
// the emulator's endpoint and credentials, podman 4.3's lack of native
// sidecars): the init container writes the pod's token into the in-memory
// volume, the agent reads it from there (AWS_TOKEN=file://...) and
// prefetches, and the app container reads through the agent on the pod's
// shared localhost with the token from the same file. Its reads are hits
// served with no AWS call; a read without the token is refused.
func TestKubernetesExample(t *testing.T) {
	requirePodman(t)
	ctx := testCtx(t)
	a, emu := startEmulator(t, kubeSecrets, kubeParams)

	root, err := rie.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join(root, "examples", "kubernetes", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	checkProbe(t, example)
	manifest, changes, err := container.ForPodman(example, kubeImages, "secrets-prefetch", emu.Env())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the example, changed for podman 4.3 and the emulated AWS:\n  %s", strings.Join(changes, "\n  "))
	// A folder of its own: kube play looks for folders named like images.
	path := filepath.Join(t.TempDir(), "deployment.yaml")
	if err := os.WriteFile(path, manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	// podman 4.3 names a Deployment's pods NAME-pod-N.
	const pod = "my-app-pod-0"
	_, _ = container.Podman(ctx, "pod", "rm", "-f", "-t", "0", pod)
	t.Cleanup(func() {
		if _, err := container.Podman(context.Background(), "kube", "down", path); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	podman(t, ctx, "kube", "play", "--build=false", path)

	names := strings.Fields(podman(t, ctx, "ps", "-a", "--filter", "pod="+pod, "--format", "{{.Names}}"))
	agent, app := named(names, "-secrets-prefetch"), named(names, "-app")
	if agent == "" || app == "" {
		t.Fatalf("the pod's containers are %q: no agent or app", names)
	}
	logs, err := container.FollowLogs(ctx, agent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := logs.WaitFor(ctx, "the agent ready", container.Msg("ready")); err != nil {
		t.Fatal(err)
	}
	prefetch := a.AllCalls()
	if code := podman(t, ctx, "wait", app); code != "0" {
		t.Errorf("the app's exit code: %s, want 0\n%s", code, podman(t, ctx, "logs", app))
	}
	lines := appLines(t, podman(t, ctx, "logs", app))
	if len(lines) != len(kubeAppReads) {
		t.Fatalf("the app made %d reads, want %d:\n%s", len(lines), len(kubeAppReads), podman(t, ctx, "logs", app))
	}
	want := []string{kubeSecrets["my-app/db"], kubeParams["/my-app/config/greeting"], kubeParams["/my-app/config/db-host"]}
	for i, w := range want {
		if l := lines[i]; l.Status != 200 || l.Value != w || l.XCache != "hit" {
			t.Errorf("app read %s: status %d X-Cache %q value %q, want 200, a hit, %q (%s)", l.Path, l.Status, l.XCache, l.Value, w, l.TransportError)
		}
	}
	if l := lines[3]; l.Status != 401 {
		t.Errorf("app read %s without the token: status %d, want 401", l.Path, l.Status)
	}
	if after := a.AllCalls(); !maps.Equal(prefetch, after) {
		t.Errorf("AWS calls during the app's reads: before %v, after %v; want none", prefetch, after)
	}
	t.Logf("AWS calls of the prefetch: %v", prefetch)
	checkNoValues(t, logs.String(), want...)
}

// named is the name in names that ends with suffix.
func named(names []string, suffix string) string {
	for _, n := range names {
		if strings.HasSuffix(n, suffix) {
			return n
		}
	}
	return ""
}

// checkProbe checks what podman 4.3 cannot run: the agent is a native
// sidecar whose startupProbe is the healthcheck subcommand (the command
// TestHealthcheckAndStop runs as the image's HEALTHCHECK), before the app.
func checkProbe(t *testing.T, manifest []byte) {
	t.Helper()
	type ctr struct {
		Name          string
		RestartPolicy string `yaml:"restartPolicy"`
		StartupProbe  *struct {
			Exec struct{ Command []string }
		} `yaml:"startupProbe"`
	}
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					InitContainers []ctr `yaml:"initContainers"`
					Containers     []ctr
				}
			}
		}
	}
	if err := yaml.Unmarshal(manifest, &d); err != nil {
		t.Fatal(err)
	}
	spec := d.Spec.Template.Spec
	i := slices.IndexFunc(spec.InitContainers, func(c ctr) bool { return c.Name == "secrets-prefetch" })
	if i < 0 || spec.InitContainers[i].RestartPolicy != "Always" {
		t.Fatalf("the agent is not a native sidecar (an init container with restartPolicy: Always)")
	}
	if p := spec.InitContainers[i].StartupProbe; p == nil || !slices.Equal(p.Exec.Command, []string{"/secrets-prefetch", "healthcheck"}) {
		t.Errorf("the agent's startupProbe = %+v, want exec of the healthcheck subcommand", p)
	}
	if i != len(spec.InitContainers)-1 || len(spec.Containers) == 0 {
		t.Errorf("the agent should be the last init container, before the app")
	}
}
