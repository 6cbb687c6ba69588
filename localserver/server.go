// Package localserver serves cached secrets and parameters to the function on
// loopback, with the HTTP API of AWS's Parameters and Secrets Lambda
// Extension: same port, paths, query parameters, token header and success
// bodies. It reads only from the cache; it never calls AWS itself.
package localserver

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// RegionHeader names the failover region on a value its replica answered.
const RegionHeader = "X-Secrets-Prefetch-Region"

// TokenHeader carries the session token on every request but /ping.
const TokenHeader = "X-Aws-Parameters-Secrets-Token"

// VaultTokenHeader is accepted as well by default, as the Secrets Manager
// Agent does, for clients written for HashiCorp Vault's agent.
const VaultTokenHeader = "X-Vault-Token"

// DefaultTokenHeaders are the headers the token is looked for in unless
// Options.TokenHeaders says otherwise.
var DefaultTokenHeaders = []string{TokenHeader, VaultTokenHeader}

// DefaultPathPrefix is the Secrets Manager Agent's path route:
// GET /v1/<secretId> reads the secret as /secretsmanager/get?secretId= does.
const DefaultPathPrefix = "/v1/"

// Cache is what the server reads from. *cache.Cache implements it.
type Cache interface {
	Get(ctx context.Context, key source.Key, refreshNow bool) (cache.Result, error)
}

// Options configure a Server.
type Options struct {
	Cache Cache
	Token string      // the expected token; SetToken replaces it; "" matches nothing
	Ready func() bool // /ping answers 200 once it returns true
	// TokenHeaders are the headers a request may carry the token in; the
	// first one present is checked. Default DefaultTokenHeaders.
	TokenHeaders []string
	// PathPrefix is the path route's prefix: GET <PathPrefix><secretId>
	// answers as /secretsmanager/get?secretId=<secretId>. It must start and
	// end with '/'; default DefaultPathPrefix.
	PathPrefix string
	// MaxInFlight bounds concurrent requests; more get 429 at once.
	MaxInFlight int
	// MaxWait is the longest a read may wait for one fetch (the larger
	// service timeout); the write deadline leaves room for a few.
	MaxWait time.Duration
	// MaxConns bounds the open connections (DefaultMaxConns if 0); past
	// it, the idlest is closed.
	MaxConns int
	Logger   *slog.Logger
	// AWSAPI, if set, answers POST / (the AWS API endpoint, which checks
	// its callers' signatures itself). The server passes those requests
	// on untouched.
	AWSAPI http.Handler
}

// Server is the HTTP API. Its handler is safe for concurrent use.
type Server struct {
	opts Options
	// tokenPadded is the token's padded copy, for tokenMatches; SetToken swaps it
	// at run time. Never nil after New.
	tokenPadded atomic.Pointer[tokenCopy]
	slots       chan struct{}
	conns       *conns
	srv         *http.Server
	log         *slog.Logger

	// base is every request's base context; Shutdown cancels it shortly
	// before its deadline, so reads still waiting for AWS answer then.
	base       context.Context
	cancelBase context.CancelFunc
	// drainMargin and handlerGrace are Shutdown's (the constants below;
	// tests widen them so a loaded machine meets them).
	drainMargin, handlerGrace time.Duration

	mu      sync.Mutex    // protects active and drained
	active  int           // requests being handled
	drained chan struct{} // closed when active drops to 0, if set
}

// Shutdown timing: reads still waiting are answered drainMargin (at most a
// quarter of the time left) before Shutdown's deadline; their answers get
// until half that margin before it to go out; then connections are cut and
// handlers get up to handlerGrace, within the deadline, to return.
const (
	drainMargin  = 200 * time.Millisecond
	handlerGrace = 250 * time.Millisecond
)

// idleTimeout closes keep-alive connections idle this long.
const idleTimeout = 30 * time.Second

// New returns a Server.
func New(o Options) *Server {
	if o.MaxInFlight < 1 {
		o.MaxInFlight = 256
	}
	if o.MaxConns < 1 {
		o.MaxConns = DefaultMaxConns
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Ready == nil {
		o.Ready = func() bool { return true }
	}
	if len(o.TokenHeaders) == 0 {
		o.TokenHeaders = DefaultTokenHeaders
	}
	canonical := make([]string, len(o.TokenHeaders))
	for i, name := range o.TokenHeaders {
		canonical[i] = http.CanonicalHeaderKey(name)
	}
	o.TokenHeaders = canonical
	if o.PathPrefix == "" {
		o.PathPrefix = DefaultPathPrefix
	}
	s := &Server{slots: make(chan struct{}, o.MaxInFlight), log: o.Logger, drainMargin: drainMargin, handlerGrace: handlerGrace}
	s.SetToken(o.Token)
	o.Token = "" // only its padded copy is kept
	s.opts = o
	s.conns = newConns(o.MaxConns, o.Logger)
	s.base, s.cancelBase = context.WithCancel(context.Background())
	s.srv = &http.Server{
		Handler:           s,
		BaseContext:       func(net.Listener) context.Context { return s.base },
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// A read may wait for a twin's fetch, a path's and its own.
		WriteTimeout: max(2*time.Minute, 3*o.MaxWait+30*time.Second),
		// Short: an idle keep-alive connection holds a file descriptor
		// and its buffers; clients reconnect cheaply on loopback.
		IdleTimeout:    idleTimeout,
		ConnState:      s.conns.state,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
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
// flight to finish. Reads still waiting for AWS shortly before ctx's
// deadline are answered then (503 ShuttingDown), so each gets an answer in
// time rather than a dropped connection. Once Shutdown returns nil no
// handler is running, so none still writes out a value the cache is about to
// wipe; an error means connections had to be cut at the deadline.
func (s *Server) Shutdown(ctx context.Context) error {
	drain := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		drain, cancel = context.WithDeadline(ctx, d.Add(-min(time.Until(d)/4, s.drainMargin)))
		defer cancel()
	}
	stop := context.AfterFunc(drain, s.cancelBase)
	defer stop()
	defer s.cancelBase()
	// final leaves room, before ctx's deadline, for the handlers to return
	// after their connections are cut.
	final, grace := ctx, context.Background()
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		final, cancel = context.WithDeadline(ctx, d.Add(-min(time.Until(d)/8, s.drainMargin/2)))
		defer cancel()
		grace, cancel = context.WithDeadline(grace, d)
		defer cancel()
	}
	err := s.srv.Shutdown(drain)
	if err != nil && final.Err() == nil {
		// The waits were cut at the drain point: wait again for their
		// answers to go out (net/http's Shutdown polls ever more slowly, so
		// a fresh call notices them sooner).
		err = s.srv.Shutdown(final)
	}
	if err != nil {
		// A client not reading its answer, say: cut the connections, which
		// fails the handlers' writes, and give them a moment to return.
		s.srv.Close()
		gctx, cancel := context.WithTimeout(grace, s.handlerGrace)
		defer cancel()
		if werr := s.waitHandlers(gctx); werr != nil {
			err = errors.Join(err, errors.New("handlers still running after their connections were closed"))
		}
	}
	return err
}

// waitHandlers waits until no request is being handled, or ctx ends.
func (s *Server) waitHandlers(ctx context.Context) error {
	s.mu.Lock()
	if s.active == 0 {
		s.mu.Unlock()
		return nil
	}
	if s.drained == nil {
		s.drained = make(chan struct{})
	}
	drained := s.drained
	s.mu.Unlock()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) enter() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active++
}

func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.active == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// ServeHTTP implements the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.enter()
	defer s.leave()
	if !s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.serve(w, r) // no request log: none of its attributes to build
		return
	}
	start := time.Now()
	status, xcache := s.serve(w, r)
	s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", status, "cache", xcache, "duration", time.Since(start))
}

// Header values every answer shares. Assigned to the header map directly,
// they save Header.Set's allocation of a new slice per answer; net/http only
// reads them (and an Add would copy the full slice before appending).
var (
	headerNoStore = []string{"no-store"}
	headerJSON    = []string{"application/json"}
	headerText    = []string{"text/plain; charset=utf-8"}
	headerXCache  = map[cache.Status][]string{cache.Hit: {"hit"}, cache.Miss: {"miss"}, cache.Stale: {"stale"}}
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) (int, string) {
	h := w.Header()
	h["Cache-Control"] = headerNoStore
	if r.Method == http.MethodPost && r.URL.Path == "/" && s.opts.AWSAPI != nil {
		s.opts.AWSAPI.ServeHTTP(w, r)
		return 0, "aws-api" // it logs its own outcome
	}
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
	header, got := s.presented(r.Header)
	switch {
	case got == "":
		return writeError(w, r, http.StatusUnauthorized, "MissingToken", "header "+s.opts.TokenHeaders[0]+" is required"), ""
	case !s.tokenMatches(got):
		return writeError(w, r, http.StatusForbidden, "InvalidToken", "header "+header+" does not match the session token"), ""
	}

	var (
		req request
		err error
	)
	switch path := r.URL.Path; {
	case path == "/secretsmanager/get":
		req, err = parseSecretRequest(r.URL.RawQuery)
	case path == "/systemsmanager/parameters/get":
		req, err = parseParameterRequest(r.URL.RawQuery)
	case strings.HasPrefix(path, s.opts.PathPrefix):
		req, err = parsePathRequest(path[len(s.opts.PathPrefix):], r.URL.RawQuery)
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
	if err != nil && s.base.Err() != nil {
		// Shutdown cut the wait short.
		return writeError(w, r, http.StatusServiceUnavailable, "ShuttingDown", "the extension is shutting down"), ""
	}
	if err != nil {
		level := logLevel(err)
		if r.Context().Err() != nil {
			level = slog.LevelDebug // the caller hung up: not AWS's failure
		}
		s.log.Log(r.Context(), level, "read failed", "item", req.key.String(), "error", err)
		return writeErr(w, r, err), ""
	}
	xcache := res.Status.String()
	h["X-Cache"] = headerXCache[res.Status]
	h["Age"] = decimal(int(max(res.Age, 0) / time.Second)) // never negative (RFC 9111)
	if res.Item.Region != "" {
		// A replica in the failover region answered for the home region.
		h.Set(RegionHeader, res.Item.Region)
	}
	body := res.Item.Body
	if req.hasJSONKey {
		text, _ := res.Item.StringValue()
		if body, err = extractJSONKey(text, req.jsonKey); err != nil {
			return writeErr(w, r, err), xcache
		}
		h["Content-Type"] = headerText
	} else {
		h["Content-Type"] = headerJSON
	}
	h["Content-Length"] = decimal(len(body))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
	return http.StatusOK, xcache
}

// SetToken replaces the token requests must carry, for a token file that
// changed; requests from then on are checked against it. "" refuses every
// request but /ping. Safe to call while serving.
func (s *Server) SetToken(token string) {
	n := tokenPad
	for n < len(token) {
		n *= 2
	}
	padded := make([]byte, n) // zero beyond the token
	copy(padded, token)
	s.tokenPadded.Store(&tokenCopy{padded: padded, n: int32(len(token)), set: token != ""})
}

// tokenPad is the least length a token is padded to for tokenMatches: a
// Lambda session token (about 1,100 characters) and any token agent mode
// is given fit, so the time the comparison takes does not depend on the
// token's length. A longer token is padded to the next power of two.
const tokenPad = 2048

// tokenCopy is the token padded with zeros to a fixed length (tokenPad or
// a power of two beyond it), its length, and set: false for no token.
type tokenCopy struct {
	padded []byte
	n      int32
	set    bool
}

// presented returns the first of the token headers a request carries, and its
// value; "" if it carries none.
func (s *Server) presented(h http.Header) (header, value string) {
	for _, name := range s.opts.TokenHeaders { // canonical (New): no Get, no allocation
		if v := h[name]; len(v) > 0 && v[0] != "" {
			return name, v[0]
		}
	}
	return "", ""
}

// tokenMatches reports, in constant time, whether got is the session token.
// It compares got, as if padded with zeros, with the padded copy of the
// token, all of it, eight bytes at a time, and the two lengths through
// crypto/subtle: the time taken depends on the lengths of got and of the
// padding, never on the token's content or length (subtle.ConstantTimeCompare
// returns at once when the lengths differ). No hashing: this runs on every
// request, and a Lambda session token is about 1,100 bytes. A server
// without a token matches none.
func (s *Server) tokenMatches(got string) bool {
	want := s.tokenPadded.Load()
	w := want.padded
	if len(got) > len(w) {
		return false // longer than the padding, so than the token: known from got's length alone
	}
	// Read in place: []byte(got) would copy it to the heap.
	g := unsafe.Slice(unsafe.StringData(got), len(got))
	n := int32(len(g))
	var d0, d1, d2, d3 uint64 // ORed differences, four words at a time
	for len(g) >= 32 {
		d0 |= binary.LittleEndian.Uint64(g[0:8]) ^ binary.LittleEndian.Uint64(w[0:8])
		d1 |= binary.LittleEndian.Uint64(g[8:16]) ^ binary.LittleEndian.Uint64(w[8:16])
		d2 |= binary.LittleEndian.Uint64(g[16:24]) ^ binary.LittleEndian.Uint64(w[16:24])
		d3 |= binary.LittleEndian.Uint64(g[24:32]) ^ binary.LittleEndian.Uint64(w[24:32])
		g, w = g[32:], w[32:]
	}
	for len(g) > 0 {
		d0 |= uint64(g[0] ^ w[0])
		g, w = g[1:], w[1:]
	}
	for len(w)%32 != 0 { // the rest of the copy, against got's padding of zeros
		d1 |= uint64(w[0])
		w = w[1:]
	}
	for len(w) >= 32 {
		d0 |= binary.LittleEndian.Uint64(w[0:8])
		d1 |= binary.LittleEndian.Uint64(w[8:16])
		d2 |= binary.LittleEndian.Uint64(w[16:24])
		d3 |= binary.LittleEndian.Uint64(w[24:32])
		w = w[32:]
	}
	diff := d0 | d1 | d2 | d3
	same := subtle.ConstantTimeEq(n, want.n) & subtle.ConstantTimeEq(int32(diff|diff>>32), 0)
	return same == 1 && want.set
}

func isClientError(err error) bool {
	var serr *source.Error
	return errors.Is(err, cache.ErrNotConfigured) || errors.Is(err, cache.ErrBusy) ||
		errors.As(err, &serr) && serr.Class == source.ClassNotFound
}

func logLevel(err error) slog.Level {
	if isClientError(err) {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// decimals holds header values of small numbers (Age, Content-Length),
// made on first use and shared after, so that answering costs no
// allocation for them.
var decimals [1 << 14]atomic.Pointer[[]string]

// decimal returns n as a header value; callers only read it.
func decimal(n int) []string {
	if n < 0 || n >= len(decimals) {
		return []string{strconv.Itoa(n)}
	}
	if v := decimals[n].Load(); v != nil {
		return *v
	}
	v := []string{strconv.Itoa(n)}
	decimals[n].Store(&v)
	return v
}
