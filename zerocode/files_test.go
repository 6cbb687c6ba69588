package zerocode

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/source"
	"github.com/secrets-prefetch/secrets-prefetch/zerocode/mapping"
)

var _ Getter = (*cache.Cache)(nil)

const (
	valueDB  = "db-password-7c1e-must-not-leak"
	valueTLS = "-----BEGIN PRIVATE KEY-----tls-key-93ab-must-not-leak"
)

// fakeCache serves items by key, or an error.
type fakeCache struct {
	mu    sync.Mutex // protects items, errs and reads
	items map[source.Key]*source.Item
	errs  map[source.Key]error
	reads int
}

func (f *fakeCache) Get(_ context.Context, key source.Key, _ bool) (cache.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if err := f.errs[key]; err != nil {
		return cache.Result{}, err
	}
	it := f.items[key]
	if it == nil {
		return cache.Result{}, &source.Error{Class: source.ClassNotFound, Code: "ResourceNotFoundException", Message: "not found", Key: key}
	}
	return cache.Result{Item: it, Status: cache.Hit}, nil
}

func (f *fakeCache) setSecret(id, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := source.SecretKey(id)
	f.items[k] = &source.Item{Key: k, Body: []byte(`{"SecretString":"redacted-in-test"}`), Text: []byte(value)}
	delete(f.errs, k)
}

func (f *fakeCache) setErr(k source.Key, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[k] = err
}

func newFakeCache() *fakeCache {
	f := &fakeCache{items: map[source.Key]*source.Item{}, errs: map[source.Key]error{}}
	f.setSecret("prod/db", valueDB)
	f.setSecret("prod/tls", `{"key":"`+valueTLS+`","cert":"CERT"}`)
	bin := source.SecretKey("keystore")
	f.items[bin] = &source.Item{Key: bin, Body: []byte(`{"SecretBinary":"AAEC/w==","SecretString":null}`)}
	p := source.ParameterKey("/app/config")
	p.Selector = ":2"
	f.items[p] = &source.Item{Key: p, Body: []byte(`{}`), Text: []byte(`{"debug":false}`)}
	return f
}

// entries parses a mapping with root in place of /tmp.
func entries(t *testing.T, root, s string) []mapping.Entry {
	t.Helper()
	es, errs := mapping.Parse(mapping.File, strings.ReplaceAll(s, "ROOT", mapping.Root))
	if len(errs) != 0 {
		t.Fatalf("mapping: %v", errs)
	}
	for i := range es {
		es[i].Target = root + strings.TrimPrefix(es[i].Target, mapping.Root)
	}
	return es
}

func newFiles(t *testing.T, src Getter, mapping string) (*Files, string, *bytes.Buffer) {
	t.Helper()
	root := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := NewFiles(FilesOptions{Entries: entries(t, root, mapping), Source: src, Logger: log, Root: root})
	return f, root, &logs
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFilesWriteRewriteRemove(t *testing.T) {
	src := newFakeCache()
	f, root, logs := newFiles(t, src, "ROOT/db=secret:prod/db, ROOT/tls/private/key.pem=secret:prod/tls#key, "+
		"ROOT/app.json=param:/app/config:2, ROOT/tls/keystore.p12=secret:keystore")
	if err := os.Mkdir(filepath.Join(root, "pre"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.Write(t.Context()); err != nil {
		t.Fatalf("Write: %v", err)
	}
	want := map[string]string{
		"db": valueDB, "tls/private/key.pem": valueTLS, "app.json": `{"debug":false}`, "tls/keystore.p12": "\x00\x01\x02\xff",
	}
	for rel, content := range want {
		p := filepath.Join(root, rel)
		if got := readFile(t, p); got != content {
			t.Errorf("%s = %q, want %q", rel, got, content)
		}
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", rel, fi.Mode().Perm())
		}
	}
	for _, d := range []string{"tls", "tls/private"} {
		fi, err := os.Stat(filepath.Join(root, d))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("dir %s: %v, mode %v; want 0700", d, err, fi.Mode().Perm())
		}
	}

	// Unchanged values: no file is touched.
	dbPath := filepath.Join(root, "db")
	before := inode(t, dbPath)
	if err := f.Write(t.Context()); err != nil {
		t.Fatal(err)
	}
	if inode(t, dbPath) != before {
		t.Error("an unchanged value was rewritten")
	}

	// A changed value replaces the file by rename: a reader holding the old
	// file keeps it whole, a new open sees the new value.
	old, err := os.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	src.setSecret("prod/db", "rotated-"+valueDB)
	if err := f.Write(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, dbPath); got != "rotated-"+valueDB {
		t.Errorf("after rotation db = %q", got)
	}
	if inode(t, dbPath) == before {
		t.Error("a changed value was written in place, not by rename")
	}
	if b := make([]byte, 64); true {
		n, _ := old.Read(b)
		if string(b[:n]) != valueDB {
			t.Errorf("the old file changed under its reader: %q", b[:n])
		}
	}
	assertNoTemp(t, root)

	// The function's own file in a created directory keeps that directory.
	own := filepath.Join(root, "tls", "own.txt")
	if err := os.WriteFile(own, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	for rel := range want {
		if _, err := os.Stat(filepath.Join(root, rel)); !os.IsNotExist(err) {
			t.Errorf("%s still there after Remove (%v)", rel, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "tls", "private")); !os.IsNotExist(err) {
		t.Error("created empty directory tls/private not removed")
	}
	if _, err := os.Stat(own); err != nil {
		t.Errorf("the function's own file was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "pre")); err != nil {
		t.Errorf("a directory Files did not create was removed: %v", err)
	}
	// No Write after Remove.
	if err := f.Write(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dbPath); !os.IsNotExist(err) {
		t.Error("Write after Remove wrote a file")
	}
	assertNoValues(t, logs.String())
}

func assertNoTemp(t *testing.T, root string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".tmp") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

func assertNoValues(t *testing.T, logs string) {
	t.Helper()
	for _, v := range []string{valueDB, valueTLS, "CERT"} {
		if strings.Contains(logs, v) {
			t.Errorf("a value reached the logs:\n%s", logs)
		}
	}
}

func TestFilesFailures(t *testing.T) {
	src := newFakeCache()
	f, root, logs := newFiles(t, src, "ROOT/db=secret:prod/db, ROOT/missing=secret:nope, ROOT/opt?=secret:nope2, "+
		"ROOT/badkey=secret:prod/tls#nokey, ROOT/binkey?=secret:keystore#k")
	err := f.Write(t.Context())
	if err == nil {
		t.Fatal("Write = nil, want an error for the required entries")
	}
	msg := err.Error()
	for _, want := range []string{"SECRETS_PREFETCH_FILES", "element 2", "missing=secret:nope", "ResourceNotFoundException", "element 4", "JSONKeyNotFound"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	for _, notWant := range []string{"nope2", "binkey"} {
		if strings.Contains(msg, notWant) {
			t.Errorf("error %q names optional entry %q", msg, notWant)
		}
	}
	if !strings.Contains(logs.String(), "optional file not written") || !strings.Contains(logs.String(), "ValueNotJSON") {
		t.Errorf("optional failures not logged:\n%s", logs)
	}
	if got := readFile(t, filepath.Join(root, "db")); got != valueDB {
		t.Errorf("db = %q", got)
	}
	for _, rel := range []string{"missing", "opt", "badkey", "binkey"} {
		if _, err := os.Stat(filepath.Join(root, rel)); !os.IsNotExist(err) {
			t.Errorf("%s exists", rel)
		}
	}

	// Once written, a file survives a failed refresh with its last value.
	src.setErr(source.SecretKey("prod/db"), &source.Error{Class: source.ClassThrottled, Code: "ThrottlingException", Message: "slow down"})
	src.setSecret("nope", "now-here")
	src.setSecret("prod/tls", `{"nokey":"k"}`)
	if err := f.Write(t.Context()); err != nil {
		t.Fatalf("Write = %v, want nil: every required file now exists", err)
	}
	if got := readFile(t, filepath.Join(root, "db")); got != valueDB {
		t.Errorf("db = %q after a failed refresh, want its last value", got)
	}
	if !strings.Contains(logs.String(), "keeps its last value") || !strings.Contains(logs.String(), "ThrottlingException") {
		t.Errorf("failed refresh not logged:\n%s", logs)
	}
	if got := readFile(t, filepath.Join(root, "missing")); got != "now-here" {
		t.Errorf("missing = %q", got)
	}
	assertNoValues(t, logs.String())
}

func TestFilesRefusesUnsafePaths(t *testing.T) {
	src := newFakeCache()
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "isdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{
		filepath.Join(root, "link", "x"),    // through a symbolic link
		filepath.Join(outside, "x"),         // outside the root
		root + "/../" + filepath.Base(root), // not clean
		filepath.Join(root, "isdir"),        // a directory
		filepath.Join(root, "file", "x"),    // under a file
		"relative/x",
	} {
		t.Run(target, func(t *testing.T) {
			e := mapping.Entry{Index: 1, Text: "x=secret:prod/db", Target: target, Kind: mapping.Secret, ID: "prod/db"}
			f := NewFiles(FilesOptions{Entries: []mapping.Entry{e}, Source: src, Root: root})
			if err := f.Write(t.Context()); err == nil {
				t.Errorf("Write to %s succeeded", target)
			}
			entries, _ := os.ReadDir(outside)
			if len(entries) != 0 {
				t.Errorf("wrote outside the root: %v", entries)
			}
			assertNoTemp(t, root)
		})
	}
}

func TestFilesNothingMapped(t *testing.T) {
	src := newFakeCache()
	f := NewFiles(FilesOptions{Source: src})
	if err := f.Write(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if src.reads != 0 {
		t.Errorf("%d reads with nothing mapped", src.reads)
	}
}

// TestFilesRefusalRemovesTheFile: a file whose item is refused (access
// revoked, KMS) or deleted at a refresh is removed, as the cache no longer
// serves the value; a temporary failure keeps it.
func TestFilesRefusalRemovesTheFile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		class  source.Class
		remove bool
	}{
		{"access denied", source.ClassAccessDenied, true},
		{"not found", source.ClassNotFound, true},
		{"throttled", source.ClassThrottled, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newFakeCache()
			f, root, logs := newFiles(t, src, "ROOT/db=secret:prod/db")
			if err := f.Write(t.Context()); err != nil {
				t.Fatal(err)
			}
			src.setErr(source.SecretKey("prod/db"), &source.Error{Class: tc.class, Code: tc.class.String(), Message: "injected"})
			f.Write(t.Context())
			_, err := os.Stat(filepath.Join(root, "db"))
			if removed := os.IsNotExist(err); removed != tc.remove {
				t.Fatalf("file removed %t, want %t (stat: %v)\n%s", removed, tc.remove, err, logs)
			}
			if err := f.Remove(); err != nil {
				t.Fatalf("Remove after: %v", err)
			}
			assertNoValues(t, logs.String())
		})
	}
}
