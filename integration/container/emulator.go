package container

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
)

// Emulator serves an emulated AWS where containers reach it: on every
// interface of the host, at HostFromContainers from inside a container (the
// awstest front itself listens on 127.0.0.1, which is the container's own
// loopback there). Faults are injected on AWS as usual; Hold adds a gate.
type Emulator struct {
	AWS *awstest.AWS

	srv  *http.Server
	ln   net.Listener
	done chan struct{}

	mu    sync.Mutex // protects gates
	gates []*Gate
}

// Serve starts serving a on a free port of every interface. The caller must
// Close it (which leaves a to its owner).
func Serve(a *awstest.AWS) (*Emulator, error) {
	// Every interface: podman's bridge (where containers find the host)
	// exists only while a container runs, so it cannot be bound before.
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return nil, err
	}
	e := &Emulator{AWS: a, ln: ln, done: make(chan struct{})}
	e.srv = &http.Server{Handler: http.HandlerFunc(e.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(e.done)
		_ = e.srv.Serve(ln)
	}()
	return e, nil
}

// URL is the emulator's endpoint as containers reach it.
func (e *Emulator) URL() string {
	return "http://" + net.JoinHostPort(HostFromContainers, strconv.Itoa(e.ln.Addr().(*net.TCPAddr).Port))
}

// HostURL is the emulator's endpoint as host processes reach it.
func (e *Emulator) HostURL() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(e.ln.Addr().(*net.TCPAddr).Port))
}

// Env is the environment that points an agent in a container at the
// emulator: its endpoint for both services, a region and the test
// credentials (what the SDK's default chain would find in a real task or pod).
func (e *Emulator) Env() []string { return e.env(e.URL()) }

// HostEnv is Env for an agent running on the host.
func (e *Emulator) HostEnv() []string { return e.env(e.HostURL()) }

func (e *Emulator) env(url string) []string {
	c := e.AWS.Credentials
	return []string{
		"AWS_REGION=" + e.AWS.Region(),
		"AWS_ACCESS_KEY_ID=" + c.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + c.SecretAccessKey,
		"AWS_SESSION_TOKEN=" + c.SessionToken,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + url,
		"AWS_ENDPOINT_URL_SSM=" + url,
	}
}

// Close releases every gate and stops serving.
func (e *Emulator) Close() {
	e.mu.Lock()
	for _, g := range e.gates {
		g.Open()
	}
	e.mu.Unlock()
	_ = e.srv.Close()
	<-e.done
}

// Gate holds the requests that match it at the emulator's door until it is
// opened, telling the test when one has arrived.
type Gate struct {
	match   func(op string, body []byte) bool
	arrived chan string // the op of each held request
	release chan struct{}
	once    sync.Once
}

// Hold installs a gate for the requests match accepts (op as awstest names
// it, "secretsmanager.GetSecretValue" or "ssm.GetParameters"; body the JSON
// request). The gate stays until Close; open it to let everything through.
func (e *Emulator) Hold(match func(op string, body []byte) bool) *Gate {
	g := &Gate{match: match, arrived: make(chan string, 1024), release: make(chan struct{})}
	e.mu.Lock()
	e.gates = append(e.gates, g)
	e.mu.Unlock()
	return g
}

// Arrived receives the op of each request the gate holds.
func (g *Gate) Arrived() <-chan string { return g.arrived }

// Open lets held and later requests through.
func (g *Gate) Open() { g.once.Do(func() { close(g.release) }) }

func (e *Emulator) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	gates := append([]*Gate(nil), e.gates...)
	e.mu.Unlock()
	if len(gates) > 0 {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 8<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		op := opOf(r)
		for _, g := range gates {
			if !g.match(op, body) {
				continue
			}
			select {
			case g.arrived <- op:
			default:
			}
			select {
			case <-g.release:
			case <-r.Context().Done():
				return
			}
		}
	}
	e.AWS.ServeHTTP(w, r)
}

// opOf names a request's operation as awstest does.
func opOf(r *http.Request) string {
	target := r.Header.Get("X-Amz-Target")
	if action, ok := bytes.CutPrefix([]byte(target), []byte("AmazonSSM.")); ok {
		return "ssm." + string(action)
	}
	return target
}
