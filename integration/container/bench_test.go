package container_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/container"
	"github.com/secrets-prefetch/secrets-prefetch/integration/rie"
)

// BenchmarkTimeToHealthy measures the time from `podman run -d` of the
// image to the first `podman healthcheck run` that passes, with 100 items
// (50 secrets, 50 parameters) to prefetch at 50 ms of AWS latency a call;
// beside it, the baseline: the same binary (the one make image put in the
// image) as a host process, from its start to the first passing
// `secrets-prefetch healthcheck`. Both poll their healthcheck back to back,
// so the figure includes one healthcheck's cost (podman's is an exec into
// the container: ms-one-healthcheck is what one costs). ms-to-ready is the
// time to the agent's "ready" log line, without the healthcheck's cost;
// ms-prefetch the agent's own "prefetch done" duration.
//
//	cd integration && go test -run '^$' -bench TimeToHealthy -benchtime 5x ./container/
func BenchmarkTimeToHealthy(b *testing.B) {
	requirePodman(b)
	secrets, params := map[string]string{}, map[string]string{}
	var secretNames, paramNames []string
	for i := range 50 {
		s, p := fmt.Sprintf("bench/secret-%02d", i), fmt.Sprintf("/bench/param-%02d", i)
		secrets[s], params[p] = "value-of-"+s, "value-of-"+p
		secretNames, paramNames = append(secretNames, s), append(paramNames, p)
	}
	a, emu := startEmulator(b, secrets, params)
	a.Inject(awstest.OpAll, awstest.Latency(50*time.Millisecond))
	config := []string{
		"AWS_TOKEN=bench-token",
		"SECRETS_PREFETCH_SECRETS=" + strings.Join(secretNames, ","),
		"SECRETS_PREFETCH_PARAMETERS=" + strings.Join(paramNames, ","),
	}

	b.Run("container", func(b *testing.B) {
		ctx := context.Background()
		name := "secrets-prefetch-bench-health"
		var prefetch, toReady, oneCheck time.Duration
		for b.Loop() {
			_, _ = container.Podman(ctx, "rm", "-f", "-t", "0", name)
			start := time.Now()
			podman(b, ctx, append(append([]string{"run", "-d", "--name", name}, envArgs(append(emu.Env(), config...))...), container.AgentImage)...)
			for exec.CommandContext(ctx, "podman", "healthcheck", "run", name).Run() != nil {
				if time.Since(start) > 2*time.Minute {
					b.Fatalf("not healthy after 2 minutes:\n%s", podman(b, ctx, "logs", name))
				}
			}
			b.StopTimer()
			t := time.Now()
			podman(b, ctx, "healthcheck", "run", name)
			oneCheck += time.Since(t)
			logs := podman(b, ctx, "logs", name)
			prefetch += prefetchTook(b, logs)
			toReady += readyAt(b, logs).Sub(start)
			podman(b, ctx, "rm", "-f", "-t", "0", name)
			b.StartTimer()
		}
		report(b, prefetch, toReady)
		b.ReportMetric(float64(oneCheck.Microseconds())/1000/float64(b.N), "ms-one-healthcheck")
	})

	b.Run("process", func(b *testing.B) {
		ctx := context.Background()
		root, err := rie.RepoRoot()
		if err != nil {
			b.Fatal(err)
		}
		bin := filepath.Join(root, ".cache", "image", "secrets-prefetch")
		var prefetch, toReady time.Duration
		for b.Loop() {
			listen := "SECRETS_PREFETCH_LISTEN=" + freeAddr(b)
			env := append(append(os.Environ(), emu.Env()...), append(config, listen)...)
			cmd := exec.Command(bin, "agent")
			cmd.Env = env
			out, err := cmd.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			cmd.Stderr = cmd.Stdout
			start := time.Now()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			for {
				hc := exec.CommandContext(ctx, bin, "healthcheck")
				hc.Env = append(os.Environ(), listen)
				if hc.Run() == nil {
					break
				}
				if time.Since(start) > 2*time.Minute {
					b.Fatal("not healthy after 2 minutes")
				}
			}
			b.StopTimer()
			_ = cmd.Process.Signal(os.Interrupt)
			logs, _ := io.ReadAll(bufio.NewReader(out))
			_ = cmd.Wait()
			prefetch += prefetchTook(b, string(logs))
			toReady += readyAt(b, string(logs)).Sub(start)
			b.StartTimer()
		}
		report(b, prefetch, toReady)
	})
}

func report(b *testing.B, prefetch, toReady time.Duration) {
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms-to-healthy")
	b.ReportMetric(float64(toReady.Microseconds())/1000/float64(b.N), "ms-to-ready")
	b.ReportMetric(float64(prefetch.Microseconds())/1000/float64(b.N), "ms-prefetch")
	b.ReportMetric(0, "ns/op")
}

var readyLine = regexp.MustCompile(`time=(\S+) level=INFO msg=ready`)

// readyAt is when the agent logged that it was ready (its log's clock is
// the host's: a container shares the kernel).
func readyAt(b *testing.B, logs string) time.Time {
	m := readyLine.FindStringSubmatch(logs)
	if m == nil {
		b.Fatalf("no ready line in the agent's log:\n%s", logs)
	}
	t, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		b.Fatal(err)
	}
	return t
}

var prefetchDone = regexp.MustCompile(`msg="prefetch done".* items=100 .*duration_ms=(\d+)`)

// prefetchTook is the agent's "prefetch done" duration, from its log.
func prefetchTook(b *testing.B, logs string) time.Duration {
	m := prefetchDone.FindStringSubmatch(logs)
	if m == nil {
		b.Fatalf("no prefetch done line for 100 items in the agent's log:\n%s", logs)
	}
	ms, _ := strconv.Atoi(m[1])
	return time.Duration(ms) * time.Millisecond
}

// freeAddr is a free 127.0.0.1:port.
func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
