// Command bootstrap is the test Lambda function: see package testfunc.
//
// Environment: FUNC_READ_SECRETS and FUNC_READ_PARAMETERS (comma-separated) name
// what to read during Init; PARAMETERS_SECRETS_EXTENSION_HTTP_PORT (default 2773)
// locates the extension; AWS_SESSION_TOKEN is the extension's auth token.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/testfunc"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("testfunc: ")
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api == "" {
		return errors.New("AWS_LAMBDA_RUNTIME_API is not set")
	}
	port := os.Getenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")
	if port == "" {
		port = "2773"
	}
	ext := &extension{
		base:  "http://127.0.0.1:" + port,
		token: os.Getenv("AWS_SESSION_TOKEN"),
		// Bounded: a test must fail, not hang, when the extension does.
		client: &http.Client{Timeout: 10 * time.Second},
	}

	// Init: the extension registered before this process started, so reads
	// here exercise serving while (or after) the prefetch runs.
	initReads := ext.readAll(testfunc.Request{
		Secrets:    split(os.Getenv("FUNC_READ_SECRETS")),
		Parameters: split(os.Getenv("FUNC_READ_PARAMETERS")),
	})

	runtime := &http.Client{} // no timeout: `next` is a long poll
	base := "http://" + api + "/2018-06-01/runtime/invocation/"
	for {
		id, payload, err := next(runtime, base)
		if err != nil {
			return err
		}
		var req testfunc.Request
		if len(payload) > 0 {
			if err := json.Unmarshal(payload, &req); err != nil {
				return fmt.Errorf("decode payload: %w", err)
			}
		}
		out, err := json.Marshal(testfunc.Response{Init: initReads, Reads: ext.readAll(req)})
		if err != nil {
			return err
		}
		if err := post(runtime, base+id+"/response", out); err != nil {
			return err
		}
	}
}

func next(c *http.Client, base string) (id string, payload []byte, err error) {
	resp, err := c.Get(base + "next")
	if err != nil {
		return "", nil, fmt.Errorf("next: %w", err)
	}
	defer resp.Body.Close()
	payload, err = io.ReadAll(resp.Body)
	if err != nil {
		return "", nil, fmt.Errorf("next: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("next: status %d: %s", resp.StatusCode, payload)
	}
	return resp.Header.Get("Lambda-Runtime-Aws-Request-Id"), payload, nil
}

func post(c *http.Client, url string, body []byte) error {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("response: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("response: status %d", resp.StatusCode)
	}
	return nil
}

type extension struct {
	base, token string
	client      *http.Client
}

func (e *extension) readAll(req testfunc.Request) []testfunc.Read {
	reads := []testfunc.Read{}
	extra := ""
	if req.RefreshNow {
		extra += "&refreshNow=true"
	}
	for _, id := range req.Secrets {
		q := extra
		if req.JSONKey != "" {
			q += "&jsonKey=" + url.QueryEscape(req.JSONKey)
		}
		reads = append(reads, e.read("/secretsmanager/get?secretId="+url.QueryEscape(id)+q, secretValue(req.JSONKey == "")))
	}
	for _, name := range req.Parameters {
		reads = append(reads, e.read("/systemsmanager/parameters/get?name="+url.QueryEscape(name)+"&withDecryption=true"+extra, parameterValue))
	}
	for _, p := range req.Paths {
		reads = append(reads, e.read(p, raw))
	}
	return reads
}

// read sends one GET and extracts the value from a 200 body with value.
func (e *extension) read(path string, value func([]byte) string) testfunc.Read {
	r := testfunc.Read{Path: path}
	req, err := http.NewRequest(http.MethodGet, e.base+path, nil)
	if err != nil {
		r.TransportError = err.Error()
		return r
	}
	req.Header.Set("X-Aws-Parameters-Secrets-Token", e.token)
	start := time.Now()
	resp, err := e.client.Do(req)
	if err != nil {
		r.TransportError = err.Error()
		return r
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	r.LatencyMillis = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		r.TransportError = err.Error()
	}
	r.Status = resp.StatusCode
	r.XCache = resp.Header.Get("X-Cache")
	r.Age = resp.Header.Get("Age")
	r.Region = resp.Header.Get("X-Secrets-Prefetch-Region")
	if resp.StatusCode == http.StatusOK {
		r.Value = value(body)
	} else {
		r.Value = string(body)
	}
	return r
}

func secretValue(decode bool) func([]byte) string {
	if !decode {
		return raw
	}
	return func(body []byte) string {
		var v struct{ SecretString string }
		if json.Unmarshal(body, &v) != nil {
			return string(body)
		}
		return v.SecretString
	}
}

func parameterValue(body []byte) string {
	var v struct{ Parameter struct{ Value string } }
	if json.Unmarshal(body, &v) != nil {
		return string(body)
	}
	return v.Parameter.Value
}

func raw(body []byte) string { return string(body) }

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
