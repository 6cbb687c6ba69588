package app

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/lifecycle"
)

// tmpDir makes a directory under /tmp, where SECRETS_PREFETCH_FILES may
// write (t.TempDir follows TMPDIR, which may be elsewhere).
func tmpDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "secrets-prefetch-app-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func fileContent(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("reading %s: %v", p, err)
	}
	return string(b)
}

// TestZeroCodeFiles follows SECRETS_PREFETCH_FILES through the lifecycle:
// written during Init (the mapped items prefetched in the same batch as the
// env mapping's), rewritten after an INVOKE refreshed a changed value,
// removed at SHUTDOWN.
func TestZeroCodeFiles(t *testing.T) {
	dir := tmpDir(t)
	dbFile, keyFile := filepath.Join(dir, "sub", "db"), filepath.Join(dir, "key")
	h := newHarness(t, map[string]string{
		"SECRETS_PREFETCH_FILES":         dbFile + "=secret:db, " + keyFile + "=secret:api#key",
		"SECRETS_PREFETCH_ENV":           "API_KEY=secret:api#key",
		"SECRETS_PREFETCH_LAZY":          "false",
		"SECRETS_MANAGER_TTL":            "300",
		"SECRETS_PREFETCH_REFRESH_AHEAD": "0.5",
	})
	h.start(t, t.Context())
	select {
	case <-h.ready:
	case err := <-h.result:
		t.Fatalf("Run returned before ready: %v\n%s", err, h.out.String())
	}
	if got := fileContent(t, dbFile); got != testSecret {
		t.Errorf("db file = %q", got)
	}
	if got := fileContent(t, keyFile); got != testSecret {
		t.Errorf("key file = %q", got)
	}
	fi, _ := os.Stat(dbFile)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("db file mode %v, want 0600", fi.Mode().Perm())
	}
	if got := h.aws.count("BatchGetSecretValue"); got != 1 {
		t.Errorf("BatchGetSecretValue calls = %d, want 1: the mappings' items prefetched together", got)
	}
	// The env mapping's item is prefetched and listed (lazy is off): the
	// exec wrapper's read is a hit.
	if status, body := h.get(t, "/secretsmanager/get?secretId=api&jsonKey=key"); status != http.StatusOK || body != testSecret {
		t.Errorf("read of the env mapping's item = %d %q", status, body)
	}
	if got := h.aws.count("GetSecretValue"); got != 0 {
		t.Errorf("GetSecretValue calls = %d, want 0", got)
	}

	h.aws.mu.Lock()
	h.aws.secrets["db"] = "rotated-" + testSecret
	h.aws.mu.Unlock()
	h.advance(200 * time.Second) // past the refresh-ahead point (150 s), within the TTL
	h.api.Push(extapitest.Invoke("req-1", time.Now().Add(3*time.Second)))
	if err := h.rec.WaitNext(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	if got := fileContent(t, dbFile); got != "rotated-"+testSecret {
		t.Errorf("db file after the INVOKE refresh = %q, want the rotated value", got)
	}

	h.api.Push(extapitest.Shutdown(extapitest.ReasonSpindown, time.Now().Add(2*time.Second)))
	if err := h.wait(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	for _, p := range []string{dbFile, keyFile, filepath.Dir(dbFile)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after SHUTDOWN (%v)", p, err)
		}
	}
	if strings.Contains(h.out.String(), testSecret) {
		t.Errorf("a value reached the logs:\n%s", h.out.String())
	}
}

func TestZeroCodeInitErrors(t *testing.T) {
	dir := tmpDir(t)
	tests := []struct {
		name     string
		env      map[string]string
		wantType string
		wantMsg  []string
	}{
		{
			name:     "bad mapping",
			env:      map[string]string{"SECRETS_PREFETCH_ENV": "A=secret:db, B=sekret:db", "SECRETS_PREFETCH_FILES": "/etc/x=secret:db"},
			wantType: lifecycle.ErrorTypeConfigInvalid,
			wantMsg:  []string{`SECRETS_PREFETCH_ENV: element 2 "B=sekret:db"`, `SECRETS_PREFETCH_FILES: element 1 "/etc/x=secret:db"`},
		},
		{
			name:     "required file missing",
			env:      map[string]string{"SECRETS_PREFETCH_FILES": dir + "/ok=secret:db, " + dir + "/opt?=secret:gone, " + dir + "/req=secret:missing"},
			wantType: lifecycle.ErrorTypePrefetchFailed,
			wantMsg:  []string{"SECRETS_PREFETCH_FILES", "element 3", "req=secret:missing", "ResourceNotFoundException"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.env)
			h.start(t, t.Context())
			if err := h.wait(t); err == nil {
				t.Fatal("Run = nil, want an error")
			}
			errs := h.rec.InitErrors()
			if len(errs) != 1 || errs[0].Type != tt.wantType {
				t.Fatalf("init errors = %+v, want one %s", errs, tt.wantType)
			}
			for _, want := range tt.wantMsg {
				if !strings.Contains(errs[0].Message, want) {
					t.Errorf("init/error message %q lacks %q", errs[0].Message, want)
				}
				if !strings.Contains(h.out.String(), strings.ReplaceAll(want, `"`, `\"`)) && !strings.Contains(h.out.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, h.out.String())
				}
			}
			if strings.Contains(errs[0].Message, "opt?=") {
				t.Errorf("the optional entry is named as a failure: %s", errs[0].Message)
			}
			// A failed Init leaves no file behind.
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("files left after a failed Init: %v", entries)
			}
			if strings.Contains(h.out.String(), testSecret) {
				t.Error("a value reached the logs")
			}
		})
	}
}
