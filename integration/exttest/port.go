package exttest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

// FreeAddr is a loopback address nothing listens on (just now), for a
// process the test starts to bind (an agent's SECRETS_PREFETCH_LISTEN, say).
//
// Its port lies below the kernel's ephemeral range. A port-0 listener's
// port comes from that range, and so does every outgoing connection's: a
// port found free there and released is soon handed to another process (six
// suites at once open thousands of connections), which then holds it when
// ours binds: "address already in use". Below the range a port is only
// taken by a process that names it, so the pick stays free until used.
// Where the range can't be read (not Linux), it falls back to port 0.
func FreeAddr(t testing.TB) string {
	t.Helper()
	lo, hi := 10000, ephemeralLow()
	for range 100 {
		if hi-lo < 1000 {
			break
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", lo+rand.IntN(hi-lo)))
		if err != nil {
			continue // in use: pick another
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// ephemeralLow is the lowest port of the kernel's ephemeral range (0 if
// unknown).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil {
		return 0
	}
	return lo
}
