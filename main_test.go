package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinaryCarriesOnlyWhatItNeeds builds the extension as it ships and
// checks the modules linked into it: the AWS SDK and its helpers only, never
// a test-only dependency such as the AWS emulator or the Lambda emulator.
func TestBinaryCarriesOnlyWhatItNeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "secrets-prefetch")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	// BurntSushi/toml reads the agent's config file; fsnotify (and x/sys,
	// its system calls) watches the agent's token file.
	allowed := []string{"github.com/aws/aws-sdk-go-v2", "github.com/aws/smithy-go", "golang.org/x/sync",
		"github.com/BurntSushi/toml", "github.com/fsnotify/fsnotify", "golang.org/x/sys"}
	deps := 0
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "dep" {
			continue
		}
		deps++
		ok := false
		for _, a := range allowed {
			ok = ok || strings.HasPrefix(f[1], a)
		}
		if !ok {
			t.Errorf("the binary links %s, which is not one of the shipped dependencies %v", f[1], allowed)
		}
	}
	if deps == 0 {
		t.Fatalf("go version -m listed no dependencies:\n%s", out)
	}
}
