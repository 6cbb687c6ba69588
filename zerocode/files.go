package zerocode

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/internal/names"
	"github.com/secrets-prefetch/secrets-prefetch/source"
	"github.com/secrets-prefetch/secrets-prefetch/zerocode/mapping"
)

// Getter reads a cached item. *cache.Cache implements it.
type Getter interface {
	Get(ctx context.Context, key source.Key, refreshNow bool) (cache.Result, error)
}

// FilesOptions configure Files.
type FilesOptions struct {
	Entries []mapping.Entry // the SECRETS_PREFETCH_FILES mapping
	Source  Getter
	Logger  *slog.Logger
	// Root is the directory every file must be under; default mapping.Root
	// (/tmp). Tests point it at a temporary directory.
	Root string
}

// Files keeps the files of a SECRETS_PREFETCH_FILES mapping: each written
// atomically with mode 0600 (directories it creates 0700), rewritten when its
// value changes, removed by Remove. It is safe for concurrent use.
type Files struct {
	entries []mapping.Entry
	src     Getter
	log     *slog.Logger
	root    string

	mu      sync.Mutex                   // protects the fields below; held across file I/O, which is local and short
	written map[string][sha256.Size]byte // path -> digest of the content last written
	dirs    []string                     // directories created, in creation order
	closed  bool
}

// NewFiles returns the files of a mapping. Nothing is written until Write.
func NewFiles(o FilesOptions) *Files {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root := o.Root
	if root == "" {
		root = mapping.Root
	}
	return &Files{entries: o.Entries, src: o.Source, log: log, root: filepath.Clean(root), written: map[string][sha256.Size]byte{}}
}

// maxParallelReads bounds the reads one Write does at once.
const maxParallelReads = 8

// Write writes every file whose value is new or changed. A file whose value
// can't be had now keeps its last content (if any) and the failure is
// logged. Write returns an error naming each entry, not marked optional,
// that still has no file: during Init that fails Init.
func (f *Files) Write(ctx context.Context) error {
	if len(f.entries) == 0 {
		return nil
	}
	// Read in parallel (each read is bounded by the cache's fetch timeout),
	// then write in order.
	values := make([][]byte, len(f.entries))
	errs := make([]error, len(f.entries))
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelReads)
	for i, e := range f.entries {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			values[i], errs[i] = f.read(ctx, e)
		})
	}
	wg.Wait()

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	var missing []string
	for i, e := range f.entries {
		err := errs[i]
		if err == nil {
			err = f.update(e.Target, values[i])
			clear(values[i]) // a copy of the value; the cache keeps its own
		}
		if err == nil {
			continue
		}
		_, had := f.written[e.Target]
		var serr *source.Error
		if had && errors.As(err, &serr) && !serr.Class.Temporary() {
			// Deleted, or access to it revoked: the file must no longer
			// hold the value, as the cache no longer serves it.
			if rerr := os.Remove(e.Target); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				f.log.Error("file of a refused item not removed", "variable", "SECRETS_PREFETCH_FILES", "element", e.Index, "entry", e.Text, "error", rerr)
				continue
			}
			delete(f.written, e.Target)
			f.log.Warn("file removed: its item was refused or deleted", "variable", "SECRETS_PREFETCH_FILES", "element", e.Index, "entry", e.Text, "code", serr.Code)
			continue
		}
		switch {
		case had:
			f.log.Warn("file not updated; it keeps its last value", "variable", "SECRETS_PREFETCH_FILES", "element", e.Index, "entry", e.Text, "error", err)
		case e.Optional:
			f.log.Warn("optional file not written", "variable", "SECRETS_PREFETCH_FILES", "element", e.Index, "entry", e.Text, "error", err)
		default:
			f.log.Error("file not written", "variable", "SECRETS_PREFETCH_FILES", "element", e.Index, "entry", e.Text, "error", err)
			missing = append(missing, fmt.Sprintf("element %d %s (%s)", e.Index, names.Quote(e.Text), errorCode(err)))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("SECRETS_PREFETCH_FILES: required files could not be written: %s", strings.Join(missing, ", "))
	}
	return nil
}

// read returns a fresh copy of the entry's value.
func (f *Files) read(ctx context.Context, e mapping.Entry) ([]byte, error) {
	res, err := f.src.Get(ctx, Key(e), false)
	if err != nil {
		return nil, err
	}
	v, err := itemValue(res.Item)
	if err != nil {
		return nil, err
	}
	b, err := pick(v, e)
	if err != nil {
		return nil, err
	}
	return slices.Clone(b), nil
}

// errorCode names an error for an Init message: its AWS or API code.
func errorCode(err error) string {
	var serr *source.Error
	var verr *ValueError
	switch {
	case errors.As(err, &serr):
		return serr.Code
	case errors.As(err, &verr):
		return verr.Code
	case errors.Is(err, cache.ErrNotConfigured):
		return "NotConfigured"
	case errors.Is(err, cache.ErrClosed):
		return "ShuttingDown"
	}
	return err.Error() // a file system error: names paths, not values
}

// update writes data to p unless p already holds it. Requires mu.
func (f *Files) update(p string, data []byte) error {
	sum := sha256.Sum256(data)
	if old, ok := f.written[p]; ok && old == sum {
		return nil
	}
	if err := f.writeFile(p, data); err != nil {
		return err
	}
	f.written[p] = sum
	f.log.Debug("file written", "path", p, "bytes", len(data))
	return nil
}

// writeFile writes data to p atomically: a temporary file in the same
// directory, mode 0600, synced, then renamed over p, so a reader sees the old
// content or the new, never a mix. Requires mu.
func (f *Files) writeFile(p string, data []byte) (err error) {
	if err := f.checkPath(p); err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := f.mkdirs(dir); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(p)+".*.tmp") // created 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil { // whatever the umask
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// checkPath refuses a path outside the root, whatever the parser allowed.
func (f *Files) checkPath(p string) error {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || !strings.HasPrefix(p, f.root+string(filepath.Separator)) {
		return fmt.Errorf("%s is not a clean path under %s", p, f.root)
	}
	return nil
}

// mkdirs creates the directories from the root down to dir with mode 0700,
// refusing to go through a symbolic link, which could lead outside the root.
// Requires mu.
func (f *Files) mkdirs(dir string) error {
	rel, err := filepath.Rel(f.root, dir)
	if err != nil {
		return err
	}
	cur := f.root
	if rel == "." {
		return nil
	}
	for seg := range strings.SplitSeq(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, seg)
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(cur, 0o700); err != nil {
				return err
			}
			f.dirs = append(f.dirs, cur)
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symbolic link; files are only written through real directories", cur)
		case !fi.IsDir():
			return fmt.Errorf("%s is not a directory", cur)
		}
	}
	return nil
}

// Remove deletes every file Write wrote and the directories it created (if
// empty), and stops later Writes. Call it at SHUTDOWN, before the cache is
// wiped.
func (f *Files) Remove() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	var errs []error
	for _, e := range f.entries {
		if _, ok := f.written[e.Target]; !ok {
			continue
		}
		if err := os.Remove(e.Target); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		delete(f.written, e.Target)
	}
	for _, d := range slices.Backward(f.dirs) {
		os.Remove(d) // only if empty: the function may keep files of its own there
	}
	f.dirs = nil
	return errors.Join(errs...)
}
