package transport

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// startAdminListener serves h on an AdminListener of maxConns over loopback.
func startAdminListener(t *testing.T, maxConns int, h http.Handler) (*AdminListener, string) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewAdminListener(raw, maxConns)
	srv := &http.Server{Handler: h, ConnState: ln.ConnState, IdleTimeout: time.Minute}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln, raw.Addr().String()
}

// dialAdmin opens a connection; when req is not empty it sends it and reads the answer, leaving
// the connection idle (keep-alive).
func dialAdmin(t *testing.T, addr, req string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	if req != "" {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		if _, err := readStatus(r); err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Time{})
	}
	return c, r
}

// readStatus reads one answer from r, its body whole, and returns its status, so that the
// connection is ready for the next request.
func readStatus(r *bufio.Reader) (int, error) {
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// busyConns counts the connections the listener holds as inside a handler.
func busyConns(l *AdminListener) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for c := range l.conns {
		if c.busy {
			n++
		}
	}
	return n
}

// closedByServer reports whether the server has closed c: a read ends in EOF or a reset instead
// of waiting.
func closedByServer(c net.Conn, r *bufio.Reader) bool {
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := r.ReadByte()
	var ne net.Error
	return err != nil && (!errors.As(err, &ne) || !ne.Timeout())
}

const getOK = "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"

// TestAdminListenerEvictsTheOldestWaiter fills an AdminListener of 4 with idle keep-alives and a
// connection whose head is half sent: further connections are served at once (today's blocking
// limit made them wait for the idle timeout), each evicting the connection that has waited
// longest, never one inside a handler while another waits.
func TestAdminListenerEvictsTheOldestWaiter(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "slow")
	})
	ln, addr := startAdminListener(t, 4, mux)
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()

	busy, rb := dialAdmin(t, addr, "")
	if _, err := io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-entered
	// Each connection is made once the one before is known idle or held: the server marks a
	// connection idle a moment after its answer is written, and on a loaded machine that moment
	// could otherwise come after the next connection's, and change which is oldest.
	idle1, r1 := dialAdmin(t, addr, getOK)
	waitFor(t, func() bool { return ln.Open() == 2 && busyConns(ln) == 1 })
	stalled, rs := dialAdmin(t, addr, "")
	_, _ = io.WriteString(stalled, "GET /ok HTTP/1.1\r\nHo") // half a head, never finished
	waitFor(t, func() bool { return ln.Open() == 3 })
	idle2, r2 := dialAdmin(t, addr, getOK)
	waitFor(t, func() bool { return ln.Open() == 4 && busyConns(ln) == 1 })

	// Two more: each is answered at once, and the two oldest waiters make room.
	for range 2 {
		c, r := dialAdmin(t, addr, "")
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(c, getOK); err != nil {
			t.Fatal(err)
		}
		if code, err := readStatus(r); err != nil || code != 200 {
			t.Fatalf("a new connection at the cap: %d, %v", code, err)
		}
		waitFor(t, func() bool { return busyConns(ln) == 1 }) // it waits now, the newest waiter
	}
	if !closedByServer(idle1, r1) || !closedByServer(stalled, rs) {
		t.Fatal("the two oldest waiters (an idle keep-alive, a half-sent head) are still open")
	}
	if closedByServer(idle2, r2) {
		t.Fatal("a newer idle connection was evicted before the oldest ones")
	}
	if ln.Evicted() != 2 {
		t.Fatalf("evicted %d, want 2", ln.Evicted())
	}
	if ln.Open() > 4 {
		t.Fatalf("holds %d connections, past its cap of 4", ln.Open())
	}
	// The connection inside its handler was never the victim: it gets its answer.
	close(release)
	released = true
	_ = busy.SetReadDeadline(time.Now().Add(3 * time.Second))
	if code, err := readStatus(rb); err != nil || code != 200 {
		t.Fatalf("the connection inside a handler lost its answer: %d, %v", code, err)
	}
}

// holdingMux answers /ok at once, and holds each /slow inside its handler, after a send on entered,
// until release is closed or its client goes.
func holdingMux(entered chan<- struct{}, release <-chan struct{}) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	return mux
}

// TestAdminListenerEvictsABusyOneOnlyWhenAllAre: with every connection inside a handler, a new
// one still gets in, in place of the one that entered its handler first.
func TestAdminListenerEvictsABusyOneOnlyWhenAllAre(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	mux := holdingMux(entered, release)
	ln, addr := startAdminListener(t, 2, mux)
	defer close(release)
	var busy []*bufio.Reader
	var conns []net.Conn
	for range 2 {
		c, r := dialAdmin(t, addr, "")
		_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
		<-entered
		busy, conns = append(busy, r), append(conns, c)
	}
	_, _ = dialAdmin(t, addr, getOK)
	if !closedByServer(conns[0], busy[0]) {
		t.Fatal("the connection busy longest was not evicted")
	}
	if ln.Evicted() != 1 {
		t.Fatalf("evicted %d, want 1", ln.Evicted())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAdminListenerEvictsFromTheAddressHoldingTheMost fills an AdminListener of 4 with an idle
// keep-alive from 127.0.0.1 (a probe's or a scrape's address) and three connections inside
// handlers from 127.0.0.2. A new connection from 127.0.0.2 evicts the one of 127.0.0.2 that
// entered its handler first, not the older idle one of 127.0.0.1, which the rule of the oldest
// waiter alone would take; and a new one from 127.0.0.1 evicts again from 127.0.0.2, which still
// holds the most: its connection waiting for a request (the one that made the first eviction).
func TestAdminListenerEvictsFromTheAddressHoldingTheMost(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	mux := holdingMux(entered, release)
	ln, addr := startAdminListener(t, 4, mux)
	defer close(release)
	other := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	probe, probeR := dialAdmin(t, addr, getOK) // from 127.0.0.1, idle after its answer
	var busy []net.Conn
	var busyR []*bufio.Reader
	for range 3 {
		c, err := other.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
		<-entered
		busy, busyR = append(busy, c), append(busyR, bufio.NewReader(c))
	}
	c, err := other.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	waitFor(t, func() bool { return ln.Evicted() == 1 })
	if !closedByServer(busy[0], busyR[0]) {
		t.Fatal("a new connection from the address holding the most did not evict the one of that address longest in its handler")
	}
	_, _ = dialAdmin(t, addr, getOK) // from 127.0.0.1: 127.0.0.2 still holds 3 of 4
	waitFor(t, func() bool { return ln.Evicted() == 2 })
	if !closedByServer(c, bufio.NewReader(c)) {
		t.Fatal("a new connection from 127.0.0.1 did not evict the waiter of 127.0.0.2, which holds the most")
	}
	// The idle keep-alive of 127.0.0.1, the oldest waiter, was never the victim: it still answers.
	_ = probe.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(probe, getOK); err != nil {
		t.Fatalf("the idle connection of 127.0.0.1 was closed: %v", err)
	}
	if code, err := readStatus(probeR); err != nil || code != 200 {
		t.Fatalf("the idle connection of 127.0.0.1 was evicted: %d, %v", code, err)
	}
}

// TestClientPrefix: the admin listener counts an IPv4 client (mapped into IPv6 or not) by its
// address and an IPv6 client by its /64, which one host may hold whole; a zone is no part of it.
func TestClientPrefix(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"127.0.0.1:5", "127.0.0.1/32"},
		{"[::ffff:10.0.0.1]:5", "10.0.0.1/32"},
		{"[2001:db8:0:1::1]:5", "2001:db8:0:1::/64"},
		{"[2001:db8:0:1:ffff::2]:5", "2001:db8:0:1::/64"},
		{"[fe80::1%eth0]:5", "fe80::/64"},
		{"[::1]:5", "::/64"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := clientPrefix(addr); got.String() != c.want {
			t.Errorf("clientPrefix(%s) = %s, want %s", c.addr, got, c.want)
		}
	}
	if got := clientPrefix(&net.UnixAddr{Name: "@", Net: "unix"}); got.IsValid() {
		t.Errorf("a unix socket's client: %s, want the one invalid prefix", got)
	}
}
