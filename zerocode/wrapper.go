package zerocode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/config"
	"github.com/secrets-prefetch/secrets-prefetch/source"
	"github.com/secrets-prefetch/secrets-prefetch/zerocode/mapping"
)

// WrapperFlag is the first argument that runs the binary as the exec wrapper
// instead of the extension. Lambda starts extensions without arguments.
const WrapperFlag = "--exec-wrapper"

// Bounds of the wrapper's wait for the extension.
const (
	// waitSlack is added to SECRETS_PREFETCH_INIT_TIMEOUT_MILLIS for the
	// whole wrapper: the extension's registration and bind come first.
	waitSlack      = 2 * time.Second
	firstRetry     = 5 * time.Millisecond
	maxRetry       = 200 * time.Millisecond
	maxBodyBytes   = 1 << 20 // the largest secret is 64 KiB; parameters 8 KiB
	maxParallelEnv = 8
)

// WrapperOptions are what RunWrapper needs from the process.
type WrapperOptions struct {
	// Args is the runtime command and its arguments, as Lambda passed them
	// to the wrapper; they are exec'd unchanged.
	Args    []string
	Getenv  func(string) string
	Environ []string // the environment the runtime inherits, plus the mapped variables
	Stderr  io.Writer

	// For tests; zero values mean the real thing.
	Client   *http.Client                                  // to the extension
	Exec     func(argv0 string, argv, envv []string) error // syscall.Exec
	LookPath func(file string) (string, error)             // exec.LookPath
	Retry    func(ctx context.Context, attempt int) error  // waits before another attempt
}

// RunWrapper is the exec wrapper (AWS_LAMBDA_EXEC_WRAPPER): it reads the
// values SECRETS_PREFETCH_ENV maps from the extension's local API, sets them
// as environment variables and execs the runtime command with its arguments
// unchanged; with SECRETS_PREFETCH_FILES set it first waits (bounded) for
// the extension to be ready, so the files are there too. It returns an exit
// status only when it does not exec: non-zero when a value that is not
// optional could not be read, so Init fails visibly, with the entry named
// on stderr.
func RunWrapper(ctx context.Context, o WrapperOptions) int {
	cfg, cfgErr := config.FromEnv(o.Getenv)
	log := config.NewLogger(o.Stderr, cfg, cfgErr, o.Getenv, "extension", "secrets-prefetch", "component", "exec-wrapper")
	if len(o.Args) == 0 {
		log.Error("no runtime command to run: the wrapper is started by Lambda as `" + WrapperFlag + " COMMAND [ARGS...]` (set AWS_LAMBDA_EXEC_WRAPPER=/opt/secrets-prefetch-env)")
		return 2
	}
	if cfgErr != nil {
		for _, ve := range config.VarErrors(cfgErr) {
			log.Error("invalid configuration; not starting the runtime", "variable", ve.Name, "error", ve.Error())
		}
		return 1
	}
	w := wrapper{opts: o, log: log}
	if w.opts.Client == nil {
		w.opts.Client = &http.Client{}
	}
	if w.opts.Retry == nil {
		w.opts.Retry = backoff
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.InitTimeout+waitSlack)
	defer cancel()
	base := "http://127.0.0.1:" + strconv.Itoa(cfg.HTTPPort)
	env := o.Environ
	if len(cfg.EnvMapping) == 0 && len(cfg.FileMapping) == 0 {
		log.Info("nothing to set: " + config.EnvEnvMapping + " is empty; starting the runtime unchanged")
	}
	if len(cfg.EnvMapping) > 0 {
		set, ok := w.readAll(ctx, base, cfg)
		if !ok {
			log.Error("not starting the runtime: a required value of " + config.EnvEnvMapping + " could not be read (mark an entry optional with NAME?=...)")
			return 1
		}
		env = setEnv(env, set)
	}
	if len(cfg.FileMapping) > 0 {
		// The extension writes the files once its prefetch is done, which
		// is when /ping answers 200: wait for it, so that the runtime's
		// first line finds them. A missing required file fails Init in the
		// extension; here a timeout only warns.
		if err := w.waitReady(ctx, base); err != nil {
			log.Warn("starting the runtime before the extension finished writing "+config.EnvFileMapping, "error", err)
		}
	}
	return w.exec(env)
}

type wrapper struct {
	opts WrapperOptions
	log  *slog.Logger
}

// readAll reads every entry, in parallel, and returns the variables to set;
// ok is false when a required entry failed.
func (w *wrapper) readAll(ctx context.Context, base string, cfg config.Config) (set map[string]string, ok bool) {
	entries := cfg.EnvMapping
	values := make([][]byte, len(entries))
	errs := make([]error, len(entries))
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelEnv)
	start := time.Now()
	for i, e := range entries {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			values[i], errs[i] = w.read(ctx, base, cfg.Token, e)
		})
	}
	wg.Wait()

	set, ok = map[string]string{}, true
	unset := 0
	for i, e := range entries {
		attrs := []any{"variable", config.EnvEnvMapping, "element", e.Index, "entry", e.Text}
		switch err := errs[i]; {
		case err == nil:
			set[e.Target] = string(values[i])
			w.log.Debug("variable set", attrs...)
		case e.Optional:
			unset++
			w.log.Warn("optional variable not set: "+e.Target, append(attrs, errAttrs(err)...)...)
		default:
			ok = false
			w.log.Error("required variable could not be read: "+e.Target, append(attrs, errAttrs(err)...)...)
		}
		clear(values[i])
	}
	if ok {
		w.log.Info("environment set", "variables", len(set), "optional_unset", unset, "duration_ms", time.Since(start).Milliseconds())
	}
	return set, ok
}

// APIError is an error answer of the extension's HTTP API.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("the extension answered %d %s: %s", e.Status, e.Code, e.Message)
}

func errAttrs(err error) []any {
	var api *APIError
	var verr *ValueError
	switch {
	case errors.As(err, &api):
		return []any{"status", api.Status, "code", api.Code, "error", api.Message}
	case errors.As(err, &verr):
		return []any{"code", verr.Code, "error", verr.Message}
	}
	return []any{"error", err.Error()}
}

// read reads one entry's value from the extension. It retries, within ctx,
// while nothing listens on the port (the extension binds it before it
// registers, so in Lambda this is a missing or failed extension) or the
// answer is 503 or 429. A read of an item still being prefetched waits for
// that fetch in the extension, so no other wait is needed.
func (w *wrapper) read(ctx context.Context, base, token string, e mapping.Entry) ([]byte, error) {
	key := Key(e)
	var u string
	if key.Service == source.SecretsManager {
		u = base + "/secretsmanager/get?secretId=" + url.QueryEscape(e.ID)
	} else {
		name := e.ID
		if e.Selector != "" {
			name += ":" + e.Selector
		}
		u = base + "/systemsmanager/parameters/get?name=" + url.QueryEscape(name) + "&withDecryption=true"
	}
	for attempt := 1; ; attempt++ {
		body, err := w.get(ctx, u, token)
		var api *APIError
		retry := err != nil && (!errors.As(err, &api) || api.Status == http.StatusServiceUnavailable || api.Status == http.StatusTooManyRequests)
		if !retry {
			if err != nil {
				return nil, err
			}
			v, err := bodyValue(key.Service, body)
			clear(body)
			if err != nil {
				return nil, err
			}
			if v.binary {
				return nil, &ValueError{"BinaryValue", "a binary secret can't be an environment variable; map it to a file with SECRETS_PREFETCH_FILES"}
			}
			b, err := pick(v, e)
			if err != nil {
				return nil, err
			}
			if bytes.IndexByte(b, 0) >= 0 {
				return nil, &ValueError{"InvalidEnvValue", "the value holds a NUL byte, which an environment variable can't"}
			}
			return b, nil
		}
		if werr := w.opts.Retry(ctx, attempt); werr != nil {
			if api == nil {
				return nil, fmt.Errorf("the extension did not answer on %s within the wait (%w): is the secrets-prefetch layer's extension installed (/opt/extensions/secrets-prefetch) and on this port? last error: %v", base, werr, err)
			}
			return nil, err
		}
	}
}

// waitReady waits for the extension's GET /ping to answer 200 (prefetch
// done, files written), retrying within ctx.
func (w *wrapper) waitReady(ctx context.Context, base string) error {
	for attempt := 1; ; attempt++ {
		body, err := w.get(ctx, base+"/ping", "")
		if err == nil {
			clear(body)
			return nil
		}
		if werr := w.opts.Retry(ctx, attempt); werr != nil {
			return fmt.Errorf("%s/ping did not answer 200 within the wait (%w); last: %v", base, werr, err)
		}
	}
}

// get sends one GET; an error answer is an *APIError.
func (w *wrapper) get(ctx context.Context, u, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("X-Aws-Parameters-Secrets-Token", token)
	}
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string }
		}
		json.Unmarshal(body, &e) // best effort: the status alone still says what happened
		clear(body)
		return nil, &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	return body, nil
}

// backoff waits before attempt+1: from firstRetry doubling to maxRetry.
func backoff(ctx context.Context, attempt int) error {
	d := maxRetry
	if attempt < 10 {
		d = min(firstRetry<<(attempt-1), maxRetry)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// setEnv returns environ with the variables in set replacing any earlier
// value.
func setEnv(environ []string, set map[string]string) []string {
	out := make([]string, 0, len(environ)+len(set))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

// exec replaces the process with the runtime command. It returns only on
// failure.
func (w *wrapper) exec(env []string) int {
	lookPath, execFn := w.opts.LookPath, w.opts.Exec
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	if execFn == nil {
		execFn = syscall.Exec
	}
	path, err := lookPath(w.opts.Args[0])
	if err != nil {
		w.log.Error("cannot start the runtime", "command", w.opts.Args[0], "error", err)
		return 127
	}
	err = execFn(path, w.opts.Args, env)
	w.log.Error("cannot start the runtime", "command", path, "error", err)
	return 126
}
