// Command getfloor is the floor of a cached read: a minimal net/http server
// on loopback answering every request with the same body, read from the
// file named by its argument. It prints its address on stdout and serves
// until it is killed. The benchmark driver (integration/cmd/bench) runs it
// pinned to the same CPU as the extension, as the throughput and latency
// any Go server on net/http reaches for the same answer.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: getfloor BODY-FILE")
		os.Exit(2)
	}
	body, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "getfloor:", err)
		os.Exit(1)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "getfloor:", err)
		os.Exit(1)
	}
	fmt.Println(l.Addr())
	err = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	fmt.Fprintln(os.Stderr, "getfloor:", err)
	os.Exit(1)
}
