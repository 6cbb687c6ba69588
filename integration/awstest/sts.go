package awstest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// OpAssumeRole is STS AssumeRole, as Calls and Inject name it (on the home
// region's store, whose signature scope STS clients use by default).
const OpAssumeRole = "sts.AssumeRole"

const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

// CreateRole lets AssumeRole hand out credentials for role (an IAM role
// ARN) to the test credentials. AssumeRole of any other role is refused
// with AccessDenied, as IAM refuses a role whose trust policy does not name
// the caller.
func (a *AWS) CreateRole(role string) {
	a.world.mu.Lock()
	defer a.world.mu.Unlock()
	a.roles[role] = true
}

// RoleSessions is how many sets of credentials AssumeRole has issued for role.
func (a *AWS) RoleSessions(role string) int {
	a.world.mu.Lock()
	defer a.world.mu.Unlock()
	return a.assumed[role]
}

// Only makes the secret or parameter called name (its name, as created)
// readable by the credentials of role alone ("" for the test credentials):
// reads signed by any other credentials are refused with
// AccessDeniedException, as a resource policy or a KMS key policy of
// another account refuses them. GetSecretValue, GetParameter and
// GetParameters are refused whole; BatchGetSecretValue reports the secret
// in its Errors.
func (a *AWS) Only(name, role string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.only[name] = role
}

// serveSTS answers STS's query protocol: AssumeRole, signed by the test
// credentials (or credentials AssumeRole issued: role chaining). kumo has
// an STS, but it reads JSON bodies where the SDK sends a form, and the front
// must know which credentials it issued to tell who signed a later call.
func (w *world) serveSTS(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxBody))
	if err != nil {
		writeSTSError(rw, http.StatusBadRequest, "Sender", "MalformedInput", "reading the request body: "+err.Error())
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("Action") != "AssumeRole" {
		writeSTSError(rw, http.StatusBadRequest, "Sender", "InvalidAction", "awstest: STS serves AssumeRole only")
		return
	}
	sig, _ := parseAuthorization(r.Header.Get("Authorization"))
	w.mu.Lock()
	home := w.regions[sig.region]
	if home == nil {
		home = w.regions[homeRegion]
	}
	w.mu.Unlock()
	home.count(OpAssumeRole, nil)
	if _, e := home.checkSignature(r, OpAssumeRole, body); e != nil {
		writeSTSError(rw, e.Status, "Sender", e.Code, e.Message)
		return
	}
	fx := home.takeFaults(OpAssumeRole)
	if f := fx.terminal; f != nil && !f.Reset && !f.BlackHole {
		e := faultError(OpAssumeRole, f)
		writeSTSError(rw, e.Status, "Sender", e.Code, e.Message)
		return
	}
	if home.misbehave(rw, r, OpAssumeRole, fx) {
		return
	}
	role, session := form.Get("RoleArn"), form.Get("RoleSessionName")
	if role == "" || session == "" {
		writeSTSError(rw, http.StatusBadRequest, "Sender", "ValidationError", "1 validation error detected: RoleArn and RoleSessionName are required")
		return
	}
	duration := 3600
	if d := form.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 900 || n > 43200 {
			writeSTSError(rw, http.StatusBadRequest, "Sender", "ValidationError", "1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint")
			return
		}
		duration = n
	}
	w.mu.Lock()
	known := w.roles[role]
	w.mu.Unlock()
	if !known {
		writeSTSError(rw, http.StatusForbidden, "Sender", "AccessDenied", "User: arn:aws:sts::"+accountID+
			":assumed-role/awstest/awstest is not authorized to perform: sts:AssumeRole on resource: "+role)
		return
	}
	p := principal{secretKey: randomHex(20), sessionToken: "awstest-role-" + randomHex(24), role: role,
		expires: time.Now().Add(time.Duration(duration) * time.Second)}
	keyID := "ASIA" + strings.ToUpper(randomHex(8))
	w.mu.Lock()
	w.principals[keyID] = p
	if w.assumed == nil {
		w.assumed = map[string]int{}
	}
	w.assumed[role]++
	w.mu.Unlock()

	name := role
	if i := strings.LastIndex(role, "/"); i >= 0 {
		name = role[i+1:]
	}
	type credentials struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string
		SessionToken    string
		Expiration      string
	}
	out := struct {
		XMLName xml.Name `xml:"AssumeRoleResponse"`
		Xmlns   string   `xml:"xmlns,attr"`
		Result  struct {
			AssumedRoleUser struct {
				Arn           string
				AssumedRoleID string `xml:"AssumedRoleId"`
			}
			Credentials      credentials
			PackedPolicySize int
		} `xml:"AssumeRoleResult"`
		RequestID string `xml:"ResponseMetadata>RequestId"`
	}{Xmlns: stsNamespace, RequestID: requestID()}
	out.Result.AssumedRoleUser.Arn = "arn:aws:sts::" + accountID + ":assumed-role/" + name + "/" + session
	out.Result.AssumedRoleUser.AssumedRoleID = "AROAAWSTEST" + strings.ToUpper(randomHex(6)) + ":" + session
	out.Result.Credentials = credentials{AccessKeyID: keyID, SecretAccessKey: p.secretKey, SessionToken: p.sessionToken,
		Expiration: p.expires.UTC().Format(time.RFC3339)}
	writeXML(rw, http.StatusOK, out)
}

func writeSTSError(rw http.ResponseWriter, status int, typ, code, msg string) {
	out := struct {
		XMLName xml.Name `xml:"ErrorResponse"`
		Xmlns   string   `xml:"xmlns,attr"`
		Error   struct {
			Type, Code, Message string
		}
		RequestID string `xml:"RequestId"`
	}{Xmlns: stsNamespace, RequestID: requestID()}
	out.Error.Type, out.Error.Code, out.Error.Message = typ, code, msg
	writeXML(rw, status, out)
}

func writeXML(rw http.ResponseWriter, status int, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte("<ErrorResponse/>")
	}
	rw.Header().Set("Content-Type", "text/xml")
	rw.Header().Set("X-Amzn-Requestid", requestID())
	rw.WriteHeader(status)
	_, _ = rw.Write(append([]byte(xml.Header), body...))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// checkRole refuses a read of an item Only reserves for another role.
// BatchGetSecretValue is checked per secret, in its handler.
func (a *AWS) checkRole(op string, body []byte, role string) *apiError {
	var names []string
	var req struct {
		SecretID string `json:"SecretId"`
		Name     string
		Names    []string
		Path     string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil // the handler reports it
	}
	switch op {
	case OpGetSecretValue:
		names = []string{req.SecretID}
	case OpGetParameter:
		names = []string{req.Name}
	case OpGetParameters:
		names = req.Names
	default:
		return nil
	}
	for _, n := range names {
		if !a.mayRead(n, role) {
			return a.denied(op, role)
		}
	}
	return nil
}

// mayRead reports whether role may read the item id names (a name, an
// ARN, a name with a selector).
func (a *AWS) mayRead(id, role string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, only := range a.only {
		if only != role && refersTo(id, name) {
			return false
		}
	}
	return true
}

// refersTo reports whether id (a name or ARN, with or without a selector)
// names the item called name.
func refersTo(id, name string) bool {
	if id == name || strings.HasPrefix(id, name+":") {
		return true
	}
	if _, rest, ok := strings.Cut(id, ":secret:"); ok {
		return rest == name || strings.HasPrefix(rest, name+"-") && len(rest) == len(name)+7
	}
	if _, rest, ok := strings.Cut(id, ":parameter/"); ok {
		return "/"+rest == name || rest == name
	}
	return false
}

func (a *AWS) denied(op, role string) *apiError {
	who := "arn:aws:sts::" + accountID + ":assumed-role/awstest/awstest"
	if role != "" {
		who = role
	}
	service, action, _ := strings.Cut(op, ".")
	return &apiError{Code: CodeAccessDenied, Status: http.StatusBadRequest, Message: "User: " + who +
		" is not authorized to perform: " + service + ":" + action + " on this resource because no resource-based policy allows it"}
}
