package main

import (
	"strings"
	"testing"
	"time"
)

func TestReplaceSection(t *testing.T) {
	doc := "# Benchmarks\n\nbefore\n<!-- load:begin (written by scripts/bench.sh) -->\nold\ntable\n<!-- load:end -->\nafter\n"
	text := "<!-- load:begin (written by bench/driver) -->\nnew \\n with a backslash\n<!-- load:end -->"
	want := "# Benchmarks\n\nbefore\n" + text + "\nafter\n"
	if got := replaceSection(doc, "load", text); got != want {
		t.Errorf("replaced:\n%s\nwant:\n%s", got, want)
	}
	// Another section's markers are left alone.
	if got := replaceSection(doc, "scrapes", "<!-- scrapes:begin -->\nx\n<!-- scrapes:end -->"); !strings.HasPrefix(got, doc) ||
		!strings.HasSuffix(got, "after\n\n<!-- scrapes:begin -->\nx\n<!-- scrapes:end -->\n") {
		t.Errorf("a missing section is appended after a blank line; got:\n%s", got)
	}
	// Replacing twice gives the same doc: the new markers are found again.
	once := replaceSection(doc, "load", text)
	if twice := replaceSection(once, "load", text); twice != once {
		t.Errorf("a second run changed the doc:\n%s", twice)
	}
}

// sampleResults is a run of every group, two pairs short of a verdict on one case and wide on
// another, with a peer that could not be built.
func sampleResults() *results {
	o := options{pairs: 8, window: 2 * time.Second, warmup: 3 * time.Second, connections: 64, idleConns: 5000, scrapeRounds: 2, scrapers: 8, scrapeRate: 2}
	r := newResults(o)
	r.Date, r.Machine, r.LoadBefore, r.LoadAfter = "2026-12-06", "2 cores (test)", "0.1 0.1 0.1", "0.2 0.2 0.2"
	for _, id := range []string{"bare", "none", "jaeger-const", "podinfo", "bare-call", "anyroute-call", "storm"} {
		c, _ := caseByID(id)
		r.Run = append(r.Run, c)
	}
	r.Missing["fortio"] = "go: module lookup disabled"
	w := func(cpu, rps float64) window {
		return window{wrkResult: wrkResult{RPS: rps, Requests: rps * 2, P50: 900, P99: 2000}, CPU: cpu, Wall: 2, Syscalls: rps * 6,
			RSS: 20, Heap: 3 << 20, Live: 1 << 20, UpOpen: nan()}
	}
	for i := range 8 {
		tiny := float64(i%3) * 0.002
		r.Pairs["none"] = append(r.Pairs["none"], pair{Round: i + 1, Subject: w(1.02+tiny, 50000), Base: w(1, 50000)})
		wide := float64(i%4) * 0.08
		r.Pairs["jaeger-const"] = append(r.Pairs["jaeger-const"], pair{Round: i + 1, Subject: w(1.3+wide, 50000), Base: w(1, 50000)})
		r.Pairs["podinfo"] = append(r.Pairs["podinfo"], pair{Round: i + 1, Subject: w(1.5, 50000), Base: w(1, 50000)})
		r.Pairs["anyroute-call"] = append(r.Pairs["anyroute-call"], pair{Round: i + 1, Subject: w(1.2+tiny, 20000), Base: w(1, 20000)})
	}
	for id, ps := range r.Pairs {
		c, _ := caseByID(id)
		for _, p := range ps {
			r.Windows[id] = append(r.Windows[id], p.Subject)
			r.Windows[c.Base] = append(r.Windows[c.Base], p.Base)
		}
		r.Figures[id] = &figures{RSSIdle: 17.4, Allocs: 4.2, Bytes: 420, GC: 1.1, UpAccepted: nan(), UpCalls: nan()}
	}
	r.Figures["anyroute-call"].UpAccepted, r.Figures["anyroute-call"].UpCalls = 70, 300000
	r.Traced["jaeger-const"] = "spans in Jaeger"
	r.Memory = []memoryRow{{ID: "bare", Idle: 7.4, IdleAnon: 1.1, IdleFile: 5.3, Held: 103.3, Open: 5000, Est: 5000},
		{ID: "none", Idle: 17.4, IdleAnon: 3.1, IdleFile: 14.3, Held: 116.9, Open: 5000, Est: 5000}}
	s := &stormResult{Series: 800}
	for p := 1; p <= 8; p++ {
		s.Windows = append(s.Windows,
			stormWindow{Round: 1, Pair: p, RPS: 50000, CPU: 19, Scrapes: nil},
			stormWindow{Round: 1, Pair: p, Storm: true, RPS: 48000, CPU: 19.8, Scrapes: map[string]float64{"ok": 32, "refused": 0, "p50_ms": 1.7, "gzip_bytes": 64709}})
	}
	r.Storm["storm"] = s
	return r
}

// tableShape checks that every row of each Markdown table in text has as many cells as its
// header: a row with a missing or extra column renders as a broken table.
func tableShape(t *testing.T, text string) int {
	t.Helper()
	tables, cols := 0, -1
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.HasPrefix(line, "|") {
			cols = -1
			continue
		}
		n := strings.Count(line, "|") - strings.Count(line, "\\|")
		if cols < 0 {
			cols = n
			tables++
			continue
		}
		if n != cols {
			t.Errorf("a row has %d separators, its header %d:\n%s", n, cols, line)
		}
	}
	return tables
}

func TestLoadSection(t *testing.T) {
	r := sampleResults()
	s := r.loadSection()
	if !strings.HasPrefix(s, "<!-- load:begin") || !strings.HasSuffix(s, "<!-- load:end -->") {
		t.Errorf("the section does not carry its markers:\n%s", s)
	}
	if n := tableShape(t, s); n != 4 {
		t.Errorf("%d tables, want tracing, peers, call and memory", n)
	}
	for _, want := range []string{
		"| anyroute, tracing none | `GET /bench/x` | **1.022** [1.020–1.024] | ≤ 1.05: met |",
		"≤ 1.30: inconclusive (interval ±",
		"| bare net/http | `GET /bench/x` | 1 (baseline) |",
		"spans in Jaeger",
		"could not be built: `go: module lookup disabled`",
		"| 70 / 300000 |",
		"| bare net/http | 7.4 | 1.1 / 5.3 | 103.3 | 19.6 | 5000 / 5000 / 0 |",
		"8 pairs of windows",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the section lacks %q:\n%s", want, s)
		}
	}
	// podinfo at 1.5× bare, anyroute none at 1.022×: the peer's CPU over anyroute's.
	if !strings.Contains(s, "| **1.500** [1.500–1.500] | 1.47 |") {
		t.Errorf("podinfo's row lacks its ratio to bare and to anyroute:\n%s", s)
	}
}

func TestLoadSectionOnlyGroupsThatRan(t *testing.T) {
	r := sampleResults()
	r.Run = r.Run[:2] // bare and none
	r.Missing = map[string]string{}
	r.Memory = nil
	s := r.loadSection()
	for _, absent := range []string{"### Peers", "### One upstream call", "### Memory"} {
		if strings.Contains(s, absent) {
			t.Errorf("the section has %q though no such case ran", absent)
		}
	}
	if tableShape(t, s) != 1 {
		t.Errorf("want the tracing table only:\n%s", s)
	}
}

func TestScrapesSection(t *testing.T) {
	s := sampleResults().scrapesSection()
	if !strings.HasPrefix(s, "<!-- scrapes:begin") || !strings.HasSuffix(s, "<!-- scrapes:end -->") {
		t.Errorf("markers missing:\n%s", s)
	}
	tableShape(t, s)
	// quiet 19 ÷ storm 19.8 = 0.960 in every pair: met, and 256 ok scrapes over 8 storm windows.
	for _, want := range []string{"| **0.960** [0.960–0.960] | ≥ 0.95: met |", "| 256 / 0 / 0 |", "| 800 | 64709 B |", "2 rounds of 4 pairs"} {
		if !strings.Contains(s, want) {
			t.Errorf("lacks %q:\n%s", want, s)
		}
	}
}

func TestStormRefusedMisses(t *testing.T) {
	r := sampleResults()
	r.Storm["storm"].Windows[1].Scrapes["refused"] = 3
	if s := r.scrapesSection(); !strings.Contains(s, "3 scrapes refused: **missed**") {
		t.Errorf("a refused scrape did not miss the target:\n%s", s)
	}
}

func TestReadmeParagraph(t *testing.T) {
	p := sampleResults().readmeParagraph()
	lines := strings.Split(p, "\n")
	if !strings.HasPrefix(lines[0], "<!-- perf:begin") || lines[len(lines)-1] != "<!-- perf:end -->" {
		t.Errorf("markers missing:\n%s", p)
	}
	for _, l := range lines[1 : len(lines)-1] {
		if n := len([]rune(l)); n > 100 {
			t.Errorf("a line of %d characters: %q", n, l)
		}
	}
	flat := strings.Join(lines, " ")
	for _, want := range []string{"**1.02×** (95% interval 1.02–1.02)", "jaeger **1.", ", inconclusive: wider than ±3%)", "0.68× podinfo 6.9.2's", "RSS is 1.13× the bare server's (idle, 2.4×)"} {
		if !strings.Contains(flat, want) {
			t.Errorf("lacks %q:\n%s", want, p)
		}
	}
}

func TestVerdict(t *testing.T) {
	tight := Estimate{N: 20, Median: 1.04, Lo: 1.03, Hi: 1.05, Coverage: 0.96}
	for _, c := range []struct {
		e       Estimate
		target  float64
		ceiling bool
		want    string
	}{
		{tight, 1.05, true, "≤ 1.05: met"},
		{tight, 1.03, true, "≤ 1.03: **missed**"},
		{tight, 1.05, false, "≥ 1.05: **missed**"},
		{tight, 0, true, ""},
		{Estimate{N: 20, Median: 1.0, Lo: 0.9, Hi: 1.1, Coverage: 0.96}, 1.05, true, "≤ 1.05: inconclusive (interval ±10.0%, wider than ±3%)"},
		{Estimate{N: 4, Median: 1.0, Lo: 1.0, Hi: 1.0, Coverage: 0.875}, 1.05, true, "≤ 1.05: inconclusive (too few pairs for a 95% interval)"},
	} {
		if got := verdict(c.e, c.target, c.ceiling); got != c.want {
			t.Errorf("verdict(%+v, %v) = %q, want %q", c.e, c.target, got, c.want)
		}
	}
}

func TestFold(t *testing.T) {
	s := strings.Repeat("word ", 50) + strings.Repeat("x", 120)
	for _, l := range strings.Split(fold(s, 30), "\n") {
		if len(l) > 30 && strings.Contains(l, " ") {
			t.Errorf("line over the width: %q", l)
		}
	}
	if strings.Join(strings.Fields(fold(s, 30)), " ") != strings.TrimSpace(s) {
		t.Error("fold lost or changed words")
	}
}

// TestProtocolsSection: the gRPC and h2c table, each case beside its own baseline, the client's
// count beside anyroute's, a peer that could not be built in its row, and no peers table for it.
func TestProtocolsSection(t *testing.T) {
	o := options{pairs: 4, window: 2 * time.Second, warmup: 3 * time.Second, connections: 64, h2Conns: 4}
	r := newResults(o)
	for _, id := range []string{"bare-grpc", "grpc", "bare-h2c", "h2c"} {
		c, _ := caseByID(id)
		r.Run = append(r.Run, c)
		r.Figures[id] = &figures{RSSIdle: 10, Allocs: 80, Bytes: 6000, GC: 2, UpAccepted: nan(), UpCalls: nan(), Counted: nan()}
	}
	r.Missing["grpc-fortio"] = "go: module lookup disabled"
	w := func(cpu, requests float64) window {
		return window{wrkResult: wrkResult{RPS: requests / 2, Requests: requests, P50: 300, P99: 2000}, CPU: cpu, Wall: 2,
			Syscalls: requests, RSS: 20, Heap: nan(), Live: nan(), UpOpen: nan()}
	}
	for i := range 4 {
		r.Pairs["grpc"] = append(r.Pairs["grpc"], pair{Round: i + 1, Subject: w(1.2, 40000), Base: w(1, 40000)})
		r.Pairs["h2c"] = append(r.Pairs["h2c"], pair{Round: i + 1, Subject: w(1.1, 30000), Base: w(1, 30000)})
	}
	for id, ps := range r.Pairs {
		c, _ := caseByID(id)
		for _, p := range ps {
			r.Windows[id] = append(r.Windows[id], p.Subject)
			r.Windows[c.Base] = append(r.Windows[c.Base], p.Base)
		}
	}
	r.Figures["grpc"].Counted, r.Figures["h2c"].Counted = 160000, 119999
	s := r.loadSection()
	if n := tableShape(t, s); n != 1 {
		t.Errorf("%d tables, want the protocols one alone:\n%s", n, s)
	}
	for _, want := range []string{
		"### gRPC and h2c",
		"| anyroute, gRPC | unary `/fgrpc.PingServer/Ping` | **1.200** (range 1.200–1.200; 4 pairs, too few for 95%) |",
		"| bare net/http, h2c | `GET /bench/x` (h2c) | 1 (baseline) |",
		"| fortio 1.63.0, gRPC ping | unary `/fgrpc.PingServer/Ping` | could not be built: `go: module lookup disabled` |",
		"| none | 160000 / 160000 |", "| none | 120000 / 119999 |", "| none | 160000 / - |",
		"64 calls in flight spread evenly over 4 HTTP/2 connections",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the section lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "### Peers") {
		t.Errorf("a peers section for a protocols case:\n%s", s)
	}
	flat := strings.Join(strings.Fields(r.readmeParagraph()), " ")
	if want := "Its gRPC listener uses **1.20×** (range 1.20–1.20) the CPU per call of a bare grpc-go server echoing the same message, and its API over h2c **1.10×** (range 1.10–1.10) that of bare net/http over h2c."; !strings.Contains(flat, want) {
		t.Errorf("the README paragraph lacks %q:\n%s", want, flat)
	}
}

// TestSectionsNameTheirOwnBuilds: each section says how its own peers were built, not every peer
// of the run (the gRPC paragraph named podinfo's build).
func TestSectionsNameTheirOwnBuilds(t *testing.T) {
	r := sampleResults()
	c, _ := caseByID("grpc-fortio")
	r.Run = append(r.Run, c)
	r.Builds = map[string]string{"podinfo": "podinfo 6.9.2 (built P)", "fortio": "built F"}
	s := r.loadSection()
	peers := s[strings.Index(s, "### Peers"):strings.Index(s, "### gRPC and h2c")]
	protocols := s[strings.Index(s, "### gRPC and h2c"):]
	if !strings.Contains(peers, "Builds: podinfo: podinfo 6.9.2 (built P).") {
		t.Errorf("the peers section does not name podinfo's build alone:\n%s", peers)
	}
	if !strings.Contains(protocols, "Builds: fortio: built F.") {
		t.Errorf("the gRPC section does not name fortio's build alone:\n%s", protocols)
	}
}
