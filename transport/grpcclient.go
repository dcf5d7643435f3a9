package transport

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	kitendpoint "github.com/go-kit/kit/endpoint"
	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/anyroute/anyroute/service"
)

// GRPCClientOptions configure the upstream gRPC client.
type GRPCClientOptions struct {
	Before     []kitgrpc.ClientRequestFunc // e.g. injecting the trace context
	Middleware kitendpoint.Middleware      // around every call, e.g. its client span; nil: none
}

// NewGRPCCaller returns the Caller that makes the gRPC calls of routes (grpc://host:port/pkg.Service/
// Method) through go-kit gRPC client endpoints: an empty message (valid for any message type) sent
// with x-request-id, the hop count and, by the Before funcs, the trace context in its metadata.
// One connection per address, kept for the process's life, and one endpoint per method: both are
// as many as the configs name, which bounds them.
func NewGRPCCaller(o GRPCClientOptions) service.Caller {
	return &grpcCaller{o: o, conns: map[string]*grpc.ClientConn{}, eps: map[string]kitendpoint.Endpoint{}}
}

type grpcCaller struct {
	o     GRPCClientOptions
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	eps   map[string]kitendpoint.Endpoint // by URL
}

// endpoint returns the URL's client endpoint, made at its first call.
func (c *grpcCaller) endpoint(url, addr, method string) (kitendpoint.Endpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ep, ok := c.eps[url]; ok {
		return ep, nil
	}
	conn, ok := c.conns[addr]
	if !ok {
		var err error
		conn, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(Codec{})), grpc.WithUnaryInterceptor(keepFacts))
		if err != nil {
			return nil, err
		}
		c.conns[addr] = conn
	}
	svc, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	ep := kitgrpc.NewClient(conn, svc, name, encodeGRPCCall, decodeGRPCCall, Frame{},
		kitgrpc.ClientBefore(append([]kitgrpc.ClientRequestFunc{callMetadata}, c.o.Before...)...)).Endpoint()
	if c.o.Middleware != nil {
		ep = c.o.Middleware(ep)
	}
	c.eps[url] = ep
	return ep, nil
}

// callFacts holds what an upstream answered in metadata, which go-kit's client gives its
// after-funcs only on success: keepFacts, an interceptor, takes it whatever the outcome.
type callFacts struct{ header, trailer metadata.MD }

type callFactsKey struct{}

func keepFacts(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if f, ok := ctx.Value(callFactsKey{}).(*callFacts); ok {
		opts = append(opts, grpc.Header(&f.header), grpc.Trailer(&f.trailer))
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// callMetadata writes the call's request id and hop count.
func callMetadata(ctx context.Context, md *metadata.MD) context.Context {
	if req, ok := ctx.Value(callRequestKey{}).(service.CallRequest); ok {
		(*md)[mdRequestID] = []string{req.RequestID}
		(*md)[mdHops] = []string{strconv.Itoa(req.Hops)}
	}
	return ctx
}

type callRequestKey struct{}

func encodeGRPCCall(context.Context, any) (any, error) { return &Frame{}, nil }

func decodeGRPCCall(_ context.Context, reply any) (any, error) { return reply, nil }

// Call makes one gRPC call and reports how it went; it never fails itself. The status is the one
// an anyroute upstream names in its answer (x-anyroute-http-status), else the HTTP twin of the
// code (google.rpc.Code's mapping); an UNAVAILABLE that came with no metadata at all is no answer
// (the connection failed). The answer nested in the echo is the upstream's facts.
func (c *grpcCaller) Call(ctx context.Context, req service.CallRequest) service.CallResult {
	res := service.CallResult{Name: req.Name, URL: req.URL}
	addr, method, ok := service.GRPCTarget(req.URL)
	if !ok {
		res.Err = service.ErrNoAnswer
		return res
	}
	ep, err := c.endpoint(req.URL, addr, method)
	if err != nil {
		res.Err = service.ErrNoAnswer
		return res
	}
	callCtx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	facts := &callFacts{}
	callCtx = context.WithValue(context.WithValue(callCtx, callFactsKey{}, facts), callRequestKey{}, req)
	begin := time.Now()
	_, err = ep(callCtx, req)
	res.Duration = time.Since(begin)
	code := status.Code(err)
	answered := len(facts.header) > 0 || len(facts.trailer) > 0
	switch {
	case ctx.Err() != nil:
		res.Err = context.Cause(ctx)
	case errors.Is(callCtx.Err(), context.DeadlineExceeded) || (code == codes.DeadlineExceeded && !answered):
		res.Err = service.ErrCallTimeout
	case !answered && code != codes.OK:
		res.Err = service.ErrNoAnswer
	default:
		res.Status, res.Answer = answerOf(code, facts)
	}
	return res
}

// answerOf reads an answer's status and the facts to nest in the echo, JSON.
func answerOf(code codes.Code, f *callFacts) (int, []byte) {
	md := f.header
	if code != codes.OK {
		md = f.trailer
	}
	st := HTTPStatus(code)
	fact := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if n, err := strconv.Atoi(fact(MDHTTPStatus)); err == nil && n >= 100 && n <= 999 {
		st = n
	}
	answer := map[string]string{"grpc_code": codeName(code)}
	for key, md := range map[string]string{"route": MDRoute, "http_status": MDHTTPStatus, "instance": MDInstance,
		"trace_id": MDTraceID, "request_id": MDRequestID} {
		if v := fact(md); v != "" && len(v) <= 256 {
			answer[key] = v
		}
	}
	b, err := json.Marshal(answer) // valid UTF-8 and JSON whatever the values: Marshal replaces bad bytes
	if err != nil {
		return st, nil
	}
	return st, b
}

// codeNames are the codes as google.rpc.Code (and grpc_code in the config) spells them.
var codeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

func codeName(c codes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "UNKNOWN"
}

// HTTPStatus is the HTTP twin of a gRPC code, google.rpc.Code's mapping.
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return 200
	case codes.Canceled:
		return service.StatusClientClosed
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return 400
	case codes.DeadlineExceeded:
		return 504
	case codes.NotFound:
		return 404
	case codes.AlreadyExists, codes.Aborted:
		return 409
	case codes.PermissionDenied:
		return 403
	case codes.Unauthenticated:
		return 401
	case codes.ResourceExhausted:
		return 429
	case codes.Unimplemented:
		return 501
	case codes.Unavailable:
		return 503
	}
	return 500 // UNKNOWN, INTERNAL, DATA_LOSS
}

// SchemeCaller sends each call to the caller of its URL's scheme: grpc:// to grpcCaller, every
// other to httpCaller.
func SchemeCaller(httpCaller, grpcCaller service.Caller) service.Caller {
	return schemeCaller{http: httpCaller, grpc: grpcCaller}
}

type schemeCaller struct{ http, grpc service.Caller }

func (s schemeCaller) Call(ctx context.Context, req service.CallRequest) service.CallResult {
	if strings.HasPrefix(req.URL, "grpc://") {
		return s.grpc.Call(ctx, req)
	}
	return s.http.Call(ctx, req)
}
