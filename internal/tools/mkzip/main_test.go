package main

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

func TestZipKeepsModesAndOrder(t *testing.T) {
	fsys := fstest.MapFS{
		"extensions/secrets-prefetch": {Data: []byte("\x7fELF..."), Mode: 0o755},
		"secrets-prefetch-env":        {Data: []byte("#!/bin/sh\n"), Mode: 0o755},
		"README":                      {Data: []byte("read me"), Mode: 0o644},
	}
	var buf bytes.Buffer
	if err := Zip(&buf, fsys); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		mode os.FileMode
		data string
	}{
		{"README", 0o644, "read me"},
		{"extensions/", os.ModeDir | 0o555, ""}, // MapFS synthesizes directories as 0555
		{"extensions/secrets-prefetch", 0o755, "\x7fELF..."},
		{"secrets-prefetch-env", 0o755, "#!/bin/sh\n"},
	}
	if len(zr.File) != len(want) {
		t.Fatalf("%d entries, want %d", len(zr.File), len(want))
	}
	for i, f := range zr.File {
		w := want[i]
		if f.Name != w.name || f.Mode() != w.mode {
			t.Errorf("entry %d = %s %v, want %s %v", i, f.Name, f.Mode(), w.name, w.mode)
		}
		// The Unix mode must be in the external attributes' high half, with
		// the creator marked as Unix (3), where unzip and Lambda read it.
		if f.CreatorVersion>>8 != 3 || os.FileMode(f.ExternalAttrs>>16)&0o777 != w.mode&0o777 {
			t.Errorf("%s: creator %d, external attrs %#x", f.Name, f.CreatorVersion>>8, f.ExternalAttrs)
		}
		if !f.Modified.Equal(epoch) {
			t.Errorf("%s: modified %v, want the fixed epoch", f.Name, f.Modified)
		}
		if w.mode.IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != w.data {
			t.Errorf("%s: data %q, want %q", f.Name, got, w.data)
		}
	}
}

func TestZipIsReproducible(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "extensions"), 0o755)
	os.WriteFile(filepath.Join(dir, "extensions", "x"), []byte("binary"), 0o755)
	a, b := filepath.Join(t.TempDir(), "a.zip"), filepath.Join(t.TempDir(), "b.zip")
	if err := write(a, dir); err != nil {
		t.Fatal(err)
	}
	// A later mtime must not change the bytes.
	os.Chtimes(filepath.Join(dir, "extensions", "x"), epoch.AddDate(40, 0, 0), epoch.AddDate(40, 0, 0))
	if err := write(b, dir); err != nil {
		t.Fatal(err)
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) {
		t.Error("two zips of the same files differ")
	}
	if fi, err := os.Stat(a); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("zip file mode = %v, %v; want 0644", fi.Mode(), err)
	}
}

func TestZipRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Skip(err)
	}
	if err := Zip(io.Discard, os.DirFS(dir)); err == nil {
		t.Error("Zip with a symlink = nil, want an error")
	}
}
