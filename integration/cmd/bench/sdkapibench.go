package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// The AWS API endpoint (issue 13): GetSecretValue through the AWS SDK for Go
// v2, the function's own client, side by side against
//   - the extension (POST /, served from its cache),
//   - the emulated AWS with no injected latency (what the call costs without
//     the extension, on this machine: the floor of a real AWS call),
//   - a no-op transport answering the same bytes at once (the SDK's own
//     client-side cost: serializing, signing, deserializing).
// Calls are sequential, on kept-alive connections; rounds alternate the order
// of the three so a drift in the machine's load favours none.

// SDKAPIResult is the section's outcome: per target, the median over rounds
// of each round's median and 99th-percentile latency per call.
type SDKAPIResult struct {
	Calls   int          `json:"calls_per_round"`
	Rounds  int          `json:"rounds"`
	Targets []SDKAPIStat `json:"targets"`
}

// SDKAPIStat is one target's figures.
type SDKAPIStat struct {
	Target string    `json:"target"`
	P50us  float64   `json:"p50_us"`
	P99us  float64   `json:"p99_us"`
	Rounds []float64 `json:"round_p50_us"`
	// CPUus is this process's CPU time per call (median over rounds): the
	// client's, plus the extension's or the emulator's (all in this
	// process); steadier than wall time on a shared machine.
	CPUus float64 `json:"cpu_us_per_call"`
}

func (w *world) sdkapiSection(ctx context.Context, rep *Report) error {
	x, err := startInProcess(map[string]string{"SECRETS_PREFETCH_SECRETS": w.getSecret, "SECRETS_PREFETCH_REQUIRED": "true"})
	if err != nil {
		return err
	}
	defer x.stop()
	if _, err := x.waitReady(time.Minute); err != nil {
		return err
	}
	creds := credentials.StaticCredentialsProvider{Value: w.aws.Credentials}
	client := func(endpoint string, hc aws.HTTPClient) *secretsmanager.Client {
		return secretsmanager.New(secretsmanager.Options{
			Region: w.aws.Region(), Credentials: creds, BaseEndpoint: aws.String(endpoint), HTTPClient: hc,
			RetryMaxAttempts: 1,
		})
	}
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(w.getSecret)}

	// The bytes the extension answers, for the no-op transport to answer too.
	var answer []byte
	capture := client("http://"+x.addr, doFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultClient.Do(r)
		if err == nil {
			answer, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(answer))
		}
		return resp, err
	}))
	if _, err := capture.GetSecretValue(ctx, in); err != nil {
		return fmt.Errorf("GetSecretValue through the extension: %w", err)
	}
	noop := doFunc(func(r *http.Request) (*http.Response, error) {
		if r.Body != nil {
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
		}
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
			Body: io.NopCloser(bytes.NewReader(answer)), ContentLength: int64(len(answer)), Request: r}, nil
	})

	targets := []struct {
		name string
		c    *secretsmanager.Client
	}{
		{"extension (POST /, cached)", client("http://"+x.addr, nil)},
		{"emulated AWS, 0 ms latency", client(w.aws.URL, nil)},
		{"SDK alone (no-op transport)", client("http://127.0.0.1:1", noop)},
	}
	calls, rounds := 2000, 5
	if rep.Smoke {
		calls, rounds = 20, 1
	}
	res := &SDKAPIResult{Calls: calls, Rounds: rounds}
	p50s, p99s, cpus := make([][]float64, len(targets)), make([][]float64, len(targets)), make([][]float64, len(targets))
	for round := range rounds {
		order := []int{0, 1, 2}
		for range round % 3 {
			order = append(order[1:], order[0])
		}
		for _, i := range order {
			lat := make([]float64, 0, calls)
			cpu0 := processCPU()
			for range calls {
				t := time.Now()
				if _, err := targets[i].c.GetSecretValue(ctx, in); err != nil {
					return fmt.Errorf("%s: %w", targets[i].name, err)
				}
				lat = append(lat, us(time.Since(t)))
			}
			cpus[i] = append(cpus[i], us(processCPU()-cpu0)/float64(calls))
			slices.Sort(lat)
			p50s[i] = append(p50s[i], lat[len(lat)/2])
			p99s[i] = append(p99s[i], lat[len(lat)*99/100])
		}
	}
	for i, t := range targets {
		s := SDKAPIStat{Target: t.name, P50us: median(p50s[i]), P99us: median(p99s[i]), Rounds: p50s[i], CPUus: median(cpus[i])}
		w.log("  SDK GetSecretValue, %s: p50 %.0f µs, p99 %.0f µs, CPU %.0f µs/call", s.Target, s.P50us, s.P99us, s.CPUus)
		res.Targets = append(res.Targets, s)
	}
	rep.SDKAPI = res
	return nil
}

type doFunc func(*http.Request) (*http.Response, error)

func (f doFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

func (r *Report) sdkapiMarkdown(p printer) {
	s := r.SDKAPI
	if s == nil || len(s.Targets) != 3 {
		return
	}
	p("## 9. The function's SDK, unchanged (AWS API endpoint)")
	p("")
	p("`GetSecretValue` through the AWS SDK for Go v2 (the function's own client, signing every call), sequential on kept-alive connections: %d calls per round, %d rounds in alternating order, medians over rounds.", s.Calls, s.Rounds)
	p("")
	p("| target | p50 per call | p99 per call | CPU per call (client + server) |")
	p("|---|---|---|---|")
	for _, t := range s.Targets {
		p("| %s | %.0f µs | %.0f µs | %.0f µs |", t.Target, t.P50us, t.P99us, t.CPUus)
	}
	p("")
	ext, sdk := s.Targets[0], s.Targets[2]
	p("Of a call answered by the extension, the SDK's own client-side work (serializing, signing, deserializing) is %.0f µs of wall time and %.0f µs of CPU; the loopback round trip and the extension's work (signature check, cache read, serializing the answer) the other %.0f µs and %.0f µs. The emulated AWS in the same process, with no network latency, is the floor of a call to AWS; a real one adds the network's round trip (typically milliseconds within a region). Wall times on a loaded machine include waiting for a CPU; the CPU column does not.", sdk.P50us, sdk.CPUus, ext.P50us-sdk.P50us, ext.CPUus-sdk.CPUus)
	p("")
}
