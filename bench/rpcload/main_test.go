package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/anyroute/anyroute/bench/internal/rawcodec"
)

// TestRunCountsEveryCall: every call started is counted once, answered or failed, the failures
// by kind; none starts after the duration; each worker keeps to its connection.
func TestRunCountsEveryCall(t *testing.T) {
	var started atomic.Int64
	var mu sync.Mutex
	late := 0
	perConn := map[int]int{}
	begin := time.Now()
	const dur = 300 * time.Millisecond
	call := func(_ context.Context, conn int) error {
		n := started.Add(1)
		mu.Lock()
		perConn[conn]++
		if time.Since(begin) > dur+time.Second { // generous: a loaded machine may pause a worker between its check and the call
			late++
		}
		mu.Unlock()
		time.Sleep(time.Millisecond)
		if n%3 == 0 {
			return errors.New("boom")
		}
		return nil
	}
	r := run(call, 6, 3, dur)
	if int64(r.calls) != started.Load() || r.ok+r.errors["boom"] != r.calls || len(r.latencies) != r.calls {
		t.Errorf("started %d; counted %d calls, %d ok, errors %v, %d latencies", started.Load(), r.calls, r.ok, r.errors, len(r.latencies))
	}
	if r.calls == 0 || r.errors["boom"] == 0 {
		t.Errorf("calls %d, errors %v", r.calls, r.errors)
	}
	if late > 0 {
		t.Errorf("%d calls started after the duration", late)
	}
	if len(perConn) != 3 {
		t.Errorf("connections used: %v, want 0, 1 and 2", perConn)
	}
	var out bytes.Buffer
	r.print(&out)
	if !strings.Contains(out.String(), "error ") || !strings.HasPrefix(out.String(), "calls ") {
		t.Errorf("summary:\n%s", out.String())
	}
}

// TestGRPCCountsMatchTheServer: against a grpc-go echo that counts what it answers, the client's
// count is the server's, over exactly the connections asked for.
func TestGRPCCountsMatchTheServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var answered atomic.Int64
	var conns atomic.Int64
	counting := &countingListener{Listener: ln, n: &conns}
	s := grpc.NewServer(grpc.ForceServerCodec(rawcodec.Codec{}), grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		var msg []byte
		if err := stream.RecvMsg(&msg); err != nil {
			return err
		}
		answered.Add(1)
		return stream.SendMsg(&msg)
	}))
	go func() { _ = s.Serve(counting) }()
	defer s.Stop()
	call, closeAll, err := grpcClient(ln.Addr().String(), "/fgrpc.PingServer/Ping", 2)
	if err != nil {
		t.Fatal(err)
	}
	r := run(call, 8, 2, 300*time.Millisecond)
	closeAll()
	if r.calls == 0 || r.ok != r.calls || int64(r.calls) != answered.Load() {
		t.Errorf("client: %d calls, %d ok, errors %v; server answered %d", r.calls, r.ok, r.errors, answered.Load())
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestH2CCountsMatchTheServer: the same over h2c, every answer over HTTP/2.
func TestH2CCountsMatchTheServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var answered, conns atomic.Int64
	srv := &http.Server{Protocols: new(http.Protocols), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && r.URL.Path == "/bench/x" {
			answered.Add(1)
		}
		_, _ = w.Write([]byte("{}"))
	})}
	srv.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = srv.Serve(&countingListener{Listener: ln, n: &conns}) }()
	defer srv.Close()
	call, closeAll, err := h2cClient(ln.Addr().String(), "/bench/x", 3)
	if err != nil {
		t.Fatal(err)
	}
	r := run(call, 9, 3, 300*time.Millisecond)
	closeAll()
	if r.calls == 0 || r.ok != r.calls || int64(r.calls) != answered.Load() {
		t.Errorf("client: %d calls, %d ok, errors %v; server answered %d over HTTP/2", r.calls, r.ok, r.errors, answered.Load())
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}
