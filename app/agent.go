package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/secrets-prefetch/secrets-prefetch/awsapi"
	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/config"
	"github.com/secrets-prefetch/secrets-prefetch/localserver"
)

// Agent mode's exit codes (DESIGN.md).
const (
	ExitOK       = 0 // a clean stop
	ExitFailure  = 1 // a failure while running
	ExitConfig   = 2 // invalid configuration: every bad variable or key is named
	ExitPrefetch = 3 // a required prefetch failed (SECRETS_PREFETCH_REQUIRED=true)
)

// ExitError is an error with the exit code the process should end with.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the exit code for RunAgent's result: ExitOK for nil.
func ExitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.Code
	}
	return ExitFailure
}

// refreshWindow is the agent's jitter window: a timer wake-up refreshes
// every entry due within 10% of its TTL, in the same batches.
const refreshWindow = 0.1

// idleConnTimeout closes a connection to AWS that has been idle this long,
// below the idle timeouts of NAT gateways (350 s) and load balancers
// (60 s): between two refreshes minutes apart, a kept connection would
// otherwise be found dead by the next refresh rather than closed by us.
const idleConnTimeout = 30 * time.Second

// agentTransport sets agent mode's HTTP transport to AWS.
func agentTransport(t *http.Transport) { t.IdleConnTimeout = idleConnTimeout }

// Timer is the refresh timer; tests inject one driven by a simulated clock.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// AgentOptions are what RunAgent needs from the process.
type AgentOptions struct {
	Getenv  func(string) string
	Stdout  io.Writer
	Version string
	// ConfigFile is --config's file, "" for none.
	ConfigFile string
	// Listener, if set, is served instead of binding the configured address.
	Listener net.Listener
	// MetricsListener, if set, serves /metrics instead of binding
	// SECRETS_PREFETCH_METRICS_LISTEN (tests).
	MetricsListener net.Listener
	// Ready, if set, is called once the prefetch is done and /ping says so.
	Ready func()
	// Now and NewTimer, if set, are the clock of the cache and of the
	// refresh timer (tests simulate days with them).
	Now      func() time.Time
	NewTimer func(time.Duration) Timer
	// Refreshed, if set, is called after each timer refresh (tests).
	Refreshed func(cache.RefreshReport)
	// AWSConfig, if set, edits the SDK configuration once loaded (tests:
	// a credentials provider whose credentials expire).
	AWSConfig func(*aws.Config)
}

// RunAgent runs agent mode until ctx ends (SIGTERM or SIGINT): the parts
// of the Lambda extension, driven by a timer instead of INVOKE events. It
// returns nil after a clean stop, or an *ExitError.
func RunAgent(ctx context.Context, o AgentOptions) error {
	var file *config.File
	var fileErr error
	if o.ConfigFile != "" {
		data, err := os.ReadFile(o.ConfigFile)
		if err != nil {
			fileErr = fmt.Errorf("reading the config file: %w", err)
		} else {
			file, fileErr = config.ParseFile(o.ConfigFile, data)
		}
	}
	a, cfgErr := config.AgentFromEnv(o.Getenv, file)
	log := config.NewLogger(o.Stdout, a.Config, errors.Join(fileErr, cfgErr), o.Getenv, "mode", "agent")
	if fileErr != nil {
		log.Error("invalid configuration", "file", o.ConfigFile, "error", fileErr)
		return &ExitError{ExitConfig, fileErr}
	}
	if cfgErr != nil {
		for _, ve := range config.VarErrors(cfgErr) {
			log.Error("invalid configuration", "variable", ve.Name, "error", ve.Error())
		}
		return &ExitError{ExitConfig, fmt.Errorf("invalid configuration: %w", cfgErr)}
	}
	for _, w := range a.Warnings {
		log.Warn(w, "file", o.ConfigFile)
	}
	if a.Metrics {
		log.Warn("CloudWatch EMF lines are written in Lambda only; in agent mode set "+config.EnvMetricsListen+" for Prometheus /metrics", "variable", config.EnvMetrics)
	}
	log.Info("starting", "version", o.Version)
	log.Debug("configuration", "config", a)

	token := a.Token
	if a.TokenFile != "" {
		t, err := readToken(a.TokenFile)
		if err != nil {
			err = fmt.Errorf("%s names a token file: %w", a.TokenVar, err)
			log.Error("invalid configuration", "variable", a.TokenVar, "error", err)
			return &ExitError{ExitConfig, err}
		}
		token = t
	}

	l := o.Listener
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", a.Listen); err != nil {
			log.Error("cannot listen", "address", a.Listen, "error", err)
			return &ExitError{ExitFailure, fmt.Errorf("listening on %s: %w", a.Listen, err)}
		}
	}
	defer l.Close()
	if !config.IsLoopback(a.Listen) {
		log.Warn("listening on an address other hosts may reach; the token check stays on", "address", a.Listen, "variable", config.EnvListen)
	}

	var extra []func(*awsconfig.LoadOptions) error
	if a.Region != "" && o.Getenv("AWS_REGION") == "" && o.Getenv("AWS_DEFAULT_REGION") == "" {
		extra = append(extra, awsconfig.WithRegion(a.Region))
	}
	awsCfg, err := loadAWSWith(ctx, a.Config, agentTransport, extra...)
	if err != nil {
		log.Error("loading AWS configuration failed", "error", err)
		return &ExitError{ExitFailure, fmt.Errorf("loading AWS configuration: %w", err)}
	}
	if o.AWSConfig != nil {
		o.AWSConfig(&awsCfg)
	}
	ep, err := awsapi.ResolveEndpoints(ctx, awsCfg, l.Addr(), log)
	if err != nil {
		log.Error("resolving the AWS endpoints failed", "error", err)
		return &ExitError{ExitFailure, err}
	}
	e := newExtension(a.Config, awsCfg, ep, log, o.Now, func(so *localserver.Options) {
		so.Token = token
		so.TokenHeaders = a.TokenHeaders
		so.PathPrefix = a.PathPrefix
		so.MaxInFlight = a.MaxInFlight
	})

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	if a.TokenFile != "" {
		watchToken(runCtx, a.TokenFile, token, e.server.SetToken, log)
	}
	metricsErr := make(chan error, 1)
	if ml := o.MetricsListener; ml != nil || a.MetricsListen != "" {
		stopMetrics, err := e.serveMetrics(ml, a.MetricsListen, metricsErr)
		if err != nil {
			log.Error("cannot listen for metrics", "address", a.MetricsListen, "variable", config.EnvMetricsListen, "error", err)
			return &ExitError{ExitFailure, fmt.Errorf("listening for metrics on %s: %w", a.MetricsListen, err)}
		}
		defer stopMetrics()
	}

	serveErr := make(chan error, 1)
	serve := func() {
		go func() { serveErr <- e.server.Serve(l) }()
		log.Info("serving", "address", l.Addr().String())
	}
	if err := e.prefetch(ctx, serve); err != nil {
		log.Error("prefetch failed", "error", err)
		e.stopWithin(a.ShutdownTimeout)
		return &ExitError{ExitPrefetch, err}
	}
	log.Info("ready")
	if o.Ready != nil {
		o.Ready()
	}

	timerDone := make(chan struct{})
	go func() {
		defer close(timerDone)
		e.timerLoop(runCtx, o)
	}()
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping", "reason", context.Cause(ctx))
	case err := <-serveErr:
		runErr = &ExitError{ExitFailure, fmt.Errorf("local server stopped: %w", err)}
		log.Error("server failed", "error", runErr)
	case err := <-metricsErr:
		runErr = &ExitError{ExitFailure, fmt.Errorf("metrics server stopped: %w", err)}
		log.Error("metrics server failed", "error", runErr)
	}
	cancelRun()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.ShutdownTimeout)
	defer cancel()
	e.stop(sctx)
	<-timerDone // its refresh ends with runCtx
	log.Info("stopped")
	return runErr
}

// timerLoop refreshes on a timer that sleeps until the cache's next due
// point (or a listing's, if sooner): nothing runs between refreshes. A value stored sooner than that
// point (a read of a new name, say) wakes it to sleep again until then.
func (e *extension) timerLoop(ctx context.Context, o AgentOptions) {
	now, newTimer := o.Now, o.NewTimer
	if now == nil {
		now = time.Now
	}
	if newTimer == nil {
		newTimer = func(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }
	}
	for {
		// A signal pending from before (this loop's own refresh stored the
		// values it fetched) is accounted for by the NextDue read below.
		select {
		case <-e.cache.DueSooner():
		default:
		}
		next := e.cache.NextDue()
		if ln := e.listings.nextDue(); !ln.IsZero() && ln.Before(next) {
			next = ln // a path or selection to list again first
		}
		if d := next.Sub(now()); d > 0 {
			t := newTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-e.cache.DueSooner():
				t.Stop()
				continue
			case <-t.C():
			}
		}
		if ctx.Err() != nil {
			return
		}
		rep := e.refreshUntil(ctx, time.Now().Add(e.refreshTimeout()), nil, refreshWindow)
		if o.Refreshed != nil {
			o.Refreshed(rep)
		}
	}
}
