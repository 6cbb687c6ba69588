// Package layer tests the shipped artifact: `make layer` and the SAM
// build-<LayerId> targets produce what Lambda expects of a layer, for x86_64
// and arm64.
package layer

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/secrets-prefetch/secrets-prefetch/integration/rie"
)

// testVersion is passed as VERSION; it must come out in the binary
// (-X main.version) and in the zip names.
const testVersion = "v0.0.0-layertest"

// arches are Lambda's architectures and the ELF machine each must carry.
var arches = []struct {
	name    string // as Lambda and the zip name spell it
	machine elf.Machine
	layerID string // the template's layer resource for it
}{
	{"x86_64", elf.EM_X86_64, "SecretsPrefetchLayerX86"},
	{"arm64", elf.EM_AARCH64, "SecretsPrefetchLayerArm64"},
}

const (
	extensionPath = "extensions/secrets-prefetch"
	wrapperPath   = "secrets-prefetch-env"
	wrapperSource = "layer/secrets-prefetch-env" // in the repository
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := rie.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// runMake runs make in the repository root with extra environment.
func runMake(t *testing.T, root string, env []string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make is required (apt-get install make): %v", err)
	}
	cmd := exec.Command("make", append([]string{"--no-print-directory"}, args...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %v: %v\n%s", args, err, out)
	}
	t.Logf("make %v:\n%s", args, out)
}

func TestMakeLayer(t *testing.T) {
	root := repoRoot(t)
	dist := t.TempDir()
	runMake(t, root, nil, "layer", "VERSION="+testVersion, "DIST="+dist, "LAYER_TMP="+t.TempDir())
	wrapper := readWrapper(t, root)

	for _, a := range arches {
		t.Run(a.name, func(t *testing.T) {
			name := filepath.Join(dist, "secrets-prefetch-"+testVersion+"-"+a.name+".zip")
			zr, err := zip.OpenReader(name)
			if err != nil {
				t.Fatalf("make layer did not write %s: %v", filepath.Base(name), err)
			}
			defer zr.Close()

			files := map[string]*zip.File{}
			var names []string
			for _, f := range zr.File {
				files[f.Name] = f
				names = append(names, f.Name)
			}
			want := []string{"extensions/", extensionPath, wrapperPath}
			if !slices.Equal(names, want) {
				t.Errorf("entries = %q, want %q", names, want)
			}
			if d := files["extensions/"]; d != nil && !d.Mode().IsDir() {
				t.Errorf("extensions/ has mode %v, want a directory", d.Mode())
			}

			bin := files[extensionPath]
			if bin == nil {
				t.Fatalf("no %s in the zip", extensionPath)
			}
			checkExecutable(t, extensionPath, bin.Mode())
			checkBinary(t, read(t, bin), a.machine)

			w := files[wrapperPath]
			if w == nil {
				t.Fatalf("no %s in the zip", wrapperPath)
			}
			checkExecutable(t, wrapperPath, w.Mode())
			if got := read(t, w); !bytes.Equal(got, wrapper) {
				t.Errorf("%s differs from %s", wrapperPath, wrapperSource)
			}
		})
	}
}

// TestSAMBuildTargets runs each layer's build-<LogicalId> target as `sam
// build` does (BuildMethod: makefile): ARTIFACTS_DIR in the environment,
// the Makefile named with --makefile.
func TestSAMBuildTargets(t *testing.T) {
	root := repoRoot(t)
	wrapper := readWrapper(t, root)
	for _, a := range arches {
		t.Run(a.layerID, func(t *testing.T) {
			artifacts := t.TempDir()
			runMake(t, root, []string{"ARTIFACTS_DIR=" + artifacts, "VERSION=" + testVersion},
				"--makefile", filepath.Join(root, "Makefile"), "build-"+a.layerID)

			fi, err := os.Stat(filepath.Join(artifacts, extensionPath))
			if err != nil {
				t.Fatalf("build-%s wrote no %s: %v", a.layerID, extensionPath, err)
			}
			checkExecutable(t, extensionPath, fi.Mode())
			data, err := os.ReadFile(filepath.Join(artifacts, extensionPath))
			if err != nil {
				t.Fatal(err)
			}
			checkBinary(t, data, a.machine)

			var got []string
			filepath.WalkDir(artifacts, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(artifacts, p)
					got = append(got, rel)
				}
				return err
			})
			want := []string{extensionPath, wrapperPath}
			fi, err = os.Stat(filepath.Join(artifacts, wrapperPath))
			if err != nil {
				t.Fatalf("no %s: %v", wrapperPath, err)
			}
			checkExecutable(t, wrapperPath, fi.Mode())
			if got, _ := os.ReadFile(filepath.Join(artifacts, wrapperPath)); !bytes.Equal(got, wrapper) {
				t.Errorf("%s differs from %s", wrapperPath, wrapperSource)
			}
			if !slices.Equal(got, want) {
				t.Errorf("artifacts = %q, want %q", got, want)
			}
		})
	}
}

// readWrapper returns the repository's wrapper script.
func readWrapper(t *testing.T, root string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, wrapperSource))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("#!")) {
		t.Errorf("%s has no #! line: Lambda execs it directly", wrapperSource)
	}
	return data
}

func checkExecutable(t *testing.T, name string, mode fs.FileMode) {
	t.Helper()
	if !mode.IsRegular() || mode.Perm() != 0o755 {
		t.Errorf("%s has mode %v, want -rwxr-xr-x", name, mode)
	}
}

// checkBinary checks what Lambda needs of the extension's executable: a
// 64-bit Linux ELF for the layer's architecture, static (no dynamic loader
// to find in the execution environment), with the version stamped in.
func checkBinary(t *testing.T, data []byte, machine elf.Machine) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not an ELF file: %v", err)
	}
	defer f.Close()
	if f.Machine != machine || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC {
		t.Errorf("ELF machine %v class %v type %v, want %v ELFCLASS64 ET_EXEC", f.Machine, f.Class, f.Type, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (%v): want CGO_ENABLED=0", p.Type)
		}
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: want -ldflags -s -w")
	}
	if !bytes.Contains(data, []byte(testVersion)) {
		t.Errorf("the binary does not contain VERSION %q: want -X main.version", testVersion)
	}
}

func read(t *testing.T, f *zip.File) []byte {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
