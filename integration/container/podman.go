// Package container runs secrets-prefetch in a real container engine,
// podman, for the container tests (this folder's _test files) and `make
// demo-agent`: the agent image built by `make image`, an app image (the
// static ./testapp in a scratch image), a busybox image for the Kubernetes
// example's token init step (the host's static busybox), the emulated AWS
// served where containers reach it, and examples/kubernetes made playable
// by podman 4.3 (see ForPodman).
//
// No image can be pulled here (no registry is reachable): every image is
// FROM scratch with static binaries built on the host. It is test-only code,
// a normal package so that the tests and the demo can share it.
package container

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/secrets-prefetch/secrets-prefetch/integration/rie"
)

// Image names. AgentImage is what `make image` tags (podman adds the
// localhost/ registry to a name without one).
const (
	AgentImage   = "localhost/secrets-prefetch:latest"
	AppImage     = "localhost/secrets-prefetch-testapp:test"
	BusyboxImage = "localhost/secrets-prefetch-busybox:test"
)

// Available reports why podman cannot run containers here, or nil.
func Available(ctx context.Context) error {
	if _, err := exec.LookPath("podman"); err != nil {
		return errors.New("podman is not installed (apt-get install podman runc; .ci/run does it)")
	}
	if _, err := Podman(ctx, "info", "--format", "{{.Host.OCIRuntime.Name}}"); err != nil {
		return fmt.Errorf("podman cannot run here: %w", err)
	}
	return nil
}

// Podman runs podman with args and returns its standard output. The error
// carries its standard error.
func Podman(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "", nil, "podman", args...)
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// MakeImage runs `make image` at the repository's root: the image the
// project ships, built as a user builds it.
func MakeImage(ctx context.Context) (string, error) {
	root, err := rie.RepoRoot()
	if err != nil {
		return "", err
	}
	var out string
	err = replacing(ctx, AgentImage, func() error {
		// The name said here, whatever a surrounding make was given.
		out, err = run(ctx, root, nil, "make", "image", "IMAGE="+strings.TrimPrefix(AgentImage, "localhost/"))
		return err
	})
	return out, err
}

// replacing runs build, which tags a new image tag, then removes the image
// tag named before if nothing names or uses it any more: every test run
// would otherwise leave one more untagged image behind.
func replacing(ctx context.Context, tag string, build func() error) error {
	old, _ := Podman(ctx, "image", "inspect", "--format", "{{.ID}}", tag)
	if err := build(); err != nil {
		return err
	}
	old = strings.TrimSpace(old)
	now, err := Podman(ctx, "image", "inspect", "--format", "{{.ID}}", tag)
	if old != "" && err == nil && strings.TrimSpace(now) != old {
		// Fails, harmlessly, while another tag or a container holds it.
		_, _ = Podman(ctx, "rmi", old)
	}
	return nil
}

// BuildTestImages builds AppImage, whose command is appArgs (testapp's
// flags and reads: a pod manifest gives the app container no args), and
// BusyboxImage, using dir for the build contexts.
func BuildTestImages(ctx context.Context, dir string, appArgs []string) error {
	if err := BuildAppImage(ctx, dir, AppImage, appArgs); err != nil {
		return err
	}
	return buildBusybox(ctx, filepath.Join(dir, "busybox"))
}

// BuildAppImage builds the testapp into an image tagged tag whose command
// is args.
func BuildAppImage(ctx context.Context, dir, tag string, args []string) error {
	root, err := rie.RepoRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, "testapp")
	if _, err := run(ctx, filepath.Join(root, "integration"), []string{"CGO_ENABLED=0"},
		"go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./container/testapp"); err != nil {
		return err
	}
	cmd, err := jsonArray(args)
	if err != nil {
		return err
	}
	return buildImage(ctx, dir, tag, "FROM scratch\nCOPY testapp /testapp\nUSER 65532:65532\nENTRYPOINT [\"/testapp\"]\nCMD "+cmd+"\n")
}

// buildBusybox builds BusyboxImage from the host's busybox, which must be
// static (Debian's busybox-static): the image has no libc.
func buildBusybox(ctx context.Context, dir string) error {
	src, err := exec.LookPath("busybox")
	if err != nil {
		return errors.New("busybox is not installed (apt-get install busybox-static; .ci/run does it)")
	}
	if err := requireStatic(src); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "busybox"), data, 0o755); err != nil {
		return err
	}
	return buildImage(ctx, dir, BusyboxImage,
		"FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n")
}

// requireStatic fails unless the ELF file at path asks for no dynamic loader.
func requireStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is linked dynamically; the test image needs a static busybox (apt-get install busybox-static)", path)
		}
	}
	return nil
}

func buildImage(ctx context.Context, dir, tag, dockerfile string) error {
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	return replacing(ctx, tag, func() error {
		_, err := Podman(ctx, "build", "--format", "docker", "-q", "-t", tag, dir)
		return err
	})
}

// jsonArray is args as a JSON array of strings, for a Dockerfile's CMD.
func jsonArray(args []string) (string, error) {
	var b strings.Builder
	b.WriteByte('[')
	for i, a := range args {
		if strings.ContainsAny(a, "\"\\\n") {
			return "", fmt.Errorf("container: argument %q: no quotes, backslashes or newlines", a)
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"` + a + `"`)
	}
	b.WriteByte(']')
	return b.String(), nil
}

// Lock takes an exclusive lock shared by every process on this machine that
// uses these images and pod names (the container tests of two worktrees,
// the demo), held until unlock is called or the process ends.
func Lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "secrets-prefetch-podman.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
