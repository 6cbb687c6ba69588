package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/app"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
)

// benchToken is the session token the extensions run here expect (the
// emulator's, which a.Env put in AWS_SESSION_TOKEN).
func benchToken() string { return os.Getenv("AWS_SESSION_TOKEN") }

// inProcess is the extension run by app.Run in this process, with the real
// SDK clients against the emulated AWS, driven by a fake Extensions API.
type inProcess struct {
	api    *extAPI
	addr   string // the local API's host:port
	start  time.Time
	ready  chan time.Time
	done   chan error
	cancel context.CancelFunc
	out    *exttest.SyncBuffer
}

// startInProcess runs app.Run with env (on top of the Lambda basics).
func startInProcess(env map[string]string) (*inProcess, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	x := &inProcess{
		api:   newExtAPI(),
		addr:  l.Addr().String(),
		ready: make(chan time.Time, 1),
		done:  make(chan error, 1),
		out:   &exttest.SyncBuffer{},
	}
	full := map[string]string{
		"AWS_LAMBDA_RUNTIME_API":                 x.api.Addr(),
		"AWS_SESSION_TOKEN":                      benchToken(),
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL": "warn",
	}
	for k, v := range env {
		full[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	x.start = time.Now()
	go func() {
		x.done <- app.Run(ctx, app.Options{
			Getenv:   func(k string) string { return full[k] },
			Stdout:   x.out,
			Name:     "secrets-prefetch",
			Version:  "bench",
			Listener: l,
			Ready:    func() { x.ready <- time.Now() },
		})
	}()
	return x, nil
}

// waitReady returns the time from app.Run's start to the end of prefetch.
func (x *inProcess) waitReady(d time.Duration) (time.Duration, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case at := <-x.ready:
		return at.Sub(x.start), nil
	case err := <-x.done:
		x.done <- err
		return 0, fmt.Errorf("the extension stopped during Init: %v\n%s%s", err, x.out, x.api.Errors())
	case <-t.C:
		return 0, fmt.Errorf("the extension was not ready within %s\n%s", d, x.out)
	}
}

// stop sends SHUTDOWN and waits for app.Run to return.
func (x *inProcess) stop() error {
	defer x.api.Close()
	defer x.cancel()
	x.api.shutdown()
	select {
	case err := <-x.done:
		if err != nil {
			return fmt.Errorf("app.Run: %w\n%s", err, x.out)
		}
		if errs := x.api.Errors(); errs != "" {
			return errors.New("the extension reported: " + errs)
		}
		return nil
	case <-time.After(20 * time.Second):
		return fmt.Errorf("the extension did not shut down\n%s", x.out)
	}
}

// itemsEnv is the configuration that prefetches secrets and parameters.
func itemsEnv(secrets, params []string) map[string]string {
	return map[string]string{
		"SECRETS_PREFETCH_SECRETS":    strings.Join(secrets, ","),
		"SECRETS_PREFETCH_PARAMETERS": strings.Join(params, ","),
		"SECRETS_PREFETCH_REQUIRED":   "true",
	}
}
