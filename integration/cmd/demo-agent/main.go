// Command demo-agent is `make demo-agent`: the agent image in a pod under
// podman, beside an app container that reads through it on the pod's
// localhost, against an emulated AWS on the host. It shows the healthcheck
// before and after the prefetch, the prefetch's AWS calls, reads served as
// hits, a value changed in AWS picked up by the agent's refresh timer (no
// read waits on AWS), and the stop: SIGTERM, drain, exit 0. It waits real
// time for the timer, a few seconds. The values it shows are fake demo data
// that it seeds itself. The pod is removed at the end.
//
// Usage (from integration/, after make image): go run ./cmd/demo-agent [-image NAME]
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
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/container"
	"github.com/secrets-prefetch/secrets-prefetch/integration/container/testapp/wire"
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
	}
	agentConfig = []string{
		"AWS_TOKEN=file:///run/secrets-prefetch/token",
		"SECRETS_PREFETCH_SECRETS=demo/db,demo/api-key",
		"SECRETS_PREFETCH_PARAMETERS=/demo/app/*",
		"SECRETS_PREFETCH_REQUIRED=true",
		// A short parameter TTL, for the demo only, so that the refresh
		// timer fires every couple of seconds.
		"SSM_PARAMETER_STORE_TTL=4",
		"SECRETS_PREFETCH_REFRESH_AHEAD=0.5",
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug",
	}
	// What the app reads, every second.
	appReads = []string{"secret:demo/db", "parameter:/demo/app/greeting", "parameter:/demo/app/feature-flag"}
)

const (
	pod      = "secrets-prefetch-demo"
	agent    = pod + "-agent"
	app      = pod + "-app"
	appImage = "localhost/secrets-prefetch-demo-app:latest"
	updated  = "hello again, from the agent's refresh timer"
	// token is the pod's token; a real pod makes a random one (see
	// examples/kubernetes).
	token = "demo-token-not-secret"
)

type item struct{ name, value string }

func main() {
	image := flag.String("image", container.AgentImage, "the agent image (make image builds it)")
	flag.Parse()
	if err := run(*image); err != nil {
		fmt.Fprintln(os.Stderr, "demo-agent:", err)
		os.Exit(1)
	}
}

func run(image string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := container.Available(ctx); err != nil {
		return err
	}
	unlock, err := container.Lock()
	if err != nil {
		return err
	}
	defer unlock()

	a, err := awstest.New()
	if err != nil {
		return err
	}
	defer a.Close()
	for _, s := range secrets {
		if _, err := a.PutSecretString(ctx, s.name, s.value); err != nil {
			return err
		}
	}
	for _, p := range parameters {
		if _, err := a.PutParameter(ctx, p.name, p.value, "SecureString"); err != nil {
			return err
		}
	}
	emu, err := container.Serve(a)
	if err != nil {
		return err
	}
	defer emu.Close()
	fmt.Printf("Emulated AWS (Secrets Manager + SSM) on the host at %s (the pod reaches it there), seeded with fake demo values:\n", emu.URL())
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	for _, s := range secrets {
		fmt.Fprintf(w, "  secret\t%s\t%s\n", s.name, s.value)
	}
	for _, p := range parameters {
		fmt.Fprintf(w, "  parameter\t%s\t%s\n", p.name, p.value)
	}
	w.Flush()

	dir, err := os.MkdirTemp("", "secrets-prefetch-demo-agent-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Println("\nBuilding the app image (a static Go client in a scratch image)...")
	if err := container.BuildAppImage(ctx, dir, appImage, append([]string{"-every", "1s", "-rounds", "60", "-stay"}, appReads...)); err != nil {
		return err
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o644); err != nil {
		return err
	}
	mount := "type=bind,source=" + tokenFile + ",target=/run/secrets-prefetch/token,readonly"

	removePod := func() { _, _ = container.Podman(context.Background(), "pod", "rm", "-f", "-t", "0", pod) }
	removePod()
	defer func() {
		fmt.Println("\nRemoving the pod:", "podman pod rm -f", pod)
		removePod()
	}()
	if err := show(ctx, "pod", "create", "--name", pod); err != nil {
		return err
	}

	// Step 1: the agent, its prefetch held at the emulated AWS's door.
	held := emu.Hold(func(op string, _ []byte) bool { return op == awstest.OpBatchGetSecretValue })
	fmt.Println("\nStep 1 — the agent starts and prefetches. The emulated AWS holds its first call, so that the healthcheck can be seen before the prefetch is done. Its configuration:")
	for _, kv := range agentConfig {
		fmt.Println("  " + kv)
	}
	args := []string{"run", "-d", "--pod", pod, "--name", agent, "--mount", mount}
	for _, kv := range append(emu.Env(), agentConfig...) {
		args = append(args, "-e", kv)
	}
	if err := show(ctx, append(args, image)...); err != nil {
		return err
	}
	logs, err := container.FollowLogs(ctx, agent)
	if err != nil {
		return err
	}
	select {
	case <-held.Arrived():
	case <-ctx.Done():
		return fmt.Errorf("the agent never called AWS:\n%s", logs)
	}
	if _, err := logs.WaitFor(ctx, "the agent serving", container.Msg("serving")); err != nil {
		return err
	}
	healthcheck(ctx)
	fmt.Println("  (the emulated AWS lets the prefetch through)")
	held.Open()
	ready, err := logs.WaitFor(ctx, "the agent ready", container.Msg("ready"))
	if err != nil {
		return err
	}
	done, _ := logs.WaitFor(ctx, "prefetch done", container.Msg("prefetch done"))
	fmt.Println("  the agent logged:", done)
	fmt.Println("  the agent logged:", ready)
	healthcheck(ctx)
	fmt.Println("  AWS calls of the prefetch:")
	printCalls(a, "    ")

	// Step 2: the app reads, every second; then a value changes in AWS.
	fmt.Println("\nStep 2 — the app container starts in the same pod and reads through the agent on the pod's localhost, every second:")
	if err := show(ctx, "run", "-d", "--pod", pod, "--name", app, "--mount", mount,
		"-e", "SECRETS_AGENT_TOKEN_FILE=/run/secrets-prefetch/token", appImage); err != nil {
		return err
	}
	appLogs, err := container.FollowLogs(ctx, app)
	if err != nil {
		return err
	}
	d := &demo{aws: a, agentLogs: logs, appLogs: appLogs, calls: counts(a)}
	_, d.agentSeen = logs.Since(0)
	for round := 1; round <= 3; round++ {
		if _, err := d.roundLines(ctx, round); err != nil {
			return err
		}
	}
	fmt.Printf("\nStep 3 — /demo/app/greeting changed in AWS to %q. The agent refreshes its parameters on a timer (TTL 4 s, REFRESH_AHEAD 0.5: about every 2 s), in one batch, whether or not anything reads them; the app's reads stay hits:\n", updated)
	if _, err := a.PutParameter(ctx, "/demo/app/greeting", updated, "SecureString"); err != nil {
		return err
	}
	seen := 0
	for round := 4; seen < 2; round++ {
		if round > 20 {
			return errors.New("the new value never reached the app: the refresh timer did not run")
		}
		lines, err := d.roundLines(ctx, round)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(lines, func(l wire.Line) bool { return l.Value == updated }) {
			seen++
		}
	}

	// Step 4: stop.
	fmt.Println("\nStep 4 — podman stop: SIGTERM; the agent stops accepting, answers reads in flight, wipes the values and exits:")
	start := time.Now()
	if err := show(ctx, "stop", "-t", "30", agent); err != nil {
		return err
	}
	code, err := container.Podman(ctx, "inspect", "--format", "{{.State.ExitCode}}", agent)
	if err != nil {
		return err
	}
	fmt.Printf("  stopped in %s, exit code %s\n", time.Since(start).Round(time.Millisecond), strings.TrimSpace(code))
	if line, err := logs.WaitFor(ctx, "the agent's stop", container.Msg("stopped")); err == nil {
		fmt.Println("  the agent logged:", line)
	}

	out := logs.String()
	var leaked []string
	for _, it := range append(slices.Clone(secrets), parameters...) {
		if strings.Contains(out, it.value) {
			leaked = append(leaked, it.name)
		}
	}
	if strings.Contains(out, updated) {
		leaked = append(leaked, "/demo/app/greeting (updated)")
	}
	fmt.Printf("\nValues that appear in the agent's %d lines of output: %s\n", strings.Count(out, "\n")+1, orNone(leaked))
	if len(leaked) > 0 {
		return errors.New("secret values appeared in the agent's logs")
	}
	return nil
}

// demo prints the app's rounds of reads with what happened in between.
type demo struct {
	aws       *awstest.AWS
	agentLogs *container.Logs
	appLogs   *container.Logs
	agentSeen int               // agent log lines already looked at
	calls     map[string][2]int // AWS calls and items asked for, at the last round
}

// roundLines waits for round n of the app's reads and prints it, with the
// AWS calls and the agent's refreshes since the round before.
func (d *demo) roundLines(ctx context.Context, n int) ([]wire.Line, error) {
	var lines []wire.Line
	for len(lines) < len(appReads) {
		_, err := d.appLogs.WaitFor(ctx, fmt.Sprintf("the app's round %d", n), func(s string) bool {
			var l wire.Line
			if json.Unmarshal([]byte(s), &l) != nil || l.Round != n {
				return false
			}
			if len(lines) < len(appReads) && !slices.ContainsFunc(lines, func(x wire.Line) bool { return x.Path == l.Path }) {
				lines = append(lines, l)
			}
			return len(lines) == len(appReads)
		})
		if err != nil {
			return nil, err
		}
	}
	fmt.Printf("  round %d\n", n)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	for _, l := range lines {
		path, err := url.QueryUnescape(l.Path)
		if err != nil {
			path = l.Path
		}
		fmt.Fprintf(w, "    GET %s\t%d\tX-Cache: %s\tAge: %ss\t%.1f ms\t%s\n", path, l.Status, l.XCache, l.Age, l.LatencyMillis, l.Value)
	}
	w.Flush()
	now := counts(d.aws)
	var calls []string
	for _, op := range slices.Sorted(maps.Keys(now)) {
		if n, items := now[op][0]-d.calls[op][0], now[op][1]-d.calls[op][1]; n > 0 {
			calls = append(calls, fmt.Sprintf("%s ×%d (%d items)", op, n, items))
		}
	}
	d.calls = now
	var refreshes []string
	var newLines []string
	newLines, d.agentSeen = d.agentLogs.Since(d.agentSeen)
	for _, l := range newLines {
		if container.Msg("refreshed")(l) {
			refreshes = append(refreshes, l)
		}
	}
	fmt.Printf("    AWS calls since the round before: %s\n", orNone(calls))
	for _, r := range refreshes {
		fmt.Println("    the agent's timer:", r)
	}
	return lines, nil
}

// counts returns, for each operation called, the calls and the items they
// asked for.
func counts(a *awstest.AWS) map[string][2]int {
	m := map[string][2]int{}
	for op, n := range a.AllCalls() {
		m[op] = [2]int{n, a.Items(op)}
	}
	return m
}

// healthcheck runs podman's healthcheck (the image's HEALTHCHECK: the
// healthcheck subcommand) once and says what it found.
func healthcheck(ctx context.Context) {
	err := exec.CommandContext(ctx, "podman", "healthcheck", "run", agent).Run()
	state := "healthy (exit 0)"
	if err != nil {
		state = "unhealthy (" + err.Error() + ")"
	}
	fmt.Printf("  $ podman healthcheck run %s: %s\n", agent, state)
}

// show prints a podman command, shortened, and runs it.
func show(ctx context.Context, args ...string) error {
	var shown []string
	for i := 0; i < len(args); i++ {
		if args[i] == "-e" && i+1 < len(args) {
			i++ // the environment is printed on its own
			continue
		}
		shown = append(shown, args[i])
	}
	fmt.Println("  $ podman", strings.Join(shown, " "))
	_, err := container.Podman(ctx, args...)
	return err
}

func printCalls(a *awstest.AWS, indent string) {
	calls := a.AllCalls()
	for _, op := range slices.Sorted(maps.Keys(calls)) {
		fmt.Printf("%s%-36s calls: %d, items asked for: %d\n", indent, op, calls[op], a.Items(op))
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
