package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	kitendpoint "github.com/go-kit/kit/endpoint"
	kittransport "github.com/go-kit/kit/transport"
	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/anyroute/anyroute/endpoint"
	"github.com/anyroute/anyroute/instrumenting"
	"github.com/anyroute/anyroute/service"
)

// Frame is one gRPC message as it came off the wire: the echo needs its bytes, never its type.
type Frame []byte

// Codec is the gRPC listener's codec: a Frame passes as raw bytes both ways, so that a call of any
// service with any message type is answered without a schema; every other message (the health and
// reflection services') is protobuf, as the standard codec would make it. Its name is "proto", the
// content subtype every client sends by default.
type Codec struct{}

// Marshal writes a Frame as it is and a proto message as protobuf.
func (Codec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case *Frame:
		return *m, nil
	case proto.Message:
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("gRPC codec: cannot marshal %T", v)
}

// Unmarshal copies the bytes into a Frame (the buffer is the transport's, reused after the call)
// and decodes them into a proto message.
func (Codec) Unmarshal(data []byte, v any) error {
	switch m := v.(type) {
	case *Frame:
		*m = append((*m)[:0], data...)
		return nil
	case proto.Message:
		return proto.Unmarshal(data, m)
	}
	return fmt.Errorf("gRPC codec: cannot unmarshal into %T", v)
}

// Name is the content subtype the codec serves.
func (Codec) Name() string { return "proto" }

// Metadata keys a call reads, as the HTTP headers of the same names (gRPC metadata keys are lower
// case): overrides of the rule's status and delay where it allows them, the request id, the hops.
const (
	mdOverrideStatus = "x-anyroute-status"
	mdOverrideDelay  = "x-anyroute-delay"
	mdRequestID      = "x-request-id"
	mdHops           = "x-anyroute-hops"
)

// Metadata keys of the echo's facts in an answer: in the header of an answer with code OK, in the
// trailer of one with another code (gRPC then sends a trailers-only answer).
const (
	MDRoute      = "x-anyroute-route"
	MDHTTPStatus = "x-anyroute-http-status" // the status the service decided, which the code maps
	MDInstance   = "x-anyroute-instance"
	MDTraceID    = "x-anyroute-trace-id"
	MDRequestID  = mdRequestID
	MDCalls      = "x-anyroute-calls" // the calls made, JSON as the HTTP echo's "calls", answers left out
	MDFault      = "x-anyroute-fault" // the fault that replaced the answer, by its config name
)

// PaddingField is the protobuf field number of a route's body_bytes padding in a gRPC answer: the
// largest a field may have, which no real schema uses, so a client of any message type parses
// the padded echo and keeps the padding as an unknown field.
const PaddingField = 536870911

// GRPCOptions configure the gRPC handler.
type GRPCOptions struct {
	Instance string                      // echoed as x-anyroute-instance
	Before   []kitgrpc.ServerRequestFunc // e.g. extracting incoming trace context
	Logger   log.Logger
	// HangFor bounds a hang fault, as Options.HangFor does for HTTP; 0 is no bound.
	HangFor time.Duration
	// Stopping, when it ends, cuts the calls still running with its cause (service.ErrStopping):
	// the end of the grace period. nil: calls end only with their own context.
	Stopping context.Context
}

// grpcCall is what the handler gives go-kit's server: the full method name and the message.
type grpcCall struct {
	method  string
	body    Frame
	tooBig  bool // the message went past the server's limit and was not read
	broken  bool // the message could not be read
	request endpoint.HandleRequest
}

// NewGRPCHandler returns the gRPC handler over the Handle endpoint: go-kit's gRPC server, the full
// method name (/pkg.Service/Method) as the path the route rules match. Unknown answers every call
// to a service the server does not define (grpc.UnknownServiceHandler); anyroute.v1.Echo answers
// through it too (grpcecho.go). Every call is answered as a unary one: its first message is read,
// and the call ends with the code the service decided.
func NewGRPCHandler(ep kitendpoint.Endpoint, o GRPCOptions) *GRPCHandler {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	h := &GRPCHandler{o: o}
	h.server = kitgrpc.NewServer(ep, decodeGRPC, encodeGRPC,
		kitgrpc.ServerBefore(o.Before...),
		kitgrpc.ServerErrorHandler(kittransport.NewLogErrorHandler(
			log.With(level.Warn(o.Logger), "msg", "call failed in transport"))),
	)
	return h
}

// GRPCHandler answers gRPC calls through the Handle endpoint.
type GRPCHandler struct {
	o      GRPCOptions
	server *kitgrpc.Server
}

// Unknown answers a call of any service the server does not define with the raw echo.
func (h *GRPCHandler) Unknown(_ any, stream grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(stream)
	if !ok {
		return status.Error(codes.Internal, "no method name")
	}
	var body Frame
	out, err := h.answer(stream.Context(), method, &body, stream.RecvMsg, echoFrame)
	if err != nil {
		return err
	}
	return stream.SendMsg(&out)
}

// reply makes the message of an answer with code OK from the request's.
type reply func(resp *endpoint.HandleResponse, body Frame) Frame

// echoFrame is the unknown services' reply: the request message, padded as the route says.
func echoFrame(resp *endpoint.HandleResponse, body Frame) Frame {
	if resp.Padding > 0 {
		return appendPaddingField(body, resp.Padding)
	}
	return body
}

// answer reads a call's message with recv, has the service decide its answer, and returns the
// message to send, or the status to end the call with; the echo's facts go into the header or the
// trailer (grpc.SetHeader, grpc.SetTrailer on ctx), so a streaming and a unary handler share it.
func (h *GRPCHandler) answer(ctx context.Context, method string, body *Frame, recv func(any) error, makeReply reply) (Frame, error) {
	call := &grpcCall{method: method}
	if err := recv(body); err != nil {
		// grpc-go has already answered the failure itself; the service still decides, and
		// counts, what it would have answered: 413 or 400.
		switch status.Code(err) {
		case codes.ResourceExhausted: // past the server's limit
			call.tooBig = true
		case codes.Canceled, codes.DeadlineExceeded:
			return nil, err // the client is gone before it sent its message: nothing to answer
		default:
			call.broken = true
		}
	}
	call.body = *body
	if h.o.Stopping != nil {
		cut, cancel := context.WithCancelCause(ctx)
		stop := context.AfterFunc(h.o.Stopping, func() { cancel(context.Cause(h.o.Stopping)) })
		defer func() { stop(); cancel(nil) }()
		ctx = cut
	}
	_, response, err := h.server.ServeGRPC(ctx, call)
	if err != nil {
		return nil, status.Error(codes.Internal, http.StatusText(http.StatusInternalServerError))
	}
	resp := response.(*endpoint.HandleResponse)
	md := h.facts(resp)
	if f := resp.Fault; f != nil {
		return h.fault(ctx, md, makeReply(resp, call.body), f)
	}
	code := GRPCCode(resp.Status, resp.GRPCCode)
	if code != codes.OK {
		_ = grpc.SetTrailer(ctx, md)
		return nil, status.Error(code, publicMessage(resp.Err, resp.Status))
	}
	if err := grpc.SetHeader(ctx, md); err != nil {
		return nil, err
	}
	return makeReply(resp, call.body), nil
}

// decodeGRPC makes the service's request of a call: method GRPC, the full method name as the
// path, the message's size as the body's, overrides, request id and hops from its metadata.
func decodeGRPC(ctx context.Context, request any) (any, error) {
	call := request.(*grpcCall)
	md, _ := metadata.FromIncomingContext(ctx)
	call.request = endpoint.HandleRequest{Request: service.Request{
		Method:         instrumenting.MethodGRPC,
		Path:           call.method,
		BodyBytes:      int64(len(call.body)),
		BodyTooLarge:   call.tooBig,
		BodyBroken:     call.broken,
		RequestID:      requestID(md[mdRequestID]),
		Hops:           hops(md[mdHops]),
		OverrideStatus: first(md[mdOverrideStatus]),
		OverrideDelay:  first(md[mdOverrideDelay]),
	}}
	return &call.request, nil
}

// encodeGRPC passes the endpoint's response on: the handler writes it, since what it writes
// depends on the stream (header, message, trailer, or a fault).
func encodeGRPC(_ context.Context, response any) (any, error) { return response, nil }

// facts are the echo's facts as metadata.
func (h *GRPCHandler) facts(resp *endpoint.HandleResponse) metadata.MD {
	md := metadata.MD{
		MDRoute:      {resp.Route},
		MDHTTPStatus: {strconv.Itoa(resp.Status)},
		MDInstance:   {h.o.Instance},
	}
	if resp.RequestID != "" {
		md[MDRequestID] = []string{resp.RequestID}
	}
	if resp.Request != nil && resp.Request.TraceID != "" {
		md[MDTraceID] = []string{resp.Request.TraceID}
	}
	if len(resp.Calls) > 0 {
		calls := make([]service.CallResult, len(resp.Calls))
		for i, c := range resp.Calls {
			c.Answer, c.AnswerOmitted = nil, "" // metadata is for facts; answers can be large
			calls[i] = c
		}
		b := appendCalls(nil, calls)
		md[MDCalls] = []string{string(b[len(`,"calls":`):])}
	}
	return md
}

// fault carries out a fault where gRPC allows one: a handler has no hold on the connection, so
// reset and close end the call UNAVAILABLE (what a client sees of a broken connection); hang
// answers nothing until the client gives up, the server stops or HangFor passes; slow_body sends
// the echo after as long as its bytes take at the fault's rate; truncate sends half the echo, and
// malformed a message no protobuf parser accepts.
func (h *GRPCHandler) fault(ctx context.Context, md metadata.MD, body Frame, f *service.Fault) (Frame, error) {
	label, _ := instrumenting.FaultCodeLabel(instrumenting.FaultCode(f.Kind))
	md[MDFault] = []string{label}
	switch f.Kind {
	case service.FaultHang:
		var timeout <-chan time.Time
		if h.o.HangFor > 0 {
			t := time.NewTimer(h.o.HangFor)
			defer t.Stop()
			timeout = t.C
		}
		_ = grpc.SetTrailer(ctx, md)
		select {
		case <-ctx.Done(): // the client's deadline or cancel (its own status), or the server's stop
			if cause := context.Cause(ctx); errors.Is(cause, service.ErrStopping) {
				return nil, status.Error(codes.Unavailable, "injected fault: hang, cut by the server's stop")
			}
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-timeout:
			return nil, status.Error(codes.Unavailable, "injected fault: hang")
		}
	case service.FaultSlowBody:
		if f.BytesPerSecond > 0 {
			d := time.Duration(float64(len(body)) / float64(f.BytesPerSecond) * float64(time.Second))
			sleepUntil(ctx, d)
		}
	case service.FaultTruncate:
		body = body[:len(body)/2]
	case service.FaultMalformed:
		body = Frame{0xff} // a tag varint cut short
	default: // reset, close
		_ = grpc.SetTrailer(ctx, md)
		return nil, status.Error(codes.Unavailable, "injected fault: "+label)
	}
	if err := grpc.SetHeader(ctx, md); err != nil {
		return nil, err
	}
	return body, nil
}

func sleepUntil(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// appendPaddingField appends n bytes of padding to a message as the bytes field PaddingField.
func appendPaddingField(b Frame, n int) Frame {
	out := make([]byte, 0, len(b)+n+16)
	out = append(out, b...)
	out = protowire.AppendTag(out, PaddingField, protowire.BytesType)
	out = protowire.AppendVarint(out, uint64(n))
	return appendPadding(out, n)
}

// GRPCCode is the gRPC code of an answer: the rule's explicit one when it has one (explicit, 1 to
// 16), else the code the HTTP status maps to, the inverse of google.rpc.Code's HTTP mapping: 2xx
// and 3xx OK; 400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND,
// 409 ABORTED, 412 FAILED_PRECONDITION, 413 and 429 RESOURCE_EXHAUSTED, 416 OUT_OF_RANGE, 499
// CANCELLED, 501 UNIMPLEMENTED, 502 and 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED; any other 4xx
// FAILED_PRECONDITION, any other 5xx INTERNAL (500, 508 among them).
func GRPCCode(httpStatus int, explicit uint8) codes.Code {
	if explicit > 0 && explicit <= 16 {
		return codes.Code(explicit)
	}
	switch httpStatus {
	case 400:
		return codes.InvalidArgument
	case 401:
		return codes.Unauthenticated
	case 403:
		return codes.PermissionDenied
	case 404:
		return codes.NotFound
	case 409:
		return codes.Aborted
	case 412:
		return codes.FailedPrecondition
	case 413, 429:
		return codes.ResourceExhausted
	case 416:
		return codes.OutOfRange
	case service.StatusClientClosed:
		return codes.Canceled
	case 501:
		return codes.Unimplemented
	case 502, 503:
		return codes.Unavailable
	case 504:
		return codes.DeadlineExceeded
	}
	switch {
	case httpStatus < 400:
		return codes.OK
	case httpStatus < 500:
		return codes.FailedPrecondition
	}
	return codes.Internal
}
