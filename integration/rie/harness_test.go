package rie

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/testfunc"
)

// fakeExtension is a minimal extension (register, serve, next loop) that
// proves the harness itself, independent of the real extension. FAKE_MODE
// selects a failure: "init-error" reports init/error, "crash" exits on INVOKE.
const fakeExtension = `package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
)

func main() {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2020-01-01/extension/"
	req, _ := http.NewRequest("POST", api+"register", bytes.NewBufferString(` + "`" + `{"events":["INVOKE","SHUTDOWN"]}` + "`" + `))
	req.Header.Set("Lambda-Extension-Name", filepath.Base(os.Args[0]))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		fmt.Println("fake: register failed", err)
		os.Exit(1)
	}
	id := resp.Header.Get("Lambda-Extension-Identifier")
	if os.Getenv("FAKE_MODE") == "init-error" {
		req, _ := http.NewRequest("POST", api+"init/error", bytes.NewBufferString("{}"))
		req.Header.Set("Lambda-Extension-Identifier", id)
		req.Header.Set("Lambda-Extension-Function-Error-Type", "Extension.ConfigInvalid")
		http.DefaultClient.Do(req)
		fmt.Println("fake: FAKE_MODE is invalid")
		os.Exit(1)
	}
	http.HandleFunc("/secretsmanager/get", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Aws-Parameters-Secrets-Token") != os.Getenv("AWS_SESSION_TOKEN") {
			w.WriteHeader(403)
			return
		}
		w.Header().Set("X-Cache", "hit")
		w.Header().Set("Age", "0")
		json.NewEncoder(w).Encode(map[string]string{"SecretString": "fake-" + r.URL.Query().Get("secretId")})
	})
	go http.ListenAndServe("127.0.0.1:"+os.Getenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"), nil)
	for {
		req, _ := http.NewRequest("GET", api+"event/next", nil)
		req.Header.Set("Lambda-Extension-Identifier", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println("fake: next:", err)
			os.Exit(1)
		}
		var ev struct{ EventType string }
		json.NewDecoder(resp.Body).Decode(&ev)
		resp.Body.Close()
		fmt.Println("fake: event", ev.EventType)
		if ev.EventType == "SHUTDOWN" {
			os.Exit(0)
		}
		if os.Getenv("FAKE_MODE") == "crash" {
			os.Exit(3)
		}
	}
}
`

// fake is the fake extension, built once per test process.
var fake struct {
	once sync.Once
	bin  string
	err  error
}

// buildFake compiles fakeExtension as "fake-ext" (its extension name).
func buildFake() (string, error) {
	fake.once.Do(func() {
		dir, err := sharedDir()
		if err != nil {
			fake.err = err
			return
		}
		src := filepath.Join(dir, "fake-src")
		if err := os.MkdirAll(src, 0o755); err != nil {
			fake.err = err
			return
		}
		for name, content := range map[string]string{
			"go.mod":  "module fake\n\ngo 1.22\n",
			"main.go": fakeExtension,
		} {
			if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
				fake.err = err
				return
			}
		}
		bin := filepath.Join(dir, "fake-ext")
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			fake.err = fmt.Errorf("build fake extension: %v\n%s", err, out)
			return
		}
		fake.bin = bin
	})
	return fake.bin, fake.err
}

// startFake starts RIE with the fake extension and the real test function.
func startFake(t *testing.T, env ...string) *Env {
	t.Helper()
	requireSupported(t)
	bins, err := sharedBinaries(false)
	if err != nil {
		t.Fatal(err)
	}
	if bins.Extension, err = buildFake(); err != nil {
		t.Fatal(err)
	}
	return Start(t, Options{Binaries: bins, Env: env, FunctionTimeout: 5 * time.Second})
}

func TestHarnessLifecycle(t *testing.T) {
	t.Parallel()
	env := startFake(t, "FUNC_READ_SECRETS=during-init")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for i := range 2 {
		status, body, _, err := env.Invoke(ctx, []byte(`{"secrets":["a"]}`))
		if err != nil || status != 200 {
			t.Fatalf("invoke %d: status %d, err %v, body %s", i, status, err, body)
		}
		var resp testfunc.Response
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		if len(resp.Init) != 1 || resp.Init[0].Value != "fake-during-init" || resp.Init[0].XCache != "hit" {
			t.Errorf("init reads = %+v", resp.Init)
		}
		if len(resp.Reads) != 1 || resp.Reads[0].Value != "fake-a" || resp.Reads[0].Status != 200 {
			t.Errorf("reads = %+v", resp.Reads)
		}
	}
	if err := env.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	out := env.Output()
	if !strings.Contains(out, "fake: event SHUTDOWN") {
		t.Errorf("no SHUTDOWN reached the extension:\n%s", out)
	}
	if r := InitReports(out); len(r) != 1 || r[0].Status != "success" || r[0].Duration <= 0 {
		t.Errorf("InitReports = %+v\n%s", r, out)
	}
	if types := ErrorTypes(out); len(types) != 0 {
		t.Errorf("ErrorTypes = %v", types)
	}
}

func TestHarnessInitError(t *testing.T) {
	t.Parallel()
	env := startFake(t, "FAKE_MODE=init-error")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status, body, _, err := env.Invoke(ctx, []byte(`{}`))
	if err != nil || status != 502 {
		t.Fatalf("invoke: status %d, err %v, body %s; want 502", status, err, body)
	}
	out := env.Output()
	if !strings.Contains(out, "fake: FAKE_MODE is invalid") {
		t.Errorf("output lacks the extension's message:\n%s", out)
	}
	// RIE reports an extension's init/error as Extension.InitError, whatever
	// Lambda-Extension-Function-Error-Type said.
	if !slices.Contains(ErrorTypes(out), "Extension.InitError") {
		t.Errorf("ErrorTypes = %v, want Extension.InitError\n%s", ErrorTypes(out), out)
	}
	if r := InitReports(out); len(r) == 0 || r[0].Status != "error" {
		t.Errorf("InitReports = %+v, want a first one with status error", r)
	}
}

func TestHarnessCrash(t *testing.T) {
	t.Parallel()
	env := startFake(t, "FAKE_MODE=crash")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status, body, _, err := env.Invoke(ctx, []byte(`{}`))
	if err != nil || status != 502 {
		t.Errorf("invoke: status %d, err %v, body %s; want 502", status, err, body)
	}
	out := env.Output()
	if !slices.Contains(ErrorTypes(out), "Extension.Crash") {
		t.Errorf("ErrorTypes = %v, want Extension.Crash\n%s", ErrorTypes(out), out)
	}
}

// TestHarnessKill checks the fallback when RIE does not exit in time: RIE
// and every process it started are killed, by pid.
func TestHarnessKill(t *testing.T) {
	t.Parallel()
	env := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if status, body, _, err := env.Invoke(ctx, []byte(`{}`)); err != nil || status != 200 {
		t.Fatalf("invoke: status %d, err %v, body %s", status, err, body)
	}
	pids := append(descendants(env.cmd.Process.Pid), env.cmd.Process.Pid)
	if len(pids) < 3 {
		t.Fatalf("want RIE, the extension and the function running, got pids %v", pids)
	}
	expired, cancelExpired := context.WithCancel(context.Background())
	cancelExpired()
	if err := env.Shutdown(expired); err == nil {
		t.Fatal("Shutdown with an expired context: want an error saying it killed RIE")
	}
	// SIGKILL is asynchronous for the orphans; bounded wait for them to go.
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d still alive after Shutdown", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || !strings.HasPrefix(string(stat[i+1:]), " Z")
}

func TestParse(t *testing.T) {
	out := `29 Nov 2026 06:52:57,269 [INFO] (rapid) INIT RTDONE(status: error)
29 Nov 2026 06:52:57,269 [INFO] (rapid) INIT REPORT(durationMs: 59.245000)
29 Nov 2026 06:52:27,099 [INFO] (rapid) INIT REPORT(durationMs: 0.150000)
29 Nov 2026 06:52:32,986 [WARNING] (rapid) First fatal error stored in appctx: Extension.Crash
29 Nov 2026 06:52:32,986 [ERROR] (rapid) Invoke DONE failed: Extension.Crash
{"errorType":"Runtime.ExitError","errorMessage":"x"}`
	want := []InitReport{{59245 * time.Microsecond, "error"}, {150 * time.Microsecond, ""}}
	if r := InitReports(out); !slices.Equal(r, want) {
		t.Errorf("InitReports = %+v, want %+v", r, want)
	}
	if got := ErrorTypes(out); !slices.Equal(got, []string{"Extension.Crash", "Runtime.ExitError"}) {
		t.Errorf("ErrorTypes = %v", got)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBuilds()
	os.Exit(code)
}
