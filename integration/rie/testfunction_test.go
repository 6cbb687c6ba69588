package rie

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
)

// testFunction is a test function of the integration module (a package
// under ../testfunc), built once per test process into the shared folder.
type testFunction struct {
	pkg  string // as go build takes it, from the integration module's root
	file string // its file name in the shared folder

	once sync.Once
	bin  string
	err  error
}

// path builds the function on first use and returns its path.
func (f *testFunction) path(t *testing.T) string {
	t.Helper()
	f.once.Do(func() {
		dir, err := sharedDir()
		if err != nil {
			f.err = err
			return
		}
		root, err := RepoRoot()
		if err != nil {
			f.err = err
			return
		}
		f.bin = filepath.Join(dir, f.file)
		_, f.err = run(context.Background(), filepath.Join(root, "integration"), "go", "build", "-o", f.bin, f.pkg)
	})
	if f.err != nil {
		t.Fatalf("build the test function %s: %v", f.pkg, f.err)
	}
	return f.bin
}
