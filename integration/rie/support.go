package rie

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Supported reports why RIE cannot run here, or nil. RIE hard-codes
// /opt/extensions, so the harness bind-mounts a temp dir over /opt inside a
// private mount namespace: that needs root and a permitted `unshare -m`.
func Supported() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (to bind-mount a private /opt for RIE in a mount namespace); run as root, e.g. in CI or a container")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return errors.New("needs `unshare` from util-linux (apt-get install util-linux, or scripts/install-rie.sh --check-unshare)")
	}
	out, err := exec.Command("unshare", "-m", "--propagation", "private", "true").CombinedOutput()
	if err != nil {
		return fmt.Errorf("`unshare -m` is not permitted here (%v: %s); a container needs CAP_SYS_ADMIN, e.g. docker run --privileged", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// requireSupported skips the test when RIE cannot run, except under CI=true,
// where the suite must run and a skip would hide that it did not.
func requireSupported(t testing.TB) {
	t.Helper()
	if err := Supported(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("rie: cannot run under CI: %v", err)
		}
		t.Skipf("rie: %v", err)
	}
}
