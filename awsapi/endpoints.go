package awsapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// Endpoints are where the extension calls AWS: the base endpoint of each
// service's SDK client (nil: the SDK's regional endpoint) and the URL
// forwarded requests go to.
type Endpoints struct {
	SecretsManager, SSM             *string
	SecretsManagerURL, SSMURL       string
	SecretsManagerSource, SSMSource string // where each came from, for the log
}

// ResolveEndpoints resolves each service's endpoint from cfg's sources in
// the SDK's order (AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, the shared
// config's service section, its endpoint_url, else the regional endpoint),
// skipping a source that names the extension's own address, self: with
// AWS_ENDPOINT_URL_SECRETS_MANAGER and AWS_ENDPOINT_URL_SSM set for the
// whole function, the function's SDK reaches the extension while the
// extension still reaches AWS. Each skipped source is logged once.
func ResolveEndpoints(ctx context.Context, cfg aws.Config, self net.Addr, log *slog.Logger) (Endpoints, error) {
	var e Endpoints
	var skippedSM, skippedSSM []string
	e.SecretsManager, e.SecretsManagerSource, skippedSM = pick(ctx, cfg, "Secrets Manager", "AWS_ENDPOINT_URL_SECRETS_MANAGER", self)
	e.SSM, e.SSMSource, skippedSSM = pick(ctx, cfg, "SSM", "AWS_ENDPOINT_URL_SSM", self)
	// Info, not a warning: with the variables set for the whole function,
	// this is the intended setup.
	for _, s := range skippedSM {
		log.Info("endpoint source skipped: it names this extension's own address", "service", "secretsmanager", "source", s, "using", e.SecretsManagerSource)
	}
	for _, s := range skippedSSM {
		log.Info("endpoint source skipped: it names this extension's own address", "service", "ssm", "source", s, "using", e.SSMSource)
	}
	log.Debug("aws endpoints", "secretsmanager", e.SecretsManagerSource, "ssm", e.SSMSource)
	// Forwarded requests go where the SDK's clients would send them.
	smEP, err := secretsmanager.NewDefaultEndpointResolverV2().ResolveEndpoint(ctx, secretsmanager.EndpointParameters{Region: aws.String(cfg.Region), Endpoint: e.SecretsManager})
	if err != nil {
		return e, fmt.Errorf("resolving the Secrets Manager endpoint: %w", err)
	}
	ssmEP, err := ssm.NewDefaultEndpointResolverV2().ResolveEndpoint(ctx, ssm.EndpointParameters{Region: aws.String(cfg.Region), Endpoint: e.SSM})
	if err != nil {
		return e, fmt.Errorf("resolving the SSM endpoint: %w", err)
	}
	e.SecretsManagerURL, e.SSMURL = smEP.URI.String(), ssmEP.URI.String()
	return e, nil
}

// SecretsManagerOptions sets the client's endpoint to the one resolved.
func (e Endpoints) SecretsManagerOptions(o *secretsmanager.Options) {
	o.BaseEndpoint = e.SecretsManager
}

// SSMOptions sets the client's endpoint to the one resolved.
func (e Endpoints) SSMOptions(o *ssm.Options) { o.BaseEndpoint = e.SSM }

// pick returns the first configured endpoint for the service that is not
// self, the name of its source, and the sources skipped for naming self.
func pick(ctx context.Context, cfg aws.Config, sdkID, envVar string, self net.Addr) (*string, string, []string) {
	var env *awsconfig.EnvConfig
	var shared *awsconfig.SharedConfig
	for _, s := range cfg.ConfigSources {
		switch c := s.(type) {
		case awsconfig.EnvConfig:
			env = &c
		case awsconfig.SharedConfig:
			shared = &c
		}
	}
	type candidate struct{ value, source string }
	var cands []candidate
	ignore := false
	if env != nil {
		if v, ok, _ := env.GetIgnoreConfiguredEndpoints(ctx); ok {
			ignore = v
		}
	}
	if shared != nil && !ignore {
		if v, ok, _ := shared.GetIgnoreConfiguredEndpoints(ctx); ok && v {
			ignore = true
		}
	}
	if ignore {
		return nil, "regional", nil
	}
	if env != nil {
		if v, ok, _ := env.GetServiceBaseEndpoint(ctx, sdkID); ok {
			cands = append(cands, candidate{v, envVar})
		}
		if env.BaseEndpoint != "" {
			cands = append(cands, candidate{env.BaseEndpoint, "AWS_ENDPOINT_URL"})
		}
	}
	if shared != nil {
		if v, ok, _ := shared.GetServiceBaseEndpoint(ctx, sdkID); ok {
			cands = append(cands, candidate{v, "shared config [services] endpoint_url"})
		}
		if shared.BaseEndpoint != "" {
			cands = append(cands, candidate{shared.BaseEndpoint, "shared config endpoint_url"})
		}
	}
	var skipped []string
	for _, c := range cands {
		if IsSelf(c.value, self) {
			skipped = append(skipped, c.source)
			continue
		}
		v := c.value
		return &v, c.source, skipped
	}
	return nil, "regional", skipped
}

// IsSelf reports whether the endpoint URL raw names the address self the
// extension listens on: the same port, and a host that reaches it (a
// loopback address or localhost; any local address when self is the
// unspecified address).
func IsSelf(raw string, self net.Addr) bool {
	if self == nil {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	sh, sp, err := net.SplitHostPort(self.String())
	if err != nil || port != sp {
		return false
	}
	if _, err := strconv.Atoi(port); err != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	selfIP := net.ParseIP(sh)
	if ip.IsLoopback() || ip.IsUnspecified() || selfIP != nil && ip.Equal(selfIP) {
		return true
	}
	if selfIP != nil && selfIP.IsUnspecified() {
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}
