// Command rpcload is the load client of the bench driver's HTTP/2 cases, where wrk (HTTP/1.1
// only) cannot go: gRPC unary calls, or GETs over h2c with prior knowledge. It is closed-loop:
// -c workers, each with one call in flight at a time, spread evenly over -conns connections opened
// before the run (worker i on connection i mod conns), for -d. When -d is up no worker starts
// another call, and every call in flight is waited for, so each call started is counted once,
// answered or failed: its count is what the server saw, to the call.
//
// It prints one "key value" line each: calls (started and finished), ok, errors, seconds (from
// the first call to the last answer), rps (calls a second), p50_us, p99_us, and a line
// "error N: text" for each kind of failure.
//
//	rpcload -proto grpc -addr 127.0.0.1:9090 -target /fgrpc.PingServer/Ping -c 64 -conns 4 -d 2s
//	rpcload -proto h2c -addr 127.0.0.1:8080 -target /bench/x -c 64 -conns 4 -d 2s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/anyroute/anyroute/bench/internal/rawcodec"
)

// callTimeout bounds one call: one that takes longer fails, and is counted as failed.
const callTimeout = 10 * time.Second

func main() {
	proto := flag.String("proto", "grpc", "grpc (unary calls) or h2c (GETs over HTTP/2 with prior knowledge)")
	addr := flag.String("addr", "127.0.0.1:9090", "the server's host:port")
	target := flag.String("target", "", "the full method name (grpc: /pkg.Service/Method) or the path (h2c)")
	workers := flag.Int("c", 64, "calls in flight: closed-loop workers")
	conns := flag.Int("conns", 4, "connections, opened before the run")
	dur := flag.Duration("d", 2*time.Second, "how long workers start calls")
	flag.Parse()
	if *target == "" || *workers < 1 || *conns < 1 || *conns > *workers || *dur <= 0 {
		fmt.Fprintln(os.Stderr, "rpcload: -target is required; -c, -conns and -d positive; -conns at most -c")
		os.Exit(2)
	}
	var call func(ctx context.Context, conn int) error
	var closeAll func()
	var err error
	switch *proto {
	case "grpc":
		call, closeAll, err = grpcClient(*addr, *target, *conns)
	case "h2c":
		call, closeAll, err = h2cClient(*addr, *target, *conns)
	default:
		err = fmt.Errorf("-proto %q: grpc or h2c", *proto)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rpcload:", err)
		os.Exit(1)
	}
	r := run(call, *workers, *conns, *dur)
	closeAll()
	r.print(os.Stdout)
	if r.ok == 0 {
		os.Exit(1)
	}
}

// result is a run's counts and latencies.
type result struct {
	calls, ok int
	errors    map[string]int
	seconds   float64
	latencies []time.Duration
}

func run(call func(context.Context, int) error, workers, conns int, dur time.Duration) result {
	type tally struct {
		ok        int
		errors    map[string]int
		latencies []time.Duration
	}
	tallies := make([]tally, workers)
	begin := time.Now()
	deadline := begin.Add(dur)
	var wg sync.WaitGroup
	for i := range workers {
		t := &tallies[i]
		t.errors = map[string]int{}
		t.latencies = make([]time.Duration, 0, 1<<10)
		wg.Go(func() {
			for {
				start := time.Now()
				if !start.Before(deadline) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
				err := call(ctx, i%conns)
				cancel()
				t.latencies = append(t.latencies, time.Since(start))
				if err != nil {
					t.errors[describe(err)]++
				} else {
					t.ok++
				}
			}
		})
	}
	wg.Wait()
	r := result{errors: map[string]int{}, seconds: time.Since(begin).Seconds()}
	for _, t := range tallies {
		r.ok += t.ok
		r.calls += len(t.latencies)
		r.latencies = append(r.latencies, t.latencies...)
		for k, v := range t.errors {
			r.errors[k] += v
		}
	}
	slices.Sort(r.latencies)
	return r
}

// describe is a failure's kind: a gRPC status's code and message, or the error's text.
func describe(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Code().String() + ": " + s.Message()
	}
	return err.Error()
}

func (r result) print(w io.Writer) {
	errs := 0
	kinds := make([]string, 0, len(r.errors))
	for k, v := range r.errors {
		errs += v
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	pct := func(p float64) float64 {
		if len(r.latencies) == 0 {
			return 0
		}
		return float64(r.latencies[int(p*float64(len(r.latencies)-1))].Nanoseconds()) / 1e3
	}
	fmt.Fprintf(w, "calls %d\nok %d\nerrors %d\nseconds %.3f\nrps %.1f\np50_us %.1f\np99_us %.1f\n",
		r.calls, r.ok, errs, r.seconds, float64(r.calls)/r.seconds, pct(0.50), pct(0.99))
	for _, k := range kinds {
		fmt.Fprintf(w, "error %d: %s\n", r.errors[k], k)
	}
}

// grpcClient makes unary calls of method over conns connections (a grpc.ClientConn each, so one
// HTTP/2 connection each), with a raw codec: the message is fortio's PingMessage{seq: 1, payload:
// "anyroute-bench"}, which fortio's ping service decodes and the echo servers return as they got it.
func grpcClient(addr, method string, conns int) (func(context.Context, int) error, func(), error) {
	msg := protowire.AppendTag(nil, 1, protowire.VarintType)
	msg = protowire.AppendVarint(msg, 1)
	msg = protowire.AppendTag(msg, 3, protowire.BytesType)
	msg = protowire.AppendString(msg, "anyroute-bench")
	ccs := make([]*grpc.ClientConn, conns)
	closeAll := func() {
		for _, cc := range ccs {
			if cc != nil {
				cc.Close()
			}
		}
	}
	for i := range ccs {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawcodec.Codec{})))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		ccs[i] = cc
		cc.Connect()
	}
	call := func(ctx context.Context, conn int) error {
		req := msg
		var resp []byte
		if err := ccs[conn].Invoke(ctx, method, &req, &resp); err != nil {
			return err
		}
		if len(resp) == 0 {
			return errors.New("empty answer")
		}
		return nil
	}
	return call, closeAll, nil
}

// h2cClient GETs path over conns HTTP/2 connections with prior knowledge, each opened here and
// used through its own http.ClientConn, so that no pool opens more.
func h2cClient(addr, path string, conns int) (func(context.Context, int) error, func(), error) {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true) // and nothing else: HTTP/2 from the first byte
	ccs := make([]*http.ClientConn, conns)
	closeAll := func() {
		for _, cc := range ccs {
			if cc != nil {
				cc.Close()
			}
		}
	}
	for i := range ccs {
		cc, err := tr.NewClientConn(context.Background(), "http", addr)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		ccs[i] = cc
	}
	url := "http://" + addr + path
	call := func(ctx context.Context, conn int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
		if err != nil {
			return err
		}
		resp, err := ccs[conn].RoundTrip(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		if resp.ProtoMajor != 2 {
			return fmt.Errorf("answered over %s, not HTTP/2", resp.Proto)
		}
		return nil
	}
	return call, closeAll, nil
}
