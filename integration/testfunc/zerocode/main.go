// Command zerocode is the test function for the zero-code modes: the very
// first thing it does is record its arguments, the variables FUNC_REPORT_ENV
// names and the files FUNC_REPORT_FILES names — with no HTTP call of its own
// — then it answers every invoke with that record and a fresh look (see
// testfunc.ZeroCodeResponse). It never prints a value.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/secrets-prefetch/secrets-prefetch/integration/testfunc"
)

func main() {
	initial := snapshot() // the first line of Init
	log.SetFlags(0)
	log.SetPrefix("zerocode-func: ")
	if err := serve(initial); err != nil {
		log.Fatal(err)
	}
}

func snapshot() testfunc.ZeroCodeSnapshot {
	s := testfunc.ZeroCodeSnapshot{Args: os.Args[1:], Env: map[string]*string{}, Files: map[string]testfunc.FileState{}}
	for _, name := range split(os.Getenv("FUNC_REPORT_ENV")) {
		if v, ok := os.LookupEnv(name); ok {
			s.Env[name] = &v
		} else {
			s.Env[name] = nil
		}
	}
	for _, p := range split(os.Getenv("FUNC_REPORT_FILES")) {
		var st testfunc.FileState
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			st.Error = err.Error()
		default:
			st.Exists, st.Mode = true, uint32(fi.Mode().Perm())
			if st.Content, err = os.ReadFile(p); err != nil {
				st.Error = err.Error()
			}
		}
		s.Files[p] = st
	}
	return s
}

// serve is the Runtime API loop.
func serve(initial testfunc.ZeroCodeSnapshot) error {
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api == "" {
		return errors.New("AWS_LAMBDA_RUNTIME_API is not set")
	}
	c := &http.Client{} // no timeout: `next` is a long poll
	base := "http://" + api + "/2018-06-01/runtime/invocation/"
	for {
		resp, err := c.Get(base + "next")
		if err != nil {
			return fmt.Errorf("next: %w", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("next: status %d", resp.StatusCode)
		}
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		out, err := json.Marshal(testfunc.ZeroCodeResponse{Init: initial, Now: snapshot()})
		if err != nil {
			return err
		}
		r, err := c.Post(base+id+"/response", "application/json", bytes.NewReader(out))
		if err != nil {
			return fmt.Errorf("response: %w", err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusAccepted {
			return fmt.Errorf("response: status %d", r.StatusCode)
		}
	}
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
