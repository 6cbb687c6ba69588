// Command loopfloor is the floor of an extension's INVOKE cycle: it
// registers and then only asks for the next event, with the extension's own
// Extensions API client (package lifecycle), until SHUTDOWN. The benchmark
// driver (integration/cmd/bench) measures its CPU per cycle beside the
// extension's, as what any Go extension spends to take an INVOKE at all.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/secrets-prefetch/secrets-prefetch/lifecycle"
)

func main() {
	ctx := context.Background()
	lc := lifecycle.NewClient(os.Getenv("AWS_LAMBDA_RUNTIME_API"), nil)
	if _, err := lc.Register(ctx, filepath.Base(os.Args[0])); err != nil {
		fmt.Fprintln(os.Stderr, "loopfloor:", err)
		os.Exit(1)
	}
	for {
		ev, err := lc.NextWithRetry(ctx, 5, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loopfloor:", err)
			os.Exit(1)
		}
		if ev.EventType == lifecycle.Shutdown {
			return
		}
	}
}
