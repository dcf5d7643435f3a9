package test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// faultsConfig gives one route every fault kind and an error mix: shares of one seeded draw,
// faults first, 40% left for the rule's 200.
const faultsConfig = `{
  "seed": 25,
  "metrics": {"flush_interval": "200ms"},
  "routes": [{"name": "faulty", "match": "/faulty", "body_bytes": 600,
    "errors": [{"status": 503, "rate": 0.1}],
    "faults": [
      {"kind": "reset", "rate": 0.1}, {"kind": "close", "rate": 0.1}, {"kind": "hang", "rate": 0.05},
      {"kind": "slow_body", "rate": 0.05, "bytes_per_second": 2000},
      {"kind": "truncate", "rate": 0.1}, {"kind": "malformed", "rate": 0.1}]}]
}`

// faultShares are faultsConfig's shares, by the code each is counted under.
var faultShares = map[string]float64{"reset": 0.1, "close": 0.1, "hang": 0.05, "slow_body": 0.05, "truncate": 0.1,
	"malformed": 0.1, "503": 0.1, "200": 0.4}

// clientHangTimeout is how long a raw client waits for a first byte before it calls the answer a
// hang and leaves: far past any real answer of the faulty route on a loaded machine.
const clientHangTimeout = 2500 * time.Millisecond

// slowBody is how long a body may take to read before the client calls it dribbled: a normal
// answer's body arrives with its head, a slow_body's 800 bytes at 2000 B/s take 0.4 s.
const slowBody = 150 * time.Millisecond

// seen is what a raw client saw of one answer: the code it is counted under, and for a dribbled
// body its bytes and how long they took.
type seen struct {
	code  string
	bytes int
	took  time.Duration
}

// rawGet makes one request on a new connection and tells what came back, as a client that knows
// nothing of anyroute would: a reset (ECONNRESET before any byte), a close (EOF before any byte),
// a hang (no byte within clientHangTimeout; then the client leaves), bytes that net/http cannot
// parse as a response (malformed), a body shorter than its Content-Length (truncate), a body that
// took longer than slowBody (slow_body), or a status.
func rawGet(t *testing.T, addr, path string) seen {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Error(err)
		return seen{code: "dial failed"}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(clientHangTimeout))
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return seen{code: "write failed: " + err.Error()}
	}
	r := bufio.NewReader(conn)
	switch _, err := r.Peek(1); {
	case errors.Is(err, syscall.ECONNRESET):
		return seen{code: "reset"}
	case errors.Is(err, io.EOF):
		return seen{code: "close"}
	case isTimeout(err):
		return seen{code: "hang"}
	case err != nil:
		return seen{code: "read failed: " + err.Error()}
	}
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return seen{code: "malformed"}
	}
	defer resp.Body.Close()
	begin := time.Now()
	b, err := io.ReadAll(resp.Body)
	took := time.Since(begin)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) && int64(len(b)) < resp.ContentLength:
		return seen{code: "truncate"}
	case err != nil:
		return seen{code: "body failed: " + err.Error()}
	case took > slowBody:
		return seen{code: "slow_body", bytes: len(b), took: took}
	}
	return seen{code: strconv.Itoa(resp.StatusCode)}
}

// TestFaultsAsClientsSeeThem: over a seeded run of raw-socket clients, each fault is seen as
// designed (RST as ECONNRESET, a close before any byte, a hang until the client's own timeout, a
// dribbled body at its byte rate within 20%, fewer body bytes than Content-Length, bytes net/http
// cannot parse), each at its configured share within 5 standard errors, and app_requests_total
// counts exactly what the clients saw, per code.
func TestFaultsAsClientsSeeThem(t *testing.T) {
	p := start(t, faultsConfig)
	addr := strings.TrimPrefix(p.api, "http://")
	const n = 800
	var (
		next  atomic.Int64
		mu    sync.Mutex
		got   = map[string]int{}
		rates []float64
		wg    sync.WaitGroup
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= n {
				s := rawGet(t, addr, "/faulty")
				mu.Lock()
				got[s.code]++
				if s.code == "slow_body" {
					rates = append(rates, float64(s.bytes)/s.took.Seconds())
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for code := range got {
		if _, ok := faultShares[code]; !ok {
			t.Errorf("%d answers of an unexpected kind: %s", got[code], code)
		}
	}
	for code, share := range faultShares {
		sd := math.Sqrt(share * (1 - share) / n)
		if d := math.Abs(float64(got[code])/n - share); d > 5*sd {
			t.Errorf("%s: %d of %d answers, want a share of %g (off by %.1f standard errors)", code, got[code], n, share, d/sd)
		}
	}
	if len(rates) > 0 {
		slices.Sort(rates)
		if median := rates[len(rates)/2]; math.Abs(median/2000-1) > 0.2 {
			t.Errorf("slow bodies came at a median of %.0f B/s (of %d), want 2000 within 20%%", median, len(rates))
		}
	}

	counts, _ := requestCounts(waitCounts(t, p, n, 5*time.Second))
	for code := range faultShares {
		if c := counts["GET faulty "+code]; c != float64(got[code]) {
			t.Errorf("app_requests_total{code=%q} is %v, the clients saw %d", code, c, got[code])
		}
	}
	t.Logf("answers %v; slow body rates %.0f", got, rates)
}

// TestRateLimitHoldsItsQuota: clients at twice a route's quota for three seconds get 200 for the
// burst and the quota's rate of the rest (within 5%), and 429 with Retry-After for every other
// request; /metrics counts both as the clients saw them.
func TestRateLimitHoldsItsQuota(t *testing.T) {
	const rps, burst = 40, 10 // a burst of a quarter second, so a pause of the test's own goroutines costs no tokens
	p := start(t, fmt.Sprintf(`{"metrics": {"flush_interval": "200ms"},
  "routes": [{"name": "quota", "match": "/quota", "rate_limit": {"rps": %d, "burst": %d}}]}`, rps, burst))
	client := kit.NewClient(10 * time.Second)
	var (
		mu          sync.Mutex
		ok, refused int
		bad         []string
		wg          sync.WaitGroup
	)
	tick := time.NewTicker(time.Second / (2 * rps))
	first := time.Now()
	last, sent := first, 0
	for range tick.C {
		if last = time.Now(); last.Sub(first) >= 3*time.Second {
			break
		}
		sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(p.api + "/quota")
			if err != nil {
				mu.Lock()
				bad = append(bad, err.Error())
				mu.Unlock()
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case resp.StatusCode == 200:
				ok++
			case resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "1":
				refused++
			default:
				bad = append(bad, fmt.Sprintf("%d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After")))
			}
		}()
	}
	tick.Stop()
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d answers neither 200 nor 429 with Retry-After 1: %q", len(bad), bad[:min(len(bad), 5)])
	}
	// The bucket starts full: the burst, then the quota's rate over the time requests came in.
	allowed := min(float64(sent), burst+rps*last.Sub(first).Seconds())
	if math.Abs(float64(ok)/allowed-1) > 0.05 {
		t.Errorf("%d of %d requests answered 200 over %v, want %.0f within 5%%", ok, sent, last.Sub(first), allowed)
	}
	if refused < sent/3 {
		t.Errorf("only %d of %d refused at twice the quota", refused, sent)
	}
	counts, _ := requestCounts(waitCounts(t, p, sent, 5*time.Second))
	if counts["GET quota 200"] != float64(ok) || counts["GET quota 429"] != float64(refused) {
		t.Errorf("app_requests_total %v; the clients saw %d 200 and %d 429", counts, ok, refused)
	}
}

// TestHangEndsAtWriteTimeoutAndShutdown: a hang whose client stays is closed when
// http.write_timeout has passed, where any answer would have been cut off; and a SIGTERM during a
// hang (write_timeout far off) drains as for any open connection: the hang is closed when
// shutdown.grace ends, and the process exits 0 (the service had answered: nothing was cut), the
// hanging client seeing its connection end rather than waiting for its own timeout.
func TestHangEndsAtWriteTimeoutAndShutdown(t *testing.T) {
	const hangConfig = `{"http": {"write_timeout": %q}, "metrics": {"flush_interval": "100ms"}, "shutdown": {"grace": "2s"},
  "routes": [{"name": "stuck", "match": "/stuck", "faults": [{"kind": "hang", "rate": 1}]}]}`
	hangOn := func(p *proc, wait time.Duration) (time.Duration, error) {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(p.api, "http://"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(wait))
		if _, err := io.WriteString(conn, "GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		b, err := io.ReadAll(conn)
		if len(b) > 0 {
			t.Errorf("a hang answered %q", b)
		}
		return time.Since(begin), err
	}

	p := start(t, fmt.Sprintf(hangConfig, "1s"))
	took, err := hangOn(p, 20*time.Second)
	if err != nil || took < 900*time.Millisecond || took > 10*time.Second {
		t.Errorf("hang closed after %v (%v); want a close after write_timeout (1s), before the client's 20s", took, err)
	}

	p = start(t, fmt.Sprintf(hangConfig, "5m"))
	ended := make(chan time.Duration, 1)
	go func() {
		took, _ := hangOn(p, 60*time.Second)
		ended <- took
	}()
	kit.WaitFor(t, 5*time.Second, "the hang to be counted", func() bool {
		return p.metrics(t).Sum("app_requests_total", "code", "hang") == 1
	})
	p.SignalT(t, syscall.SIGTERM)
	if code := p.WaitExit(t, 15*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM during a hang, want 0", code)
	}
	select {
	case took := <-ended:
		if took < 1500*time.Millisecond {
			t.Errorf("the hang ended %v after it began, before the grace (2s) ran out", took)
		}
		t.Logf("the hanging client's connection ended after %v", took)
	case <-time.After(10 * time.Second):
		t.Error("the hanging client still waits after the process exited")
	}
}
