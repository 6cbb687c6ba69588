// Command testapp is the app container of the container tests and of `make
// demo-agent`: a static binary in a scratch image that reads through the
// secrets-prefetch agent on the pod's localhost, as an application would,
// and prints one JSON line (wire.Line) per read.
//
// Usage: testapp [-every D] [-rounds N] [-stay] READ...
//
// A READ is secret:ID, parameter:NAME (decrypted), or path:/RAW?QUERY; with
// the prefix notoken: it is sent without the token. The agent's address is
// SECRETS_AGENT_URL (default http://127.0.0.1:2773) and the token is read,
// on every request, from the file SECRETS_AGENT_TOKEN_FILE: the settings
// examples/kubernetes gives its app container.
//
// Before its first read it waits, polling /ping, until the agent is ready:
// in Kubernetes the agent's startupProbe holds the app back until then, but
// podman 4.3 has no native sidecars, so under `podman kube play` the two
// start together.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/container/testapp/wire"
	"github.com/secrets-prefetch/secrets-prefetch/integration/testfunc"
)

func main() {
	every := flag.Duration("every", 0, "pause between rounds of reads")
	rounds := flag.Int("rounds", 1, "rounds of reads")
	stay := flag.Bool("stay", false, "after the last round, wait for SIGTERM instead of exiting")
	wait := flag.Duration("wait", 2*time.Minute, "longest wait for the agent's /ping to answer 200")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *every, *rounds, *wait, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		os.Exit(1)
	}
	if *stay {
		<-ctx.Done()
	}
}

func run(ctx context.Context, every time.Duration, rounds int, wait time.Duration, reads []string) error {
	base := os.Getenv("SECRETS_AGENT_URL")
	if base == "" {
		base = "http://127.0.0.1:2773"
	}
	c := &client{base: base, tokenFile: os.Getenv("SECRETS_AGENT_TOKEN_FILE"), http: &http.Client{Timeout: 30 * time.Second}}
	if err := c.waitReady(ctx, wait); err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	for round := 1; round <= rounds; round++ {
		if round > 1 {
			select {
			case <-time.After(every):
			case <-ctx.Done():
				return nil
			}
		}
		for _, r := range reads {
			if err := enc.Encode(wire.Line{Round: round, Read: c.read(ctx, r)}); err != nil {
				return err
			}
		}
	}
	return nil
}

type client struct {
	base      string
	tokenFile string
	http      *http.Client
}

// waitReady polls /ping until it answers 200 (see the package comment).
func (c *client) waitReady(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/ping", nil)
		if err != nil {
			return err
		}
		resp, err := c.http.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("the agent at %s was not ready within %s", c.base, within)
		}
	}
}

// read does one READ (see the package comment).
func (c *client) read(ctx context.Context, spec string) testfunc.Read {
	spec, noToken := strings.CutPrefix(spec, "notoken:")
	kind, name, _ := strings.Cut(spec, ":")
	var path string
	switch kind {
	case "secret":
		path = "/secretsmanager/get?secretId=" + url.QueryEscape(name)
	case "parameter":
		path = "/systemsmanager/parameters/get?withDecryption=true&name=" + url.QueryEscape(name)
	default:
		path = name
	}
	r := testfunc.Read{Path: path}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		r.TransportError = err.Error()
		return r
	}
	if !noToken {
		token, err := os.ReadFile(c.tokenFile)
		if err != nil {
			r.TransportError = "reading the token: " + err.Error()
			return r
		}
		req.Header.Set("X-Aws-Parameters-Secrets-Token", strings.TrimSpace(string(token)))
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		r.TransportError = err.Error()
		return r
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	r.LatencyMillis = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		r.TransportError = err.Error()
	}
	r.Status, r.XCache, r.Age = resp.StatusCode, resp.Header.Get("X-Cache"), resp.Header.Get("Age")
	r.Value = value(kind, resp.StatusCode, body)
	return r
}

// value is the secret's SecretString or the parameter's Value from a 200
// answer; the raw body otherwise.
func value(kind string, status int, body []byte) string {
	if status != http.StatusOK {
		return string(body)
	}
	var v struct {
		SecretString string
		Parameter    struct{ Value string }
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return string(body)
	}
	switch kind {
	case "secret":
		return v.SecretString
	case "parameter":
		return v.Parameter.Value
	}
	return string(body)
}
