package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/config"
	"github.com/secrets-prefetch/secrets-prefetch/zerocode"
)

// Process is what Main needs from the process it runs in.
type Process struct {
	Args    []string // os.Args
	Getenv  func(string) string
	Environ []string
	Stdout  io.Writer
	Stderr  io.Writer
	Version string
}

const usage = `Usage:
  secrets-prefetch                      run as the AWS Lambda extension (what the layer starts)
  secrets-prefetch agent [--config F]   run as a sidecar or host agent until SIGTERM
  secrets-prefetch healthcheck          exit 0 if the agent's /ping answers 200, else 1
  secrets-prefetch version              print the version

Run "secrets-prefetch COMMAND --help" for a command's flags. The configuration
is read from the environment (see README.md); agent mode also reads a Secrets
Manager Agent config file with --config.
`

// Main runs the command args names and returns the process's exit code:
// no command is the Lambda extension (the layer starts it with no
// argument); --exec-wrapper is the zero-code exec wrapper.
func Main(ctx context.Context, p Process) int {
	args := p.Args[1:]
	if len(args) == 0 {
		TuneGC(p.Getenv)
		if err := Run(ctx, Options{Getenv: p.Getenv, Stdout: p.Stdout, Name: filepath.Base(p.Args[0]), Version: p.Version}); err != nil {
			fmt.Fprintln(p.Stderr, "secrets-prefetch:", err)
			return 1
		}
		return 0
	}
	switch args[0] {
	case zerocode.WrapperFlag:
		return zerocode.RunWrapper(ctx, zerocode.WrapperOptions{Args: args[1:], Getenv: p.Getenv, Environ: p.Environ, Stderr: p.Stderr})
	case "agent":
		return agentCommand(ctx, p, args[1:])
	case "healthcheck":
		return healthcheckCommand(ctx, p, args[1:])
	case "version":
		return versionCommand(p, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(p.Stdout, usage)
		return 0
	}
	fmt.Fprintf(p.Stderr, "secrets-prefetch: unknown command %q\n\n%s", args[0], usage)
	return ExitConfig
}

// parseFlags parses a command's flags; done reports that the process
// should exit with code (after --help, or a bad flag).
func parseFlags(fs *flag.FlagSet, p Process, args []string) (code int, done bool) {
	fs.SetOutput(p.Stderr)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(p.Stdout)
		fs.Usage()
		return 0, true
	case err != nil:
		return ExitConfig, true
	case fs.NArg() > 0:
		fmt.Fprintf(p.Stderr, "secrets-prefetch %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return ExitConfig, true
	}
	return 0, false
}

func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: secrets-prefetch %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func agentCommand(ctx context.Context, p Process, args []string) int {
	fs := newFlagSet("agent", `agent [--config FILE]

Runs the cache as a sidecar or host agent: prefetches, serves the HTTP API
on SECRETS_PREFETCH_LISTEN (default 127.0.0.1:2773), refreshes ahead of
expiry on a timer, and stops on SIGTERM or SIGINT. Exit codes: 0 clean stop,
1 failure while running, 2 invalid configuration, 3 a required prefetch
failed.
`)
	file := fs.String("config", "", "a Secrets Manager Agent config file (TOML); set variables win over it")
	if code, done := parseFlags(fs, p, args); done {
		return code
	}
	TuneGC(p.Getenv)
	err := RunAgent(ctx, AgentOptions{Getenv: p.Getenv, Stdout: p.Stdout, Version: p.Version, ConfigFile: *file})
	if err != nil {
		fmt.Fprintln(p.Stderr, "secrets-prefetch agent:", err)
	}
	return ExitCode(err)
}

// healthcheckTimeout bounds the healthcheck's request by default.
const healthcheckTimeout = 2 * time.Second

func healthcheckCommand(ctx context.Context, p Process, args []string) int {
	fs := newFlagSet("healthcheck", `healthcheck [--config FILE] [--timeout D]

Asks the agent's /ping on its configured address (SECRETS_PREFETCH_LISTEN,
or 127.0.0.1 and PARAMETERS_SECRETS_EXTENSION_HTTP_PORT): exit 0 when it
answers 200 (the prefetch is done), 1 otherwise. For images without a shell.
`)
	file := fs.String("config", "", "the agent's config file, if it sets the address")
	timeout := fs.Duration("timeout", healthcheckTimeout, "how long to wait for the answer")
	if code, done := parseFlags(fs, p, args); done {
		return code
	}
	var f *config.File
	if *file != "" {
		data, err := os.ReadFile(*file)
		if err == nil {
			f, err = config.ParseFile(*file, data)
		}
		if err != nil {
			fmt.Fprintln(p.Stderr, "secrets-prefetch healthcheck:", err)
			return 1
		}
	}
	addr, err := config.ListenAddress(p.Getenv, f)
	if err != nil {
		fmt.Fprintln(p.Stderr, "secrets-prefetch healthcheck:", err)
		return 1
	}
	if err := ping(ctx, dialAddress(addr), *timeout); err != nil {
		fmt.Fprintln(p.Stderr, "secrets-prefetch healthcheck:", err)
		return 1
	}
	return 0
}

// dialAddress is where to reach a listen address from the same host: a
// wildcard host (every interface) is reached on loopback.
func dialAddress(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch ip := net.ParseIP(host); {
	case host == "":
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified() && ip.To4() != nil:
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// ping asks http://addr/ping and wants 200.
func ping(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/ping", nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s/ping answered %s", addr, resp.Status)
	}
	return nil
}

func versionCommand(p Process, args []string) int {
	fs := newFlagSet("version", "version\n\nPrints the version.\n")
	if code, done := parseFlags(fs, p, args); done {
		return code
	}
	fmt.Fprintln(p.Stdout, "secrets-prefetch", p.Version)
	return 0
}
