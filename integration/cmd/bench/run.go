package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
	"github.com/secrets-prefetch/secrets-prefetch/integration/rie"
)

// sectionNames are the report's sections, in order, as -only names them.
var sectionNames = []string{"init", "pinned", "get", "gobench", "process", "memory", "fleet", "cachescale", "sdkapi"}

// options are the command line.
type options struct {
	smoke       bool
	out         string
	json        string
	verbose     bool
	only        string
	bin         string // a prebuilt extension binary to measure (-bin)
	before      string // an older build to measure beside it, where a section can (-before)
	beforeLabel string
	log         func(format string, args ...any)
}

// plan is what a run measures: the full sizes, or tiny ones for -smoke.
type plan struct {
	smoke          bool
	initItems      []int
	initLatencies  []time.Duration
	initConns      []int
	initRepeats    int
	seqMaxItems    int // the sequential baseline runs up to this many items
	getConcs       []int
	pinnedConc     int
	pinnedRound    time.Duration
	pinnedRounds   int
	pinnedGC       []string // GC settings also measured, with the short token
	getRound       time.Duration
	getRounds      int
	benchtime      string
	benchCount     int
	rssItems       int
	idleRounds     int // idle INVOKE cycles: rounds of a block per process
	idleBlock      int
	dueItems       int
	dueInvokes     int
	startRepeats   int
	fleetEnvs      int
	fleetHorizon   time.Duration
	fleetRates     []float64
	fleetTTLs      []time.Duration
	valueBytes     int
	smallInitItems int // seeded for the Init section
	quotaParams    int // parameters fetched under the emulated SSM quota

	memIdleInvokes    int // per GC setting
	memRefreshEntries int
	memRefreshCycles  int
	memIdleConns      int
}

func planFor(smoke bool) plan {
	if smoke {
		return plan{
			smoke:          true,
			initItems:      []int{10},
			initLatencies:  []time.Duration{10 * time.Millisecond},
			initConns:      []int{3},
			initRepeats:    1,
			seqMaxItems:    10,
			getConcs:       []int{1, 32},
			pinnedConc:     32,
			pinnedRound:    100 * time.Millisecond,
			pinnedRounds:   1,
			getRound:       50 * time.Millisecond,
			getRounds:      1,
			benchtime:      "20x",
			benchCount:     1,
			rssItems:       20,
			idleRounds:     2,
			idleBlock:      10,
			dueItems:       10,
			dueInvokes:     1,
			startRepeats:   1,
			fleetEnvs:      200,
			fleetHorizon:   20 * time.Minute,
			fleetRates:     []float64{1},
			fleetTTLs:      []time.Duration{300 * time.Second},
			valueBytes:     4096,
			quotaParams:    60,
			memIdleInvokes: 50, memRefreshEntries: 10, memRefreshCycles: 20, memIdleConns: 600,
		}
	}
	return plan{
		initItems:      []int{10, 100, 1000},
		initLatencies:  []time.Duration{0, 10 * time.Millisecond, 50 * time.Millisecond},
		initConns:      []int{3, 16},
		initRepeats:    3,
		seqMaxItems:    1000,
		getConcs:       []int{1, 32, 128},
		pinnedConc:     32,
		pinnedRound:    2 * time.Second,
		pinnedRounds:   6,
		pinnedGC:       []string{"GOGC=100", "GOGC=10"},
		getRound:       time.Second,
		getRounds:      5,
		benchtime:      "500ms",
		benchCount:     5,
		rssItems:       1000,
		idleRounds:     30,
		idleBlock:      100,
		dueItems:       100,
		dueInvokes:     8,
		startRepeats:   10,
		fleetEnvs:      10000,
		fleetHorizon:   2 * time.Hour,
		fleetRates:     []float64{0.1, 1, 10},
		fleetTTLs:      []time.Duration{60 * time.Second, 300 * time.Second, 900 * time.Second},
		valueBytes:     4096,
		quotaParams:    1000,
		memIdleInvokes: 10000, memRefreshEntries: 10, memRefreshCycles: 10000, memIdleConns: 10000,
	}
}

// run runs every section and returns the report.
func run(ctx context.Context, o options) (*Report, error) {
	start := time.Now()
	p := planFor(o.smoke)
	rep := &Report{Smoke: o.smoke, Generated: start.UTC(), Machine: machine()}
	rep.Command = "make bench"
	if o.smoke {
		rep.Command = "cd integration && go run ./cmd/bench -smoke"
	}
	if o.before != "" {
		rep.Command += " -before (" + o.beforeLabel + ")"
	}

	root, err := rie.RepoRoot()
	if err != nil {
		return nil, err
	}
	a, err := awstest.New()
	if err != nil {
		return nil, err
	}
	defer a.Close()
	binDir, err := os.MkdirTemp("", "secrets-prefetch-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(binDir)
	// The SDK in this process (the extension run by app.Run, the
	// sequential baseline) finds the emulator through the environment, as
	// the extension does in Lambda.
	for _, kv := range append(a.Env(), "AWS_EC2_METADATA_DISABLED=true") {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	w := &world{aws: a, plan: p, log: o.log, root: root, binDir: binDir, extBin: o.bin, beforeBin: o.before}
	o.log("seeding the emulated AWS")
	if err := w.seed(ctx); err != nil {
		return nil, err
	}

	steps := []struct {
		name string
		fn   func(context.Context, *Report) error
	}{
		{"init", w.initSection},
		{"pinned", w.pinnedSection},
		{"get", w.getSection},
		{"gobench", w.goBenchSection},
		{"process", w.processSection},
		{"memory", w.memorySection},
		{"fleet", w.fleetSection},
		{"cachescale", w.cacheScaleSection},
		{"sdkapi", w.sdkapiSection}, // sdkapibench.go
	}
	only := map[string]bool{}
	for _, s := range strings.Split(o.only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !slices.Contains(sectionNames, s) {
				return nil, fmt.Errorf("-only: no section %q (sections: %s)", s, strings.Join(sectionNames, ", "))
			}
			only[s] = true
		}
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(only) > 0 && !only[s.name] {
			continue
		}
		o.log("%s...", s.name)
		t := time.Now()
		if err := s.fn(ctx, rep); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		o.log("%s: %.1f s", s.name, time.Since(t).Seconds())
	}
	rep.Machine.LoadAvgEnd = loadAvg()
	rep.DurationSeconds = time.Since(start).Seconds()
	rep.evaluate()
	return rep, nil
}

// world is what the sections share: the emulated AWS and its contents.
type world struct {
	aws  *awstest.AWS
	plan plan
	log  func(string, ...any)
	root string // the root module's directory

	binDir    string    // where the binaries are built
	extBin    string    // a prebuilt extension binary to measure instead (-bin)
	beforeBin string    // an older build measured beside it (-before)
	bins      *binaries // built once, by binaries

	initSecrets, initParams []string // small mixed items, for Init and INVOKE
	rssSecrets, rssParams   []string // items of plan.valueBytes, for RSS
	getSecret               string   // the one secret the GET section reads
	quotaParams             []string // fetched under the emulated SSM quota
}

// seed creates the items every section reads: small mixed items (half
// secrets, half SecureString parameters) for Init, items of 4 KiB for the
// footprint, and one secret for the cached GETs.
func (w *world) seed(ctx context.Context) error {
	n := slices.Max(append(slices.Clone(w.plan.initItems), w.plan.dueItems))
	for i := range (n + 1) / 2 {
		w.initSecrets = append(w.initSecrets, fmt.Sprintf("bench/init/secret-%04d", i))
		w.initParams = append(w.initParams, fmt.Sprintf("/bench/init/param-%04d", i))
	}
	for i := range (w.plan.rssItems + 1) / 2 {
		w.rssSecrets = append(w.rssSecrets, fmt.Sprintf("bench/rss/secret-%04d", i))
		w.rssParams = append(w.rssParams, fmt.Sprintf("/bench/rss/param-%04d", i))
	}
	w.getSecret = "bench/get/db"
	for i := range w.plan.quotaParams {
		w.quotaParams = append(w.quotaParams, fmt.Sprintf("/bench/quota/param-%04d", i))
	}

	type job struct {
		secret      bool
		name, value string
	}
	var jobs []job
	for i, s := range w.initSecrets {
		jobs = append(jobs, job{true, s, fmt.Sprintf(`{"username":"bench","password":"bench-password-%04d"}`, i)})
	}
	for i, p := range w.initParams {
		jobs = append(jobs, job{false, p, fmt.Sprintf("bench-parameter-value-%04d", i)})
	}
	for i, s := range w.rssSecrets {
		jobs = append(jobs, job{true, s, filler(fmt.Sprintf("secret-%04d:", i), w.plan.valueBytes)})
	}
	for i, p := range w.rssParams {
		jobs = append(jobs, job{false, p, filler(fmt.Sprintf("param-%04d:", i), w.plan.valueBytes)})
	}
	for i, p := range w.quotaParams {
		jobs = append(jobs, job{false, p, fmt.Sprintf("quota-value-%04d", i)})
	}
	jobs = append(jobs, job{true, w.getSecret, `{"engine":"postgres","host":"db.bench.internal","port":5432,"username":"bench","password":"bench-password"}`})

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan job)
	)
	for range 8 {
		wg.Go(func() {
			for j := range next {
				var err error
				if j.secret {
					_, err = w.aws.PutSecretString(ctx, j.name, j.value)
				} else {
					_, err = w.aws.PutParameter(ctx, j.name, j.value, "SecureString")
				}
				if err != nil {
					mu.Lock()
					first = cmpOr(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	return first
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// filler is a value of exactly n bytes that starts with prefix.
func filler(prefix string, n int) string {
	var b strings.Builder
	b.WriteString(prefix)
	for i := 0; b.Len() < n; i++ {
		b.WriteByte("abcdefghijklmnopqrstuvwxyz0123456789"[i%36])
	}
	return b.String()[:n]
}

// machine describes where the run happened.
func machine() Machine {
	m := Machine{
		NumCPU:     runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		LoadAvg:    loadAvg(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				m.Memory = strings.TrimSpace(v)
				if f := strings.Fields(v); len(f) == 2 && f[1] == "kB" {
					if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
						m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
					}
				}
				break
			}
		}
	}
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// goCmd runs the go command in dir and returns its standard output.
func goCmd(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("go %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// binaries are the programs the process sections run, built as they ship.
type binaries struct {
	extension string // the extension (or -bin)
	loopFloor string // ./cmd/bench/loopfloor
	getFloor  string // ./cmd/bench/getfloor
	loadGen   string // ./cmd/bench itself, run with -loadgen
}

// binaries builds the programs once per run.
func (w *world) binaries(ctx context.Context) (*binaries, error) {
	if w.bins != nil {
		return w.bins, nil
	}
	b := &binaries{extension: w.extBin}
	var err error
	if b.extension == "" {
		if b.extension, err = w.buildBinary(ctx, w.binDir); err != nil {
			return nil, err
		}
	}
	if b.loopFloor, err = w.buildLoopFloor(ctx, w.binDir); err != nil {
		return nil, err
	}
	b.getFloor = filepath.Join(w.binDir, "getfloor")
	if _, err := goCmd(ctx, filepath.Join(w.root, "integration"), []string{"CGO_ENABLED=0"}, "build", "-trimpath", "-ldflags", "-s -w", "-o", b.getFloor, "./cmd/bench/getfloor"); err != nil {
		return nil, err
	}
	b.loadGen = filepath.Join(w.binDir, "bench")
	if _, err := goCmd(ctx, filepath.Join(w.root, "integration"), []string{"CGO_ENABLED=0"}, "build", "-trimpath", "-o", b.loadGen, "./cmd/bench"); err != nil {
		return nil, err
	}
	w.bins = b
	return b, nil
}

// buildBinary builds the extension as it ships (stripped, static) into dir.
func (w *world) buildBinary(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "secrets-prefetch")
	_, err := goCmd(ctx, w.root, []string{"CGO_ENABLED=0"}, "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	return bin, err
}

// buildLoopFloor builds ./cmd/bench/loopfloor, the event loop with nothing
// in it, the same way.
func (w *world) buildLoopFloor(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "loopfloor")
	_, err := goCmd(ctx, filepath.Join(w.root, "integration"), []string{"CGO_ENABLED=0"}, "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/bench/loopfloor")
	return bin, err
}
