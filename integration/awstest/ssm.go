package awstest

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// referencePrefix names a Secrets Manager secret in Parameter Store.
	referencePrefix = "/aws/reference/secretsmanager/"

	maxGetParameters = 10 // GetParameters' limit on Names
	maxByPathResults = 10 // GetParametersByPath's limit on MaxResults
	maxLabels        = 10 // labels on one parameter version

	typeSecureString = "SecureString"
)

// parameter is SSM's Parameter shape on the wire.
type parameter struct {
	ARN              string  `json:"ARN,omitempty"`
	DataType         string  `json:"DataType,omitempty"`
	LastModifiedDate float64 `json:"LastModifiedDate,omitempty"`
	Name             string  `json:"Name"`
	Selector         string  `json:"Selector,omitempty"`
	SourceResult     string  `json:"SourceResult,omitempty"`
	Type             string  `json:"Type"`
	Value            *string `json:"Value,omitempty"` // absent for a binary secret's reference
	Version          int64   `json:"Version"`
}

// paramVersion is one version of a parameter in the front's history.
type paramVersion struct {
	p      parameter // as kumo answered it, decrypted, without Selector
	labels []string
}

// ciphertextHeader starts every Ciphertext, as the version and key-ID
// header bytes start a real KMS blob (hence its base64 "AQICAH...").
var ciphertextHeader = []byte{0x01, 0x02, 0x02, 0x00, 0x78}

// Ciphertext is what the front answers as the value of a SecureString read
// without WithDecryption, as real SSM answers the KMS ciphertext: base64 of
// a KMS-like header and the plaintext. It looks like real ciphertext, never
// equals the plaintext, and lets a test tell which plaintext it stands for.
func Ciphertext(plaintext string) string {
	return base64.StdEncoding.EncodeToString(append(slices.Clone(ciphertextHeader), plaintext...))
}

// conceal replaces a SecureString's value by its Ciphertext unless the
// caller asked for decryption. The front always asks kumo for the plaintext.
func conceal(p *parameter, withDecryption bool) {
	if p.Type == typeSecureString && !withDecryption && p.Value != nil {
		c := Ciphertext(*p.Value)
		p.Value = &c
	}
}

// checkParameterName refuses names real SSM refuses that would confuse the
// front: reserved prefixes (which include /aws/reference/...) and ':', which
// starts a selector.
func checkParameterName(name string) *apiError {
	lower := strings.ToLower(strings.TrimPrefix(name, "/"))
	if strings.HasPrefix(lower, "aws") || strings.HasPrefix(lower, "ssm") {
		return badRequest(CodeValidation, `Parameter name: can't be prefixed with "aws" or "ssm" (case-insensitive).`)
	}
	if strings.Contains(name, ":") {
		return badRequest(CodeValidation, "Parameter name: can't contain ':' (it starts a version or label selector).")
	}
	return nil
}

// putParameter passes PutParameter to kumo and, once kumo has taken it,
// records the new version in the history that kumo does not keep.
func (a *AWS) putParameter(ctx context.Context, w http.ResponseWriter, body []byte) {
	var req struct {
		Name, Type, Value, DataType string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, badRequest(codeSerializationFailed, "%v", err))
		return
	}
	if e := checkParameterName(req.Name); e != nil {
		writeError(w, e)
		return
	}
	status, out, e := a.kumoRaw(ctx, OpPutParameter, body)
	if e == nil && status != http.StatusOK {
		e = kumoError(OpPutParameter, status, out)
	}
	if e != nil {
		writeError(w, e)
		return
	}
	var res struct{ Version int64 }
	if err := json.Unmarshal(out, &res); err != nil {
		writeError(w, internalError(OpPutParameter, err))
		return
	}

	// Record kumo's own view of the version (its ARN, time and type), read
	// back at once. Should another put of the name get in between, record
	// this one from the request instead.
	var got struct{ Parameter parameter }
	e = a.kumoJSON(ctx, OpGetParameter, map[string]any{"Name": req.Name, "WithDecryption": true}, &got)
	p := got.Parameter
	if e != nil || p.Version != res.Version {
		p = parameter{
			ARN:              a.parameterARN(req.Name),
			DataType:         cmp.Or(req.DataType, "text"),
			LastModifiedDate: float64(time.Now().UnixMilli()) / 1e3,
			Name:             req.Name,
			Type:             cmp.Or(req.Type, a.latestType(req.Name), "String"),
			Value:            &req.Value,
			Version:          res.Version,
		}
	}
	a.mu.Lock()
	h := a.params[req.Name]
	if !slices.ContainsFunc(h, func(v *paramVersion) bool { return v.p.Version == p.Version }) {
		h = append(h, &paramVersion{p: p})
		slices.SortFunc(h, func(x, y *paramVersion) int { return int(x.p.Version - y.p.Version) })
		a.params[req.Name] = h
	}
	a.mu.Unlock()
	writeRaw(w, out)
}

func (a *AWS) latestType(name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if h := a.params[name]; len(h) > 0 {
		return h[len(h)-1].p.Type
	}
	return ""
}

// deleteParameters passes DeleteParameter(s) to kumo and forgets the
// history of what it deleted, as SSM deletes every version.
func (a *AWS) deleteParameters(ctx context.Context, w http.ResponseWriter, op string, body []byte) {
	status, out, e := a.kumoRaw(ctx, op, body)
	if e == nil && status != http.StatusOK {
		e = kumoError(op, status, out)
	}
	if e != nil {
		writeError(w, e)
		return
	}
	var req struct{ Name string }
	var res struct{ DeletedParameters []string }
	_ = json.Unmarshal(body, &req)
	_ = json.Unmarshal(out, &res)
	a.mu.Lock()
	if op == "ssm.DeleteParameter" {
		delete(a.params, req.Name)
	}
	for _, name := range res.DeletedParameters {
		delete(a.params, name)
	}
	a.mu.Unlock()
	writeRaw(w, out)
}

// getParameter serves GetParameter: plain names from kumo, selectors from
// the history, references from Secrets Manager.
func (a *AWS) getParameter(ctx context.Context, w http.ResponseWriter, body []byte) {
	var req struct {
		Name           string
		WithDecryption bool
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, badRequest(codeSerializationFailed, "%v", err))
		return
	}
	p, e := a.lookup(ctx, req.Name, req.WithDecryption)
	if e != nil {
		writeError(w, e)
		return
	}
	conceal(&p, req.WithDecryption)
	writeJSON(w, map[string]parameter{"Parameter": p})
}

// lookup finds one parameter, decrypted, by any name GetParameter takes.
func (a *AWS) lookup(ctx context.Context, name string, withDecryption bool) (parameter, *apiError) {
	if arn := name; strings.HasPrefix(arn, "arn:") {
		// By ARN: answered under the ARN, as SSM names a parameter asked
		// for by ARN.
		n := a.parameterName(arn)
		if strings.HasPrefix(n, "arn:") {
			return parameter{}, badRequest(CodeParameterNotFound, "Parameter %s not found.", arn)
		}
		p, e := a.lookup(ctx, n, withDecryption)
		if e != nil && e.Code == CodeParameterNotFound {
			e = badRequest(CodeParameterNotFound, "Parameter %s not found.", arn)
		}
		if e == nil {
			p.Name = arn
		}
		return p, e
	}
	if id, ok := strings.CutPrefix(name, referencePrefix); ok {
		return a.reference(ctx, id, withDecryption)
	}
	if base, sel, ok := strings.Cut(name, ":"); ok {
		return a.selected(name, base, sel)
	}
	var got struct{ Parameter parameter }
	if e := a.kumoJSON(ctx, OpGetParameter, map[string]any{"Name": name, "WithDecryption": true}, &got); e != nil {
		return parameter{}, e
	}
	return got.Parameter, nil
}

// selected answers name:N and name:label from the history, with Selector
// set as SSM sets it. An unknown version of a known parameter is
// ParameterVersionNotFound; anything else unknown, labels included, is
// ParameterNotFound (SSM has no label-specific code).
func (a *AWS) selected(name, base, sel string) (parameter, *apiError) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := a.params[base]
	notFound := badRequest(CodeParameterNotFound, "Parameter %s not found.", name)
	if len(h) == 0 || sel == "" || strings.Contains(sel, ":") {
		return parameter{}, notFound
	}
	match := func(v *paramVersion) bool { return slices.Contains(v.labels, sel) }
	if n, err := strconv.ParseInt(sel, 10, 64); err == nil {
		match = func(v *paramVersion) bool { return v.p.Version == n }
		notFound = badRequest(CodeVersionNotFound, "Systems Manager could not find version %d of %s. Verify the version and try again.", n, base)
	}
	i := slices.IndexFunc(h, match)
	if i < 0 {
		return parameter{}, notFound
	}
	p := h[i].p
	p.Selector = ":" + sel
	return p, nil
}

// getParameters serves GetParameters: plain names through kumo's
// GetParameters, selectors and references as GetParameter does them; any
// name that cannot be answered, and any FailItems fault, goes to
// InvalidParameters. Parameters keep the order of Names.
func (a *AWS) getParameters(ctx context.Context, w http.ResponseWriter, body []byte, fx effect) {
	var req struct {
		Names          []string
		WithDecryption bool
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, badRequest(codeSerializationFailed, "%v", err))
		return
	}
	if len(req.Names) == 0 || len(req.Names) > maxGetParameters {
		writeError(w, badRequest(CodeValidation, "1 validation error detected: Value '[%s]' at 'names' failed to satisfy constraint: "+
			"Member must have length less than or equal to %d, Member must have length greater than or equal to 1",
			strings.Join(req.Names, ", "), maxGetParameters))
		return
	}
	found := map[string]parameter{} // by the name as requested
	var plain []string
	for _, name := range req.Names {
		switch {
		case fx.failItems[name]:
		case !strings.Contains(name, ":") && !strings.HasPrefix(name, referencePrefix):
			plain = append(plain, name)
		default:
			p, e := a.lookup(ctx, name, req.WithDecryption)
			if e != nil && e.Status >= http.StatusInternalServerError {
				writeError(w, e)
				return
			}
			if e == nil {
				found[name] = p
			}
		}
	}
	if len(plain) > 0 {
		var got struct{ Parameters []parameter }
		if e := a.kumoJSON(ctx, OpGetParameters, map[string]any{"Names": plain, "WithDecryption": true}, &got); e != nil {
			writeError(w, e)
			return
		}
		for _, p := range got.Parameters {
			found[p.Name] = p
		}
	}
	out := struct {
		Parameters        []parameter `json:"Parameters"`
		InvalidParameters []string    `json:"InvalidParameters"`
	}{Parameters: []parameter{}, InvalidParameters: []string{}}
	for _, name := range req.Names {
		p, ok := found[name]
		if !ok {
			out.InvalidParameters = append(out.InvalidParameters, name)
			continue
		}
		conceal(&p, req.WithDecryption)
		out.Parameters = append(out.Parameters, p)
	}
	writeJSON(w, out)
}

// getParametersByPath serves GetParametersByPath through kumo, which pages
// it (NextToken is the next parameter's name); the front adds SSM's limit on
// MaxResults and the ciphertext.
func (a *AWS) getParametersByPath(ctx context.Context, w http.ResponseWriter, body []byte) {
	var req struct {
		Path             string
		Recursive        bool
		WithDecryption   bool
		MaxResults       int
		NextToken        string
		ParameterFilters []json.RawMessage
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, badRequest(codeSerializationFailed, "%v", err))
		return
	}
	if req.MaxResults > maxByPathResults {
		writeError(w, badRequest(CodeValidation, "1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: "+
			"Member must have value less than or equal to %d", req.MaxResults, maxByPathResults))
		return
	}
	if len(req.ParameterFilters) > 0 {
		writeError(w, badRequest(codeNotImplementedHere, "awstest: GetParametersByPath with ParameterFilters is not served by the test front"))
		return
	}
	in := map[string]any{"Path": req.Path, "Recursive": req.Recursive, "WithDecryption": true}
	if req.MaxResults > 0 {
		in["MaxResults"] = req.MaxResults
	}
	if req.NextToken != "" {
		in["NextToken"] = req.NextToken
	}
	var got struct {
		Parameters []parameter `json:"Parameters"`
		NextToken  string      `json:"NextToken,omitempty"`
	}
	if e := a.kumoJSON(ctx, OpGetParametersByPath, in, &got); e != nil {
		writeError(w, e)
		return
	}
	if got.Parameters == nil {
		got.Parameters = []parameter{}
	}
	for i := range got.Parameters {
		conceal(&got.Parameters[i], req.WithDecryption)
	}
	writeJSON(w, got)
}

// labelRE is what SSM allows in a label; it also may not start with a
// digit (it would read as a version) nor with "aws" or "ssm".
var labelRE = regexp.MustCompile(`^[a-zA-Z0-9_.\-]{1,100}$`)

func validLabel(l string) bool {
	lower := strings.ToLower(l)
	return labelRE.MatchString(l) && (l[0] < '0' || l[0] > '9') &&
		!strings.HasPrefix(lower, "aws") && !strings.HasPrefix(lower, "ssm")
}

// labelParameterVersion serves LabelParameterVersion, which kumo lacks, on
// the history: a label moves to the version named (the latest if none), off
// any other version of the parameter; malformed labels come back in
// InvalidLabels rather than failing the call, as in SSM.
func (a *AWS) labelParameterVersion(w http.ResponseWriter, body []byte) {
	var req struct {
		Name             string
		ParameterVersion *int64
		Labels           []string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, badRequest(codeSerializationFailed, "%v", err))
		return
	}
	version, invalid, e := a.label(req.Name, req.ParameterVersion, req.Labels)
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, map[string]any{"InvalidLabels": invalid, "ParameterVersion": version})
}

func (a *AWS) label(name string, version *int64, labels []string) (int64, []string, *apiError) {
	if len(labels) == 0 || len(labels) > maxLabels {
		return 0, nil, badRequest(CodeValidation, "1 validation error detected: Value at 'labels' failed to satisfy constraint: "+
			"Member must have length less than or equal to %d, Member must have length greater than or equal to 1", maxLabels)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	h := a.params[name]
	if len(h) == 0 {
		return 0, nil, badRequest(CodeParameterNotFound, "Parameter %s not found.", name)
	}
	target := h[len(h)-1]
	if version != nil {
		i := slices.IndexFunc(h, func(v *paramVersion) bool { return v.p.Version == *version })
		if i < 0 {
			return 0, nil, badRequest(CodeVersionNotFound, "Systems Manager could not find version %d of %s. Verify the version and try again.", *version, name)
		}
		target = h[i]
	}
	invalid := []string{}
	var valid []string
	for _, l := range labels {
		if validLabel(l) {
			valid = append(valid, l)
		} else {
			invalid = append(invalid, l)
		}
	}
	merged := slices.Clone(target.labels)
	for _, l := range valid {
		if !slices.Contains(merged, l) {
			merged = append(merged, l)
		}
	}
	if len(merged) > maxLabels {
		return 0, nil, badRequest(CodeLabelLimitExceeded, "A parameter version can have maximum %d labels. "+
			"Move one or more labels to another version and try again.", maxLabels)
	}
	for _, v := range h {
		if v != target {
			v.labels = slices.DeleteFunc(v.labels, func(l string) bool { return slices.Contains(valid, l) })
		}
	}
	target.labels = merged
	return target.p.Version, invalid, nil
}

// reference answers /aws/reference/secretsmanager/<id>[:selector] from
// Secrets Manager, as SSM does (errors and texts as measured against AWS):
// Type SecureString, Version 0, the secret's ARN, LastModifiedDate the
// version's CreatedDate, no DataType, SourceResult the secret as JSON, and
// a selector taken as a VersionId if it is one, else a staging label.
func (a *AWS) reference(ctx context.Context, id string, withDecryption bool) (parameter, *apiError) {
	secretID, sel, hasSel := strings.Cut(id, ":")
	if secretID == "" || (hasSel && (sel == "" || strings.Contains(sel, ":"))) {
		return parameter{}, badRequest(CodeValidation, "Invalid parameter name. Please use correct syntax for referencing a version/label  <name>:<version/label>")
	}
	if !withDecryption {
		return parameter{}, badRequest(CodeValidation, "WithDecryption flag must be True for retrieving a Secret Manager secret.")
	}
	in := map[string]string{"SecretId": secretID}
	switch {
	case !hasSel:
	case isVersionID(sel):
		in["VersionId"] = sel
	default:
		in["VersionStage"] = sel
	}
	var v secretValue
	if e := a.kumoJSON(ctx, OpGetSecretValue, in, &v); e != nil {
		switch e.Code {
		case CodeResourceNotFound:
			shown := "null"
			if hasSel {
				shown = ":" + sel
			}
			return parameter{}, badRequest(CodeParameterNotFound, "An error occurred (ParameterNotFound) when referencing Secrets Manager: Secret %s%s not found.",
				strings.TrimPrefix(referencePrefix, "/")+secretID, shown)
		case codeInvalidRequest:
			return parameter{}, badRequest(CodeValidation, "Invalid Request to Secrets Manager")
		}
		return parameter{}, e
	}
	p := parameter{
		ARN:              v.ARN,
		LastModifiedDate: v.CreatedDate,
		Name:             referencePrefix + secretID,
		SourceResult:     sourceResult(v),
		Type:             typeSecureString,
		Value:            v.SecretString,
	}
	if hasSel {
		p.Selector = ":" + sel
	}
	return p, nil
}

// isVersionID reports whether s has the shape of a Secrets Manager
// VersionId (a UUID).
func isVersionID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !strings.ContainsRune("0123456789abcdefABCDEF", c):
			return false
		}
	}
	return true
}

// sourceResult is the secret as a reference's SourceResult: SSM's service
// serializes Secrets Manager's Java response, so binary is a ByteBuffer and
// the date is in Java's default format.
func sourceResult(v secretValue) string {
	type byteBuffer struct {
		HB              []int `json:"hb"`
		Offset          int   `json:"offset"`
		IsReadOnly      bool  `json:"isReadOnly"`
		BigEndian       bool  `json:"bigEndian"`
		NativeByteOrder bool  `json:"nativeByteOrder"`
		Mark            int   `json:"mark"`
		Position        int   `json:"position"`
		Limit           int   `json:"limit"`
		Capacity        int   `json:"capacity"`
		Address         int   `json:"address"`
	}
	src := struct {
		ARN           string      `json:"ARN"`
		Name          string      `json:"name"`
		VersionID     string      `json:"versionId"`
		SecretString  *string     `json:"secretString,omitempty"`
		SecretBinary  *byteBuffer `json:"secretBinary,omitempty"`
		VersionStages []string    `json:"versionStages"`
		CreatedDate   string      `json:"createdDate"`
	}{
		ARN:           v.ARN,
		Name:          v.Name,
		VersionID:     v.VersionID,
		SecretString:  v.SecretString,
		VersionStages: v.VersionStages,
		CreatedDate:   time.Unix(int64(v.CreatedDate), 0).UTC().Format("Jan 2, 2006, 3:04:05 PM"),
	}
	if v.SecretBinary != nil {
		hb := make([]int, len(v.SecretBinary))
		for i, b := range v.SecretBinary {
			hb[i] = int(b)
		}
		src.SecretBinary = &byteBuffer{HB: hb, BigEndian: true, Mark: -1, Limit: len(hb), Capacity: len(hb), Address: 16}
	}
	b, err := json.Marshal(src)
	if err != nil {
		return fmt.Sprintf("%q", err.Error())
	}
	return string(b)
}
