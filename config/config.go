// Package config turns the extension's environment variables into a
// validated Config. Parsing is pure: FromEnv reads only through getenv.
package config

import (
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/internal/names"
	"github.com/secrets-prefetch/secrets-prefetch/zerocode/mapping"
)

// Environment variable names. The PARAMETERS_SECRETS_EXTENSION_* and
// *_TTL / *_TIMEOUT_MILLIS names are those of AWS's Parameters and Secrets
// Lambda Extension and keep their meaning; SECRETS_PREFETCH_* are ours.
const (
	EnvHTTPPort       = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"
	EnvCacheEnabled   = "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED"
	EnvCacheSize      = "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE"
	EnvMaxConnections = "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS"
	EnvLogLevel       = "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL"
	EnvSecretsTTL     = "SECRETS_MANAGER_TTL"
	EnvParametersTTL  = "SSM_PARAMETER_STORE_TTL"
	EnvSecretsTimeout = "SECRETS_MANAGER_TIMEOUT_MILLIS"
	EnvParamsTimeout  = "SSM_PARAMETER_STORE_TIMEOUT_MILLIS"

	EnvSecrets      = "SECRETS_PREFETCH_SECRETS"
	EnvParameters   = "SECRETS_PREFETCH_PARAMETERS"
	EnvRequired     = "SECRETS_PREFETCH_REQUIRED"
	EnvInitTimeout  = "SECRETS_PREFETCH_INIT_TIMEOUT_MILLIS"
	EnvRefreshAhead = "SECRETS_PREFETCH_REFRESH_AHEAD"
	EnvStaleIfError = "SECRETS_PREFETCH_STALE_IF_ERROR_SECONDS"
	EnvLazy         = "SECRETS_PREFETCH_LAZY"
	EnvEnvMapping   = "SECRETS_PREFETCH_ENV"     // zero-code: environment variables the exec wrapper sets
	EnvFileMapping  = "SECRETS_PREFETCH_FILES"   // zero-code: files the extension keeps under /tmp
	EnvMetrics      = "SECRETS_PREFETCH_METRICS" // CloudWatch Embedded Metric Format lines on stdout
	EnvConcurrency  = "SECRETS_PREFETCH_CONCURRENCY"
	EnvMaxRoles     = "SECRETS_PREFETCH_MAX_ROLES"
	EnvFailover     = "SECRETS_PREFETCH_FAILOVER_REGION"
	EnvSnapshot     = "SECRETS_PREFETCH_SNAPSHOT"
	EnvInitType     = "AWS_LAMBDA_INITIALIZATION_TYPE" // Lambda's: "snap-start" under SnapStart

	EnvSessionToken   = "AWS_SESSION_TOKEN"
	EnvContainerToken = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
	EnvLogFormat      = "AWS_LAMBDA_LOG_FORMAT"
)

// LogLevel is the extension's log threshold.
type LogLevel int

const (
	LogDebug LogLevel = iota
	LogInfo
	LogWarn
	LogError
	LogNone
)

// Path is a SECRETS_PREFETCH_PARAMETERS entry of the form /app/* or /app/**:
// every parameter directly under Prefix, or (Recursive) every one below it.
type Path struct {
	Prefix    string // the path without the trailing /* or /**, e.g. "/app"
	Recursive bool
}

// Matches reports whether the parameter name falls under the path.
func (p Path) Matches(name string) bool {
	return names.UnderPath(name, p.Prefix, p.Recursive)
}

// Selection is a SECRETS_PREFETCH_SECRETS entry that picks secrets: by a
// tag (tag:KEY=VALUE) or by the beginning of their names (prefix:NAME).
type Selection struct {
	TagKey, TagValue string
	Prefix           string
}

// Config is the extension's validated configuration.
type Config struct {
	HTTPPort       int           // 1..65535, default 2773
	CacheEnabled   bool          // default true
	CacheSize      int           // 1..100000, default 1000
	MaxConnections int           // 1..1000, default 3: concurrent AWS calls of reads
	LogLevel       LogLevel      // default LogInfo
	LogJSON        bool          // AWS_LAMBDA_LOG_FORMAT=JSON
	SecretsTTL     time.Duration // 0..86400 s, default 300 s; 0 = no caching
	ParametersTTL  time.Duration // 0..86400 s, default 300 s; 0 = no caching
	SecretsTimeout time.Duration // 0..300000 ms, default 5000 ms; 0 = no per-call timeout
	ParamsTimeout  time.Duration // 0..300000 ms, default 5000 ms; 0 = no per-call timeout

	// Secrets and Parameters are the entries to prefetch, duplicates
	// removed; an entry may end in "|" and a role ARN to read as that role
	// (SplitRole takes it apart).
	Secrets        []string      // secret names or ARNs to prefetch
	Parameters     []string      // parameter names to prefetch
	ParameterPaths []Path        // /app/* and /app/** entries
	Required       bool          // default false
	InitTimeout    time.Duration // 1..900000 ms, default 5000 ms
	RefreshAhead   float64       // 0 < f <= 1, default 0.8
	StaleIfError   time.Duration // 0..86400 s, default 300 s
	Lazy           bool          // default true
	Metrics        bool          // SECRETS_PREFETCH_METRICS: EMF metric lines; default false
	// Concurrency bounds the AWS calls of the Init prefetch and of INVOKE
	// refreshes in flight at once: 1..256, default 16 (one wave of calls
	// for 160 parameters and 320 secrets). It adapts to throttling.
	Concurrency int
	MaxRoles    int // 1..1000, default 20: roles reads may name
	// Selections are the SECRETS_PREFETCH_SECRETS entries tag:KEY=VALUE
	// and prefix:NAME: secrets picked by tag or name, listed again at each
	// refresh.
	Selections []Selection
	// SnapStart is AWS_LAMBDA_INITIALIZATION_TYPE=snap-start: Init runs
	// once when a version is published, and environments are restored
	// from its snapshot.
	SnapStart bool
	// SnapshotExclude (SECRETS_PREFETCH_SNAPSHOT=exclude, the default under
	// SnapStart) keeps values out of the snapshot: nothing is fetched
	// during Init, everything at restore.
	SnapshotExclude bool
	// FailoverRegion holds replicas of the home region's secrets; "" = none.
	FailoverRegion string

	// The zero-code mappings (package mapping's syntax); their items are
	// prefetched like listed ones.
	EnvMapping  []mapping.Entry // SECRETS_PREFETCH_ENV: variables the exec wrapper sets
	FileMapping []mapping.Entry // SECRETS_PREFETCH_FILES: files under /tmp

	Token string // AWS_SESSION_TOKEN, else AWS_CONTAINER_AUTHORIZATION_TOKEN; required
}
