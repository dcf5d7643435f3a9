package main

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/anyroute/anyroute/config"
)

const wrkOutput = `Running 2s test @ http://127.0.0.1:18101/bench/x
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms  500.00us  12.00ms   90.00%
    Req/Sec    30.00k     1.00k   32.00k    70.00%
  Latency Distribution
     50%  850.00us
     75%    1.20ms
     90%    1.80ms
     99%    1.01s
  59284 requests in 2.00s, 20.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 0
  Non-2xx or 3xx responses: 7
Requests/sec:  29642.00
Transfer/sec:     10.00MB
`

// TestParseRPCLoad: every call is a request, answered or failed; the failures are named; an
// output cut short is refused.
func TestParseRPCLoad(t *testing.T) {
	out := "calls 1203\nok 1200\nerrors 3\nseconds 1.001\nrps 1201.8\np50_us 350.5\np99_us 2100.0\n" +
		"error 2: Unavailable: injected fault: reset\nerror 1: context deadline exceeded\n"
	r, err := parseRPCLoad(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 1203 || r.RPS != 1201.8 || r.P50 != 350.5 || r.P99 != 2100 {
		t.Errorf("parsed %+v", r)
	}
	if r.Errors != "3 calls failed: 2: Unavailable: injected fault: reset; 1: context deadline exceeded" {
		t.Errorf("errors %q", r.Errors)
	}
	clean, err := parseRPCLoad("calls 5\nok 5\nerrors 0\nseconds 1\nrps 5\np50_us 1\np99_us 2\n")
	if err != nil || clean.Errors != "" || clean.Requests != 5 {
		t.Errorf("a clean run: %+v, %v", clean, err)
	}
	for _, bad := range []string{"", "calls 5\nok 5\n", "calls 0\nok 0\nerrors 0\nseconds 1\nrps 0\np50_us 0\np99_us 0\n", "rpcload: dial tcp: connection refused\n"} {
		if _, err := parseRPCLoad(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 59284 || r.RPS != 29642 || r.P50 != 850 || r.P99 != 1.01e6 {
		t.Errorf("parsed %+v", r)
	}
	if r.Errors != "Socket errors: connect 0, read 3, write 0, timeout 0; Non-2xx or 3xx responses: 7" {
		t.Errorf("errors %q", r.Errors)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("an output without requests parsed")
	}
}

func TestParseLatency(t *testing.T) {
	for in, want := range map[string]float64{"850.00us": 850, "1.23ms": 1230, "1.01s": 1.01e6, "2.00m": 120e6} {
		if got := parseLatency(in); math.Abs(got-want) > 1e-6 {
			t.Errorf("%s = %v µs, want %v", in, got, want)
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with a space and a parenthesis: fields count from the last ')'.
	line := "4242 (any) route) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 9 0 100 0 0\n"
	got, err := parseStatCPU([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := 300 / clockTick; got != want {
		t.Errorf("utime + stime = %v s, want %v", got, want)
	}
	if _, err := parseStatCPU([]byte("4242 (x) S 1")); err == nil {
		t.Error("a short stat line parsed")
	}
}

func TestCountEstablished(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:46D5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:46D5 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:46D5 0101007F:C351 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:C350 0100007F:46D5 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:46D5 0100007F:C352 06 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
`
	// 0x46D5 = 18133: two established at the server's side; the listener, the client's end and
	// a TIME_WAIT row are not.
	if n := countEstablished([]byte(table), 18133); n != 2 {
		t.Errorf("established on 18133 = %d, want 2", n)
	}
}

func TestParseSamples(t *testing.T) {
	page := `# HELP go_memstats_mallocs_total Total number of heap objects allocated.
# TYPE go_memstats_mallocs_total counter
go_memstats_mallocs_total 1.234e+06
go_gc_duration_seconds{quantile="0.5"} 1e-05
go_gc_duration_seconds_count 42
app_requests_total{route="a}\"b",method="GET",status="200"} 10
app_requests_total{route="b",method="GET",status="200"} 5 # {trace_id="x"} 1
`
	s := parseSamples(page)
	if s["go_memstats_mallocs_total"] != 1.234e6 || s["app_requests_total"] != 15 {
		t.Errorf("parsed %v", s)
	}
	if v, ok := s.first(metricGCCycles...); !ok || v != 42 {
		t.Errorf("GC cycles from go_gc_duration_seconds_count = %v, %v", v, ok)
	}
	if _, ok := s.first(metricHeapLive...); ok {
		t.Error("a page without the live heap gave one")
	}
}

func TestSelectCases(t *testing.T) {
	ids, whole, err := selectCases("jaeger-const anyroute-call")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bare", "jaeger-const", "bare-call", "anyroute-call"}; !slices.Equal(ids, want) || whole {
		t.Errorf("selected %v whole=%v, want %v with their baselines, not whole", ids, whole, want)
	}
	ids, whole, err = selectCases("load")
	if err != nil || !whole || slices.Contains(ids, "storm") || !slices.Contains(ids, "podinfo") {
		t.Errorf("load selected %v whole=%v err=%v", ids, whole, err)
	}
	if ids, _, _ := selectCases("all"); len(ids) != len(cases) {
		t.Errorf("all selected %d of %d cases", len(ids), len(cases))
	}
	if _, _, err := selectCases("bare,nonesuch"); err == nil {
		t.Error("an unknown case was accepted")
	}
}

// TestCaseTable: every case's baseline is a case without one, and ids are unique: the pairs
// and the ports depend on both.
func TestCaseTable(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.ID] {
			t.Errorf("case %s twice", c.ID)
		}
		seen[c.ID] = true
		if c.Base == "" {
			continue
		}
		b, ok := caseByID(c.Base)
		if !ok || b.Base != "" {
			t.Errorf("case %s: baseline %q is not a baseline case", c.ID, c.Base)
		}
		if c.Upstream != b.Upstream {
			t.Errorf("case %s and its baseline %s differ in the upstream call", c.ID, b.ID)
		}
	}
	if len(cases) > 20 {
		t.Errorf("%d cases: the port layout gives each 1 of 20", len(cases))
	}
}

// TestCaseConfigs: every anyroute case's config, its addresses filled in, is one anyroute
// accepts, with the tracing backend, sampler and upstream the case is named for; so is the
// scrape storm's.
func TestCaseConfigs(t *testing.T) {
	d := newDriver(options{portBase: 18100})
	for _, c := range cases {
		if c.Kind != kindAnyroute {
			continue
		}
		body := strings.NewReplacer("{agent}", d.jaegerAgent(), "{otlp}", d.jaegerOTLP(), "{upstream}", "127.0.0.1:18140").Replace(c.Config)
		cfg, err := config.Parse(c.ID+".json", []byte(body))
		if err != nil {
			t.Errorf("case %s: %v\n%s", c.ID, err, body)
			continue
		}
		if c.Service != "" && (cfg.Tracing.ServiceName != c.Service || cfg.Tracing.Backend == "none") {
			t.Errorf("case %s: tracing %+v", c.ID, cfg.Tracing)
		}
		if c.Upstream && (len(cfg.Routes) != 1 || len(cfg.Routes[0].Calls) != 1) {
			t.Errorf("case %s: routes %+v, want one route with one call", c.ID, cfg.Routes)
		}
	}
	cfg, err := config.Parse("storm.json", []byte(stormConfig()))
	if err != nil {
		t.Fatalf("the storm's config: %v", err)
	}
	if len(cfg.Routes) != stormRoutes || cfg.Metrics.MaxRoutes != stormRoutes {
		t.Errorf("the storm's config has %d routes, max_routes %d", len(cfg.Routes), cfg.Metrics.MaxRoutes)
	}
}

func TestParseStatusRSS(t *testing.T) {
	status := "Name:\tanyroute\nVmHWM:\t   20000 kB\nVmRSS:\t   17920 kB\nRssAnon:\t    3200 kB\nRssFile:\t   14720 kB\nRssShmem:\t       0 kB\nThreads:\t8\n"
	r, err := parseStatusRSS([]byte(status))
	if err != nil || r.total != 17.5 || r.anon != 3.125 || r.file != 14.375 {
		t.Errorf("got %+v, %v; want 17.5 MiB of which 3.125 anonymous and 14.375 file-backed", r, err)
	}
	// A kernel without the split still gives the whole; none at all is an error.
	r, err = parseStatusRSS([]byte("VmRSS:\t1024 kB\n"))
	if err != nil || r.total != 1 || !math.IsNaN(r.anon) || !math.IsNaN(r.file) {
		t.Errorf("VmRSS alone: %+v, %v", r, err)
	}
	if _, err := parseStatusRSS([]byte("Name:\tx\n")); err == nil {
		t.Error("no VmRSS: no error")
	}
	if _, err := parseStatusRSS([]byte("VmRSS:\tlots kB\n")); err == nil {
		t.Error("VmRSS unreadable: no error")
	}
}
