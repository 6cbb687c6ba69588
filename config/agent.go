package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// Agent mode's variables (secrets-prefetch agent). The token variables are
// the Secrets Manager Agent's, in its order.
const (
	EnvListen          = "SECRETS_PREFETCH_LISTEN"                  // host:port of the HTTP API
	EnvMetricsListen   = "SECRETS_PREFETCH_METRICS_LISTEN"          // host:port of /metrics; unset = off
	EnvShutdownTimeout = "SECRETS_PREFETCH_SHUTDOWN_TIMEOUT_MILLIS" // drain bound at SIGTERM
	EnvToken           = "AWS_TOKEN"                                // the agent's first token variable
	tokenFileScheme    = "file://"                                  // a token variable's value naming a file
	defaultListenHost  = "127.0.0.1"                                // loopback unless set explicitly
	defaultMaxInFlight = 800                                        // the Secrets Manager Agent's max_conn default
)

// DefaultTokenVars are the variables the agent takes its token from, the
// first non-empty one winning (the Secrets Manager Agent's
// ssrf_env_variables default).
var DefaultTokenVars = []string{EnvToken, EnvSessionToken, EnvContainerToken}

// Agent is the configuration of agent mode: everything the Lambda
// extension reads, and what only the agent has.
type Agent struct {
	Config

	Listen          string        // host:port; default 127.0.0.1:<HTTPPort>
	MetricsListen   string        // host:port of the Prometheus /metrics listener; "" = none
	ShutdownTimeout time.Duration // 1..600000 ms, default 5000 ms

	// The token: Config.Token holds it when given as a value; TokenFile
	// names the file holding it when given as file:///path. TokenVar is
	// the variable it came from.
	TokenVar  string
	TokenFile string
	// TokenVars are the variables looked at for the token, in order
	// (ssrf_env_variables); TokenHeaders the request headers that may
	// carry it (ssrf_headers; nil = the server's default).
	TokenVars    []string
	TokenHeaders []string
	PathPrefix   string // the path route (path_prefix); "" = the server's default, /v1/
	MaxInFlight  int    // requests served at once, past it 429 (max_conn); 1..1000, default 800
	Region       string // the config file's region; AWS_REGION, when set, wins

	// Warnings are things accepted but worth a log line (log_to_file).
	Warnings []string
}

// AgentFromEnv builds agent mode's configuration from getenv and, if not
// nil, a Secrets Manager Agent config file (see ParseFile). A variable that
// is set wins over the file. Every problem is reported, naming the variable
// or file key and its valid range.
func AgentFromEnv(getenv func(string) string, f *File) (Agent, error) {
	var fileErrs []error
	if f != nil {
		getenv = f.layer(getenv)
	}
	p := parser{getenv: getenv}
	c := p.config()
	d := Default()
	a := Agent{Config: c, TokenVars: DefaultTokenVars, MaxInFlight: defaultMaxInFlight}
	if f != nil {
		a.TokenVars, a.TokenHeaders, a.PathPrefix, a.Region = f.tokenVars, f.tokenHeaders, f.pathPrefix, f.region
		if f.maxInFlight != 0 {
			a.MaxInFlight = f.maxInFlight
		}
		a.Warnings = f.warnings
		if len(a.TokenVars) == 0 {
			a.TokenVars = DefaultTokenVars
		}
	}
	port := c.HTTPPort
	if port == 0 {
		port = d.HTTPPort // HTTPPort was bad: reported already
	}
	host := defaultListenHost
	if f != nil && f.listenHost != "" {
		host = f.listenHost // the Secrets Manager Agent's http_address
	}
	a.Listen = p.listen(EnvListen, net.JoinHostPort(host, strconv.Itoa(port)))
	a.MetricsListen = p.listen(EnvMetricsListen, "")
	a.ShutdownTimeout = p.millis(EnvShutdownTimeout, 1, 600000, 5000*time.Millisecond)
	a.Token, a.TokenVar, a.TokenFile = p.agentToken(a.TokenVars)
	errs := p.errs
	if f != nil {
		errs = f.rename(errs)
		fileErrs = f.errs
	}
	if len(errs)+len(fileErrs) > 0 {
		return Agent{}, errors.Join(append(fileErrs, errs...)...)
	}
	return a, nil
}

// listen parses a host:port. The host may be empty (every interface), an
// IP address or a name; the port is 1..65535.
func (p *parser) listen(name, def string) string {
	raw, v, ok := p.lookup(name)
	if !ok {
		return def
	}
	host, port, err := net.SplitHostPort(v)
	n, digitsOK := digits(port)
	if err != nil || !digitsOK || n < 1 || n > 65535 || strings.ContainsAny(host, " /") {
		p.fail(name, raw, 0, "host:port with a port from 1 to 65535, e.g. 127.0.0.1:2773 or [::1]:2773")
		return def
	}
	return v
}

// agentToken finds the token as the Secrets Manager Agent does: the first
// of vars that is set; a value file:///path names a file holding it.
func (p *parser) agentToken(vars []string) (token, from, file string) {
	for _, name := range vars {
		v := strings.TrimSpace(p.getenv(name))
		if v == "" {
			continue
		}
		if path, ok := strings.CutPrefix(v, tokenFileScheme); ok {
			if path == "" {
				p.fail(name, "", 0, "a token, or file:///path naming a file that holds one")
			}
			return "", name, path
		}
		return v, name, ""
	}
	p.fail(vars[0], "", 0, "a token in the first set of "+strings.Join(vars, ", ")+
		": the value itself, or file:///path naming a file that holds it (callers send it in the X-Aws-Parameters-Secrets-Token or X-Vault-Token header)")
	return "", "", ""
}

// IsLoopback reports whether a listen address's host is a loopback address
// or localhost; "" (every interface) is not.
func IsLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LogValue logs the agent's settings with the token redacted (a file's path
// is not a secret and is logged).
func (a Agent) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("config", a.Config),
		slog.String("listen", a.Listen),
		slog.String("metrics_listen", a.MetricsListen),
		slog.Duration("shutdown_timeout", a.ShutdownTimeout),
		slog.String("token_variable", a.TokenVar),
		slog.String("token_file", a.TokenFile),
		slog.Any("token_headers", a.TokenHeaders),
		slog.String("path_prefix", a.PathPrefix),
		slog.Int("max_conn", a.MaxInFlight),
		slog.String("region", a.Region),
	)
}

// String formats a for %v with the token redacted.
func (a Agent) String() string {
	return fmt.Sprintf("{Config:%v Listen:%s MetricsListen:%s ShutdownTimeout:%v TokenVar:%s TokenFile:%s TokenHeaders:%v PathPrefix:%s MaxInFlight:%d Region:%s}",
		a.Config, a.Listen, a.MetricsListen, a.ShutdownTimeout, a.TokenVar, a.TokenFile, a.TokenHeaders, a.PathPrefix, a.MaxInFlight, a.Region)
}

// ListenAddress is agent mode's listen address alone, from the same
// variables and file as AgentFromEnv, for the healthcheck command: it
// needs neither the token nor the rest of the configuration to be valid.
func ListenAddress(getenv func(string) string, f *File) (string, error) {
	if f != nil {
		getenv = f.layer(getenv)
	}
	p := parser{getenv: getenv}
	port := p.integer(EnvHTTPPort, 1, 65535, Default().HTTPPort, "a whole number")
	host := defaultListenHost
	if f != nil && f.listenHost != "" {
		host = f.listenHost
	}
	addr := p.listen(EnvListen, net.JoinHostPort(host, strconv.Itoa(port)))
	errs := p.errs
	if f != nil {
		errs = f.rename(errs)
	}
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	return addr, nil
}
