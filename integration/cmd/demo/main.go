// Command demo is the one-command local demo (`make demo`): the real Lambda
// lifecycle under AWS's Runtime Interface Emulator, with the secrets-prefetch
// extension and a sample function, against an emulated AWS on 127.0.0.1.
// It prints what was prefetched, the Init time, each invoke's latency and
// cache status, and the AWS calls made; then, with a short parameter TTL, the
// refresh at INVOKE ahead of expiry, and stale-if-error through an injected
// AWS outage (it waits real time for these, a few seconds). The values it
// shows are fake demo data that it seeds itself.
//
// Usage (from integration/): go run ./cmd/demo [-log]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
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
		// A short parameter TTL, for the demo only, so that it can show the
		// refresh ahead of expiry and stale-if-error in seconds.
		"SSM_PARAMETER_STORE_TTL=2",
		"SECRETS_PREFETCH_REFRESH_AHEAD=0.5",
		"SECRETS_MANAGER_TTL=300",
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=info",
		// What the sample function reads during its own Init.
		"FUNC_READ_SECRETS=demo/db",
		"FUNC_READ_PARAMETERS=/demo/app/greeting",
	}
)

// updated and updated2 are the greeting's new values, set in AWS midway.
const (
	updated  = "hello again from the demo"
	updated2 = "hello a third time from the demo"
)

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
	greeting := testfunc.Request{Parameters: []string{"/demo/app/greeting"}}
	var restore func() // takes the injected AWS outage away
	steps := []struct {
		title  string
		before func() error
		req    testfunc.Request
		want   string // the X-Cache each read should get ("": any)
	}{
		{title: "Invoke 1 — cold start: Lambda runs Init (extension registers and prefetches, the function starts) before the invoke", req: testfunc.Request{
			Secrets: []string{"demo/db", "demo/api-key"}, Parameters: []string{"/demo/app/greeting", "/demo/app/feature-flag", "/demo/app/db-host"},
		}, want: "hit"},
		{title: "Invoke 2 — warm: one key of the JSON secret (jsonKey=password)", req: testfunc.Request{
			Secrets: []string{"demo/db"}, JSONKey: "password",
		}, want: "hit"},
		{title: `Invoke 3 — /demo/app/greeting changed in AWS to "` + updated + `"; still within its TTL (2 s), the cached value is served`,
			before: func() error {
				_, err := a.PutParameter(ctx, "/demo/app/greeting", updated, "SecureString")
				return err
			},
			req: greeting, want: "hit"},
		{title: "Invoke 4 — the same read with refreshNow=true fetches the new value", req: testfunc.Request{
			Parameters: []string{"/demo/app/greeting"}, RefreshNow: true,
		}, want: "miss"},
		{title: "Invoke 5 — and it is cached from then on", req: greeting, want: "hit"},
		{title: `Invoke 6 — refresh ahead of expiry: /demo/app/greeting changed in AWS to "` + updated2 + `"; an INVOKE past REFRESH_AHEAD × TTL has the extension fetch what is due before it asks for the next event`,
			before: func() error {
				if _, err := a.PutParameter(ctx, "/demo/app/greeting", updated2, "SecureString"); err != nil {
					return err
				}
				return wait(ctx, 1200*time.Millisecond, "past REFRESH_AHEAD × TTL (0.5 × 2 s = 1 s), still within the TTL")
			},
			// The function reads nothing: the invoke shows the refresh alone.
		},
		{title: "Invoke 7 — the new value is served as a hit: no read waited on AWS", req: greeting, want: "hit"},
		{title: "Invoke 8 — stale-if-error: AWS fails every call (500 InternalError); past the TTL, the read tries AWS (3 attempts a call), fails, and gets the old value as stale, with its Age",
			before: func() error {
				restore = a.Inject(awstest.OpAll, awstest.InternalError())
				return wait(ctx, 2200*time.Millisecond, "past the TTL (2 s) of the values refreshed at invoke 6")
			},
			req: greeting, want: "stale"},
		{title: "Invoke 9 — AWS recovers (fault removed): once the backoff after the failures has passed, an INVOKE refreshes again",
			before: func() error {
				restore()
				return wait(ctx, 2100*time.Millisecond, "for the backoff (1 s doubling, jittered: under 2 s after two failures) to end")
			},
		},
		{title: "Invoke 10 — fresh again: a hit, Age 0 s", req: greeting, want: "hit"},
	}
	for i, s := range steps {
		fmt.Printf("\n%s\n", s.title)
		if s.before != nil {
			if err := s.before(); err != nil {
				return err
			}
		}
		if err := d.invoke(ctx, i == 0, s.req, s.want); err != nil {
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
	leaked = appendIfIn(leaked, out, "/demo/app/greeting (updated again)", updated2)
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

func (d *demo) invoke(ctx context.Context, first bool, req testfunc.Request, want string) error {
	before := d.counts()
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
	if len(resp.Reads) == 0 {
		fmt.Println("    (the function reads nothing: the AWS calls below are the extension's refresh at INVOKE)")
	}
	printReads(resp.Reads)
	fmt.Printf("  invoke round trip %s (RIE replies after the extension is ready for the next event)\n", ms(took))
	if !first {
		fmt.Printf("  AWS calls during the invoke: %s\n", d.callsSince(before))
	}
	for _, r := range append(resp.Init, resp.Reads...) {
		if r.Status != 200 {
			return fmt.Errorf("read %s: status %d: %s", r.Path, r.Status, r.Value)
		}
	}
	// The steps are timed against short TTLs in real time: on a slow or busy
	// machine a read may land on the other side of a refresh point. Say so
	// rather than fail the demo; the tests check these behaviours exactly.
	for _, r := range resp.Reads {
		if want != "" && r.XCache != want {
			fmt.Printf("  note: %s got X-Cache %q where this step expected %q: the machine was slower than the demo's timing\n", r.Path, r.XCache, want)
		}
	}
	return nil
}

// wait waits d, real time, saying why.
func wait(ctx context.Context, d time.Duration, why string) error {
	fmt.Printf("  waiting %.1f s: %s\n", d.Seconds(), why)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
	ops := slices.Sorted(maps.Keys(calls))
	if len(ops) == 0 {
		fmt.Println(indent + "none")
	}
	for _, op := range ops {
		fmt.Printf("%s%-36s calls: %d, items asked for: %d\n", indent, op, calls[op], d.aws.Items(op))
	}
}

// counts returns, for each operation called, the calls (failed attempts
// included) and the items they asked for.
func (d *demo) counts() map[string][2]int {
	m := map[string][2]int{}
	for op, n := range d.aws.AllCalls() {
		m[op] = [2]int{n, d.aws.Items(op)}
	}
	return m
}

// callsSince sums up, on one line, the AWS calls made since before (counts).
func (d *demo) callsSince(before map[string][2]int) string {
	now := d.counts()
	var out []string
	for _, op := range slices.Sorted(maps.Keys(now)) {
		calls, items := now[op][0]-before[op][0], now[op][1]-before[op][1]
		switch {
		case calls == 0:
		case items == calls:
			out = append(out, fmt.Sprintf("%s ×%d", op, calls))
		default:
			out = append(out, fmt.Sprintf("%s ×%d (%d items)", op, calls, items))
		}
	}
	return orNone(out)
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
