package awsapi

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
)

func TestIsSelf(t *testing.T) {
	self := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2773}
	any := &net.TCPAddr{IP: net.IPv4zero, Port: 2773}
	for _, c := range []struct {
		url  string
		self net.Addr
		want bool
	}{
		{"http://127.0.0.1:2773", self, true},
		{"http://localhost:2773/", self, true},
		{"http://127.0.0.2:2773", self, true},
		{"http://[::1]:2773", self, true},
		{"http://0.0.0.0:2773", self, true},
		{"http://127.0.0.1:2774", self, false},
		{"http://127.0.0.1", self, false},
		{"https://secretsmanager.us-east-1.amazonaws.com", self, false},
		{"http://10.1.2.3:2773", self, false},
		{"http://127.0.0.1:2773", any, true},
		{"not a url", self, false},
		{"http://127.0.0.1:2773", nil, false},
	} {
		if got := IsSelf(c.url, c.self); got != c.want {
			t.Errorf("IsSelf(%q, %v) = %t, want %t", c.url, c.self, got, c.want)
		}
	}
}

// With the endpoint variables set for the whole function, they name the
// extension: it skips each such source, says so once, and resolves as the
// SDK would without it.
func TestResolveEndpointsSkipsSelf(t *testing.T) {
	self := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2773}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config")
	for _, c := range []struct {
		name            string
		env             map[string]string
		shared          string
		wantSM, wantSSM string // "" = the regional endpoint
		skipped         int
	}{
		{name: "service variables name self", env: map[string]string{
			"AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://127.0.0.1:2773", "AWS_ENDPOINT_URL_SSM": "http://localhost:2773"}, skipped: 2},
		{name: "then the global variable", env: map[string]string{
			"AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://127.0.0.1:2773", "AWS_ENDPOINT_URL_SSM": "http://127.0.0.1:2773", "AWS_ENDPOINT_URL": "http://aws.example:4566"},
			wantSM: "http://aws.example:4566", wantSSM: "http://aws.example:4566", skipped: 2},
		{name: "global self too", env: map[string]string{"AWS_ENDPOINT_URL_SSM": "http://127.0.0.1:2773", "AWS_ENDPOINT_URL": "http://127.0.0.1:2773"}, skipped: 3},
		{name: "then the shared config", env: map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:2773"},
			shared:  "[default]\nendpoint_url = http://127.0.0.1:2773\nservices = s\n[services s]\nssm =\n  endpoint_url = http://ssm.example:1\n",
			wantSSM: "http://ssm.example:1", skipped: 3},
		{name: "others are kept", env: map[string]string{"AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://sm.example:1"}, wantSM: "http://sm.example:1"},
		{name: "ignored", env: map[string]string{"AWS_ENDPOINT_URL_SSM": "http://127.0.0.1:2773", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range []string{"AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_PROFILE"} {
				t.Setenv(k, c.env[k])
				if c.env[k] == "" {
					os.Unsetenv(k)
				}
			}
			if err := os.WriteFile(cfgFile, []byte(c.shared), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("AWS_CONFIG_FILE", cfgFile)
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
			t.Setenv("AWS_REGION", "eu-west-1")
			cfg, err := awsconfig.LoadDefaultConfig(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			ep, err := ResolveEndpoints(context.Background(), cfg, self, slog.New(slog.NewTextHandler(&log, nil)))
			if err != nil {
				t.Fatal(err)
			}
			check := func(svc string, got *string, url, want, regional string) {
				if want == "" {
					if got != nil || url != regional {
						t.Errorf("%s: endpoint %v, URL %s; want the regional %s", svc, deref(got), url, regional)
					}
					return
				}
				if got == nil || *got != want || url != want {
					t.Errorf("%s: endpoint %v, URL %s; want %s", svc, deref(got), url, want)
				}
			}
			check("secretsmanager", ep.SecretsManager, ep.SecretsManagerURL, c.wantSM, "https://secretsmanager.eu-west-1.amazonaws.com")
			check("ssm", ep.SSM, ep.SSMURL, c.wantSSM, "https://ssm.eu-west-1.amazonaws.com")
			if n := strings.Count(log.String(), "endpoint source skipped"); n != c.skipped {
				t.Errorf("logged %d skipped sources, want %d:\n%s", n, c.skipped, log.String())
			}
		})
	}
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
