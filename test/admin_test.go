package test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// probeTimeout is a Kubernetes probe's default timeoutSeconds: the admin port must answer within it
// whatever else is held open to it.
const probeTimeout = time.Second

// TestAdminPortCannotBeStarved holds dozens of connections to the admin port the ways a client in
// the cluster can: idle keep-alives that made one request and never read it, heads half sent and
// never finished, and readers that pipeline scrapes and never read the answers. The holds are
// topped up before every round. Probes and scrapes, each on a new connection as the kubelet makes
// them, are answered within a probe's timeout throughout, and the API answers as before. The
// admin listener's old limit of 16 blocking slots was taken by the first 16 idle connections for
// its 2-minute idle timeout.
func TestAdminPortCannotBeStarved(t *testing.T) {
	p := start(t, "")
	addr := strings.TrimPrefix(p.admin, "http://")
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	hold := func(first string) {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial the admin port: %v", err)
		}
		held = append(held, c)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096) // a slow reader's answers back up into the server's writes sooner
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, first) // a connection evicted meanwhile may refuse it: fine
	}
	idle := "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	stalled := "GET /metrics HTTP/1.1\r\nHost: x\r\nUser-Agent: sl"
	slow := strings.Repeat("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200)
	topUp := func(idles, stalls, slows int) {
		for range idles {
			hold(idle)
		}
		for range stalls {
			hold(stalled)
		}
		for range slows {
			hold(slow)
		}
	}
	topUp(48, 16, 8)

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: probeTimeout}
	var slowest time.Duration
	for round := range 10 {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			began := time.Now()
			resp, err := client.Get(p.admin + path)
			if err != nil {
				t.Fatalf("round %d, %s with %d connections held to the admin port: %v", round, path, len(held), err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			took := time.Since(began)
			slowest = max(slowest, took)
			if resp.StatusCode != 200 {
				t.Fatalf("round %d, %s: %d", round, path, resp.StatusCode)
			}
		}
		topUp(8, 2, 1)
	}
	t.Logf("%d connections opened to the admin port in all (it holds 64 at most); slowest probe or scrape %s", len(held), slowest)
	if code, body := kit.Get(p.api + "/after"); code != 200 {
		t.Fatalf("the API with the admin port held: %d %s", code, body)
	}
	if logs := p.Logs(); strings.Contains(logs, "Accept error") {
		t.Fatalf("accept errors:\n%s", p.Tail(20))
	}
}

// TestAdminPortCutsHalfSentHeads holds two connections to the real binary's admin port whose
// request heads never end: one sends half a head and stops, the other trickles a byte of it every
// 300 ms. The server closes each once its 2 s head timeout has passed (at most with a 400), and not
// before: the timeout bounds the whole head, so a trickle that keeps the connection busy does not
// extend it. The upper bound is generous for a loaded machine; without the head timeout the
// stalled one would be held for the 10 s read timeout and the trickle for as long as it lasts.
func TestAdminPortCutsHalfSentHeads(t *testing.T) {
	const headTimeout, margin = 2 * time.Second, 4 * time.Second
	p := start(t, "")
	addr := strings.TrimPrefix(p.admin, "http://")
	var (
		took [2]time.Duration
		errs [2]error
		wg   sync.WaitGroup
	)
	for i, trickle := range []bool{false, true} {
		wg.Go(func() { took[i], errs[i] = headCut(addr, trickle, headTimeout+margin) })
	}
	wg.Wait()
	for i, how := range []string{"half a head, then nothing", "a head trickled a byte every 300 ms"} {
		if errs[i] != nil {
			t.Errorf("%s: %v", how, errs[i])
			continue
		}
		t.Logf("%s: closed by the server after %v", how, took[i])
		if took[i] < headTimeout-100*time.Millisecond {
			t.Errorf("%s: closed after %v, before the head timeout %v", how, took[i], headTimeout)
		}
	}
}

// headCut dials the admin port at addr, sends the start of a request head (all at once, or a byte
// at a time) and never ends it; it returns how long after the dial the server closed the
// connection, or an error if the server answered other than 400 or had not closed it within limit.
func headCut(addr string, trickle bool, limit time.Duration) (time.Duration, error) {
	began := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(began.Add(limit))
	read := make(chan error, 1)
	go func() {
		// net/http closes a head cut off by its timeout silently, or, when the timeout struck
		// with part of a line read, after a 400: either way the connection ends.
		got, err := io.ReadAll(c)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			err = fmt.Errorf("still open %v after the dial", time.Since(began))
		case len(got) > 0 && !strings.HasPrefix(string(got), "HTTP/1.1 400 "):
			err = fmt.Errorf("an answer to a head that never ended, after %v: %q", time.Since(began), got)
		default:
			err = nil // closed by the server: EOF, or a reset
		}
		read <- err
	}()
	head := "GET /metrics HTTP/1.1\r\nHost: x\r\nUser-Agent: slow"
	if !trickle {
		_, _ = io.WriteString(c, head)
		err := <-read
		return time.Since(began), err
	}
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i = (i + 1) % len(head) {
		select {
		case err := <-read:
			return time.Since(began), err
		case <-tick.C:
			_, _ = io.WriteString(c, head[i:i+1]) // once cut, a write may fail: the read tells
		}
	}
}
