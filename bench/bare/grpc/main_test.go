package main

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/anyroute/anyroute/bench/internal/rawcodec"
)

// dial starts the server on a loopback port and returns a client of the raw codec.
func dial(t *testing.T) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newServer("i")
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawcodec.Codec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestEchoAnyMethod: a call of any service and method gets its message back, byte for byte, and
// the echo's facts in the header, the caller's request id adopted.
func TestEchoAnyMethod(t *testing.T) {
	cc := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, method := range []string{"/fgrpc.PingServer/Ping", "/shop.Cart/Checkout"} {
		req := []byte{0x08, 0x01, 0x1a, 0x02, 'h', 'i', 0xff} // not even valid protobuf: bytes are bytes
		var resp []byte
		var header metadata.MD
		if err := cc.Invoke(metadata.AppendToOutgoingContext(ctx, "x-request-id", "r1"), method, &req, &resp, grpc.Header(&header)); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if !bytes.Equal(resp, req) {
			t.Errorf("%s: answered %x, sent %x", method, resp, req)
		}
		for k, want := range map[string]string{"x-anyroute-route": "other", "x-anyroute-http-status": "200", "x-anyroute-instance": "i", "x-request-id": "r1"} {
			if got := header.Get(k); len(got) != 1 || got[0] != want {
				t.Errorf("%s: header %s %v, want %q", method, k, got, want)
			}
		}
	}
}

// TestEchoMakesARequestID: without the caller's, a request id of 32 hex digits, new per call.
func TestEchoMakesARequestID(t *testing.T) {
	cc := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids := map[string]bool{}
	for range 2 {
		req, resp := []byte("x"), []byte(nil)
		var header metadata.MD
		if err := cc.Invoke(ctx, "/a.B/C", &req, &resp, grpc.Header(&header)); err != nil {
			t.Fatal(err)
		}
		id := header.Get("x-request-id")
		if len(id) != 1 || len(id[0]) != 32 {
			t.Fatalf("request id %v", id)
		}
		ids[id[0]] = true
	}
	if len(ids) != 2 {
		t.Errorf("two calls, request ids %v", ids)
	}
}

// TestMessageLimit: a message past anyroute's default http.max_body_bytes is refused
// RESOURCE_EXHAUSTED, as anyroute's listener refuses it.
func TestMessageLimit(t *testing.T) {
	cc := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, resp := make([]byte, maxRecvBytes+1), []byte(nil)
	if err := cc.Invoke(ctx, "/a.B/C", &req, &resp); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a message of %d bytes: %v, want RESOURCE_EXHAUSTED", len(req), err)
	}
}
