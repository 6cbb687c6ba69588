package container_test

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/secrets-prefetch/secrets-prefetch/integration/container"
)

// TestImage checks what `make image` built: its configuration (a numeric
// non-root user, the agent as entrypoint, the healthcheck subcommand as
// HEALTHCHECK) and every file in it: the static binary, the host's CA
// certificates, the user's /etc/passwd and /etc/group entries, and nothing
// else (no shell, no package manager).
func TestImage(t *testing.T) {
	requirePodman(t)
	ctx := testCtx(t)
	t.Logf("make image took %s", imageBuild.Round(1e6))

	var img []struct {
		Size   int64
		Config struct {
			User       string
			Entrypoint []string
			Cmd        []string
		}
		HealthCheck *struct{ Test []string }
	}
	if err := json.Unmarshal([]byte(podman(t, ctx, "image", "inspect", container.AgentImage)), &img); err != nil || len(img) != 1 {
		t.Fatalf("podman image inspect: %v (%d images)", err, len(img))
	}
	c := img[0]
	t.Logf("image %s: %.1f MB", container.AgentImage, float64(c.Size)/1e6)
	if c.Config.User != "65532:65532" {
		t.Errorf("User = %q, want 65532:65532 (numeric, non-root)", c.Config.User)
	}
	if want := []string{"/secrets-prefetch", "agent"}; !slices.Equal(c.Config.Entrypoint, want) || len(c.Config.Cmd) > 0 {
		t.Errorf("Entrypoint %q Cmd %q, want %q and no Cmd", c.Config.Entrypoint, c.Config.Cmd, want)
	}
	if want := []string{"CMD", "/secrets-prefetch", "healthcheck"}; c.HealthCheck == nil || !slices.Equal(c.HealthCheck.Test, want) {
		t.Errorf("HealthCheck = %+v, want Test %q (a podman build without --format docker drops it)", c.HealthCheck, want)
	}

	name := "secrets-prefetch-test-image"
	removeAfter(t, name)
	podman(t, ctx, "create", "--name", name, container.AgentImage)
	files := exportFiles(t, ctx, name)
	var got []string
	for path := range files {
		got = append(got, path)
	}
	slices.Sort(got)
	want := []string{"etc/group", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "secrets-prefetch"}
	if !slices.Equal(got, want) {
		t.Errorf("the image's files are %q, want exactly %q", got, want)
	}
	hostCAs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatal(err)
	}
	if f := files["etc/ssl/certs/ca-certificates.crt"]; !bytes.Equal(f.data, hostCAs) || !bytes.Contains(f.data, []byte("-----BEGIN CERTIFICATE-----")) {
		t.Errorf("the image's CA certificates (%d bytes) are not the host's bundle (%d bytes)", len(f.data), len(hostCAs))
	}
	if f := files["etc/passwd"]; !strings.Contains(string(f.data), ":x:65532:65532:") {
		t.Errorf("/etc/passwd has no entry for 65532: %q", f.data)
	}
	bin := files["secrets-prefetch"]
	if bin.mode&0o111 == 0 || bin.uid != 0 {
		t.Errorf("/secrets-prefetch: mode %o owner %d, want executable and owned by root (not writable by the agent's user)", bin.mode, bin.uid)
	}
	exe, err := elf.NewFile(bytes.NewReader(bin.data))
	if err != nil {
		t.Fatalf("/secrets-prefetch: %v", err)
	}
	for _, p := range exe.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("/secrets-prefetch asks for a dynamic loader: the image has no libc")
		}
	}
	if exe.Section(".symtab") != nil {
		t.Errorf("/secrets-prefetch has a symbol table: want it stripped (-s -w)")
	}

	// The binary runs in the image, as its user; version needs no config.
	out, err := exec.CommandContext(ctx, "podman", "run", "--rm", "--entrypoint", "/secrets-prefetch", container.AgentImage, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Errorf("secrets-prefetch version in the image: %v: %q", err, out)
	}
}

type file struct {
	data []byte
	mode int64
	uid  int
}

// exportFiles reads the regular files of container name's filesystem
// (`podman export`), without the ones podman adds to every container.
func exportFiles(t *testing.T, ctx context.Context, name string) map[string]file {
	t.Helper()
	cmd := exec.CommandContext(ctx, "podman", "export", name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("podman export: %v\n%s", err, stderr.Bytes())
	}
	files := map[string]file{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("podman export: %v", err)
		}
		path := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag == tar.TypeDir {
			continue
		}
		// Mount points podman makes in every container, empty.
		if slices.Contains([]string{"etc/hosts", "etc/resolv.conf", "etc/hostname", "run/.containerenv"}, path) && h.Size == 0 {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[path] = file{data: data, mode: h.Mode, uid: h.Uid}
	}
	return files
}
