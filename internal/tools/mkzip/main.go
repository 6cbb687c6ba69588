// Command mkzip writes a directory tree into a zip file the way a Lambda
// layer needs it: paths relative to the directory, Unix permission bits kept
// in each entry's external attributes (Lambda unpacks a layer under /opt and
// starts /opt/extensions/* only if they are executable), and every timestamp
// fixed so the same files always give the same zip.
//
// Usage: go run ./internal/tools/mkzip -o out.zip DIR
//
// It exists because zip(1) is not on every build machine; it is a build tool,
// not part of the extension.
package main

import (
	"archive/zip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// epoch is every entry's modification time: the earliest a zip (MS-DOS) time
// can hold, so no build time leaks into the bytes.
var epoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

func main() {
	out := flag.String("o", "", "the zip file to write")
	flag.Parse()
	if *out == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: mkzip -o out.zip DIR")
		os.Exit(2)
	}
	if err := write(*out, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "mkzip:", err)
		os.Exit(1)
	}
}

// write zips dir into out, atomically: a failed run leaves no partial zip.
func write(out, dir string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), ".mkzip-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := Zip(tmp, os.DirFS(dir)); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// Zip writes every directory and regular file of fsys to w, in lexical
// order, with their permission bits. Anything else (a symlink, a device)
// is an error: a layer must not depend on what a link points to at build time.
func Zip(w io.Writer, fsys fs.FS) error {
	zw := zip.NewWriter(w)
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || name == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode()
		if !mode.IsDir() && !mode.IsRegular() {
			return fmt.Errorf("%s: not a regular file or directory (%v)", name, mode.Type())
		}
		h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: epoch}
		if mode.IsDir() {
			h.Name += "/"
			h.Method = zip.Store
		}
		// SetMode records the Unix mode in the high 16 bits of the external
		// attributes and marks the entry as made on Unix, which is where
		// unzip (and Lambda) look for the executable bit.
		h.SetMode(mode)
		fw, err := zw.CreateHeader(h)
		if err != nil || mode.IsDir() {
			return err
		}
		f, err := fsys.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(fw, f)
		return err
	})
	return errors.Join(err, zw.Close())
}
