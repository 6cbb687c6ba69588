// Command secrets-prefetch is an AWS Lambda extension that fetches the
// function's secrets and parameters during Init and serves them on
// 127.0.0.1:2773 with the API of AWS's Parameters and Secrets extension.
//
// `secrets-prefetch agent` runs the same cache as a container sidecar or
// host agent, refreshed on a timer; `healthcheck` and `version` serve
// images without a shell. Started as `secrets-prefetch --exec-wrapper
// COMMAND [ARGS...]` (by the layer's /opt/secrets-prefetch-env, through
// AWS_LAMBDA_EXEC_WRAPPER) it is instead the exec wrapper that sets
// SECRETS_PREFETCH_ENV's variables and execs the runtime.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/secrets-prefetch/secrets-prefetch/app"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := app.Main(ctx, app.Process{
		Args: os.Args, Getenv: os.Getenv, Environ: os.Environ(),
		Stdout: os.Stdout, Stderr: os.Stderr, Version: version,
	})
	stop()
	os.Exit(code)
}
