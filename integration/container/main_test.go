// The container tests: the agent image as `make image` builds it, run by
// podman against the emulated AWS (served on the host, reached from the
// containers at the host's own address). The images are built once per
// test binary (TestMain), under a machine-wide lock: the tests of two
// worktrees, or the demo, would otherwise rebuild or remove each other's
// images and pods.
//
// Without podman they skip, saying why; under CI=true they fail instead.
package container_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/container"
	"github.com/secrets-prefetch/secrets-prefetch/integration/container/testapp/wire"
)

var (
	// noPodman says why podman cannot run here (skip, or fail under CI).
	noPodman error
	// setupErr says why the images could not be built (always a failure).
	setupErr error
	// imageBuild is how long `make image` took.
	imageBuild time.Duration
)

// What examples/kubernetes/deployment.yaml prefetches, as the emulated AWS
// holds it, and what the app container reads (its image's command).
var (
	kubeSecrets = map[string]string{"my-app/db": `{"username":"app","password":"kube-test-password-1"}`}
	kubeParams  = map[string]string{
		"/my-app/config/greeting": "hello from the emulated AWS",
		"/my-app/config/db-host":  "db.kube-test.internal",
	}
	kubeAppReads = []string{
		"secret:my-app/db", "parameter:/my-app/config/greeting", "parameter:/my-app/config/db-host",
		"notoken:secret:my-app/db",
	}
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if noPodman = container.Available(ctx); noPodman != nil {
		return m.Run()
	}
	unlock, err := container.Lock()
	if err != nil {
		setupErr = err
		return m.Run()
	}
	defer unlock()
	dir, err := os.MkdirTemp("", "secrets-prefetch-container-")
	if err != nil {
		setupErr = err
		return m.Run()
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	if _, err := container.MakeImage(ctx); err != nil {
		setupErr = fmt.Errorf("make image: %w", err)
		return m.Run()
	}
	imageBuild = time.Since(start)
	if err := container.BuildTestImages(ctx, dir, kubeAppReads); err != nil {
		setupErr = err
	}
	return m.Run()
}

// requirePodman skips the test without podman (fails under CI=true), and
// fails it if the images could not be built.
func requirePodman(t testing.TB) {
	t.Helper()
	switch {
	case noPodman != nil && os.Getenv("CI") == "true":
		t.Fatalf("the container tests must run under CI: %v", noPodman)
	case noPodman != nil:
		t.Skipf("%v (under CI=true this fails instead)", noPodman)
	case setupErr != nil:
		t.Fatalf("building the images: %v", setupErr)
	}
}

// testCtx is a context for one test's podman commands, bounded well below
// the package's timeout so that a hang is reported with its logs.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func podman(t testing.TB, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := container.Podman(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// exitCode is the exit code of `podman args...` (0 when it succeeds).
func exitCode(ctx context.Context, args ...string) (int, string) {
	out, err := exec.CommandContext(ctx, "podman", args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	return -1, err.Error()
}

// removeAfter removes the container name when the test ends, and a leftover
// of an earlier run now.
func removeAfter(t testing.TB, name string) {
	_, _ = container.Podman(context.Background(), "rm", "-f", "-t", "0", name)
	t.Cleanup(func() {
		if _, err := container.Podman(context.Background(), "rm", "-f", "-t", "0", name); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
}

// startEmulator starts an emulated AWS seeded with secrets and parameters
// (SecureString), served where containers reach it.
func startEmulator(t testing.TB, secrets, params map[string]string) (*awstest.AWS, *container.Emulator) {
	t.Helper()
	a := awstest.Start(t)
	ctx := context.Background()
	for name, v := range secrets {
		if _, err := a.PutSecretString(ctx, name, v); err != nil {
			t.Fatal(err)
		}
	}
	for name, v := range params {
		if _, err := a.PutParameter(ctx, name, v, "SecureString"); err != nil {
			t.Fatal(err)
		}
	}
	e, err := container.Serve(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return a, e
}

// appLines decodes the testapp's output.
func appLines(t testing.TB, out string) []wire.Line {
	t.Helper()
	var lines []wire.Line
	for l := range strings.Lines(out) {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var line wire.Line
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("app output %q: %v", l, err)
		}
		lines = append(lines, line)
	}
	return lines
}

// envArgs turns KEY=value entries into podman run's -e flags.
func envArgs(env []string) []string {
	var args []string
	for _, kv := range env {
		args = append(args, "-e", kv)
	}
	return args
}
