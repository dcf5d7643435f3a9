//go:build external

package main

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

// TestProtocolCasesSmoke runs the gRPC and h2c cases for one short pair each, real servers and
// real client, to prove the plumbing, not to measure: the driver builds anyroute, the bare
// servers and bench/rpcload, and fortio through scripts/tools.sh (a failure to build it fails the
// test); every window's calls are answered without an error; anyroute counted exactly the calls
// the client made in the windows, on both protocols; the bare servers' runtime figures reached
// the driver. Needs taskset and the tool chain the driver uses; about 20 s once the builds are
// cached.
func TestProtocolCasesSmoke(t *testing.T) {
	t.Chdir("../..") // the driver runs from the repository's root, as make bench runs it
	ids, _, err := selectCases("grpc grpc-fortio h2c")
	if err != nil {
		t.Fatal(err)
	}
	o := options{cases: ids, pairs: 1, window: time.Second, warmup: time.Second, connections: 8, h2Conns: 2,
		scrapeRounds: 1, scrapers: 1, scrapeRate: 1, portBase: 27400, out: t.TempDir(), goCmd: "go"}
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	// The run takes seconds; the bound is for the builds (anyroute, the bare servers, fortio),
	// which on a cold Go cache, beside make test's other suites and its background tool builds,
	// took over 5 minutes on the 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	d := newDriver(o)
	err = d.run(ctx)
	d.stopAll()
	if err != nil {
		t.Fatal(err)
	}
	r := d.res
	if len(r.Missing) > 0 {
		t.Fatalf("cases left out: %v", r.Missing)
	}
	for _, id := range []string{"grpc", "grpc-fortio", "h2c"} {
		c, _ := caseByID(id)
		if n := len(r.Pairs[id]); n != 1 {
			t.Errorf("%s: %d pairs, want 1", id, n)
		}
		for _, side := range []string{id, c.Base} {
			ws := r.Windows[side]
			if len(ws) == 0 {
				t.Errorf("%s: no windows", side)
			}
			for _, w := range ws {
				if w.Requests <= 0 || w.Errors != "" || w.CPU <= 0 {
					t.Errorf("%s: a window of %v calls, errors %q, CPU %v s", side, w.Requests, w.Errors, w.CPU)
				}
			}
		}
	}
	for _, id := range []string{"grpc", "h2c"} {
		var client float64
		for _, w := range r.Windows[id] {
			client += w.Requests
		}
		if got := r.Figures[id].Counted; got != client {
			t.Errorf("%s: anyroute counted %v calls in the windows, the client %v", id, got, client)
		}
	}
	for _, id := range []string{"bare-grpc", "bare-h2c", "grpc", "h2c"} {
		if f := r.Figures[id]; math.IsNaN(f.Allocs) || f.Allocs <= 0 || math.IsNaN(f.Bytes) {
			t.Errorf("%s: allocations per request %v, bytes %v: no runtime figures", id, f.Allocs, f.Bytes)
		}
	}
	table := r.protocolsTable()
	for _, name := range []string{"bare grpc-go", "anyroute, gRPC", "fortio 1.63.0, gRPC ping", "bare net/http, h2c", "anyroute, h2c"} {
		if !strings.Contains(table, "| "+name+" |") {
			t.Errorf("the table has no row for %s:\n%s", name, table)
		}
	}
}
