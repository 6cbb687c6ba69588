// Command demo is the one-command local demo (`make demo`): the real Lambda
// lifecycle under AWS's Runtime Interface Emulator, with the secrets-prefetch
// extension and a sample function, against an emulated AWS on 127.0.0.1.
// It prints what was prefetched, the Init time, each invoke's latency and
// cache status, and the AWS calls made. The values it shows are fake demo
// data that it seeds itself.
//
// Usage (from integration/): go run ./cmd/demo [-log]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/rie"
	"github.com/secrets-prefetch/secrets-prefetch/integration/testfunc"
)

// The demo's AWS contents: deliberately fake values, safe to print.
var (
	secrets = []item{
		{"demo/db", `{"username":"demo","password":"demo-password-1"}`},
		{"demo/api-key", "demo-api-key-1"},
	}
	parameters = []item{
		{"/demo/app/greeting", "hello from the demo"},
		{"/demo/app/feature-flag", "demo-flag-on"},
		{"/demo/app/db-host", "db.demo.internal"},
		{"/demo/other", "not under /demo/app, so not prefetched"},
	}
	config = []string{
		"SECRETS_PREFETCH_SECRETS=demo/db,demo/api-key",
		"SECRETS_PREFETCH_PARAMETERS=/demo/app/*",
		"SECRETS_PREFETCH_REQUIRED=true",
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=info",
		// What the sample function reads during its own Init.
		"FUNC_READ_SECRETS=demo/db",
		"FUNC_READ_PARAMETERS=/demo/app/greeting",
	}
)

// updated is the greeting's new value, set in AWS midway.
const updated = "hello again from the demo"

type item struct{ name, value string }

func main() {
	showLog := flag.Bool("log", false, "print the full RIE output (RIE, extension and function logs) at the end")
	flag.Parse()
	if err := run(*showLog); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(showLog bool) error {
	if err := rie.Supported(); err != nil {
		return fmt.Errorf("cannot run the Lambda Runtime Interface Emulator here: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := awstest.New()
	if err != nil {
		return err
	}
	defer a.Close()
	fmt.Printf("Emulated AWS (Secrets Manager + SSM) on %s, seeded with fake demo values:\n", a.URL)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	for _, s := range secrets {
		if _, err := a.PutSecretString(ctx, s.name, s.value); err != nil {
			return err
		}
		fmt.Fprintf(w, "  secret\t%s\t%s\n", s.name, s.value)
	}
	for _, p := range parameters {
		if _, err := a.PutParameter(ctx, p.name, p.value, "SecureString"); err != nil {
			return err
		}
		fmt.Fprintf(w, "  parameter\t%s\t%s\n", p.name, p.value)
	}
	w.Flush()

	dir, err := os.MkdirTemp("", "secrets-prefetch-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Println("\nBuilding the extension and the sample function, installing RIE (cached after the first run)...")
	bins, err := rie.Build(ctx, dir)
	if err != nil {
		return err
	}
	env, err := rie.Launch(ctx, filepath.Join(dir, "env"), rie.Options{Binaries: bins, Env: append(a.Env(), config...)})
	if err != nil {
		return err
	}
	// Shut down on every path, bounded; the explicit call below reports.
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		env.Shutdown(sctx)
	}()
	fmt.Println("\nExtension configuration:")
	for _, kv := range config {
		fmt.Println("  " + kv)
	}

	d := &demo{aws: a, env: env}
	steps := []struct {
		title  string
		before func() error
		req    testfunc.Request
	}{
		{title: "Invoke 1 — cold start: Lambda runs Init (extension registers and prefetches, the function starts) before the invoke", req: testfunc.Request{
			Secrets: []string{"demo/db", "demo/api-key"}, Parameters: []string{"/demo/app/greeting", "/demo/app/feature-flag", "/demo/app/db-host"},
		}},
		{title: "Invoke 2 — warm: one key of the JSON secret (jsonKey=password)", req: testfunc.Request{
			Secrets: []string{"demo/db"}, JSONKey: "password",
		}},
		{title: `Invoke 3 — /demo/app/greeting changed in AWS to "` + updated + `"; still within its TTL (300 s), the cached value is served`,
			before: func() error {
				_, err := a.PutParameter(ctx, "/demo/app/greeting", updated, "SecureString")
				return err
			},
			req: testfunc.Request{Parameters: []string{"/demo/app/greeting"}}},
		{title: "Invoke 4 — the same read with refreshNow=true fetches the new value", req: testfunc.Request{
			Parameters: []string{"/demo/app/greeting"}, RefreshNow: true,
		}},
		{title: "Invoke 5 — and it is cached from then on", req: testfunc.Request{Parameters: []string{"/demo/app/greeting"}}},
	}
	for i, s := range steps {
		if s.before != nil {
			if err := s.before(); err != nil {
				return err
			}
		}
		if err := d.invoke(ctx, i == 0, s.title, s.req); err != nil {
			return fmt.Errorf("%w\n--- RIE output ---\n%s", err, env.Output())
		}
	}

	fmt.Println("\nShutdown — SIGTERM to RIE, which sends SHUTDOWN to the extension:")
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := env.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w\n--- RIE output ---\n%s", err, env.Output())
	}
	out := env.Output()
	fmt.Printf("  done in %s; error types reported by RIE: %s\n", ms(time.Since(start)), orNone(rie.ErrorTypes(out)))

	fmt.Println("\nAWS calls made by the extension, in total:")
	d.printCalls("  ")
	var leaked []string
	for _, it := range append(slices.Clone(secrets), parameters...) {
		leaked = appendIfIn(leaked, out, it.name, it.value)
	}
	leaked = appendIfIn(leaked, out, "demo/db password", "demo-password-1")
	leaked = appendIfIn(leaked, out, "/demo/app/greeting (updated)", updated)
	fmt.Printf("\nValues that appear in the %d lines of RIE, extension and function output: %s\n", strings.Count(out, "\n"), orNone(leaked))
	if showLog {
		fmt.Printf("\n--- RIE output ---\n%s", out)
	}
	if len(leaked) > 0 {
		return errors.New("secret values appeared in the logs")
	}
	return nil
}

type demo struct {
	aws *awstest.AWS
	env *rie.Env
}

func (d *demo) invoke(ctx context.Context, first bool, title string, req testfunc.Request) error {
	fmt.Printf("\n%s\n", title)
	payload, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	status, body, took, err := d.env.Invoke(ictx, payload)
	if err != nil {
		return err
	}
	if status != 200 {
		return fmt.Errorf("invoke: status %d: %s", status, body)
	}
	var resp testfunc.Response
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Errorf("decode %s: %w", body, err)
	}
	if first {
		if r := rie.InitReports(d.env.Output()); len(r) > 0 {
			fmt.Printf("  Init took %s (RIE's INIT REPORT), prefetch included\n", ms(r[0].Duration))
		}
		for line := range strings.Lines(d.env.Output()) {
			if strings.Contains(line, "prefetch done") {
				fmt.Printf("  the extension logged: %s", line)
			}
		}
		fmt.Println("  AWS calls made during Init, before the first invoke:")
		d.printCalls("    ")
		fmt.Println("  the function read, during its own Init:")
		printReads(resp.Init)
		fmt.Println("  the invoke read:")
	}
	printReads(resp.Reads)
	fmt.Printf("  invoke round trip %s (RIE replies after the extension is ready for the next event)\n", ms(took))
	for _, r := range append(resp.Init, resp.Reads...) {
		if r.Status != 200 {
			return fmt.Errorf("read %s: status %d: %s", r.Path, r.Status, r.Value)
		}
	}
	return nil
}

func printReads(reads []testfunc.Read) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	for _, r := range reads {
		path, err := url.QueryUnescape(r.Path)
		if err != nil {
			path = r.Path
		}
		fmt.Fprintf(w, "    GET %s\t%d\tX-Cache: %s\tAge: %ss\t%s\t%s\n", path, r.Status, r.XCache, r.Age, ms(time.Duration(r.LatencyMillis*float64(time.Millisecond))), r.Value)
	}
	w.Flush()
}

func (d *demo) printCalls(indent string) {
	calls := d.aws.AllCalls()
	ops := slices.Sorted(func(yield func(string) bool) {
		for op := range calls {
			if !yield(op) {
				return
			}
		}
	})
	if len(ops) == 0 {
		fmt.Println(indent + "none")
	}
	for _, op := range ops {
		fmt.Printf("%s%-36s calls: %d, items asked for: %d\n", indent, op, calls[op], d.aws.Items(op))
	}
}

// appendIfIn appends name to names if value occurs in out.
func appendIfIn(names []string, out, name, value string) []string {
	if strings.Contains(out, value) {
		return append(names, name)
	}
	return names
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
