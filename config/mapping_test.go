package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/secrets-prefetch/secrets-prefetch/zerocode/mapping"
)

func TestMappings(t *testing.T) {
	c, err := FromEnv(env(map[string]string{
		EnvEnvMapping:  " DB_PASSWORD=secret:prod/db#password, TOKEN?=param:/app/token:3 ",
		EnvFileMapping: "/tmp/tls/key.pem=secret:prod/tls#key",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.EnvMapping) != 2 || c.EnvMapping[1].Target != "TOKEN" || !c.EnvMapping[1].Optional || c.EnvMapping[1].Selector != "3" {
		t.Errorf("EnvMapping = %+v", c.EnvMapping)
	}
	if len(c.FileMapping) != 1 || c.FileMapping[0].Target != "/tmp/tls/key.pem" || c.FileMapping[0].Kind != mapping.Secret {
		t.Errorf("FileMapping = %+v", c.FileMapping)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "config", c)
	if !strings.Contains(buf.String(), "TOKEN?=param:/app/token:3") || !strings.Contains(buf.String(), "/tmp/tls/key.pem=secret:prod/tls#key") {
		t.Errorf("logged config lacks the mappings: %s", buf.String())
	}
}

// TestMappingErrors checks a bad entry is a *VarError naming the variable,
// the entry's position and its text, like any list element.
func TestMappingErrors(t *testing.T) {
	_, err := FromEnv(env(map[string]string{
		EnvEnvMapping:  "OK=secret:a, BROKEN=sekret:x",
		EnvFileMapping: "/etc/passwd=secret:a",
	}))
	ves := VarErrors(err)
	if len(ves) != 2 {
		t.Fatalf("errors = %v, want two", err)
	}
	if ves[0].Name != EnvEnvMapping || ves[0].Index != 2 || ves[0].Value != "BROKEN=sekret:x" {
		t.Errorf("first error = %+v", ves[0])
	}
	want := `SECRETS_PREFETCH_ENV: element 2 "BROKEN=sekret:x" is not valid: want a source "secret:ID" or "param:NAME"`
	if !strings.HasPrefix(ves[0].Error(), want) {
		t.Errorf("message %q, want it to start with %q", ves[0].Error(), want)
	}
	if ves[1].Name != EnvFileMapping || ves[1].Index != 1 || !strings.Contains(ves[1].Error(), "under /tmp/") {
		t.Errorf("second error = %v", ves[1])
	}
}
