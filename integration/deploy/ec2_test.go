package deploy_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/rie"
)

// TestEC2Install runs examples/ec2/install.sh into a temporary root (ROOT=),
// twice, and checks what it made: the user and the token group, the token
// file readable by root and that group only, the binary, the config and the
// unit; the second run changes nothing it should keep. Then it starts the
// agent as the unit does (its ExecStart, Environment and EnvironmentFile,
// as its User, Group and SupplementaryGroups, paths under the root) against
// the emulated AWS: the agent, not root, reads the token file through the
// group, and a read with that token gets the secret named in agent.toml.
func TestEC2Install(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the install script test needs root (it creates users in a temporary root), and CI runs as root")
		}
		t.Skip("needs root: install.sh creates a user and a group (in a temporary root); under CI=true this fails instead")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	repo, err := rie.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// A temporary folder the agent's user can go through (t.TempDir's is
	// root's alone).
	dir, err := os.MkdirTemp("", "secrets-prefetch-ec2-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "secrets-prefetch")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, ".")
	build.Dir, build.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	root := filepath.Join(dir, "root")
	script := filepath.Join(repo, "examples", "ec2", "install.sh")
	install := func() {
		t.Helper()
		cmd := exec.CommandContext(ctx, "bash", script, bin)
		cmd.Env = append(os.Environ(), "ROOT="+root)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("install.sh: %v\n%s", err, out)
		}
	}
	install()

	uid, gid := lookup(t, root, "passwd", "secrets-prefetch"), lookup(t, root, "group", "secrets-prefetch")
	tokenGID := lookup(t, root, "group", "secrets-prefetch-token")
	tokenPath := filepath.Join(root, "etc", "secrets-prefetch", "token")
	st := stat(t, tokenPath)
	if st.Mode&0o777 != 0o640 || st.Uid != 0 || int(st.Gid) != tokenGID {
		t.Errorf("token: mode %o owner %d:%d, want 0640 root:secrets-prefetch-token (%d)", st.Mode&0o777, st.Uid, st.Gid, tokenGID)
	}
	token, err := os.ReadFile(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9+/]{43}=\n$`).Match(token) {
		t.Errorf("token %d bytes: want 32 random bytes in base64 and a newline", len(token))
	}
	if st := stat(t, filepath.Join(root, "usr", "local", "bin", "secrets-prefetch")); st.Mode&0o777 != 0o755 || st.Uid != 0 {
		t.Errorf("binary: mode %o owner %d, want 0755 root", st.Mode&0o777, st.Uid)
	}
	if members := field(t, root, "group", "secrets-prefetch-token", 3); members != "secrets-prefetch" {
		t.Errorf("secrets-prefetch-token's members: %q, want the agent's user", members)
	}
	if shell := field(t, root, "passwd", "secrets-prefetch", 6); shell != "/usr/sbin/nologin" {
		t.Errorf("the agent's user has the shell %q, want none (/usr/sbin/nologin)", shell)
	}

	// Again: an upgrade keeps the token, the config and the users.
	config := filepath.Join(root, "etc", "secrets-prefetch", "agent.toml")
	if err := os.WriteFile(config, append(readFile(t, config), "# edited\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	passwd := readFile(t, filepath.Join(root, "etc", "passwd"))
	install()
	if again := readFile(t, tokenPath); string(again) != string(token) {
		t.Error("a second install.sh replaced the token")
	}
	if !strings.HasSuffix(string(readFile(t, config)), "# edited\n") {
		t.Error("a second install.sh replaced the edited agent.toml")
	}
	if again := readFile(t, filepath.Join(root, "etc", "passwd")); string(again) != string(passwd) {
		t.Errorf("a second install.sh changed /etc/passwd:\n%s\n->\n%s", passwd, again)
	}

	runAsUnit(t, ctx, root, string(token), uid, gid, tokenGID)
}

// runAsUnit starts the installed agent as the unit file says, against the
// emulated AWS, reads agent.toml's secret through it, and stops it.
func runAsUnit(t *testing.T, ctx context.Context, root, token string, uid, gid, tokenGID int) {
	unit := unitFile(t, filepath.Join(root, "etc", "systemd", "system", "secrets-prefetch.service"))
	for key, want := range map[string]string{"User": "secrets-prefetch", "Group": "secrets-prefetch", "SupplementaryGroups": "secrets-prefetch-token"} {
		if got := unit[key]; len(got) != 1 || got[0] != want {
			t.Fatalf("the unit's %s= is %q, want %q", key, got, want)
		}
	}
	underRoot := func(s string) string {
		for _, dir := range []string{"/etc/secrets-prefetch/", "/usr/local/bin/"} {
			s = strings.ReplaceAll(s, dir, root+dir)
		}
		return s
	}
	a := awstest.Start(t)
	if _, err := a.PutSecretString(ctx, "my-app/db", "ec2-db-value"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutParameter(ctx, "/my-app/config/greeting", "ec2-greeting", "SecureString"); err != nil {
		t.Fatal(err)
	}
	// The settings an instance gives through its profile and the regional
	// endpoint, and a free port, go in the unit's EnvironmentFile.
	listen := freeAddr(t)
	envFile := underRoot(strings.TrimPrefix(unit["EnvironmentFile"][0], "-"))
	if err := os.WriteFile(envFile, []byte(strings.Join(append(a.Env(), "SECRETS_PREFETCH_LISTEN="+listen), "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(envFile, 0, gid); err != nil {
		t.Fatal(err)
	}

	args := strings.Fields(underRoot(unit["ExecStart"][0]))
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	for _, e := range unit["Environment"] {
		cmd.Env = append(cmd.Env, underRoot(e))
	}
	for _, line := range strings.Split(strings.TrimSpace(string(readFile(t, envFile))), "\n") {
		cmd.Env = append(cmd.Env, line)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
		Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(tokenGID)},
	}}
	cmd.WaitDelay = 10 * time.Second
	out, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); w.Close() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	var log strings.Builder
	ready := false
	sc := bufio.NewScanner(out)
	for !ready && sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		ready = strings.Contains(sc.Text(), "msg=ready") || strings.Contains(sc.Text(), `"msg":"ready"`)
	}
	if !ready {
		t.Fatalf("the agent did not get ready: %v\n%s", <-exited, log.String())
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+listen+"/secretsmanager/get?secretId=my-app/db", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Aws-Parameters-Secrets-Token", strings.TrimSpace(token))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "ec2-db-value") || resp.Header.Get("X-Cache") != "hit" {
		t.Errorf("read through the installed agent: %d X-Cache %q: %s", resp.StatusCode, resp.Header.Get("X-Cache"), body)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Errorf("the agent after SIGTERM: %v, want exit 0\n%s", err, log.String())
	}
}

// unitFile reads a systemd unit's Key=value lines (every section).
func unitFile(t *testing.T, path string) map[string][]string {
	t.Helper()
	m := map[string][]string{}
	for _, line := range strings.Split(string(readFile(t, path)), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q", path, line)
		}
		m[k] = append(m[k], v)
	}
	return m
}

// lookup is NAME's numeric id in ROOT/etc/FILE.
func lookup(t *testing.T, root, file, name string) int {
	t.Helper()
	id, err := strconv.Atoi(field(t, root, file, name, 2))
	if err != nil {
		t.Fatalf("%s in %s/etc/%s: %v", name, root, file, err)
	}
	return id
}

// field is field n (from 0) of NAME's line in ROOT/etc/FILE.
func field(t *testing.T, root, file, name string, n int) string {
	t.Helper()
	for _, line := range strings.Split(string(readFile(t, filepath.Join(root, "etc", file))), "\n") {
		f := strings.Split(line, ":")
		if f[0] == name && len(f) > n {
			return f[n]
		}
	}
	t.Fatalf("no %s in %s/etc/%s", name, root, file)
	return ""
}

func stat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// freeAddr is a free 127.0.0.1:port, for the agent to bind (see
// exttest.FreeAddr: not one another process is soon handed).
func freeAddr(t *testing.T) string { return exttest.FreeAddr(t) }
