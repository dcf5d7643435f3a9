// Command grpc is the baseline of anyroute's gRPC listener in the load benchmarks: a bare grpc-go
// server that answers a call of any service and method (an unknown-service handler) with the
// request message echoed back, bytes in, bytes out (a raw codec named "proto", as anyroute's
// transport.Codec is), and the echo's facts in the response header as anyroute sends them with
// code OK (x-anyroute-route, x-anyroute-http-status, x-anyroute-instance, x-request-id: the
// caller's, or a new one). No metrics, no interceptors, no route rules: the comparison is about
// what anyroute adds on top of grpc-go. Its limits are anyroute's defaults (http.max_body_bytes
// for a message, http.max_header_bytes for a call's metadata).
//
// With -metrics ADDR it serves the Go runtime's figures the bench driver reads from every server
// (bench/internal/runtimemetrics), as bench/bare does.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/anyroute/anyroute/bench/internal/rawcodec"
	"github.com/anyroute/anyroute/bench/internal/requestid"
	"github.com/anyroute/anyroute/bench/internal/runtimemetrics"
)

// anyroute's defaults: http.max_body_bytes and http.max_header_bytes.
const (
	maxRecvBytes   = 1 << 20
	maxHeaderBytes = 64 << 10
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9090", "listen address")
	metricsAddr := flag.String("metrics", "", "serve the Go runtime's figures on this address (GET /metrics)")
	flag.Parse()
	if *metricsAddr != "" {
		go func() { log.Fatal(http.ListenAndServe(*metricsAddr, http.HandlerFunc(runtimemetrics.Serve))) }()
	}
	instance, _ := os.Hostname()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(newServer(instance).Serve(ln))
}

func newServer(instance string) *grpc.Server {
	return grpc.NewServer(
		grpc.ForceServerCodec(rawcodec.Codec{}),
		grpc.UnknownServiceHandler(echoHandler(instance)),
		grpc.MaxRecvMsgSize(maxRecvBytes),
		grpc.MaxHeaderListSize(maxHeaderBytes),
	)
}

// echoHandler answers every call with its first message, as anyroute answers every call as a
// unary one.
func echoHandler(instance string) grpc.StreamHandler {
	return func(_ any, stream grpc.ServerStream) error {
		var msg []byte
		if err := stream.RecvMsg(&msg); err != nil {
			return err
		}
		md, _ := metadata.FromIncomingContext(stream.Context())
		if err := stream.SetHeader(metadata.MD{
			"x-anyroute-route":       {"other"},
			"x-anyroute-http-status": {"200"},
			"x-anyroute-instance":    {instance},
			"x-request-id":           {requestID(md["x-request-id"])},
		}); err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		return stream.SendMsg(&msg)
	}
}

// requestID is the caller's x-request-id, or a new one of 32 hex digits.
func requestID(vs []string) string {
	if len(vs) > 0 && vs[0] != "" {
		return vs[0]
	}
	return requestid.New()
}
