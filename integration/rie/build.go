package rie

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

const rootModule = "module github.com/secrets-prefetch/secrets-prefetch"

// Binaries are the executables one run needs.
type Binaries struct {
	RIE       string // aws-lambda-rie
	Extension string // the extension; its file name is its Lambda-Extension-Name
	Function  string // the function's bootstrap (package testfunc)
}

// RepoRoot finds the root module's directory by walking up from the working
// directory, so tests (run in integration/rie) and the demo (run in
// integration) agree without relying on source paths, which -trimpath hides.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(mod), []byte(rootModule+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("rie: no enclosing directory holds the secrets-prefetch root go.mod")
		}
		dir = parent
	}
}

// Build installs RIE (scripts/install-rie.sh, cached under .cache/bin) and
// builds the extension (from the root module) and the test function into dir.
func Build(ctx context.Context, dir string) (Binaries, error) {
	b, err := buildBase(ctx, dir)
	if err != nil {
		return Binaries{}, err
	}
	b.Extension, err = buildExtension(ctx, dir)
	return b, err
}

// buildBase installs RIE and builds the test function into dir.
func buildBase(ctx context.Context, dir string) (Binaries, error) {
	root, err := RepoRoot()
	if err != nil {
		return Binaries{}, err
	}
	out, err := run(ctx, root, "bash", filepath.Join(root, "scripts", "install-rie.sh"))
	if err != nil {
		return Binaries{}, fmt.Errorf("install RIE: %w", err)
	}
	b := Binaries{RIE: strings.TrimSpace(out), Function: filepath.Join(dir, "bootstrap")}
	if _, err := run(ctx, filepath.Join(root, "integration"), "go", "build", "-o", b.Function, "./testfunc/bootstrap"); err != nil {
		return Binaries{}, fmt.Errorf("build test function: %w", err)
	}
	return b, nil
}

// buildExtension builds the root module into dir/secrets-prefetch.
func buildExtension(ctx context.Context, dir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "secrets-prefetch")
	if _, err := run(ctx, root, "go", "build", "-trimpath", "-o", bin, "."); err != nil {
		return "", fmt.Errorf("build extension: %w", err)
	}
	return bin, nil
}

// run runs a build step and returns its stdout; stderr goes into the error.
func run(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	// Static binaries, as shipped; and no cgo toolchain needed.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.String(), nil
}

// shared holds the binaries built once per test process: building per test
// would cost seconds each. The extension is built apart so that harness tests
// with a stand-in extension do not depend on it. RemoveBuilds deletes them.
var shared struct {
	dirOnce sync.Once
	dir     string
	dirErr  error

	baseOnce sync.Once
	base     Binaries
	baseErr  error

	extOnce sync.Once
	ext     string
	extErr  error
}

func sharedDir() (string, error) {
	shared.dirOnce.Do(func() { shared.dir, shared.dirErr = os.MkdirTemp("", "rie-bin-") })
	return shared.dir, shared.dirErr
}

// sharedBinaries returns the per-process RIE and test function, plus the
// extension when withExtension is set.
func sharedBinaries(withExtension bool) (Binaries, error) {
	dir, err := sharedDir()
	if err != nil {
		return Binaries{}, err
	}
	shared.baseOnce.Do(func() { shared.base, shared.baseErr = buildBase(context.Background(), dir) })
	if shared.baseErr != nil || !withExtension {
		return shared.base, shared.baseErr
	}
	shared.extOnce.Do(func() { shared.ext, shared.extErr = buildExtension(context.Background(), dir) })
	b := shared.base
	b.Extension = shared.ext
	return b, shared.extErr
}

// RemoveBuilds deletes the binaries built for this test process; call it from
// TestMain after m.Run.
func RemoveBuilds() {
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
}
