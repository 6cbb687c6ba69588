// Package localserver serves cached secrets and parameters to the function on
// loopback, with the HTTP API of AWS's Parameters and Secrets Lambda
// Extension: same port, paths, query parameters, token header and success
// bodies. It reads only from the cache; it never calls AWS itself.
package localserver

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// TokenHeader carries the session token on every request but /ping.
const TokenHeader = "X-Aws-Parameters-Secrets-Token"

// Cache is what the server reads from. *cache.Cache implements it.
type Cache interface {
	Get(ctx context.Context, key source.Key, refreshNow bool) (cache.Result, error)
}

// Options configure a Server.
type Options struct {
	Cache Cache
	Token string      // the expected TokenHeader value; must not be empty
	Ready func() bool // /ping answers 200 once it returns true
	// MaxInFlight bounds concurrent requests; more get 429 at once.
	MaxInFlight int
	Logger      *slog.Logger
}

// Server is the HTTP API. Its handler is safe for concurrent use.
type Server struct {
	opts  Options
	token []byte
	slots chan struct{}
	srv   *http.Server
	log   *slog.Logger
}

// New returns a Server.
func New(o Options) *Server {
	if o.MaxInFlight < 1 {
		o.MaxInFlight = 256
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Ready == nil {
		o.Ready = func() bool { return true }
	}
	s := &Server{opts: o, token: []byte(o.Token), slots: make(chan struct{}, o.MaxInFlight), log: o.Logger}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      2 * time.Minute, // longer than any fetch a read may wait for
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
	}
	return s
}

// Listen binds the loopback address for port; only the function in the same
// execution environment can reach it.
func Listen(port int) (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
}

// Serve serves on l until Shutdown; it returns nil after a clean Shutdown.
func (s *Server) Serve(l net.Listener) error {
	if err := s.srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting requests and waits, bounded by ctx, for those in
// flight to finish.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}

// ServeHTTP implements the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	status, xcache := s.serve(w, r)
	s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", status, "cache", xcache, "duration", time.Since(start))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) (int, string) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		return writeError(w, r, http.StatusMethodNotAllowed, "MethodNotAllowed", "only GET and HEAD are allowed"), ""
	}
	if _, ok := r.Header["X-Forwarded-For"]; ok {
		// A forwarded request came through a proxy: not from this environment.
		return writeError(w, r, http.StatusForbidden, "ForwardedRequestRefused", "requests with X-Forwarded-For are refused"), ""
	}
	if r.URL.Path == "/ping" {
		if !s.opts.Ready() {
			return writeError(w, r, http.StatusServiceUnavailable, "NotReady", "prefetch is still running"), ""
		}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write([]byte("ready"))
		}
		return http.StatusOK, ""
	}
	got := r.Header.Get(TokenHeader)
	switch {
	case got == "":
		return writeError(w, r, http.StatusUnauthorized, "MissingToken", "header "+TokenHeader+" is required"), ""
	case len(s.token) == 0 || subtle.ConstantTimeCompare([]byte(got), s.token) != 1:
		return writeError(w, r, http.StatusForbidden, "InvalidToken", "header "+TokenHeader+" does not match the session token"), ""
	}

	var (
		req request
		err error
	)
	switch r.URL.Path {
	case "/secretsmanager/get":
		req, err = parseSecretRequest(r.URL.RawQuery)
	case "/systemsmanager/parameters/get":
		req, err = parseParameterRequest(r.URL.RawQuery)
	default:
		return writeError(w, r, http.StatusNotFound, "UnknownPath", "no such endpoint"), ""
	}
	if err != nil {
		return writeErr(w, r, err), ""
	}

	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return writeError(w, r, http.StatusTooManyRequests, "TooManyRequests", "too many concurrent requests"), ""
	}

	res, err := s.opts.Cache.Get(r.Context(), req.key, req.refreshNow)
	if err != nil {
		if s.log.Enabled(r.Context(), slog.LevelDebug) || !isClientError(err) {
			s.log.Log(r.Context(), logLevel(err), "read failed", "item", req.key.String(), "error", err)
		}
		return writeErr(w, r, err), ""
	}
	xcache := res.Status.String()
	h.Set("X-Cache", xcache)
	h.Set("Age", strconv.FormatInt(int64(max(res.Age, 0)/time.Second), 10)) // never negative (RFC 9111)
	body := res.Item.Body
	if req.hasJSONKey {
		if body, err = extractJSONKey(res.Item.Text, req.jsonKey); err != nil {
			return writeErr(w, r, err), xcache
		}
		h.Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
	return http.StatusOK, xcache
}

func isClientError(err error) bool {
	var serr *source.Error
	return errors.Is(err, cache.ErrNotConfigured) || errors.As(err, &serr) && serr.Class == source.ClassNotFound
}

func logLevel(err error) slog.Level {
	if isClientError(err) {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
