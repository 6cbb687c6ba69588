// Command secrets-prefetch is an AWS Lambda extension that fetches the
// function's secrets and parameters during Init and serves them on
// 127.0.0.1:2773 with the API of AWS's Parameters and Secrets extension.
//
// Started as `secrets-prefetch --exec-wrapper COMMAND [ARGS...]` (by the
// layer's /opt/secrets-prefetch-env, through AWS_LAMBDA_EXEC_WRAPPER) it is
// instead the exec wrapper that sets SECRETS_PREFETCH_ENV's variables and
// execs the runtime.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/secrets-prefetch/secrets-prefetch/app"
	"github.com/secrets-prefetch/secrets-prefetch/zerocode"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == zerocode.WrapperFlag {
		os.Exit(zerocode.RunWrapper(ctx, zerocode.WrapperOptions{
			Args: os.Args[2:], Getenv: os.Getenv, Environ: os.Environ(), Stderr: os.Stderr,
		}))
	}
	app.TuneGC(os.Getenv)
	if err := run(ctx, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "secrets-prefetch:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	return app.Run(ctx, app.Options{
		Getenv:  getenv,
		Stdout:  os.Stdout,
		Name:    filepath.Base(os.Args[0]),
		Version: version,
	})
}
