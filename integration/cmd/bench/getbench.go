package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/localserver"
)

// GetRound is one timed burst of cached GETs against one server.
type GetRound struct {
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"` // non-200 answers
	Seconds    float64 `json:"seconds"`
	RPS        float64 `json:"rps"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	CPUusPerRq float64 `json:"cpu_us_per_request"` // this process's CPU (client and server) per request
	AllocsPerR float64 `json:"allocs_per_request"` // heap allocations per request (the client makes none)
}

// GetServer is one server at one concurrency: its rounds and their medians.
type GetServer struct {
	Rounds     []GetRound `json:"rounds"`
	RPS        float64    `json:"rps"`
	P50us      float64    `json:"p50_us"`
	P99us      float64    `json:"p99_us"`
	CPUusPerRq float64    `json:"cpu_us_per_request"`
	AllocsPerR float64    `json:"allocs_per_request"`
}

// GetResult compares the extension with the floor at one concurrency.
type GetResult struct {
	Concurrency int       `json:"concurrency"`
	Extension   GetServer `json:"extension"`
	Floor       GetServer `json:"floor"`
	// ThroughputRatio is the median over rounds of extension/floor
	// requests per second (each pair of rounds run back to back).
	ThroughputRatio float64 `json:"throughput_ratio"`
	CPURatio        float64 `json:"cpu_ratio"` // extension/floor CPU per request
	BodyBytes       int     `json:"body_bytes"`
}

func (w *world) getSection(ctx context.Context, rep *Report) error {
	x, err := startInProcess(map[string]string{"SECRETS_PREFETCH_SECRETS": w.getSecret, "SECRETS_PREFETCH_REQUIRED": "true"})
	if err != nil {
		return err
	}
	defer x.stop()
	if _, err := x.waitReady(time.Minute); err != nil {
		return err
	}
	path := "/secretsmanager/get?secretId=" + url.QueryEscape(w.getSecret)
	body, err := fetchOnce(ctx, x.addr, path)
	if err != nil {
		return err
	}

	// The floor: the least a net/http handler does to answer the same bytes.
	floor := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})}
	fl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go floor.Serve(fl)
	defer floor.Close()

	req := []byte("GET " + path + " HTTP/1.1\r\nHost: localhost:2773\r\n" + localserver.TokenHeader + ": " + benchToken() + "\r\n\r\n")
	for _, c := range w.plan.getConcs {
		res := GetResult{Concurrency: c, BodyBytes: len(body)}
		var ratios []float64
		for round := range w.plan.getRounds {
			// Alternate which goes first, so a drift in the machine's load
			// does not favour one side.
			order := []string{"floor", "extension"}
			if round%2 == 1 {
				slices.Reverse(order)
			}
			var got [2]GetRound
			for _, which := range order {
				addr, i := fl.Addr().String(), 0
				if which == "extension" {
					addr, i = x.addr, 1
				}
				r, err := load(ctx, addr, req, c, w.plan.getRound)
				if err != nil {
					return fmt.Errorf("%s, concurrency %d: %w", which, c, err)
				}
				got[i] = r
			}
			res.Floor.Rounds = append(res.Floor.Rounds, got[0])
			res.Extension.Rounds = append(res.Extension.Rounds, got[1])
			ratios = append(ratios, got[1].RPS/got[0].RPS)
		}
		res.Floor.summarize()
		res.Extension.summarize()
		res.ThroughputRatio = median(ratios)
		res.CPURatio = res.Extension.CPUusPerRq / res.Floor.CPUusPerRq
		w.log("  GET concurrency %3d: extension %8.0f req/s p50 %5.0f µs p99 %6.0f µs; floor %8.0f req/s p50 %5.0f µs p99 %6.0f µs; ratio %.2f",
			c, res.Extension.RPS, res.Extension.P50us, res.Extension.P99us, res.Floor.RPS, res.Floor.P50us, res.Floor.P99us, res.ThroughputRatio)
		rep.Get = append(rep.Get, res)
	}
	return nil
}

func (s *GetServer) summarize() {
	pick := func(f func(GetRound) float64) float64 {
		v := make([]float64, len(s.Rounds))
		for i, r := range s.Rounds {
			v[i] = f(r)
		}
		return median(v)
	}
	s.RPS = pick(func(r GetRound) float64 { return r.RPS })
	s.P50us = pick(func(r GetRound) float64 { return r.P50us })
	s.P99us = pick(func(r GetRound) float64 { return r.P99us })
	s.CPUusPerRq = pick(func(r GetRound) float64 { return r.CPUusPerRq })
	s.AllocsPerR = pick(func(r GetRound) float64 { return r.AllocsPerR })
}

// fetchOnce reads path with net/http, checks that it is a cache hit and
// returns the body.
func fetchOnce(ctx context.Context, addr, path string) ([]byte, error) {
	return fetchOnceToken(ctx, addr, path, benchToken())
}

// fetchOnceToken is fetchOnce with a session token of its own.
func fetchOnceToken(ctx context.Context, addr, path, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(localserver.TokenHeader, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != "hit" {
		return nil, fmt.Errorf("GET %s: %s, X-Cache %q: %s", path, resp.Status, resp.Header.Get("X-Cache"), body)
	}
	return body, nil
}

// load runs conc workers, each on its own keep-alive connection, sending req
// and reading the answer back to back for d. The client is a few lines of
// HTTP/1.1 over a bufio.Reader that allocate nothing per request, so the
// process's allocations and most of its CPU are the server's.
func load(ctx context.Context, addr string, req []byte, conc int, d time.Duration) (GetRound, error) {
	conns := make([]*rawConn, conc)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return GetRound{}, err
		}
		conns[i] = &rawConn{c: c, r: bufio.NewReaderSize(c, 16<<10)}
		defer c.Close()
		// Warm the connection (and the server's per-connection state).
		if _, err := conns[i].roundTrip(req); err != nil {
			return GetRound{}, err
		}
	}
	lats := make([][]time.Duration, conc)
	errs := make([]int, conc)
	var (
		wg    sync.WaitGroup
		first error
		mu    sync.Mutex
	)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := processCPU()
	start := time.Now()
	deadline := start.Add(d)
	for i, c := range conns {
		lats[i] = make([]time.Duration, 0, 1<<14)
		wg.Go(func() {
			for ctx.Err() == nil {
				t := time.Now()
				if !t.Before(deadline) {
					return
				}
				status, err := c.roundTrip(req)
				if err != nil {
					mu.Lock()
					first = cmpOr(first, err)
					mu.Unlock()
					return
				}
				lats[i] = append(lats[i], time.Since(t))
				if status != http.StatusOK {
					errs[i]++
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	runtime.ReadMemStats(&m1)
	if first != nil {
		return GetRound{}, first
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	n := len(all)
	if n == 0 {
		return GetRound{}, errors.New("no request completed")
	}
	r := GetRound{
		Requests:   n,
		Seconds:    elapsed.Seconds(),
		RPS:        float64(n) / elapsed.Seconds(),
		P50us:      us(percentile(all, 50)),
		P99us:      us(percentile(all, 99)),
		CPUusPerRq: us(cpu) / float64(n),
		AllocsPerR: float64(m1.Mallocs-m0.Mallocs) / float64(n),
	}
	for _, e := range errs {
		r.Errors += e
	}
	if r.Errors > 0 {
		return r, fmt.Errorf("%d of %d requests were not answered 200", r.Errors, n)
	}
	return r, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// rawConn is an HTTP/1.1 keep-alive connection for answers with a
// Content-Length (which both servers send).
type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

var contentLength = []byte("content-length:")

func (c *rawConn) roundTrip(req []byte) (int, error) {
	if _, err := c.c.Write(req); err != nil {
		return 0, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status := int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	n := -1
	for {
		line, err = c.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 { // the blank line ending the header
			break
		}
		if len(line) > len(contentLength) && bytes.EqualFold(line[:len(contentLength)], contentLength) {
			v := bytes.TrimSpace(line[len(contentLength):])
			n = 0
			for _, d := range v {
				n = n*10 + int(d-'0')
			}
		}
	}
	if n < 0 {
		return 0, errors.New("answer without Content-Length")
	}
	if _, err := c.r.Discard(n); err != nil {
		return 0, err
	}
	return status, nil
}

// processCPU is the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
