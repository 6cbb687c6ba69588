package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// maxTokenFile bounds what is read of a token file: a token is short.
const maxTokenFile = 64 << 10

// readToken reads a token file: its content, surrounding whitespace
// trimmed. An empty file is an error.
func readToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, maxTokenFile+1)
	n, err := readFull(f, buf)
	if err != nil {
		return "", err
	}
	if n > maxTokenFile {
		return "", fmt.Errorf("%s: longer than %d bytes: not a token", path, maxTokenFile)
	}
	t := strings.TrimSpace(string(buf[:n]))
	if t == "" {
		return "", fmt.Errorf("%s holds no token", path)
	}
	return t, nil
}

func readFull(f *os.File, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := f.Read(buf[n:])
		n += m
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return n, err
			}
			return n, nil // io.EOF, or a read error after some bytes: what was read
		}
	}
	return n, nil
}

// tokenPoll is how often a token file is looked at when its directory
// cannot be watched (no inotify): within DESIGN.md's 2 s of a change.
const tokenPoll = time.Second

// watchToken hands set the token file's new content whenever it changes,
// until ctx ends. It watches the file's directory rather than the file, so
// that a replacement by rename (how tools write files atomically, and how
// Kubernetes updates a mounted Secret through a symlink swap) is seen as
// well as a write in place. A file that becomes empty or unreadable keeps
// the last token (a writer may be half-way through). Values are never
// logged.
func watchToken(ctx context.Context, path, current string, set func(string), log *slog.Logger) {
	reload := func() {
		t, err := readToken(path)
		switch {
		case err != nil:
			log.Warn("token file unreadable; the last token stays in use", "file", path, "error", err)
		case t != current:
			current = t
			set(t)
			log.Info("token file changed; the new token is in use", "file", path)
		}
	}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(filepath.Dir(path)); err != nil {
			w.Close()
		}
	}
	if err != nil {
		log.Warn("cannot watch the token file's directory; looking at it every second instead", "file", path, "error", err)
		go pollToken(ctx, path, reload)
		return
	}
	go func() {
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				// Any change in the directory: the file itself, or a
				// symlink or directory it resolves through.
				reload()
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn("watching the token file", "file", path, "error", err)
				reload() // events may have been lost
			}
		}
	}()
}

// pollToken calls reload when the file's size or time changes.
func pollToken(ctx context.Context, path string, reload func()) {
	stamp := func() string {
		fi, err := os.Stat(path)
		if err != nil {
			return ""
		}
		return fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
	}
	last := stamp()
	t := time.NewTicker(tokenPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s := stamp(); s != last {
				last = s
				reload()
			}
		}
	}
}
