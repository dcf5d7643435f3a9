package transport

import (
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// GRPCServerOptions configure the gRPC server.
type GRPCServerOptions struct {
	// MaxRecvBytes is the largest message read (http.max_body_bytes): grpc-go refuses a larger
	// one RESOURCE_EXHAUSTED, and the service counts it as 413.
	MaxRecvBytes int
	// MaxHeaderBytes bounds a call's metadata (http.max_header_bytes, as for a request's head):
	// grpc-go refuses a call past it before any handler sees it, so such a call is not counted.
	MaxHeaderBytes int
	Health         *Health
}

// NewGRPCServer returns the gRPC listener's server: calls to any service it does not define go to
// h.Unknown; it defines anyroute.v1.Echo (answered through h too), the health service and server
// reflection, which lists them. Its codec passes raw bytes to h (Codec).
func NewGRPCServer(h *GRPCHandler, o GRPCServerOptions) *grpc.Server {
	s := grpc.NewServer(
		grpc.ForceServerCodec(Codec{}),
		grpc.UnknownServiceHandler(h.Unknown),
		grpc.MaxRecvMsgSize(o.MaxRecvBytes),
		grpc.MaxHeaderListSize(uint32(o.MaxHeaderBytes)),
	)
	registerEcho(s, h)
	if o.Health != nil {
		healthpb.RegisterHealthServer(s, o.Health)
	}
	reflection.Register(s)
	return s
}
