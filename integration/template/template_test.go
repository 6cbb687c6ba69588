// Package template checks the SAM template (template.yaml at the repository
// root): its structure with goformation, and, where a validator is installed,
// with cfn-lint.
package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7/cloudformation/serverless"
	"github.com/awslabs/goformation/v7/intrinsics"

	"github.com/secrets-prefetch/secrets-prefetch/config"
	"github.com/secrets-prefetch/secrets-prefetch/integration/rie"
)

const (
	layerType    = "AWS::Serverless::LayerVersion"
	functionType = "AWS::Serverless::Function"
	// What goformation's Ref gives the pseudo parameters.
	accountID = "123456789012"
	region    = "us-east-1"
)

// template is the processed template: intrinsics resolved against the
// parameters, conditions evaluated.
type template struct {
	Transform  any
	Parameters map[string]map[string]any
	Resources  map[string]resource
}

type resource struct {
	Type       string
	Metadata   map[string]any
	Properties json.RawMessage
	raw        []byte // the whole resource, for goformation's typed decoders
}

func (r *resource) UnmarshalJSON(b []byte) error {
	type plain resource
	if err := json.Unmarshal(b, (*plain)(r)); err != nil {
		return err
	}
	r.raw = bytes.Clone(b)
	return nil
}

// layerProps are AWS::Serverless::LayerVersion's properties. goformation's
// serverless.LayerVersion predates CompatibleArchitectures, so the layer is
// decoded here, as strictly: an unknown (misspelled) property is an error.
type layerProps struct {
	CompatibleArchitectures []string
	CompatibleRuntimes      []string
	ContentUri              string
	Description             string
	LayerName               string
	LicenseInfo             string
	RetentionPolicy         string
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := rie.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// load parses template.yaml with goformation, short-form tags (!Ref, !Sub,
// !If, !GetAtt...) included, and resolves it for the given parameter values.
// A Ref to a resource becomes "Ref:<LogicalId>" and a GetAtt
// "GetAtt:<LogicalId>.<Attr>", so the tests can see what points where.
func load(t *testing.T, params map[string]any) template {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	resources := resourceIDs(t, data)
	ref := func(name string, input, tpl any) any {
		if s, ok := input.(string); ok {
			if slices.Contains(resources, s) {
				return "Ref:" + s
			}
			if s == "AWS::Partition" {
				return "aws"
			}
		}
		return intrinsics.Ref(name, input, tpl)
	}
	getAtt := func(_ string, input, _ any) any {
		if parts, ok := input.([]any); ok && len(parts) == 2 {
			id, _ := parts[0].(string)
			attr, _ := parts[1].(string)
			if slices.Contains(resources, id) {
				return "GetAtt:" + id + "." + attr
			}
		}
		return nil
	}
	// goformation's Fn::Sub resolves ${...} with its own Ref, which knows
	// neither resources nor AWS::Partition: substitute those first.
	sub := func(name string, input, tpl any) any {
		if s, ok := input.(string); ok {
			s = strings.ReplaceAll(s, "${AWS::Partition}", "aws")
			for _, id := range resources {
				s = strings.ReplaceAll(s, "${"+id+"}", "Ref:"+id)
			}
			input = s
		}
		return intrinsics.FnSub(name, input, tpl)
	}
	out, err := intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{
		IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{"Ref": ref, "Fn::GetAtt": getAtt, "Fn::Sub": sub},
		ParameterOverrides:        params,
		EvaluateConditions:        true,
	})
	if err != nil {
		t.Fatalf("goformation: %v", err)
	}
	var tpl template
	if err := json.Unmarshal(out, &tpl); err != nil {
		t.Fatalf("decode processed template: %v", err)
	}
	return tpl
}

// resourceIDs lists the template's resources, from goformation's
// unprocessed form.
func resourceIDs(t *testing.T, data []byte) []string {
	t.Helper()
	out, err := intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{NoProcess: true})
	if err != nil {
		t.Fatalf("goformation: %v", err)
	}
	var raw struct{ Resources map[string]json.RawMessage }
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for id := range raw.Resources {
		ids = append(ids, id)
	}
	return ids
}

func strict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// TestLayers checks the two layer resources: one per architecture, each
// built by its own Makefile target (SAM's makefile build method).
func TestLayers(t *testing.T) {
	root := repoRoot(t)
	tpl := load(t, nil)
	if tpl.Transform != "AWS::Serverless-2016-10-31" {
		t.Errorf("Transform = %v, want AWS::Serverless-2016-10-31", tpl.Transform)
	}
	var arches []string
	for id, r := range tpl.Resources {
		if r.Type != layerType {
			continue
		}
		var p layerProps
		if err := strict(r.Properties, &p); err != nil {
			t.Errorf("%s: properties: %v", id, err)
			continue
		}
		if len(p.CompatibleArchitectures) != 1 {
			t.Errorf("%s: CompatibleArchitectures = %q, want one (SAM builds a layer resource for one architecture)", id, p.CompatibleArchitectures)
			continue
		}
		arch := p.CompatibleArchitectures[0]
		arches = append(arches, arch)
		if r.Metadata["BuildMethod"] != "makefile" {
			t.Errorf("%s: Metadata.BuildMethod = %v, want makefile", id, r.Metadata["BuildMethod"])
		}
		if r.Metadata["BuildArchitecture"] != arch {
			t.Errorf("%s: Metadata.BuildArchitecture = %v, want %s like CompatibleArchitectures", id, r.Metadata["BuildArchitecture"], arch)
		}
		if len(p.CompatibleRuntimes) != 0 {
			t.Errorf("%s: CompatibleRuntimes = %q: an extension works with every runtime", id, p.CompatibleRuntimes)
		}
		if p.LayerName == "" || !strings.Contains(p.LayerName, arch) {
			t.Errorf("%s: LayerName = %q, want one naming %s", id, p.LayerName, arch)
		}
		// ContentUri is where `sam build` runs make: it must hold the
		// Makefile with this layer's target.
		dir := filepath.Join(root, p.ContentUri)
		if _, err := os.Stat(filepath.Join(dir, "Makefile")); err != nil {
			t.Errorf("%s: ContentUri %q has no Makefile: %v", id, p.ContentUri, err)
			continue
		}
		cmd := exec.Command("make", "-n", "--no-print-directory", "build-"+id, "ARTIFACTS_DIR=/nonexistent/artifacts")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: the Makefile has no usable build-%s target: %v\n%s", id, id, err, out)
		} else if want := "GOARCH=" + map[string]string{"x86_64": "amd64", "arm64": "arm64"}[arch]; !strings.Contains(string(out), want) {
			t.Errorf("%s: build-%s does not build with %s:\n%s", id, id, want, out)
		}
	}
	slices.Sort(arches)
	if !slices.Equal(arches, []string{"arm64", "x86_64"}) {
		t.Errorf("layer architectures = %q, want one layer each for arm64 and x86_64", arches)
	}
}

// TestFunction checks the example function under each architecture and
// with and without a customer managed KMS key: the right layer, a valid
// configuration for the extension, and least-privilege IAM.
func TestFunction(t *testing.T) {
	root := repoRoot(t)
	const kmsKey = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	for _, arch := range []string{"x86_64", "arm64"} {
		for _, key := range []string{"", kmsKey} {
			t.Run(arch+"/kms="+map[bool]string{true: "customer", false: "aws-managed"}[key != ""], func(t *testing.T) {
				tpl := load(t, map[string]any{"Architecture": arch, "KmsKeyArn": key})
				fns := 0
				for id, r := range tpl.Resources {
					if r.Type != functionType {
						continue
					}
					fns++
					var fn serverless.Function
					if err := json.Unmarshal(r.raw, &fn); err != nil {
						t.Fatalf("%s: %v", id, err)
					}
					checkFunction(t, root, tpl, id, &fn, arch, key)
				}
				if fns != 1 {
					t.Errorf("%d functions, want the one example", fns)
				}
			})
		}
	}
}

func checkFunction(t *testing.T, root string, tpl template, id string, fn *serverless.Function, arch, kmsKey string) {
	t.Helper()
	secretName := tpl.Parameters["SecretName"]["Default"].(string)
	paramPath := tpl.Parameters["ParameterPath"]["Default"].(string)

	// Architecture and layer.
	if !slices.Equal(fn.Architectures, []string{arch}) {
		t.Errorf("%s: Architectures = %q, want [%s]", id, fn.Architectures, arch)
	}
	if len(fn.Layers) != 1 || !strings.HasPrefix(fn.Layers[0], "Ref:") {
		t.Fatalf("%s: Layers = %q, want one Ref to a layer of this template", id, fn.Layers)
	}
	layer, ok := tpl.Resources[strings.TrimPrefix(fn.Layers[0], "Ref:")]
	var lp layerProps
	if !ok || layer.Type != layerType || json.Unmarshal(layer.Properties, &lp) != nil || !slices.Equal(lp.CompatibleArchitectures, []string{arch}) {
		t.Errorf("%s: Layers = %q: not the %s layer", id, fn.Layers, arch)
	}

	// Code: the handler exists where CodeUri and Handler say.
	if fn.CodeUri == nil || fn.CodeUri.String == nil || fn.Handler == nil || fn.Runtime == nil {
		t.Fatalf("%s: want CodeUri, Handler and Runtime", id)
	}
	module, function, _ := strings.Cut(*fn.Handler, ".")
	src, err := os.ReadFile(filepath.Join(root, *fn.CodeUri.String, module+".py"))
	if err != nil || !strings.HasPrefix(*fn.Runtime, "python3.") {
		t.Errorf("%s: Runtime %s Handler %s: %v", id, *fn.Runtime, *fn.Handler, err)
	} else if !regexp.MustCompile(`(?m)^def ` + regexp.QuoteMeta(function) + `\(event, context\)`).Match(src) {
		t.Errorf("%s: %s.py defines no %s(event, context)", id, module, function)
	}

	// Environment: a configuration the extension accepts, naming what the
	// policy allows.
	if fn.Environment == nil {
		t.Fatalf("%s: no Environment", id)
	}
	vars := fn.Environment.Variables
	env := func(k string) string {
		if k == config.EnvSessionToken {
			return "token-set-by-lambda"
		}
		return vars[k]
	}
	cfg, err := config.FromEnv(env)
	if err != nil {
		t.Errorf("%s: the extension rejects the function's environment: %v", id, err)
	}
	if !slices.Equal(cfg.Secrets, []string{secretName}) {
		t.Errorf("%s: %s = %q, want the SecretName parameter %q", id, config.EnvSecrets, vars[config.EnvSecrets], secretName)
	}
	if len(cfg.ParameterPaths) != 1 || cfg.ParameterPaths[0].Prefix != paramPath || !cfg.ParameterPaths[0].Recursive {
		t.Errorf("%s: %s = %q, want %s/**", id, config.EnvParameters, vars[config.EnvParameters], paramPath)
	}
	if !cfg.Metrics {
		t.Errorf("%s: %s = %q: the example shows the metrics on", id, config.EnvMetrics, vars[config.EnvMetrics])
	}
	for k := range vars {
		if strings.HasPrefix(k, "SECRETS_PREFETCH_") && !slices.Contains(knownVars, k) {
			t.Errorf("%s: unknown variable %s", id, k)
		}
	}
	if vars["SECRET_ID"] != secretName || !cfg.ParameterPaths[0].Matches(vars["PARAMETER_NAME"]) || vars["SECRET_JSON_KEY"] == "" {
		t.Errorf("%s: the example reads SECRET_ID=%q PARAMETER_NAME=%q SECRET_JSON_KEY=%q: not what the extension prefetches",
			id, vars["SECRET_ID"], vars["PARAMETER_NAME"], vars["SECRET_JSON_KEY"])
	}

	// IAM: every statement Allow, each action only on what it needs.
	grants := grants(t, id, fn)
	secretARN := "arn:aws:secretsmanager:" + region + ":" + accountID + ":secret:" + secretName + "-AbCdEf"
	paramARN := "arn:aws:ssm:" + region + ":" + accountID + ":parameter" + vars["PARAMETER_NAME"]
	pathARN := "arn:aws:ssm:" + region + ":" + accountID + ":parameter" + paramPath
	want := map[string][]string{
		"secretsmanager:GetSecretValue":      {secretARN},
		"secretsmanager:BatchGetSecretValue": {"anything"}, // takes no resource: "*" is required
		"ssm:GetParameter":                   {paramARN},
		"ssm:GetParameters":                  {paramARN},
		"ssm:GetParametersByPath":            {pathARN, pathARN + "/nested"},
	}
	if kmsKey != "" {
		want["kms:Decrypt"] = []string{kmsKey}
	}
	for action, resources := range want {
		g, ok := grants[action]
		if !ok {
			t.Errorf("%s: no statement allows %s", id, action)
			continue
		}
		for _, r := range resources {
			if !g.allows(r) {
				t.Errorf("%s: %s is not allowed on %s (resources %q)", id, action, r, g.resources)
			}
		}
		if action == "secretsmanager:BatchGetSecretValue" {
			if !slices.Equal(g.resources, []string{"*"}) {
				t.Errorf("%s: %s on %q, want \"*\" (it takes no resource ARN)", id, action, g.resources)
			}
			continue
		}
		// Least privilege: nothing beyond the configured names.
		for _, other := range []string{
			"arn:aws:secretsmanager:" + region + ":" + accountID + ":secret:other-AbCdEf",
			"arn:aws:ssm:" + region + ":" + accountID + ":parameter/other",
			"arn:aws:ssm:" + region + ":" + accountID + ":parameter" + paramPath + "-sibling",
			"arn:aws:kms:" + region + ":" + accountID + ":key/other",
		} {
			if g.allows(other) {
				t.Errorf("%s: %s is allowed on %s: broader than the configured names", id, action, other)
			}
		}
	}
	for action := range grants {
		if _, ok := want[action]; !ok {
			t.Errorf("%s: %s is allowed but not needed", id, action)
		}
	}
	if kms, ok := grants["kms:Decrypt"]; ok && !kms.viaService {
		t.Errorf("%s: kms:Decrypt without a kms:ViaService condition", id)
	}
}

// knownVars are the extension's own variables.
var knownVars = []string{
	config.EnvSecrets, config.EnvParameters, config.EnvRequired, config.EnvInitTimeout,
	config.EnvRefreshAhead, config.EnvStaleIfError, config.EnvLazy, config.EnvMetrics,
	config.EnvEnvMapping, config.EnvFileMapping,
}

type grant struct {
	resources  []string
	viaService bool
}

// allows matches arn against the grant's resources as IAM does: * matches
// any run of characters, ? exactly one.
func (g grant) allows(arn string) bool {
	for _, r := range g.resources {
		if iamGlob(r).MatchString(arn) {
			return true
		}
	}
	return false
}

func iamGlob(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for _, c := range pattern {
		switch c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// grants collects the function's inline policy statements by action.
func grants(t *testing.T, id string, fn *serverless.Function) map[string]grant {
	t.Helper()
	if fn.Policies == nil || fn.Policies.IAMPolicyDocumentArray == nil {
		t.Fatalf("%s: Policies is not a list of inline policy documents", id)
	}
	out := map[string]grant{}
	for _, doc := range *fn.Policies.IAMPolicyDocumentArray {
		// A policy removed by !If [..., !Ref AWS::NoValue] decodes empty.
		for _, s := range doc.Statement {
			stmt, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			var st struct {
				Sid       string
				Effect    string
				Action    stringList
				Resource  stringList
				Condition map[string]map[string]stringList
			}
			if err := strict(stmt, &st); err != nil {
				t.Errorf("%s: statement %s: %v", id, stmt, err)
				continue
			}
			if st.Effect != "Allow" || len(st.Action) == 0 || len(st.Resource) == 0 {
				t.Errorf("%s: statement %s: want Effect Allow with Action and Resource", id, stmt)
			}
			via := slices.Contains(st.Condition["StringEquals"]["kms:ViaService"], "secretsmanager."+region+".amazonaws.com")
			for _, a := range st.Action {
				if strings.Contains(a, "*") {
					t.Errorf("%s: wildcard action %s", id, a)
				}
				g := out[a]
				g.resources = append(g.resources, st.Resource...)
				g.viaService = g.viaService || via
				out[a] = g
			}
		}
	}
	return out
}

// stringList is an IAM field that is a string or a list of strings.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*l = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*l = many
	return nil
}

// TestCfnLint validates the template with cfn-lint, which translates the SAM
// transform with AWS's own translator and checks every resource against the
// CloudFormation schemas. scripts/validate-template.sh finds it (see there
// for what is installable from which registry); without it the test skips:
// the structural tests above still run.
func TestCfnLint(t *testing.T) {
	root := repoRoot(t)
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "validate-template.sh"))
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 3:
		t.Skipf("no template validator here:\n%s", out)
	case err != nil:
		t.Fatalf("template validation failed: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
