// Package app runs the extension: configuration, registration, the local
// server, prefetch during Init, and the event loop that refreshes on INVOKE
// and shuts down on SHUTDOWN. main stays a thin shell around Run.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/secrets-prefetch/secrets-prefetch/awsapi"
	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/config"
	"github.com/secrets-prefetch/secrets-prefetch/internal/names"
	"github.com/secrets-prefetch/secrets-prefetch/lifecycle"
	"github.com/secrets-prefetch/secrets-prefetch/localserver"
	"github.com/secrets-prefetch/secrets-prefetch/source"
	"github.com/secrets-prefetch/secrets-prefetch/zerocode"
)

// Error types of ours, beside lifecycle's, for failures Lambda should show.
const (
	errorTypeInitFailed   = "Extension.InitFailed"
	errorTypeListenFailed = "Extension.ListenFailed"
)

// Timing margins: how long before Lambda's deadline our work must be done.
const (
	invokeMargin     = 50 * time.Millisecond
	shutdownMargin   = 100 * time.Millisecond
	defaultShutdown  = 2 * time.Second // when a SHUTDOWN event carries no deadline
	defaultRefreshTO = 5 * time.Second // when both service timeouts are 0
	nextAttempts     = 5
	// minRefreshWindow is the least time before an invoke's deadline worth
	// starting a refresh in: about one AWS round trip with a retry. With
	// less, due items wait for the next event (or a read) instead.
	minRefreshWindow = 100 * time.Millisecond
	// reportTimeout bounds an init/error or exit/error call: Lambda answers
	// at once, and an API that doesn't must not keep the extension from exiting.
	reportTimeout = 2 * time.Second
)

// Options are what Run needs from the process.
type Options struct {
	Getenv  func(string) string
	Stdout  io.Writer
	Name    string // the extension's name: its executable's base name
	Version string
	// HTTPClient, if set, is used for the Extensions API (tests).
	HTTPClient *http.Client
	// Ready, if set, is called once prefetch is done and the API is ready.
	Ready func()
	// Listener, if set, is served instead of binding 127.0.0.1 on the
	// configured port (tests, which need a free port).
	Listener net.Listener
	// Now, if set, is the cache's clock (tests, which must not wait out TTLs).
	Now func() time.Time
	// Clocks, if set, are the clocks SnapStart restore detection compares
	// (tests, which can't pause a microVM).
	Clocks Clocks
}

// Run runs the extension until SHUTDOWN or ctx ends. It returns nil after a
// clean shutdown, and an error (already reported to Lambda) otherwise.
func Run(ctx context.Context, o Options) error {
	cfg, cfgErr := config.FromEnv(o.Getenv)
	log := config.NewLogger(o.Stdout, cfg, cfgErr, o.Getenv, "extension", "secrets-prefetch")

	api := o.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api == "" {
		err := errors.New("AWS_LAMBDA_RUNTIME_API is not set: the extension must run inside a Lambda execution environment")
		log.Error("cannot start", "error", err)
		return err
	}
	// Bind before registering: Lambda starts the runtime once every
	// extension has registered, and the runtime's Init may call us at once.
	// Until we serve, its connections wait in the listen backlog.
	l, listenErr := o.Listener, error(nil)
	if l == nil && cfgErr == nil {
		l, listenErr = localserver.Listen(cfg.HTTPPort)
	}
	if l != nil {
		defer l.Close() // after a failed Init; Serve's own close wins otherwise
	}

	lc := lifecycle.NewClient(api, o.HTTPClient)
	if _, err := lc.Register(ctx, o.Name); err != nil {
		log.Error("register failed", "name", o.Name, "error", err)
		return fmt.Errorf("register: %w", err)
	}
	log.Info("registered", "name", o.Name, "version", o.Version)

	if cfgErr != nil {
		for _, ve := range config.VarErrors(cfgErr) {
			log.Error("invalid configuration", "variable", ve.Name, "error", ve.Error())
		}
		return initError(ctx, lc, log, lifecycle.ErrorTypeConfigInvalid, fmt.Errorf("invalid configuration: %w", cfgErr))
	}
	log.Debug("configuration", "config", cfg)

	awsCfg, err := loadAWS(ctx, cfg)
	if err != nil {
		return initError(ctx, lc, log, errorTypeInitFailed, fmt.Errorf("loading AWS configuration: %w", err))
	}
	var self net.Addr
	if l != nil {
		self = l.Addr()
	}
	ep, err := awsapi.ResolveEndpoints(ctx, awsCfg, self, log)
	if err != nil {
		return initError(ctx, lc, log, errorTypeInitFailed, err)
	}
	e := newExtension(cfg, awsCfg, ep, log, o.Now, nil)
	e.metrics = newEMF(cfg, o, e)
	if e.guard != nil {
		e.guard.clocks = o.Clocks.orDefault()
	}

	if listenErr != nil {
		return initError(ctx, lc, log, errorTypeListenFailed, fmt.Errorf("listening on 127.0.0.1:%d (is AWS's Parameters and Secrets layer also attached? it reads %s too, so remove one of the two layers): %w", cfg.HTTPPort, config.EnvHTTPPort, listenErr))
	}
	// Serve once the prefetch is in flight, so that an early read joins it
	// rather than fetching the item on its own.
	serveErr := make(chan error, 1)
	serve := func() {
		go func() { serveErr <- e.server.Serve(l) }()
		log.Info("serving", "address", l.Addr().String())
	}
	if err := e.prefetch(ctx, serve); err != nil {
		e.stopWithin(defaultShutdown)
		return initError(ctx, lc, log, lifecycle.ErrorTypePrefetchFailed, err)
	}
	if e.guard != nil {
		e.guard.mark() // what the snapshot will hold is settled
	}
	if o.Ready != nil {
		o.Ready()
	}
	releaseMemory() // before the first event/next: still Init, for Lambda
	return e.loop(ctx, lc, serveErr)
}

func initError(ctx context.Context, lc *lifecycle.Client, log *slog.Logger, typ string, err error) error {
	log.Error("init failed", "errorType", typ, "error", err)
	rctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	if rerr := lc.InitError(rctx, typ, err); rerr != nil {
		log.Error("reporting init error failed", "error", rerr)
	}
	return err
}

func exitError(ctx context.Context, lc *lifecycle.Client, err error) error {
	rctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	return lc.ExitError(rctx, lifecycle.ErrorTypeRuntimeError, err)
}

// extension is the parts both drivers run: the Lambda event loop (Run) and
// the agent's refresh timer (RunAgent). They are assembled once, the same
// way for both; only who pushes refreshes and who decides when to stop
// differs.
type extension struct {
	cfg    config.Config
	log    *slog.Logger
	cache  *cache.Cache
	server *localserver.Server
	files  *zerocode.Files // SECRETS_PREFETCH_FILES
	// fetcher is what the cache fetches with; metrics reads its Stats.
	fetcher cache.Fetcher
	// listings lists paths and selections again as they fall due.
	listings *listings
	awsAPI   *awsapi.Handler // POST /, for its counters; nil in some tests
	guard    *snapGuard      // under SnapStart: restore detection before reads
	metrics  *emf            // nil unless SECRETS_PREFETCH_METRICS=true
	ready    atomic.Bool
}

// newExtension assembles the parts around AWS: the source's clients reach
// AWS at ep (never this extension itself), and POST / answers the
// function's own SDK. server, if set, edits the local server's options
// (agent mode's token headers, path prefix, request bound).
func newExtension(cfg config.Config, awsCfg aws.Config, ep awsapi.Endpoints, log *slog.Logger, now func() time.Time, server func(*localserver.Options)) *extension {
	// Marked, so a loop through an endpoint naming this extension under a
	// name ResolveEndpoints can't tell is refused at the first hop.
	awsCfg.HTTPClient = awsapi.MarkRequests(awsCfg.HTTPClient)
	src := source.New(source.Options{
		SecretsManager:      secretsmanager.NewFromConfig(awsCfg, ep.SecretsManagerOptions),
		SSM:                 ssm.NewFromConfig(awsCfg, ep.SSMOptions),
		HomeRegion:          awsCfg.Region,
		NewClients:          reachClients(awsCfg, ep),
		MaxRoles:            cfg.MaxRoles,
		FailoverRegion:      cfg.FailoverRegion,
		MaxConcurrency:      cfg.MaxConnections,
		PrefetchConcurrency: cfg.Concurrency,
		RetryThrottled:      true,
		SecretsTimeout:      cfg.SecretsTimeout,
		ParametersTimeout:   cfg.ParamsTimeout,
		Logger:              log,
	})
	return assemble(cfg, src, log, now, func(c awsapi.Cache, paths awsapi.Paths) http.Handler {
		return awsapi.New(awsapi.Options{
			Cache:                  c,
			Paths:                  paths,
			Credentials:            awsCfg.Credentials,
			Region:                 awsCfg.Region,
			SecretsManagerEndpoint: ep.SecretsManagerURL,
			SSMEndpoint:            ep.SSMURL,
			// Its own connections: forwarded calls are the function's, and
			// must not queue behind the extension's MaxConnections.
			HTTPClient: awshttp.NewBuildableClient(),
			Logger:     log, // (its clock is the wall clock: signatures are dated by it)
		})
	}, server)
}

// reachClients makes the clients for an ARN of another region (fetched
// there) and for a role: made from the same configuration (retries, HTTP
// client and so the connection limit), with that region's endpoint and
// signature, and the role's credentials from sts:AssumeRole, cached and
// renewed before they expire. One credentials cache per role serves every
// region.
func reachClients(awsCfg aws.Config, ep awsapi.Endpoints) source.ClientFactory {
	stsClient := sts.NewFromConfig(awsCfg)
	var mu sync.Mutex // protects roles
	roles := map[string]aws.CredentialsProvider{}
	return func(region, role string) (source.SecretsManagerAPI, source.SSMAPI, error) {
		c := awsCfg.Copy()
		if region != "" {
			c.Region = region
		}
		if role != "" {
			mu.Lock()
			p := roles[role]
			if p == nil {
				p = aws.NewCredentialsCache(source.RoleCredentials(role, stscreds.NewAssumeRoleProvider(stsClient, role, func(o *stscreds.AssumeRoleOptions) {
					o.RoleSessionName = "secrets-prefetch"
				})), func(o *aws.CredentialsCacheOptions) {
					// stscreds asks for 15 minutes: renew in their last
					// 5, so no fetch waits on STS.
					o.ExpiryWindow = 5 * time.Minute
					o.ExpiryWindowJitterFrac = 0.2
				})
				roles[role] = p
			}
			mu.Unlock()
			c.Credentials = p
		}
		return secretsmanager.NewFromConfig(c, ep.SecretsManagerOptions), ssm.NewFromConfig(c, ep.SSMOptions), nil
	}
}

// assemble builds the cache and server around a fetcher. awsAPI, if set,
// makes the handler of POST / (the AWS API endpoint) around the cache (or,
// under SnapStart, the restore guard before it) and the paths' listings;
// server, if set, edits the local server's options.
func assemble(cfg config.Config, f cache.Fetcher, log *slog.Logger, now func() time.Time, awsAPI func(awsapi.Cache, awsapi.Paths) http.Handler, server ...func(*localserver.Options)) *extension {
	e := &extension{cfg: cfg, log: log, fetcher: f}
	if now == nil {
		now = time.Now
	}
	static := listed(cfg)
	e.listings = newListings(cfg, f, static, now)
	secretsTTL, paramsTTL := cfg.SecretsTTL, cfg.ParametersTTL
	if !cfg.CacheEnabled {
		secretsTTL, paramsTTL = 0, 0
	}
	e.cache = cache.New(cache.Options{
		Fetcher:           recorder{Fetcher: f, l: e.listings},
		SecretsTTL:        secretsTTL,
		ParametersTTL:     paramsTTL,
		RefreshAhead:      cfg.RefreshAhead,
		StaleIfError:      cfg.StaleIfError,
		Size:              cfg.CacheSize,
		Lazy:              cfg.Lazy,
		Listed:            func(k source.Key) bool { return static(k) || e.listings.isMember(k) },
		SecretsTimeout:    cfg.SecretsTimeout,
		ParametersTimeout: cfg.ParamsTimeout,
		Now:               now,
	})
	// Under SnapStart reads go through the restore guard.
	var reader interface {
		localserver.Cache
		awsapi.Cache
	} = e.cache
	if cfg.SnapStart {
		e.guard = newSnapGuard(e.cache, Clocks{}, cfg.SnapshotExclude, e.refetchAll, func(msg string, args ...any) { log.Info(msg, args...) })
		reader = e.guard
	}
	var api http.Handler
	if awsAPI != nil {
		api = awsAPI(reader, e.listings)
		e.awsAPI, _ = api.(*awsapi.Handler)
	}
	e.listings.cache = e.cache
	so := localserver.Options{
		Cache:   reader,
		AWSAPI:  api,
		Token:   cfg.Token,
		Ready:   e.ready.Load,
		MaxWait: e.cache.MaxWait(),
		Logger:  log,
	}
	for _, edit := range server {
		if edit != nil {
			edit(&so)
		}
	}
	e.server = localserver.New(so)
	e.files = zerocode.NewFiles(zerocode.FilesOptions{Entries: cfg.FileMapping, Source: e.cache, Logger: log})
	return e
}

// listed reports whether a key is one the configuration names: a listed
// secret (any version of it), a listed parameter or one under a listed path.
func listed(cfg config.Config) func(source.Key) bool {
	type item struct{ id, role string }
	secrets := make(map[item]bool, len(cfg.Secrets))
	for _, s := range cfg.Secrets {
		k := secretKey(s)
		secrets[item{k.ID, k.Role}] = true
	}
	params := make(map[item]bool, len(cfg.Parameters))
	for _, p := range cfg.Parameters {
		k := parameterKey(p)
		params[item{k.ID, k.Role}] = true
	}
	paths := slices.Clone(cfg.ParameterPaths)
	for _, k := range zerocode.Keys(cfg.EnvMapping, cfg.FileMapping) {
		if k.Service == source.SecretsManager {
			secrets[item{k.ID, k.Role}] = true
		} else {
			params[item{k.ID, k.Role}] = true
		}
	}
	return func(k source.Key) bool {
		if k.Service == source.SecretsManager {
			return secrets[item{k.ID, k.Role}]
		}
		if params[item{k.ID, k.Role}] {
			return true
		}
		if k.Role != "" {
			return false // paths are read with the function's own credentials
		}
		for _, p := range paths {
			if p.Matches(k.ID) {
				return true
			}
		}
		return false
	}
}

// parameterKey turns a configured parameter ("name" or "name:selector",
// either with "|role") into the key a prefetch stores it under.
func parameterKey(entry string) source.Key {
	p, role := config.SplitRole(entry)
	k := source.ParameterKey(p)
	k.Role = role
	if name, sel := names.SplitSelector(p); sel != "" {
		k.ID, k.Selector = name, ":"+sel
	}
	return k
}

// secretKey turns a configured secret ("id" or "id|role") into its key.
func secretKey(entry string) source.Key {
	id, role := config.SplitRole(entry)
	k := source.SecretKey(id)
	k.Role = role
	return k
}

// prefetch fetches everything configured within the Init budget. Under
// SECRETS_PREFETCH_REQUIRED it fails when any item (or path) could not be had.
// started is called once the prefetch is in flight.
func (e *extension) prefetch(ctx context.Context, started func()) error {
	defer e.ready.Store(true)
	keys := make([]source.Key, 0, len(e.cfg.Secrets)+len(e.cfg.Parameters))
	for _, s := range e.cfg.Secrets {
		keys = append(keys, secretKey(s))
	}
	for _, p := range e.cfg.Parameters {
		keys = append(keys, parameterKey(p))
	}
	paths := make([]cache.Path, len(e.cfg.ParameterPaths))
	for i, p := range e.cfg.ParameterPaths {
		paths[i] = cache.Path{Prefix: p.Prefix, Recursive: p.Recursive}
	}
	// The zero-code mappings' items are prefetched too; their failures are
	// the mappings' to report, per entry ("?" marks an optional one).
	mapped := zerocode.Keys(e.cfg.EnvMapping, e.cfg.FileMapping)
	if len(keys) == 0 && len(paths) == 0 && len(mapped) == 0 && len(e.cfg.Selections) == 0 {
		e.log.Info("nothing to prefetch", "hint", "set "+config.EnvSecrets+" or "+config.EnvParameters)
		started()
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, e.cfg.InitTimeout)
	defer cancel()
	if e.cfg.SnapStart && e.cfg.SnapshotExclude {
		// Nothing in the snapshot: the values are fetched at restore
		// (snapGuard). Selections are listed now: names, not values.
		if len(e.cfg.Selections) > 0 {
			e.listings.listSelections(pctx)
		}
		e.log.Info("SnapStart: values are fetched after restore, not kept in the snapshot", "variable", config.EnvSnapshot)
		started()
		return nil
	}
	var problems []string
	if len(e.cfg.Selections) > 0 {
		// Listed first, so their secrets join the prefetch's batches; reads
		// wait in the listen backlog meanwhile rather than miss them.
		members, failed := e.listings.listSelections(pctx)
		for sel, err := range failed {
			e.log.Warn("listing a selection failed", "selection", sel, "error", err)
			problems = append(problems, fmt.Sprintf("selection %s (%s)", sel, errCode(err)))
		}
		e.log.Info("selections listed", "secrets", len(members))
		keys = append(keys, members...)
	}
	pf := e.cache.StartPrefetch(pctx, slices.Concat(keys, mapped), paths)
	started()
	rep := pf.Wait()

	for _, k := range keys {
		if err, ok := rep.Failed[k]; ok {
			e.log.Warn("prefetch failed", "item", k.String(), "code", err.Code, "class", err.Class.String(), "error", err.Message)
			problems = append(problems, fmt.Sprintf("%s (%s)", k, err.Code))
		}
	}
	for _, p := range paths {
		n := rep.Paths[p]
		if err := rep.PathErrs[p]; err != nil {
			e.log.Warn("prefetch of path failed", "path", pathString(p), "found", n, "error", err)
			problems = append(problems, fmt.Sprintf("path %s (%s)", pathString(p), errCode(err)))
		} else if n == 0 {
			e.log.Warn("prefetch of path found no parameter", "path", pathString(p))
			problems = append(problems, fmt.Sprintf("path %s (matched no parameter)", pathString(p)))
		}
	}
	if pctx.Err() != nil && ctx.Err() == nil {
		e.log.Warn("prefetch budget ran out", "budget", e.cfg.InitTimeout, "variable", config.EnvInitTimeout)
	}
	e.log.Info("prefetch done", "items", rep.Fetched, "failed", len(problems), "duration_ms", rep.Duration.Milliseconds())
	e.metrics.prefetched(rep.Duration, rep.Fetched, len(problems))
	if len(problems) > 0 && e.cfg.Required {
		return fmt.Errorf("required items could not be fetched (%s=true): %s", config.EnvRequired, strings.Join(problems, ", "))
	}
	if rep.Configured > e.cfg.CacheSize {
		// They are all kept (configured items are never evicted), so the
		// cache holds more than the bound says, and reads of other names
		// have almost no room.
		e.log.Warn("the configured items do not fit the cache; all are kept, past its bound: raise it",
			"variable", config.EnvCacheSize, "size", e.cfg.CacheSize, "configured", rep.Configured)
		if e.cfg.Required {
			return fmt.Errorf("the configured items (%d: listed, under listed paths and mapped) do not fit %s=%d (%s=true): raise it to at least %d",
				rep.Configured, config.EnvCacheSize, e.cfg.CacheSize, config.EnvRequired, rep.Configured)
		}
	}
	// Before /ping says ready: a required file that can't be written fails Init.
	return e.files.Write(ctx)
}

// prefetchSet is everything configured: keys (listed items, the members
// the selections found last, the zero-code mappings' items) and paths.
func (e *extension) prefetchSet() ([]source.Key, []cache.Path) {
	var keys []source.Key
	for _, s := range e.cfg.Secrets {
		keys = append(keys, secretKey(s))
	}
	for _, p := range e.cfg.Parameters {
		keys = append(keys, parameterKey(p))
	}
	keys = append(keys, e.listings.selectionMembers()...)
	keys = append(keys, zerocode.Keys(e.cfg.EnvMapping, e.cfg.FileMapping)...)
	paths := make([]cache.Path, len(e.cfg.ParameterPaths))
	for i, p := range e.cfg.ParameterPaths {
		paths[i] = cache.Path{Prefix: p.Prefix, Recursive: p.Recursive}
	}
	return keys, paths
}

// refetchAll starts fetching everything configured, in batches, and
// returns at once: reads from then on join it. After a SnapStart restore.
func (e *extension) refetchAll() {
	keys, paths := e.prefetchSet()
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.InitTimeout)
	pf := e.cache.StartPrefetch(ctx, keys, paths)
	go func() {
		defer cancel()
		rep := pf.Wait()
		e.log.Info("fetched after restore", "items", rep.Fetched, "failed", len(rep.Failed)+len(rep.PathErrs), "duration_ms", rep.Duration.Milliseconds())
		for k, err := range rep.Failed {
			e.log.Warn("fetch after restore failed", "item", k.String(), "code", err.Code, "error", err.Message)
		}
	}()
}

func pathString(p cache.Path) string {
	return config.Path{Prefix: p.Prefix, Recursive: p.Recursive}.String()
}

func errCode(err error) string {
	var serr *source.Error
	if errors.As(err, &serr) {
		return serr.Code
	}
	return "error"
}

// loop answers Lambda's events until SHUTDOWN.
func (e *extension) loop(ctx context.Context, lc *lifecycle.Client, serveErr <-chan error) error {
	for {
		ev, err := lc.NextWithRetry(ctx, nextAttempts, nil)
		if err != nil {
			if ctx.Err() != nil {
				// Stopped by a signal: not a failure of ours.
				e.log.Info("stopping", "reason", context.Cause(ctx))
				e.stopWithin(defaultShutdown)
				return nil
			}
			e.log.Error("event/next failed", "error", err)
			e.stopWithin(defaultShutdown)
			if rerr := exitError(ctx, lc, err); rerr != nil {
				e.log.Error("reporting exit error failed", "error", rerr)
			}
			return err
		}
		select {
		case err := <-serveErr:
			err = fmt.Errorf("local server stopped: %w", err)
			e.log.Error("server failed", "error", err)
			e.stopWithin(defaultShutdown)
			if rerr := exitError(ctx, lc, err); rerr != nil {
				e.log.Error("reporting exit error failed", "error", rerr)
			}
			return err
		default:
		}
		switch ev.EventType {
		case lifecycle.Invoke:
			if e.guard != nil {
				e.guard.check() // the first INVOKE after a restore
			}
			e.refresh(ctx, ev)
			e.metrics.invoke()
		case lifecycle.Shutdown:
			deadline := ev.Deadline()
			if deadline.IsZero() {
				deadline = time.Now().Add(defaultShutdown)
			}
			// Bounded by the event's deadline alone: a signal arriving too
			// must not cut the drain short.
			sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline.Add(-shutdownMargin))
			e.stop(sctx)
			e.metrics.flush(string(ev.ShutdownReason))
			cancel()
			e.log.Info("shut down", "reason", string(ev.ShutdownReason))
			return nil
		default:
			e.log.Warn("ignoring unknown event", "type", string(ev.EventType))
		}
	}
}

// refresh fetches what is due before the next event is asked for, so no
// fetch straddles a freeze. It is bounded by the refresh timeout and the
// invoke's deadline.
func (e *extension) refresh(ctx context.Context, ev lifecycle.Event) {
	start := time.Now()
	deadline := start.Add(e.refreshTimeout())
	var cause error // nil: the deadline bounds AWS, and a fetch it ends failed
	if d := ev.Deadline(); !d.IsZero() && d.Add(-invokeMargin).Before(deadline) {
		// The invoke's end comes first: what it cuts short is not the
		// items' failure (cache.ErrCutShort), and they stay due.
		deadline, cause = d.Add(-invokeMargin), cache.ErrCutShort
		if deadline.Sub(start) < minRefreshWindow {
			e.log.Debug("no time left to refresh; due items wait for the next event or read", "requestId", ev.RequestID, "left_ms", deadline.Sub(start).Milliseconds())
			return
		}
	}
	e.refreshUntil(ctx, deadline, cause, 0, "requestId", ev.RequestID)
}

// refreshTimeout bounds one round of refreshes: the larger service timeout.
func (e *extension) refreshTimeout() time.Duration {
	to := max(e.cfg.SecretsTimeout, e.cfg.ParamsTimeout)
	if to == 0 {
		to = defaultRefreshTO
	}
	return to
}

// refreshUntil refreshes what is due (and, for window > 0, what falls due
// within window times its TTL), bounded by deadline (with cause, see
// refresh), for either driver. attrs tag its log lines.
func (e *extension) refreshUntil(ctx context.Context, deadline time.Time, cause error, window float64, attrs ...any) cache.RefreshReport {
	start := time.Now()
	rctx, cancel := context.WithDeadlineCause(ctx, deadline, cause)
	defer cancel()
	// Paths and selections first: what they bring is fresh, and what they
	// drop is not refreshed for nothing.
	lrep := e.listings.refreshDue(rctx)
	if lrep.Listed > 0 {
		e.log.Debug("listed again", append(attrs, "listings", lrep.Listed, "joined", lrep.Joined, "left", lrep.Left)...)
	}
	for name, err := range lrep.Errors {
		e.log.Warn("listing again failed; its items stay as they were", "listing", name, "error", err)
	}
	var rep cache.RefreshReport
	if window > 0 {
		rep = e.cache.RefreshWithin(rctx, window)
	} else {
		rep = e.cache.RefreshDue(rctx)
	}
	if rep.Due > 0 {
		e.log.Debug("refreshed", append(attrs, "due", rep.Due, "refreshed", rep.Refreshed, "failed", rep.Failed, "deferred", rep.Deferred, "duration_ms", time.Since(start).Milliseconds())...)
	}
	if rep.Deferred > 0 {
		e.log.Debug("refresh cut short by the invoke's deadline; the items stay due", append(attrs, "deferred", rep.Deferred)...)
	}
	for k, err := range rep.Errors {
		e.log.Warn("refresh failed; the cached value is served within the stale bound", "item", k.String(), "code", err.Code, "class", err.Class.String(), "error", err.Message)
	}
	if rep.Due > 0 || lrep.Joined+lrep.Left > 0 {
		// Rewrites the files whose values changed; a failure is logged and
		// the file keeps its last value.
		e.files.Write(rctx)
	}
	return rep
}

// stopWithin stops within d, for a stop no SHUTDOWN event gave a deadline.
func (e *extension) stopWithin(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	e.stop(ctx)
}

// stop drains the server within ctx, then wipes the cached values.
func (e *extension) stop(ctx context.Context) {
	if err := e.server.Shutdown(ctx); err != nil {
		e.log.Warn("server shutdown cut short", "error", err)
	}
	if err := e.files.Remove(); err != nil {
		e.log.Warn("removing files failed", "variable", config.EnvFileMapping, "error", err)
	}
	e.cache.Wipe()
}

// loadAWS builds the SDK configuration from the environment (region,
// credentials, AWS_ENDPOINT_URL_*), with a connection per call the source
// may have in flight: reads' (MaxConnections) and prefetches' (Concurrency).
func loadAWS(ctx context.Context, cfg config.Config, extra ...func(*awsconfig.LoadOptions) error) (aws.Config, error) {
	return loadAWSWith(ctx, cfg, nil, extra...)
}

// loadAWSWith is loadAWS with a change to the HTTP transport.
func loadAWSWith(ctx context.Context, cfg config.Config, transport func(*http.Transport), extra ...func(*awsconfig.LoadOptions) error) (aws.Config, error) {
	conns := cfg.MaxConnections + cfg.Concurrency
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxConnsPerHost = conns
		t.MaxIdleConnsPerHost = conns
		if transport != nil {
			transport(t)
		}
	})
	// Retries back off with jitter, but briefly: a function is waiting, and a
	// stale value (or the next INVOKE) beats a long wait.
	retryer := func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.MaxBackoff = time.Second
		})
	}
	return awsconfig.LoadDefaultConfig(ctx, append([]func(*awsconfig.LoadOptions) error{awsconfig.WithHTTPClient(hc), awsconfig.WithRetryer(retryer)}, extra...)...)
}
