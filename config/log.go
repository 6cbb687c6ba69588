package config

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/secrets-prefetch/secrets-prefetch/zerocode/mapping"
)

// Config carries the token callers authenticate with, so every way of
// printing it redacts that field: a debug line logging the configuration
// must not leak a credential.

const redacted = "[redacted]"

// plain has Config's fields but none of its methods, so formatting it does
// not recurse into String.
type plain Config

func (c Config) redact() plain {
	if c.Token != "" {
		c.Token = redacted
	}
	return plain(c)
}

// String formats c for %v and %s with the token redacted.
func (c Config) String() string { return fmt.Sprintf("%+v", c.redact()) }

// GoString formats c for %#v with the token redacted.
func (c Config) GoString() string { return fmt.Sprintf("%#v", c.redact()) }

// LogValue lets slog log c field by field (JSON handlers included, which
// would otherwise marshal the token) with the token redacted.
func (c Config) LogValue() slog.Value {
	r := c.redact()
	paths := make([]string, len(r.ParameterPaths))
	for i, p := range r.ParameterPaths {
		paths[i] = p.String()
	}
	return slog.GroupValue(
		slog.Int("http_port", r.HTTPPort),
		slog.Bool("cache_enabled", r.CacheEnabled),
		slog.Int("cache_size", r.CacheSize),
		slog.Int("max_connections", r.MaxConnections),
		slog.String("log_level", r.LogLevel.String()),
		slog.Bool("log_json", r.LogJSON),
		slog.Duration("secrets_ttl", r.SecretsTTL),
		slog.Duration("parameters_ttl", r.ParametersTTL),
		slog.Duration("secrets_timeout", r.SecretsTimeout),
		slog.Duration("parameters_timeout", r.ParamsTimeout),
		slog.Any("secrets", r.Secrets),
		slog.Any("parameters", r.Parameters),
		slog.Any("parameter_paths", paths),
		slog.Bool("required", r.Required),
		slog.Duration("init_timeout", r.InitTimeout),
		slog.Float64("refresh_ahead", r.RefreshAhead),
		slog.Duration("stale_if_error", r.StaleIfError),
		slog.Bool("lazy", r.Lazy),
		slog.Bool("metrics", r.Metrics),
		slog.Int("concurrency", r.Concurrency),
		slog.Int("max_roles", r.MaxRoles),
		slog.Any("selections", selectionTexts(r.Selections)),
		slog.Bool("snap_start", r.SnapStart),
		slog.Bool("snapshot_exclude", r.SnapshotExclude),
		slog.String("failover_region", r.FailoverRegion),
		slog.Any("env_mapping", entryTexts(r.EnvMapping)),
		slog.Any("file_mapping", entryTexts(r.FileMapping)),
		slog.String("token", r.Token),
	)
}

// selectionTexts renders selections as configured (tag:KEY=VALUE, prefix:NAME).
func selectionTexts(sels []Selection) []string {
	out := make([]string, len(sels))
	for i, sel := range sels {
		if sel.Prefix != "" {
			out[i] = "prefix:" + sel.Prefix
		} else {
			out[i] = "tag:" + sel.TagKey + "=" + sel.TagValue
		}
	}
	return out
}

// entryTexts renders mapping entries as written: names, never values.
func entryTexts(entries []mapping.Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.String()
	}
	return out
}

// String renders the path as it is written in SECRETS_PREFETCH_PARAMETERS,
// e.g. "/app/*" or "/**".
func (p Path) String() string {
	s := p.Prefix
	if s == "/" {
		s = ""
	}
	if p.Recursive {
		return s + "/**"
	}
	return s + "/*"
}

// NewLogger returns the logger the configuration asks for: its level, and
// text or JSON per AWS_LAMBDA_LOG_FORMAT. With an invalid configuration
// (cfgErr set) it still honours the log format, at info, so the errors
// themselves are visible. attrs tag every line.
func NewLogger(w io.Writer, cfg Config, cfgErr error, getenv func(string) string, attrs ...any) *slog.Logger {
	level, jsonFormat := slog.LevelInfo, strings.EqualFold(strings.TrimSpace(getenv(EnvLogFormat)), "json")
	if cfgErr == nil {
		jsonFormat = cfg.LogJSON
		switch cfg.LogLevel {
		case LogDebug:
			level = slog.LevelDebug
		case LogWarn:
			level = slog.LevelWarn
		case LogError:
			level = slog.LevelError
		case LogNone:
			return slog.New(slog.DiscardHandler)
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if jsonFormat {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With(attrs...)
}
