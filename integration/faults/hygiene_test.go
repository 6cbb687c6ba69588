package faults_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
	"github.com/secrets-prefetch/secrets-prefetch/internal/extapitest"
	"github.com/secrets-prefetch/secrets-prefetch/localserver"
)

// Distinctive values, each found nowhere else.
const (
	hygUser    = "HYG-USER-7f3c"
	hygPass    = "HYG-PASS-91cd"
	hygPlain   = "HYG-PLAIN-22ae"
	hygSecure  = "HYG-SECURE-e41b"
	hygString  = "HYG-STRING-3b80"
	hygTree    = "HYG-TREE-6a1f"
	hygRotated = "HYG-ROTATED-08f2"
	hygFailing = "HYG-FAILING-5c77"
	hygOld     = "HYG-OLD-VERSION-d19e"
)

var hygBinary = []byte("HYG-BINARY-90ab\x00\xff")

// secretValues are every seeded value in the forms they could leak in.
func secretValues() []string {
	return []string{hygUser, hygPass, hygPlain, hygSecure, hygString, hygTree, hygRotated, hygFailing, hygOld,
		"HYG-BINARY-90ab", base64.StdEncoding.EncodeToString(hygBinary), exttest.Token}
}

// TestValuesNeverLeak seeds distinctive values, runs every path — prefetch
// with partial failures, reads of every shape, jsonKey errors, every AWS
// fault, stale answers, INVOKE refreshes with a rotation, SHUTDOWN, and a
// required prefetch that fails Init — at debug level, and scans all output
// (logs, error bodies, everything sent to the Extensions API) for the
// values and the session token. The success bodies must carry the values,
// or the scan would prove nothing.
func TestValuesNeverLeak(t *testing.T) {
	seed := func(ctx context.Context, a *awstest.AWS) {
		exttest.Must[string](t)(a.PutSecretString(ctx, "hyg/json", `{"user":"`+hygUser+`","password":"`+hygPass+`"}`))
		exttest.Must[string](t)(a.PutSecretString(ctx, "hyg/plain", hygPlain))
		exttest.Must[string](t)(a.PutSecretBinary(ctx, "hyg/binary", hygBinary))
		exttest.Must[string](t)(a.PutSecretString(ctx, "hyg/failing", hygFailing))
		exttest.Must[string](t)(a.PutSecretString(ctx, "hyg/rotating", hygOld))
		exttest.Must[int64](t)(a.PutParameter(ctx, "/hyg/secure", hygSecure, "SecureString"))
		exttest.Must[int64](t)(a.PutParameter(ctx, "/hyg/string", hygString, "String"))
		exttest.Must[int64](t)(a.PutParameter(ctx, "/hyg/tree/leaf", hygTree, "SecureString"))
	}
	var (
		mu          sync.Mutex // protects errorBodies and successes
		errorBodies []string
		successes   strings.Builder
	)
	record := func(r exttest.Response) {
		mu.Lock()
		defer mu.Unlock()
		if r.Status == http.StatusOK {
			successes.WriteString(r.Body)
		} else {
			errorBodies = append(errorBodies, r.Body)
		}
	}

	e := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":                "hyg/json,hyg/plain,hyg/binary,hyg/failing,hyg/rotating,hyg/missing",
			"SECRETS_PREFETCH_PARAMETERS":             "/hyg/secure,/hyg/string,/hyg/missing,/hyg/tree/*",
			"SECRETS_MANAGER_TTL":                     "60",
			"SSM_PARAMETER_STORE_TTL":                 "60",
			"SECRETS_PREFETCH_STALE_IF_ERROR_SECONDS": "120",
			"SECRETS_MANAGER_TIMEOUT_MILLIS":          "300",
			"SSM_PARAMETER_STORE_TIMEOUT_MILLIS":      "300",
		},
		Seed: seed,
		Faults: func(a *awstest.AWS) {
			a.Inject(awstest.OpBatchGetSecretValue, awstest.PartialFailure(awstest.CodeDecryptionFailure, "hyg/failing").Times(1))
		},
	})
	e.WaitReady(t)

	sp, pp := "/secretsmanager/get?secretId=", "/systemsmanager/parameters/get?name="
	reads := []string{
		sp + "hyg/json", sp + "hyg/json&jsonKey=password", sp + "hyg/json&jsonKey=user", sp + "hyg/json&jsonKey=nope",
		sp + "hyg/plain", sp + "hyg/plain&jsonKey=password", sp + "hyg/binary", sp + "hyg/binary&jsonKey=x",
		sp + "hyg/failing", sp + "hyg/missing", sp + "hyg/rotating&versionStage=AWSCURRENT", sp + "hyg/json&refreshNow=true",
		sp + "hyg/json&versionId=x&versionStage=y", sp + "%zz",
		pp + "/hyg/secure&withDecryption=true", pp + "/hyg/secure", pp + "/hyg/secure:1&withDecryption=true",
		pp + "/hyg/secure&withDecryption=true&jsonKey=k", pp + "/hyg/string", pp + "/hyg/string&version=1",
		pp + "/hyg/tree/leaf&withDecryption=true", pp + "/hyg/missing&withDecryption=true",
		pp + "/aws/reference/secretsmanager/hyg/json&withDecryption=true",
		pp + "/aws/reference/secretsmanager/hyg/json&withDecryption=true&jsonKey=password",
	}
	// Concurrently: under a fault each distinct item waits out its timeout.
	readAll := func() {
		var wg sync.WaitGroup
		for _, p := range reads {
			wg.Go(func() {
				record(e.Get(t, p))
				record(e.Do(t.Context(), http.MethodHead, p, localserver.TokenHeader, exttest.Token))
			})
		}
		wg.Wait()
		record(e.Do(t.Context(), http.MethodGet, reads[0]))
		record(e.Do(t.Context(), http.MethodGet, reads[0], localserver.TokenHeader, "wrong"))
		record(e.Do(t.Context(), http.MethodPost, reads[0], localserver.TokenHeader, exttest.Token))
	}
	readAll()

	// Every fault, on fresh items (errors) and on expired ones (stale).
	faults := []awstest.Fault{
		awstest.Throttling(), awstest.InternalError(), awstest.ConnReset(), awstest.BlackHole(),
		awstest.AccessDenied(), awstest.KMSAccessDenied(), awstest.ErrorFault(awstest.CodeDecryptionFailure, http.StatusBadRequest),
		awstest.Latency(time.Minute),
	}
	for _, f := range faults {
		e.AWS.ClearFaults()
		e.AWS.Inject(awstest.OpAll, f)
		e.Clock.Advance(90 * time.Second) // past the TTL: reads and the INVOKE fetch
		readAll()
		e.Invoke(t)
		e.Clock.Advance(10 * time.Minute) // past any backoff
	}

	// A rotation picked up by an INVOKE refresh.
	e.AWS.ClearFaults()
	exttest.Must[string](t)(e.AWS.UpdateSecret(t.Context(), "hyg/rotating", hygRotated))
	e.Clock.Advance(10 * time.Minute)
	e.Invoke(t)
	record(e.Get(t, sp+"hyg/rotating"))

	e.API.Push(extapitest.Shutdown(extapitest.ReasonSpindown, time.Now().Add(2*time.Second)))
	if err := e.Wait(t, 10*time.Second); err != nil {
		t.Fatalf("Run after SHUTDOWN = %v", err)
	}

	// A required prefetch that fails Init, while values sit in the cache.
	req := exttest.Start(t, exttest.Setup{
		Env: map[string]string{
			"SECRETS_PREFETCH_SECRETS":    "hyg/json,hyg/failing,hyg/missing",
			"SECRETS_PREFETCH_PARAMETERS": "/hyg/secure",
			"SECRETS_PREFETCH_REQUIRED":   "true",
		},
		Seed: seed,
		Faults: func(a *awstest.AWS) {
			a.Inject(awstest.OpBatchGetSecretValue, awstest.PartialFailure(awstest.CodeDecryptionFailure, "hyg/failing"))
		},
	})
	if err := req.Wait(t, 20*time.Second); err == nil {
		t.Fatal("the required prefetch did not fail")
	}

	// The values went out in success bodies...
	for _, v := range []string{hygUser, hygPass, hygPlain, hygSecure, hygString, hygTree, hygRotated, base64.StdEncoding.EncodeToString(hygBinary)} {
		if !strings.Contains(successes.String(), v) {
			t.Errorf("no success body carried %q: the test did not exercise it", v)
		}
	}
	if len(errorBodies) < 100 {
		t.Errorf("only %d error answers: the test exercised too little", len(errorBodies))
	}
	// ...and nowhere else.
	scan := map[string]string{
		"the log":               e.Out.String(),
		"the failed Init's log": req.Out.String(),
		"the error answers":     strings.Join(errorBodies, "\n"),
		"the Extensions API":    lambdaTraffic(e.Rec),
		"the failed Init's API": lambdaTraffic(req.Rec),
	}
	for what, text := range scan {
		for _, v := range secretValues() {
			if strings.Contains(text, v) {
				t.Errorf("%s contains %q", what, v)
			}
		}
	}
	// The log is at debug level and says what happened, by name.
	for _, want := range []string{"level=DEBUG", "hyg/failing", "DecryptionFailure", "hyg/missing"} {
		if !strings.Contains(e.Out.String(), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	if msg := lambdaTraffic(req.Rec); !strings.Contains(msg, "hyg/failing") || !strings.Contains(msg, "hyg/missing") {
		t.Errorf("the init/error does not name the failed items: %s", msg)
	}
}

// lambdaTraffic is everything the extension sent to the Extensions API.
func lambdaTraffic(rec *extapitest.Record) string {
	var b strings.Builder
	for _, c := range rec.Calls() {
		b.WriteString(c.Path + " " + c.Name + " " + c.ErrorType + " ")
		b.Write(c.Body)
		b.WriteByte('\n')
	}
	return b.String()
}
