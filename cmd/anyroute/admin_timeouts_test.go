package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anyroute/anyroute/transport"
)

// TestAdminLimitsAreTheDocumentedOnes holds the admin server's timeouts to what
// docs/reliability.md (case 56) promises: 2 s for a head, 30 s to
// take an answer, 30 s idle.
func TestAdminLimitsAreTheDocumentedOnes(t *testing.T) {
	srv := newAdminServer(http.NotFoundHandler(), log.NewNopLogger(), adminLimits)
	got := [...]time.Duration{srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout}
	want := [...]time.Duration{2 * time.Second, 10 * time.Second, 30 * time.Second, 30 * time.Second}
	if got != want {
		t.Fatalf("admin server timeouts (head, read, write, idle) = %v, want %v", got, want)
	}
}

// TestAdminServerCutsIdleAndNeverReadingClients serves newAdminServer, with short timeouts in place
// of the real 30 s ones, on the admin listener as serveConfig does: a keep-alive connection that
// idles after its answer is closed by the server once the idle timeout has passed (and not
// before), and a client that stops reading an answer has the handler's writes fail and its
// connection closed once the write timeout has passed. Without IdleTimeout the idle connection
// would be held for ReadTimeout (10 s here) and the test fail; without WriteTimeout the handler
// would block on its write until the test's own deadline.
func TestAdminServerCutsIdleAndNeverReadingClients(t *testing.T) {
	const idle, write = 300 * time.Millisecond, 300 * time.Millisecond
	big := strings.Repeat("x", 1<<20)
	writeEnded := make(chan error, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) {
		// 256 MiB: far past what the loopback socket buffers take, so the writes block.
		for range 256 {
			if _, err := io.WriteString(w, big); err != nil {
				writeEnded <- err
				return
			}
		}
		writeEnded <- nil
	})
	ln := serveAdmin(t, mux, adminTimeouts{head: 2 * time.Second, read: 10 * time.Second, write: write, idle: idle})
	raw := ln.Listener

	t.Run("idle", func(t *testing.T) {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("first request: %d, close %v: want a kept-alive 200", resp.StatusCode, resp.Close)
		}
		answered := time.Now()
		_ = c.SetReadDeadline(answered.Add(idle + 5*time.Second))
		n, err := r.Read(make([]byte, 1))
		took := time.Since(answered)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("an idle keep-alive connection was still open %v after its answer (idle timeout %v)", took, idle)
		}
		if n != 0 || err == nil {
			t.Fatalf("read %d bytes, %v: want the server to close the connection", n, err)
		}
		if took < idle-50*time.Millisecond {
			t.Fatalf("closed %v after the answer, before the idle timeout %v", took, idle)
		}
		t.Logf("idle keep-alive closed %v after its answer", took)
	})

	t.Run("never reads", func(t *testing.T) {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.(*net.TCPConn).SetReadBuffer(4096)
		began := time.Now()
		if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-writeEnded:
			took := time.Since(began)
			if err == nil {
				t.Fatalf("256 MiB written to a client that never reads")
			}
			if took < write-50*time.Millisecond {
				t.Fatalf("the write failed after %v, before the write timeout %v: %v", took, write, err)
			}
			t.Logf("the answer's write failed %v after the request: %v", took, err)
		case <-time.After(write + 10*time.Second):
			t.Fatalf("a client that never reads held the handler's write past %v (write timeout %v)", write+10*time.Second, write)
		}
		// The server closed the connection (the client would first have to read what the kernel
		// still holds for it): the listener no longer holds it.
		deadline := time.Now().Add(5 * time.Second)
		for ln.Open() > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the connection of a client that never reads was left open (%d held)", ln.Open())
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// TestAdminServerLetsLongProfilesOutliveTheWriteTimeout asks the admin handler, pprof on, for a
// 1 s CPU profile from newAdminServer with a 300 ms write timeout: the profile is answered whole,
// since the write deadline is lifted for as long as the client asked (transport's noWriteDeadline,
// and net/http/pprof's own extension), as a 60 s profile is under the real 30 s timeout.
func TestAdminServerLetsLongProfilesOutliveTheWriteTimeout(t *testing.T) {
	h := transport.NewAdminHandler(transport.AdminOptions{Gatherer: prometheus.NewRegistry(), PProf: true})
	ln := serveAdmin(t, h, adminTimeouts{head: 2 * time.Second, read: 10 * time.Second, write: 300 * time.Millisecond, idle: time.Second})
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Get("http://" + ln.Addr().String() + "/debug/pprof/profile?seconds=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading a 1 s profile with a 300 ms write timeout: %v", err)
	}
	if resp.StatusCode != 200 || len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
		t.Fatalf("a 1 s profile with a 300 ms write timeout: %d, %d bytes %.100q: want 200 and a gzipped profile", resp.StatusCode, len(body), body)
	}
}

// serveAdmin serves h with newAdminServer and the given timeouts on a loopback admin listener, as
// serveConfig does, until the test ends.
func serveAdmin(t *testing.T, h http.Handler, timeouts adminTimeouts) *transport.AdminListener {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := transport.NewAdminListener(raw, adminMaxConns)
	srv := newAdminServer(h, log.NewNopLogger(), timeouts)
	srv.ConnState = ln.ConnState
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln
}
