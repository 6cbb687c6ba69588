// Package clients_test points AWS clients no one here wrote at the
// extension's AWS API endpoint: Python's boto3 and the AWS CLI v2 as Debian
// packages them (python3-boto3, awscli), and the AWS SDK for JavaScript v3
// from npm (the lock file in ./node, installed by ./node/install.sh). Each
// makes the same reads against the emulated AWS and against the extension,
// and must get the same answers; through the extension, prefetched items
// cost no AWS call. Under CI=true a missing client fails the test.
package clients_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
)

type call struct {
	Op    string         `json:"op"`
	Input map[string]any `json:"input"`
}

var reads = []call{
	{"GetSecretValue", map[string]any{"SecretId": "clients/text"}},
	{"GetSecretValue", map[string]any{"SecretId": "clients/binary"}},
	{"GetSecretValue", map[string]any{"SecretId": "clients/missing"}},
	{"GetParameter", map[string]any{"Name": "/clients/plain"}},
	{"GetParameter", map[string]any{"Name": "/clients/secure", "WithDecryption": true}},
	{"GetParameters", map[string]any{"Names": []string{"/clients/plain", "/clients/nope", "/clients/secure"}, "WithDecryption": true}},
}

// batch is BatchGetSecretValue, which Debian 12's boto3 (1.26) and CLI
// (2.9) predate: only the JavaScript SDK is asked for it.
var batch = call{"BatchGetSecretValue", map[string]any{"SecretIdList": []string{"clients/text", "clients/binary"}}}

func start(t *testing.T) *exttest.Ext {
	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":    "clients/text,clients/binary",
			"SECRETS_PREFETCH_PARAMETERS": "/clients/plain,/clients/secure",
		},
		Seed: func(ctx context.Context, a *awstest.AWS) {
			exttest.Must[string](t)(a.PutSecretString(ctx, "clients/text", `{"user":"u","password":"p<&>é"}`))
			exttest.Must[string](t)(a.PutSecretBinary(ctx, "clients/binary", []byte{0, 1, 0xfe, 0xff, '\n'}))
			exttest.Must[int64](t)(a.PutParameter(ctx, "/clients/plain", "plain value", "String"))
			exttest.Must[int64](t)(a.PutParameter(ctx, "/clients/secure", "secure value", "SecureString"))
		},
	})
	e.WaitReady(t)
	return e
}

// env is a client process's environment: the emulated AWS's credentials
// (the extension holds the same), its region, and nothing of the
// developer's own AWS configuration.
func env(t *testing.T, a *awstest.AWS, extra ...string) []string {
	home := t.TempDir()
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"AWS_ACCESS_KEY_ID=" + a.Credentials.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + a.Credentials.SecretAccessKey,
		"AWS_SESSION_TOKEN=" + a.Credentials.SessionToken,
		"AWS_REGION=" + a.Region(),
		"AWS_DEFAULT_REGION=" + a.Region(),
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER=",
	}, extra...)
}

// missing fails the test under CI=true (CI installs every client), else skips it.
func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (.ci/run installs it)", what)
	}
	t.Skipf("%s is not installed (.ci/run installs it)", what)
}

func runJSON(t *testing.T, environ []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = environ
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// stamp matches an ISO 8601 time as the clients print them.
var stamp = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`)

// sameAnswers reports whether two clients' printouts are the same, their
// times to within a millisecond: the services send milliseconds, which the
// extension keeps as the Go SDK read them, while the emulated SSM sends
// microseconds, which some clients round to the millisecond where Go
// truncates.
func sameAnswers(t *testing.T, a, b string) bool {
	t.Helper()
	ta, tb := stamp.FindAllString(a, -1), stamp.FindAllString(b, -1)
	if stamp.ReplaceAllString(a, "<time>") != stamp.ReplaceAllString(b, "<time>") || len(ta) != len(tb) {
		return false
	}
	for i := range ta {
		x, err1 := time.Parse(time.RFC3339Nano, ta[i])
		y, err2 := time.Parse(time.RFC3339Nano, tb[i])
		if err1 != nil || err2 != nil {
			t.Fatalf("times %q, %q: %v %v", ta[i], tb[i], err1, err2)
		}
		if d := x.Sub(y); d > time.Millisecond || d < -time.Millisecond {
			return false
		}
	}
	return true
}

// compare runs the same reads against AWS and against the extension.
func compare(t *testing.T, e *exttest.Ext, calls []call, read func(endpoint string, calls []call) string) {
	t.Helper()
	direct := read(e.AWS.URL, calls)
	e.AWS.ResetCalls()
	via := read("http://"+e.Addr, calls)
	if !sameAnswers(t, via, direct) {
		t.Errorf("through the extension:\n %s\nfrom AWS:\n %s", via, direct)
	}
	// The missing secret is looked up (once) for the first client; the rest
	// are prefetched.
	for op, n := range e.AWS.AllCalls() {
		if op != awstest.OpGetSecretValue && op != awstest.OpGetParameter || n > 2 {
			t.Errorf("reads through the extension called AWS: %v", e.AWS.AllCalls())
			break
		}
	}
	for _, want := range []string{`\"password\":\"p<&>`, "plain value", "secure value", "AAH+/wo=", "/clients/nope", "ResourceNotFoundException"} {
		if !strings.Contains(via, want) {
			t.Errorf("answer through the extension lacks %s:\n%s", want, via)
		}
	}
	t.Logf("through the extension:\n%s", via)
}

func TestBoto3(t *testing.T) {
	py := "/usr/bin/python3" // Debian's, with python3-boto3
	if _, err := os.Stat(py); err != nil {
		missing(t, "python3")
	}
	v, err := exec.Command(py, "-c", "import boto3, botocore; print(boto3.__version__, botocore.__version__)").Output()
	if err != nil {
		missing(t, "python3-boto3")
	}
	t.Logf("boto3, botocore: %s", strings.TrimSpace(string(v)))
	e := start(t)
	script, _ := filepath.Abs("python/reads.py")
	compare(t, e, reads, func(endpoint string, calls []call) string {
		b, _ := json.Marshal(calls)
		return runJSON(t, env(t, e.AWS), py, script, endpoint, string(b))
	})
}

func TestAWSCLI(t *testing.T) {
	cli := "/usr/bin/aws" // Debian's awscli
	v, err := exec.Command(cli, "--version").Output()
	if err != nil {
		missing(t, "awscli")
	}
	if !strings.HasPrefix(string(v), "aws-cli/2.") {
		t.Fatalf("%s is not the AWS CLI v2: %s", cli, v)
	}
	t.Logf("%s", strings.TrimSpace(string(v)))
	e := start(t)
	commands := map[string]string{"GetSecretValue": "secretsmanager get-secret-value", "GetParameter": "ssm get-parameter", "GetParameters": "ssm get-parameters"}
	compare(t, e, reads, func(endpoint string, calls []call) string {
		var outs []string
		for _, c := range calls {
			in, _ := json.Marshal(c.Input)
			args := append([]string{"--endpoint-url", endpoint, "--output", "json"}, strings.Fields(commands[c.Op])...)
			args = append(args, "--cli-input-json", string(in))
			cmd := exec.CommandContext(t.Context(), cli, args...)
			cmd.Env = env(t, e.AWS)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				// An API error: the CLI names its code on stderr.
				code := regexp.MustCompile(`\(([A-Za-z]+)\)`).FindStringSubmatch(stderr.String())
				if code == nil {
					t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
				}
				outs = append(outs, `{"errorCode": "`+code[1]+`"}`)
				continue
			}
			outs = append(outs, strings.TrimSpace(string(out)))
		}
		return strings.Join(outs, "\n")
	})
}

func TestNodeSDK(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		missing(t, "node")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		missing(t, "npm")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", "node/install.sh")
	cmd.Stderr = &stderr
	dir, err := cmd.Output()
	if err != nil {
		missing(t, "the npm packages of integration/clients/node ("+err.Error()+": "+stderr.String()+")")
	}
	script := filepath.Join(strings.TrimSpace(string(dir)), "reads.mjs")
	e := start(t)
	compare(t, e, append(reads, batch), func(endpoint string, calls []call) string {
		b, _ := json.Marshal(calls)
		// The SDK picks the endpoints up from the environment.
		return runJSON(t, env(t, e.AWS, "AWS_ENDPOINT_URL_SECRETS_MANAGER="+endpoint, "AWS_ENDPOINT_URL_SSM="+endpoint), "node", script, string(b))
	})
}
