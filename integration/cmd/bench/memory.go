package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Memory is the built binary's memory: under each GC setting with the
// footprint's items cached, across many INVOKEs and refresh cycles, and
// under a flood of idle connections.
type Memory struct {
	Entries    int        `json:"entries"`
	ValueBytes int        `json:"value_bytes"`
	GC         []GCResult `json:"gc_settings"`
	// Refresh: every entry due on every INVOKE.
	RefreshEntries     int   `json:"refresh_entries"`
	RefreshCycles      int   `json:"refresh_cycles"`
	RefreshRSSBefore   int64 `json:"refresh_rss_before_bytes"`
	RefreshRSSWarm     int64 `json:"refresh_rss_after_first_tenth_bytes"`
	RefreshRSSAfter    int64 `json:"refresh_rss_after_bytes"`
	RefreshCallsPerCyc float64
	// Idle connections: RSS with IdleConns keep-alive connections opened
	// (each after one request), and after they are closed.
	IdleConns        int   `json:"idle_connections"`
	ConnsRSSBefore   int64 `json:"conns_rss_before_bytes"`
	ConnsRSSOpen     int64 `json:"conns_rss_open_bytes"`
	ConnsRSSClosed   int64 `json:"conns_rss_closed_bytes"`
	ConnsOpenAtPeak  int   `json:"conns_open_at_peak"` // the process's descriptors then
	FDLimitConns     int   `json:"fd_limit_connections"`
	FDLimitAnswered  bool  `json:"fd_limit_answered"` // a request after FDLimitConns idle ones, under 1,024 descriptors
	FDLimitLatencyMS float64
	// Before is the same measured for an older build (-before), at its
	// own default GC setting.
	Before *Memory `json:"before,omitempty"`
}

// GCResult is one GC setting: the process's RSS once ready with the
// entries cached, after the idle INVOKEs, and its CPU per idle INVOKE.
type GCResult struct {
	Setting      string `json:"setting"` // the environment, "" for the binary's own default
	RSSReady     int64  `json:"rss_ready_bytes"`
	PeakReady    int64  `json:"peak_rss_ready_bytes"`
	RSSAfterWarm int64  `json:"rss_after_first_tenth_bytes"` // after a tenth of the idle INVOKEs
	RSSAfterIdle int64  `json:"rss_after_idle_bytes"`
	// Of RSSReady: anonymous memory (the Go heap, stacks, the runtime) and
	// file-backed pages (the binary's code and data as mapped).
	AnonReady    int64   `json:"rss_anon_ready_bytes"`
	FileReady    int64   `json:"rss_file_ready_bytes"`
	IdleInvokes  int     `json:"idle_invokes"`
	CPUusPerIdle float64 `json:"cpu_us_per_idle_invoke"`
}

// gcSettings are what the memory section compares; the first is the
// binary as it ships.
var gcSettings = []string{"", "GOGC=100", "GOGC=50", "GOGC=10", "GOMEMLIMIT=20MiB"}

func (w *world) memorySection(ctx context.Context, rep *Report) error {
	bins, err := w.binaries(ctx)
	if err != nil {
		return err
	}
	settings := gcSettings
	if w.plan.smoke {
		settings = settings[:2] // the shipped one and one other: that it runs
	}
	if err := w.memoryOf(bins.extension, settings, &rep.Memory); err != nil {
		return err
	}
	if w.beforeBin != "" {
		w.log("  the build before (-before):")
		rep.Memory.Before = &Memory{}
		return w.memoryOf(w.beforeBin, gcSettings[:1], rep.Memory.Before)
	}
	return nil
}

// memoryOf measures bin under the GC settings, then its refresh cycles,
// idle connections and descriptor limit, into m.
func (w *world) memoryOf(bin string, settings []string, m *Memory) error {
	m.Entries, m.ValueBytes = len(w.rssSecrets)+len(w.rssParams), w.plan.valueBytes
	for _, setting := range settings {
		env := itemsEnv(w.rssSecrets, w.rssParams)
		if k, v, ok := strings.Cut(setting, "="); ok {
			env[k] = v
		}
		p, err := w.startBinary(bin, env)
		if err != nil {
			return err
		}
		g, err := w.gcRun(p, setting)
		if err := cmpOr(err, p.stop()); err != nil {
			return err
		}
		w.log("  GC %-16q: RSS %.1f MiB ready (anonymous %.1f, file %.1f; peak %.1f), %.1f then %.1f MiB over %d idle INVOKEs, %.0f µs CPU per INVOKE",
			setting, mib(g.RSSReady), mib(g.AnonReady), mib(g.FileReady), mib(g.PeakReady), mib(g.RSSAfterWarm), mib(g.RSSAfterIdle), g.IdleInvokes, g.CPUusPerIdle)
		m.GC = append(m.GC, g)
	}
	if err := w.refreshMemory(bin, m); err != nil {
		return err
	}
	if err := w.connsMemory(bin, m); err != nil {
		return err
	}
	return w.fdLimit(bin, m)
}

func (w *world) gcRun(p *proc, setting string) (GCResult, error) {
	g := GCResult{Setting: setting, IdleInvokes: w.plan.memIdleInvokes}
	if _, _, err := p.waitReady(2 * time.Minute); err != nil {
		return g, err
	}
	var err error
	pid := p.cmd.Process.Pid
	if g.RSSReady, g.PeakReady, err = rss(pid); err != nil {
		return g, err
	}
	g.AnonReady, g.FileReady = rssSplit(pid)
	first := g.IdleInvokes / 10
	b1, err := w.cycles(p, first, 0)
	if err != nil {
		return g, err
	}
	if g.RSSAfterWarm, _, err = rss(pid); err != nil {
		return g, err
	}
	b2, err := w.cycles(p, g.IdleInvokes-first, 0)
	if err != nil {
		return g, err
	}
	g.CPUusPerIdle = us(b1.cpu+b2.cpu) / float64(g.IdleInvokes)
	g.RSSAfterIdle, _, err = rss(pid)
	return g, err
}

// refreshMemory runs refresh cycles: TTLs of 1 s with a refresh-ahead
// point of 1 ms, so that every entry is due on every INVOKE.
func (w *world) refreshMemory(bin string, m *Memory) error {
	n := w.plan.memRefreshEntries
	env := itemsEnv(w.initSecrets[:n/2], w.initParams[:n-n/2])
	env["SECRETS_MANAGER_TTL"], env["SSM_PARAMETER_STORE_TTL"], env["SECRETS_PREFETCH_REFRESH_AHEAD"] = "1", "1", "0.001"
	p, err := w.startBinary(bin, env)
	if err != nil {
		return err
	}
	defer p.stop()
	if _, _, err := p.waitReady(time.Minute); err != nil {
		return err
	}
	// A few cycles first, so the comparison starts from a process that has
	// refreshed (its buffers and the SDK's state in place).
	if _, err := w.cycles(p, 20, 2*time.Millisecond); err != nil {
		return err
	}
	pid := p.cmd.Process.Pid
	if m.RefreshRSSBefore, _, err = rss(pid); err != nil {
		return err
	}
	first := w.plan.memRefreshCycles / 10
	b1, err := w.cycles(p, first, 2*time.Millisecond)
	if err != nil {
		return err
	}
	if m.RefreshRSSWarm, _, err = rss(pid); err != nil {
		return err
	}
	b, err := w.cycles(p, w.plan.memRefreshCycles-first, 2*time.Millisecond)
	if err != nil {
		return err
	}
	m.RefreshEntries, m.RefreshCycles, m.RefreshCallsPerCyc = n, b1.n+b.n, float64(b1.calls+b.calls)/float64(b1.n+b.n)
	if m.RefreshRSSAfter, _, err = rss(pid); err != nil {
		return err
	}
	w.log("  %d refresh cycles of %d entries (%.1f AWS calls each): RSS %.1f → %.1f → %.1f MiB", m.RefreshCycles, n, m.RefreshCallsPerCyc, mib(m.RefreshRSSBefore), mib(m.RefreshRSSWarm), mib(m.RefreshRSSAfter))
	return nil
}

// connsMemory opens many keep-alive connections to a process with nothing
// cached, one request on each, keeps them open, then closes them.
func (w *world) connsMemory(bin string, m *Memory) error {
	p, err := w.startBinary(bin, nil)
	if err != nil {
		return err
	}
	defer p.stop()
	if _, _, err := p.waitReady(time.Minute); err != nil {
		return err
	}
	pid := p.cmd.Process.Pid
	if m.ConnsRSSBefore, _, err = rss(pid); err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", p.port)
	m.IdleConns = w.plan.memIdleConns
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range m.IdleConns {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		// One request, so the connection is an idle keep-alive one; a
		// connection the server has shed answers with EOF, which is fine.
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			resp.Body.Close()
		}
	}
	if m.ConnsRSSOpen, _, err = rss(pid); err != nil {
		return err
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		m.ConnsOpenAtPeak = len(fds)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	// Give the server the closes to notice: one request on a new
	// connection goes behind them.
	if _, err := fetchPing(addr); err != nil {
		return err
	}
	if m.ConnsRSSClosed, _, err = rss(pid); err != nil {
		return err
	}
	w.log("  %d idle connections: RSS %.1f → %.1f MiB (%d descriptors), %.1f MiB after they closed",
		m.IdleConns, mib(m.ConnsRSSBefore), mib(m.ConnsRSSOpen), m.ConnsOpenAtPeak, mib(m.ConnsRSSClosed))
	return nil
}

// fdLimit runs the binary with Lambda's 1,024 descriptors, opens
// fdLimitConns idle connections, then asks /ping on a new one.
func (w *world) fdLimit(bin string, m *Memory) error {
	p, err := w.startCommand([]string{"sh", "-c", `ulimit -n 1024 && exec "$0"`, bin}, nil)
	if err != nil {
		return err
	}
	defer p.stop()
	if _, _, err := p.waitReady(time.Minute); err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", p.port)
	m.FDLimitConns = 1100
	for range m.FDLimitConns {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
	}
	start := time.Now()
	_, err = fetchPing(addr)
	m.FDLimitAnswered, m.FDLimitLatencyMS = err == nil, ms(time.Since(start))
	w.log("  %d idle connections under 1,024 descriptors: a new request answered: %v (%.0f ms)", m.FDLimitConns, m.FDLimitAnswered, m.FDLimitLatencyMS)
	return nil
}

// fetchPing asks /ping on a new connection, waiting at most 10 s.
func fetchPing(addr string) (int, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/ping")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// rssSplit returns a process's anonymous and file-backed resident memory
// (RssAnon, RssFile of /proc/<pid>/status); zeros where they are missing.
func rssSplit(pid int) (anon, file int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) != 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "RssAnon":
			anon = n << 10
		case "RssFile":
			file = n << 10
		}
	}
	return anon, file
}
