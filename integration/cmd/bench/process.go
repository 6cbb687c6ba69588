package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/exttest"
)

// Footprint is the built binary's size, start-up time and memory.
type Footprint struct {
	BuildCommand string `json:"build_command"`
	BinaryBytes  int64  `json:"binary_bytes"`
	// StartToRegisteredMS is from the process's start (exec) to its
	// register call reaching the Extensions API; StartToReadyMS to its
	// first event/next with nothing to prefetch.
	StartToRegisteredMS []float64 `json:"start_to_registered_ms"`
	StartToReadyMS      []float64 `json:"start_to_ready_ms"`
	// The same for loopfloor, run alternately with the extension.
	FloorStartToRegisteredMS []float64 `json:"floor_start_to_registered_ms"`
	// Package initialisation before main (GODEBUG=inittrace=1), of the
	// extension and of the floor.
	InitTrace      InitTrace `json:"init_trace"`
	FloorInitTrace InitTrace `json:"floor_init_trace"`
	// The memory of a process that prefetched Entries items of ValueBytes:
	// VmRSS once it is ready, and VmHWM (the peak) then.
	Entries          int     `json:"entries"`
	ValueBytes       int     `json:"value_bytes"`
	PrefetchReadyMS  float64 `json:"prefetch_ready_ms"` // start to ready with those entries
	RSSBytes         int64   `json:"rss_bytes"`
	PeakRSSBytes     int64   `json:"peak_rss_bytes"`
	RSSAfterIdleByte int64   `json:"rss_after_idle_invokes_bytes"`
}

// InvokeCost is the built binary's CPU time per INVOKE cycle: from the
// INVOKE being handed to it to its next event/next call, measured from
// /proc (every thread of the extension's process, nothing of this one).
type InvokeCost struct {
	Name    string `json:"name"`
	Entries int    `json:"entries"`
	Cycles  int    `json:"cycles"`
	// CPUusPerCycle is the median over blocks of cycles (BlocksUS) of the
	// CPU time per cycle.
	CPUusPerCycle  float64   `json:"cpu_us_per_cycle"`
	BlocksUS       []float64 `json:"blocks_cpu_us_per_cycle"`
	WallusMedian   float64   `json:"wall_us_median"`
	CallsPerCycle  float64   `json:"aws_calls_per_cycle"`
	ItemsPerCycle  int       `json:"items_due_per_cycle"`
	CPUMeasurement string    `json:"cpu_measurement"` // schedstat (ns) or stat (clock ticks)
}

func (w *world) processSection(ctx context.Context, rep *Report) error {
	bins, err := w.binaries(ctx)
	if err != nil {
		return err
	}
	bin, floorBin := bins.extension, bins.loopFloor
	fi, err := os.Stat(bin)
	if err != nil {
		return err
	}
	f := &rep.Footprint
	f.BuildCommand = `CGO_ENABLED=0 go build -trimpath -ldflags "-s -w"`
	f.BinaryBytes = fi.Size()
	w.log("  binary: %.2f MiB", float64(f.BinaryBytes)/(1<<20))

	// Start-up, with nothing to prefetch, alternating with the floor (the
	// Extensions API client alone, which registers the same way).
	for range w.plan.startRepeats {
		for _, b := range []string{bin, floorBin} {
			p, err := w.startBinary(b, nil)
			if err != nil {
				return err
			}
			reg, ready, err := p.waitReady(30 * time.Second)
			if err == nil && b == bin {
				f.StartToRegisteredMS = append(f.StartToRegisteredMS, ms(reg))
				f.StartToReadyMS = append(f.StartToReadyMS, ms(ready))
			} else if err == nil {
				f.FloorStartToRegisteredMS = append(f.FloorStartToRegisteredMS, ms(reg))
			}
			if err := cmpOr(err, p.stop()); err != nil {
				return err
			}
		}
	}
	w.log("  start to registered: median %.1f ms (floor %.1f ms)", median(f.StartToRegisteredMS), median(f.FloorStartToRegisteredMS))
	if f.InitTrace, err = w.initTrace(bin); err != nil {
		return err
	}
	if f.FloorInitTrace, err = w.initTrace(floorBin); err != nil {
		return err
	}
	w.log("  package initialisation: %.2f ms, %d bytes (floor %.2f ms)", f.InitTrace.TotalMS, f.InitTrace.TotalBytes, f.FloorInitTrace.TotalMS)

	// The idle INVOKE cycle, over many entries and over few, and its floor
	// (the Extensions API client alone), all running at once and measured
	// in turns, so that a change in the machine's load touches them alike.
	// The first is also the process whose memory is measured, with
	// rssItems × valueBytes cached.
	n := w.plan.dueItems
	few := itemsEnv(w.initSecrets[:n/2], w.initParams[:n-n/2])
	idle := []*idleProc{
		{cost: InvokeCost{Name: "idle", Entries: len(w.rssSecrets) + len(w.rssParams)}, bin: bin, env: itemsEnv(w.rssSecrets, w.rssParams)},
		{cost: InvokeCost{Name: "idle", Entries: n}, bin: bin, env: few},
		{cost: InvokeCost{Name: "floor"}, bin: floorBin},
	}
	defer func() {
		for _, x := range idle {
			if x.p != nil {
				x.p.stop()
			}
		}
	}()
	for i, x := range idle {
		if x.p, err = w.startBinary(x.bin, x.env); err != nil {
			return err
		}
		_, ready, err := x.p.waitReady(2 * time.Minute)
		if err != nil {
			return err
		}
		if i == 0 {
			f.Entries, f.ValueBytes, f.PrefetchReadyMS = x.cost.Entries, w.plan.valueBytes, ms(ready)
			if f.RSSBytes, f.PeakRSSBytes, err = rss(x.p.cmd.Process.Pid); err != nil {
				return err
			}
			w.log("  RSS with %d × %d B: %.1f MiB (peak %.1f MiB)", f.Entries, f.ValueBytes, mib(f.RSSBytes), mib(f.PeakRSSBytes))
		}
	}
	var own []float64 // per round: the extension's idle cycle over many entries less the floor's
	for round := range w.plan.idleRounds {
		perCycle := make([]float64, len(idle))
		for k := range idle {
			i := (k + round) % len(idle)
			x := idle[i]
			b, err := w.cycles(x.p, w.plan.idleBlock, 0)
			if err != nil {
				return err
			}
			x.add(b)
			perCycle[i] = b.cpuPerCycle()
		}
		own = append(own, perCycle[0]-perCycle[2])
	}
	if f.RSSAfterIdleByte, _, err = rss(idle[0].p.cmd.Process.Pid); err != nil {
		return err
	}
	for _, x := range idle {
		err := x.p.stop()
		x.p = nil
		if err != nil {
			return err
		}
		rep.Invoke = append(rep.Invoke, x.cost)
	}
	rep.InvokeOwnUS, rep.InvokeOwnRoundsUS = median(own), own

	// Every entry due on every INVOKE: TTLs of 1 s and an INVOKE every
	// 0.9 s (past the refresh-ahead point, 0.8 s at most; within the TTL).
	env := few
	env["SECRETS_MANAGER_TTL"], env["SSM_PARAMETER_STORE_TTL"] = "1", "1"
	p, err := w.startBinary(bin, env)
	if err != nil {
		return err
	}
	if _, _, err := p.waitReady(time.Minute); err != nil {
		p.stop()
		return err
	}
	due := &idleProc{cost: InvokeCost{Name: "due", Entries: n, ItemsPerCycle: n}}
	b, err := w.cycles(p, w.plan.dueInvokes, 900*time.Millisecond)
	if err := cmpOr(err, p.stop()); err != nil {
		return err
	}
	due.add(b)
	rep.Invoke = append(rep.Invoke, due.cost)
	for _, c := range rep.Invoke {
		w.log("  INVOKE %s, %d entries: %.1f µs CPU per cycle (%d cycles, %.1f AWS calls per cycle)", c.Name, c.Entries, c.CPUusPerCycle, c.Cycles, c.CallsPerCycle)
	}
	return nil
}

// idleProc is a process whose INVOKE cycles are measured in blocks.
type idleProc struct {
	bin   string
	env   map[string]string
	p     *proc
	cost  InvokeCost
	walls []time.Duration
	calls int
}

// add takes in a block of cycles: the cost is the median over blocks of
// the CPU per cycle.
func (x *idleProc) add(b block) {
	c := &x.cost
	c.Cycles += b.n
	c.BlocksUS = append(c.BlocksUS, b.cpuPerCycle())
	c.CPUusPerCycle = median(c.BlocksUS)
	c.CPUMeasurement = b.how
	x.walls = append(x.walls, b.walls...)
	c.WallusMedian = us(time.Duration(median(x.walls)))
	x.calls += b.calls
	c.CallsPerCycle = float64(x.calls) / float64(c.Cycles)
}

// block is what a run of INVOKE cycles cost.
type block struct {
	n     int
	cpu   time.Duration
	walls []time.Duration
	calls int
	how   string
}

func (b block) cpuPerCycle() float64 {
	if b.n == 0 {
		return 0
	}
	return us(b.cpu) / float64(b.n)
}

// cycles sends n INVOKEs, each once the extension asked for the next event,
// and measures the extension's CPU time over the cycles. With a pause
// before each INVOKE the CPU time is taken around each cycle, leaving the
// pauses out; without, around them all.
func (w *world) cycles(p *proc, n int, pause time.Duration) (block, error) {
	b := block{n: n, walls: make([]time.Duration, 0, n)}
	pid := p.cmd.Process.Pid
	w.aws.ResetCalls()
	all0, how, err := procCPU(pid)
	if err != nil {
		return b, err
	}
	b.how = how
	for i := range n {
		var c0 time.Duration
		if pause > 0 {
			time.Sleep(pause)
			if c0, _, err = procCPU(pid); err != nil {
				return b, err
			}
		}
		t := time.Now()
		p.api.invoke(fmt.Sprintf("bench-%d", i))
		at, err := p.api.waitNext(time.Minute)
		if err != nil {
			return b, fmt.Errorf("%w\n%s", err, p.out.String())
		}
		b.walls = append(b.walls, at.Sub(t))
		if pause > 0 {
			c1, _, err := procCPU(pid)
			if err != nil {
				return b, err
			}
			b.cpu += c1 - c0
		}
	}
	if pause == 0 {
		all1, _, err := procCPU(pid)
		if err != nil {
			return b, err
		}
		b.cpu = all1 - all0
	}
	for _, k := range w.aws.AllCalls() {
		b.calls += k
	}
	return b, nil
}

// proc is the built extension running as a process, against the emulated
// AWS and a fake Extensions API in this process.
type proc struct {
	port  int // of its local API
	cmd   *exec.Cmd
	api   *extAPI
	start time.Time
	out   *exttest.SyncBuffer
	exit  chan error
}

func (w *world) startBinary(bin string, env map[string]string) (*proc, error) {
	return w.startCommand([]string{bin}, env)
}

// startCommand is startBinary for a command line that runs the binary
// (taskset -c 0 BINARY, say). env comes last: its variables win.
func (w *world) startCommand(argv []string, env map[string]string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &proc{port: port, api: newExtAPI(), out: &exttest.SyncBuffer{}, exit: make(chan error, 1)}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_LAMBDA_RUNTIME_API=" + p.api.Addr(),
		"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT=" + strconv.Itoa(port),
		"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=warn",
	}, w.aws.Env()...)
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		p.api.Close()
		return nil, err
	}
	go func() { p.exit <- p.cmd.Wait() }()
	return p, nil
}

// waitReady returns the times from the process's start to its register
// call and to its first event/next (the end of Init).
func (p *proc) waitReady(d time.Duration) (registered, ready time.Duration, err error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case at := <-p.api.registered:
		registered = at.Sub(p.start)
	case err := <-p.exit:
		p.exit <- err
		return 0, 0, fmt.Errorf("the extension exited before registering: %v\n%s", err, p.out)
	case <-t.C:
		return 0, 0, fmt.Errorf("the extension did not register within %s\n%s", d, p.out)
	}
	select {
	case at := <-p.api.nexts:
		ready = at.Sub(p.start)
	case err := <-p.exit:
		p.exit <- err
		return 0, 0, fmt.Errorf("the extension exited during Init: %v\n%s%s", err, p.out, p.api.Errors())
	case <-t.C:
		return 0, 0, fmt.Errorf("the extension was not ready within %s\n%s", d, p.out)
	}
	return registered, ready, nil
}

// stop sends SHUTDOWN and waits for the process to exit (killing it if it
// does not within 10 s).
func (p *proc) stop() error {
	defer p.api.Close()
	p.api.shutdown()
	select {
	case err := <-p.exit:
		if err != nil {
			return fmt.Errorf("the extension exited with %v\n%s", err, p.out)
		}
		return nil
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exit
		return fmt.Errorf("the extension did not exit on SHUTDOWN\n%s", p.out)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// rss returns a process's resident set size (VmRSS) and its peak (VmHWM).
func rss(pid int) (cur, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			cur = n << 10
		case "VmHWM":
			peak = n << 10
		}
	}
	if cur == 0 {
		return 0, 0, errors.New("no VmRSS in /proc/<pid>/status")
	}
	return cur, peak, nil
}

// procCPU is the CPU time of every thread of a process: the sum of
// /proc/<pid>/task/*/schedstat (nanoseconds), or where that is missing
// utime+stime from /proc/<pid>/stat (clock ticks, 10 ms).
func procCPU(pid int) (time.Duration, string, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err == nil {
		var total int64
		ok := true
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
			if err != nil {
				ok = false
				break
			}
			f := strings.Fields(string(b))
			if len(f) == 0 {
				ok = false
				break
			}
			n, _ := strconv.ParseInt(f[0], 10, 64)
			total += n
		}
		if ok {
			return time.Duration(total), "schedstat", nil
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	// The fields after the command name, which is in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, "", errors.New("short /proc/<pid>/stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond, "stat", nil
}

// InitTrace sums a binary's package initialisation, as GODEBUG=inittrace=1
// reports it (the median of a few starts), and names the costliest packages.
type InitTrace struct {
	TotalMS    float64       `json:"total_ms"`
	SDKMS      float64       `json:"sdk_ms"` // github.com/aws/...
	OwnMS      float64       `json:"own_ms"` // this module's packages
	TotalBytes int64         `json:"total_bytes"`
	Packages   int           `json:"packages"`
	Top        []PackageInit `json:"top"`
}

// PackageInit is one package's initialisation.
type PackageInit struct {
	Package string  `json:"package"`
	MS      float64 `json:"ms"`
	Bytes   int64   `json:"bytes"`
}

// initTrace runs bin with GODEBUG=inittrace=1 a few times (it exits at once
// without AWS_LAMBDA_RUNTIME_API) and keeps the run of median total time.
func (w *world) initTrace(bin string) (InitTrace, error) {
	var runs []InitTrace
	for range 5 {
		cmd := exec.Command(bin)
		cmd.Env = []string{"GODEBUG=inittrace=1", "PATH=" + os.Getenv("PATH")}
		out, _ := cmd.CombinedOutput() // exits 1: no Extensions API
		var t InitTrace
		var all []PackageInit
		for line := range strings.Lines(string(out)) {
			// init PKG @0.1 ms, 0.2 ms clock, 312 bytes, 4 allocs
			f := strings.Fields(line)
			if len(f) < 8 || f[0] != "init" {
				continue
			}
			msv, _ := strconv.ParseFloat(f[4], 64)
			b, _ := strconv.ParseInt(f[7], 10, 64)
			all = append(all, PackageInit{Package: f[1], MS: msv, Bytes: b})
			t.TotalMS += msv
			t.TotalBytes += b
			switch {
			case strings.HasPrefix(f[1], "github.com/aws/"):
				t.SDKMS += msv
			case strings.HasPrefix(f[1], "github.com/secrets-prefetch/"):
				t.OwnMS += msv
			}
		}
		if len(all) == 0 {
			return InitTrace{}, fmt.Errorf("%s printed no inittrace lines:\n%s", bin, out)
		}
		slices.SortFunc(all, func(a, b PackageInit) int { return cmp.Compare(b.MS, a.MS) })
		t.Packages, t.Top = len(all), all[:min(6, len(all))]
		runs = append(runs, t)
	}
	slices.SortFunc(runs, func(a, b InitTrace) int { return cmp.Compare(a.TotalMS, b.TotalMS) })
	return runs[len(runs)/2], nil
}
