package container

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/secrets-prefetch/secrets-prefetch/integration/awstest"
)

// Emulator serves an emulated AWS where containers reach it: on the host's
// own (non-loopback) IPv4 address, which podman's bridge routes to. (The
// awstest front itself listens on 127.0.0.1, which inside a container is
// the container's own loopback. Not every interface: a wildcard listener
// would share its port number with other tests' loopback listeners.) Faults
// are injected on AWS as usual; Hold adds a gate.
type Emulator struct {
	AWS *awstest.AWS

	srv  *http.Server
	ln   net.Listener
	done chan struct{}

	mu    sync.Mutex // protects gates
	gates []*Gate
}

// Serve starts serving a on a free port of the host's address. The caller
// must Close it (which leaves a to its owner).
func Serve(a *awstest.AWS) (*Emulator, error) {
	ip, err := hostIP()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
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

// hostIP is the first IPv4 address of an interface that is up and is
// neither loopback nor one of podman's own (its bridge comes and goes with
// the containers).
func hostIP() (net.IP, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 ||
			strings.HasPrefix(iface.Name, "podman") || strings.HasPrefix(iface.Name, "cni") || strings.HasPrefix(iface.Name, "veth") {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, addr := range addrs {
			if n, ok := addr.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return n.IP.To4(), nil
			}
		}
	}
	return nil, errors.New("container: the host has no IPv4 address other than loopback for containers to reach the emulated AWS at")
}

// URL is the emulator's endpoint, for containers and host processes alike.
func (e *Emulator) URL() string { return "http://" + e.ln.Addr().String() }

// Env is the environment that points an agent at the emulator: its
// endpoint for both services, a region and the test credentials (what the
// SDK's default chain would find in a real task, pod or instance).
func (e *Emulator) Env() []string {
	c := e.AWS.Credentials
	return []string{
		"AWS_REGION=" + e.AWS.Region(),
		"AWS_ACCESS_KEY_ID=" + c.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + c.SecretAccessKey,
		"AWS_SESSION_TOKEN=" + c.SessionToken,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + e.URL(),
		"AWS_ENDPOINT_URL_SSM=" + e.URL(),
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
