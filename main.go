// Command secrets-prefetch is an AWS Lambda extension that fetches the
// function's secrets and parameters during Init and serves them on
// 127.0.0.1:2773 with the API of AWS's Parameters and Secrets extension.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/secrets-prefetch/secrets-prefetch/app"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
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
