package rie

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/metrics"
)

// The client examples (examples/go, examples/python, examples/node) run as
// the function under RIE with the real extension: a success, then each error
// status the extension gives (404, 403, 502, 504), which each example must
// turn into its own error type. The extension's EMF metric lines are checked
// against the same run.

const (
	exampleSecret    = "app/db"
	exampleSecretVal = `{"username":"app_user","password":"s3cr3t-example-password"}`
	exampleParam     = "/app/config/feature-flags"
	exampleParamVal  = "beta=on"
)

// exampleResult is what every example returns on success.
type exampleResult struct {
	Secret struct {
		Name      string `json:"name"`
		VersionID string `json:"versionId"`
		Keys      int    `json:"keys"`
	} `json:"secret"`
	JSONKey struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"jsonKey"`
	Parameter struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		Version int64  `json:"version"`
	} `json:"parameter"`
}

// exampleFunctions builds each example into a bootstrap RIE can run. The
// Python and Node.js ones run under small Runtime API loops in testdata/ —
// test scaffolding standing in for Lambda's managed runtimes.
func exampleFunctions(t *testing.T) map[string]string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	examples := filepath.Join(root, "examples")
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fns := map[string]string{}

	// Go: the real thing, built as for provided.al2023.
	goBin := filepath.Join(dir, "go-bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", goBin, ".")
	cmd.Dir = filepath.Join(examples, "go")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build examples/go: %v\n%s", err, out)
	}
	fns["go"] = goBin

	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The interpreters by absolute path: RIE's environment has another HOME,
	// which version managers' shims (pyenv) depend on.
	if py, err := exec.Command("python3", "-c", "import sys; assert sys.version_info >= (3, 10); print(sys.executable)").Output(); err == nil {
		fns["python"] = script("python-bootstrap", "PYTHONDONTWRITEBYTECODE=1 exec "+quote(strings.TrimSpace(string(py)))+" "+
			quote(filepath.Join(testdata, "runtime-loop.py"))+" "+quote(filepath.Join(examples, "python"))+" handler.lambda_handler")
	} else {
		missingRuntime(t, "python3 (3.10 or later)", err)
	}
	if node, err := exec.LookPath("node"); err == nil {
		fns["node"] = script("node-bootstrap", "exec "+quote(node)+" "+
			quote(filepath.Join(testdata, "runtime-loop.mjs"))+" "+quote(filepath.Join(examples, "node", "index.mjs"))+" handler")
	} else {
		missingRuntime(t, "node", err)
	}
	return fns
}

// missingRuntime skips a language whose interpreter is missing, except
// under CI=true, where every example must run.
func missingRuntime(t *testing.T, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is needed for the examples' end-to-end test: %v", what, err)
	}
	t.Logf("skipping an example: %s not found (%v)", what, err)
}

func TestE2EExamples(t *testing.T) {
	requireSupported(t)
	for lang, bootstrap := range exampleFunctions(t) {
		t.Run(lang, func(t *testing.T) {
			t.Parallel()
			runExample(t, bootstrap)
		})
	}
}

func runExample(t *testing.T, bootstrap string) {
	a := awstest.Start(t)
	ctx := t.Context()
	if _, err := a.PutSecretString(ctx, exampleSecret, exampleSecretVal); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutParameter(ctx, exampleParam, exampleParamVal, "String"); err != nil {
		t.Fatal(err)
	}
	env := Start(t, Options{
		Binaries: Binaries{Function: bootstrap},
		Env: append(a.Env(),
			// The extension, as template.yaml configures it.
			"SECRETS_PREFETCH_SECRETS="+exampleSecret,
			"SECRETS_PREFETCH_PARAMETERS=/app/config/**",
			"SECRETS_PREFETCH_METRICS=true",
			// The 504 case waits this out. It is longer than the SDK's
			// retries of the 502 case can take (3 attempts, backoff at
			// most 1 s), so that one ends as a 502, not a timeout.
			"SECRETS_MANAGER_TIMEOUT_MILLIS=3000",
			// The function.
			"SECRET_ID="+exampleSecret,
			"SECRET_JSON_KEY=username",
			"PARAMETER_NAME="+exampleParam,
		),
	})

	// Success: three reads, all from what the extension prefetched.
	status, body := invokeExample(t, env, `{}`)
	var res exampleResult
	if err := json.Unmarshal(body, &res); err != nil || status != 200 {
		t.Fatalf("success case: status %d, body %s (%v)", status, body, err)
	}
	if res.Secret.Name != exampleSecret || res.Secret.VersionID == "" || res.Secret.Keys != 2 ||
		res.JSONKey.Key != "username" || res.JSONKey.Value != "app_user" ||
		res.Parameter.Name != exampleParam || res.Parameter.Value != exampleParamVal || res.Parameter.Version != 1 {
		t.Errorf("success case: %+v", res)
	}
	if strings.Contains(string(body), "s3cr3t-example-password") {
		t.Errorf("the example returned secret material: %s", body)
	}

	// Each error status, on a secret read lazily (so it calls AWS), becomes
	// the example's own error type.
	cases := []struct {
		status    int
		secretID  string
		fault     *awstest.Fault
		errorType string
	}{
		{404, "app/missing", nil, "NotFoundError"},
		{403, "app/denied", ptr(awstest.AccessDenied()), "AccessDeniedError"},
		{502, "app/flaky", ptr(awstest.InternalError()), "UpstreamError"},
		{504, "app/slow", ptr(awstest.BlackHole()), "UpstreamTimeoutError"},
	}
	for _, c := range cases {
		var remove func()
		if c.fault != nil {
			remove = a.Inject(awstest.OpGetSecretValue, *c.fault)
		}
		status, body := invokeExample(t, env, `{"secretId":"`+c.secretID+`"}`)
		if remove != nil {
			remove()
		}
		var fnErr struct{ ErrorType, ErrorMessage string }
		if err := json.Unmarshal(body, &fnErr); err != nil || fnErr.ErrorType != c.errorType {
			t.Errorf("extension status %d: function answered %d %s; want errorType %s", c.status, status, body, c.errorType)
			continue
		}
		if !strings.Contains(fnErr.ErrorMessage, c.secretID) {
			t.Errorf("extension status %d: message %q does not name %s", c.status, fnErr.ErrorMessage, c.secretID)
		}
	}

	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := env.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	out := env.Output()
	if strings.Contains(out, "s3cr3t-example-password") {
		t.Error("a secret value reached the logs")
	}
	checkExampleMetrics(t, out, a)
}

// checkExampleMetrics sums the EMF lines of the run and compares them with
// what happened: 5 invokes; a prefetch of one secret (GetSecretValue: a
// batch of one is not batched) and one path page; 3 cache hits; 4 lazy
// reads that failed, one per error class.
func checkExampleMetrics(t *testing.T, out string, a *awstest.AWS) {
	t.Helper()
	sum := map[string]float64{}
	lines := 0
	for line := range strings.Lines(out) {
		i := strings.Index(line, `{`)
		if i < 0 || !strings.Contains(line, `"_aws":`) {
			continue
		}
		l, err := metrics.Parse([]byte(line[i:]))
		if err != nil {
			t.Fatalf("invalid EMF line: %v\n%s", err, line)
		}
		lines++
		if l.Namespace != "SecretsPrefetch" || l.Dimensions["FunctionName"] == "" {
			t.Errorf("EMF namespace %q dimensions %v", l.Namespace, l.Dimensions)
		}
		for k, v := range l.Values {
			sum[k] += v
		}
	}
	// One at the first INVOKE, one at SHUTDOWN: the run is shorter than
	// the one-minute interval.
	if lines != 2 {
		t.Errorf("%d EMF lines, want 2", lines)
	}
	want := map[string]float64{
		"Invokes": 5, "CacheHits": 3, "CacheMisses": 0, "CacheStaleServes": 0, "CacheErrors": 4,
		"GetSecretValueCalls": 5, "GetParametersByPathCalls": 1, "AWSCalls": 6,
		"AWSErrors": 4, "AWSErrorsNotFound": 1, "AWSErrorsAccessDenied": 1, "AWSErrorsTransient": 1, "AWSErrorsTimeout": 1,
		"PrefetchItems": 2, "PrefetchFailures": 0,
	}
	for k, v := range want {
		if sum[k] != v {
			t.Errorf("metrics: %s = %v, want %v", k, sum[k], v)
		}
	}
	// The extension counts operations; the AWS front counts requests, which
	// include the SDK's retries: 2 of the 500 answered in the 502 case.
	for metric, op := range map[string]string{
		"GetSecretValueCalls":      awstest.OpGetSecretValue,
		"GetParametersByPathCalls": awstest.OpGetParametersByPath,
		"BatchGetSecretValueCalls": awstest.OpBatchGetSecretValue,
		"GetParametersCalls":       awstest.OpGetParameters,
		"GetParameterCalls":        awstest.OpGetParameter,
	} {
		retries := 0
		if op == awstest.OpGetSecretValue {
			retries = 2
		}
		if got := a.Calls(op); float64(got-retries) != sum[metric] {
			t.Errorf("metrics: %s = %v, but AWS received %d %s requests (%d of them retries)", metric, sum[metric], got, op, retries)
		}
	}
	if sum["PrefetchDuration"] <= 0 {
		t.Errorf("metrics: PrefetchDuration = %v, want > 0", sum["PrefetchDuration"])
	}
}

func invokeExample(t *testing.T, env *Env, payload string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	status, body, _, err := env.Invoke(ctx, []byte(payload))
	if err != nil {
		t.Fatalf("invoke %s: %v", payload, err)
	}
	return status, body
}

func ptr[T any](v T) *T { return &v }
