package test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// hogs holds connections to an admin port that pipeline requests and never read the answers, so
// that each stays inside a handler, blocked on its write. At most keep are held by the test; older
// ones are closed as new ones open (the server has likely evicted them by then).
type hogs struct {
	dialers []net.Dialer // from loopback addresses of their own, like clients on other hosts, in turn
	addr    string
	request string
	paths   []string // when request is empty, each hog asks for the next of these, once
	next    atomic.Int64
	dialed  atomic.Int64
	keep    int
	mu      sync.Mutex
	conns   []net.Conn
	opened  atomic.Int64
}

func newHogs(from, addr, path string, pipelined, keep int) *hogs {
	var dialers []net.Dialer
	for f := range strings.SplitSeq(from, ",") {
		dialers = append(dialers, net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(f)}})
	}
	return &hogs{
		dialers: dialers,
		addr:    addr,
		request: strings.Repeat("GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n", pipelined),
		keep:    keep,
	}
}

// open dials one more hog; a dial or write that fails (an eviction at once) is not an error.
func (h *hogs) open() {
	d := &h.dialers[int(h.dialed.Add(1))%len(h.dialers)]
	c, err := d.Dial("tcp", h.addr)
	if err != nil {
		return
	}
	h.opened.Add(1)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096) // the answers back up into the server's writes at once
	}
	req := h.request
	if req == "" && len(h.paths) > 0 {
		req = "GET " + h.paths[int(h.next.Add(1))%len(h.paths)] + " HTTP/1.1\r\nHost: x\r\n\r\n"
	}
	_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.WriteString(c, req)
	h.mu.Lock()
	h.conns = append(h.conns, c)
	var old []net.Conn
	if len(h.conns) > h.keep {
		old = append(old, h.conns[:len(h.conns)-h.keep]...)
		h.conns = append([]net.Conn(nil), h.conns[len(h.conns)-h.keep:]...)
	}
	h.mu.Unlock()
	for _, c := range old {
		c.Close()
	}
}

func (h *hogs) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

// probeResult is what a run of probes saw.
type probeResult struct {
	n, failed, resets int
	run, longestRun   int // failures in a row
	slowest           time.Duration
	first, firstReset string // the first failure, the first closed by the server
}

// probeFor sends GET path to base on a new connection every interval until stop, as a kubelet
// does, each with the given timeout, and reports the failures and the slowest answer.
func probeFor(base, path string, timeout, interval time.Duration, stop <-chan struct{}) probeResult {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}, Timeout: timeout}
	var r probeResult
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return r
		case <-tick.C:
		}
		r.n++
		began := time.Now()
		resp, err := client.Get(base + path)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		r.slowest = max(r.slowest, time.Since(began))
		if err == nil {
			r.run = 0
		} else {
			r.failed++
			r.run++
			r.longestRun = max(r.longestRun, r.run)
			failure := fmt.Sprintf("probe %d after %v: %v", r.n, time.Since(began), err)
			if r.first == "" {
				r.first = failure
			}
			if closedByPeer(err) {
				r.resets++
				if r.firstReset == "" {
					r.firstReset = failure
				}
			}
		}
	}
}

// flood opens hogs at rate a second until stop (at full speed when rate is 0).
func flood(h *hogs, rate int, stop <-chan struct{}) {
	var tick <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		if tick != nil {
			select {
			case <-stop:
				return
			case <-tick:
			}
		}
		h.open()
	}
}

// TestAdminProbesSurviveAnotherClientsFlood holds the admin port with clients on loopback
// addresses of their own (127.0.0.2, 127.0.0.3), as a pod elsewhere in the cluster would, while
// probes and a scrape, each on a new connection from 127.0.0.1 as the kubelet makes them, ask
// every 50 ms with a probe's 1 s timeout, and the API is asked as often (within 5 s: its answers
// share the two loaded cores with the flood, and are bounded by its own timeouts, not a probe's):
//
//   - held: 80 connections that pipeline 200 scrapes each and never read, so every slot is inside
//     a handler blocked on its write;
//   - hog flood: 64 such, and 150 more a second for 4 s;
//   - silent flood: 64 such, and 150 connections a second that send nothing;
//   - pprof: profiling on, 64 connections asking for 30 s CPU, heap and trace profiles, topped up
//     50 a second (one CPU profile and one trace run at a time; the others answer at once or hold
//     their slot for 30 s);
//   - full flood: as many connections a second as the flooder can open (thousands, from the same
//     two cores), which is past what the process can accept: a probe may wait in the kernel's
//     accept queue past its timeout, but none is ever closed by the listener;
//   - from 8 addresses: the hog flood, its connections from 127.0.0.2 to 127.0.0.9 in turn.
//
// No probe, scrape or API request is ever closed by the server, and none fails as often in a row
// as the chart's liveness failureThreshold (3, with a 2 s timeout), after which a kubelet would
// restart the pod: a probe's 1 s now and then exceeded on two loaded cores shared with the flood is
// the machine, not the port (the slowest are logged: a few hundred milliseconds on a quiet machine;
// two in a row, each just past 1 s, while other builds shared the cores). In the full flood only a
// reset fails. Before, with every slot churning, a probe's connection was the oldest waiter before
// its head was read and was evicted: three probes in four were reset under the full flood, and some
// under 150 a second; the listener now evicts from the address that holds the most.
func TestAdminProbesSurviveAnotherClientsFlood(t *testing.T) {
	const (
		apiTimeout       = 5 * time.Second
		failureThreshold = 3 // the chart's liveness probe's
	)
	cases := []struct {
		name       string
		pprof      bool
		holdPath   string
		pipelined  int
		hold       int
		flood      string // "hog": flooders pipeline scrapes; "silent": they send nothing; "": no flood
		rate       int    // connections a second; 0: as fast as they open
		onlyResets bool   // only a reset fails a probe: the flood is past the accept capacity
	}{
		{"held", false, "/metrics", 200, 80, "", 0, false},
		{"hog flood", false, "/metrics", 200, 64, "hog", 150, false},
		{"silent flood", false, "/metrics", 200, 64, "silent", 150, false},
		{"pprof", true, "", 1, 64, "pprof", 50, false},
		{"full flood", false, "/metrics", 200, 64, "hog", 0, true},
		{"from 8 addresses", false, "/metrics", 200, 64, "hog", 150, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := start(t, fmt.Sprintf(`{"admin": {"pprof": %v}}`, c.pprof))
			addr := strings.TrimPrefix(p.admin, "http://")
			from := "127.0.0.2"
			if c.name == "from 8 addresses" {
				from = "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9"
			}
			h := newHogs(from, addr, c.holdPath, c.pipelined, 256)
			defer h.close()
			if c.pprof {
				h.request = ""
				h.paths = []string{"/debug/pprof/profile?seconds=30", "/debug/pprof/heap?seconds=30", "/debug/pprof/trace?seconds=30"}
			}
			for range c.hold {
				h.open()
			}
			time.Sleep(300 * time.Millisecond) // into their handlers
			stop := make(chan struct{})
			var wg sync.WaitGroup
			flooder := h
			switch c.flood {
			case "silent":
				flooder = newHogs("127.0.0.3", addr, "", 0, 256)
				defer flooder.close()
			case "":
				flooder = nil
			}
			if flooder != nil {
				wg.Go(func() { flood(flooder, c.rate, stop) })
			}
			paths := []string{"/healthz", "/readyz", "/metrics"}
			res := make([]probeResult, len(paths)+1)
			for i, path := range paths {
				wg.Go(func() { res[i] = probeFor(p.admin, path, probeTimeout, 50*time.Millisecond, stop) })
			}
			wg.Go(func() { res[len(paths)] = probeFor(p.api, "/x", apiTimeout, 50*time.Millisecond, stop) })
			time.Sleep(4 * time.Second)
			close(stop)
			wg.Wait()
			opened := h.opened.Load()
			if flooder != nil && flooder != h {
				opened += flooder.opened.Load()
			}
			for i, r := range res {
				what := "the API"
				if i < len(paths) {
					what = "admin " + paths[i]
				}
				t.Logf("%s: %d asked, %d failed, slowest %v; %d connections opened by the others", what, r.n, r.failed, r.slowest, opened)
				switch {
				case r.n == 0:
					t.Errorf("%s: never asked", what)
				case r.resets > 0:
					t.Errorf("%s: %d of %d closed by the server: %s", what, r.resets, r.n, r.firstReset)
				case !c.onlyResets && r.longestRun >= failureThreshold:
					t.Errorf("%s: %d of %d failed, %d in a row: %s", what, r.failed, r.n, r.longestRun, r.first)
				}
			}
			if ended, _ := p.Exited(); ended {
				t.Fatalf("anyroute ended:\n%s", p.Tail(20))
			}
		})
	}
}

// closedByPeer tells a connection the server closed or reset from a timeout.
func closedByPeer(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.EPIPE) || strings.Contains(err.Error(), "server closed")
}
