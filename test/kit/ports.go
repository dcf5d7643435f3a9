package kit

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// handedOut holds every port FreePortOn and FreeUDPAddr gave out, so that no two callers in one
// test binary get the same one (a port freed a moment ago may well be the next one the kernel
// picks).
var handedOut struct {
	sync.Mutex
	ports map[string]bool // "tcp/PORT", "udp/PORT"
}

func claim(network string, port int) bool {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[string]bool{}
	}
	key := network + "/" + strconv.Itoa(port)
	if handedOut.ports[key] {
		return false
	}
	handedOut.ports[key] = true
	return true
}

// FreePortOn returns a TCP port on host that was free a moment ago and that this test binary has
// not handed out before.
func FreePortOn(host string) (int, error) {
	for {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if claim("tcp", port) {
			return port, nil
		}
	}
}

// FreePort returns a free TCP port of 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := FreePortOn("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// FreeAddr returns 127.0.0.1:PORT with a free TCP port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePort(t))
}

// FreeUDPAddr returns 127.0.0.1:PORT with a free UDP port.
func FreeUDPAddr(t testing.TB) string {
	t.Helper()
	for {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := c.LocalAddr().(*net.UDPAddr)
		c.Close()
		if claim("udp", addr.Port) {
			return addr.String()
		}
	}
}
