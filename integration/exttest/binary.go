package exttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/secrets-prefetch/secrets-prefetch/integration/rie"
)

// Binary is the secrets-prefetch binary (the root module, static, as
// shipped) built once per test process for the suites that run it as a
// process. Its zero value is ready to use; call Remove from TestMain.
type Binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Path builds the binary on first use and returns its path.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		root, err := rie.RepoRoot()
		if err != nil {
			b.err = err
			return
		}
		if b.dir, err = os.MkdirTemp("", "secrets-prefetch-bin-"); err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(b.dir, "secrets-prefetch")
		cmd := exec.Command("go", "build", "-trimpath", "-o", b.path, ".")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Remove deletes the built binary, if any.
func (b *Binary) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}
