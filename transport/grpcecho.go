package transport

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/anyroute/anyroute/endpoint"
)

// EchoService is the full name of anyroute's own typed service, for clients that want a schema:
//
//	package anyroute.v1;
//	service Echo { rpc Echo(EchoRequest) returns (EchoReply); }
//	message EchoRequest { string message = 1; }
//	message EchoReply {
//	  string message = 1; string route = 2; int32 status = 3; string instance = 4;
//	  string trace_id = 5; string request_id = 6; string method = 7;
//	}
//
// Its calls are answered by the route rules like any other (path /anyroute.v1.Echo/Echo), with a
// typed reply in place of the raw echo. The descriptor is built here, in Go, so that the project
// needs no protoc; reflection serves it.
const EchoService = "anyroute.v1.Echo"

// echoFile is the service's file, registered once in protoregistry.GlobalFiles, where server
// reflection looks symbols up.
var echoFile = mustEchoFile()

func mustEchoFile() protoreflect.FileDescriptor {
	str := func(name string, n int32) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), JsonName: proto.String(jsonName(name)), Number: proto.Int32(n),
			Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()}
	}
	status := str("status", 3)
	status.Type = descriptorpb.FieldDescriptorProto_TYPE_INT32.Enum()
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("anyroute/v1/echo.proto"),
		Package: proto.String("anyroute.v1"),
		Syntax:  proto.String("proto3"),
		Options: &descriptorpb.FileOptions{GoPackage: proto.String("github.com/anyroute/anyroute/transport;transport")},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("EchoRequest"), Field: []*descriptorpb.FieldDescriptorProto{str("message", 1)}},
			{Name: proto.String("EchoReply"), Field: []*descriptorpb.FieldDescriptorProto{
				str("message", 1), str("route", 2), status, str("instance", 4), str("trace_id", 5), str("request_id", 6), str("method", 7)}},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("Echo"),
			Method: []*descriptorpb.MethodDescriptorProto{{
				Name: proto.String("Echo"), InputType: proto.String(".anyroute.v1.EchoRequest"), OutputType: proto.String(".anyroute.v1.EchoReply"),
			}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		panic(fmt.Sprintf("anyroute.v1 descriptor: %v", err))
	}
	if _, err := protoregistry.GlobalFiles.FindFileByPath(fd.Path()); err != nil {
		if err := protoregistry.GlobalFiles.RegisterFile(fd); err != nil {
			panic(fmt.Sprintf("registering anyroute.v1: %v", err))
		}
	}
	return fd
}

func jsonName(s string) string {
	out := make([]byte, 0, len(s))
	upper := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '_':
			upper = true
		case upper && 'a' <= c && c <= 'z':
			out, upper = append(out, c-'a'+'A'), false
		default:
			out, upper = append(out, c), false
		}
	}
	return string(out)
}

// registerEcho adds anyroute.v1.Echo to s, its calls answered through h.
func registerEcho(s *grpc.Server, h *GRPCHandler) {
	requestDesc := echoFile.Messages().ByName("EchoRequest")
	replyDesc := echoFile.Messages().ByName("EchoReply")
	const method = "/" + EchoService + "/Echo"
	typed := func(resp *endpoint.HandleResponse, body Frame) Frame {
		in := dynamicpb.NewMessage(requestDesc)
		_ = proto.Unmarshal(body, in) // a message that does not parse echoes as ""
		out := dynamicpb.NewMessage(replyDesc)
		fields := replyDesc.Fields()
		set := func(name string, v protoreflect.Value) { out.Set(fields.ByName(protoreflect.Name(name)), v) }
		set("message", in.Get(requestDesc.Fields().ByName("message")))
		set("route", protoreflect.ValueOfString(resp.Route))
		set("status", protoreflect.ValueOfInt32(int32(resp.Status)))
		set("instance", protoreflect.ValueOfString(h.o.Instance))
		set("request_id", protoreflect.ValueOfString(resp.RequestID))
		if resp.Request != nil {
			set("trace_id", protoreflect.ValueOfString(resp.Request.TraceID))
			set("method", protoreflect.ValueOfString(resp.Request.Path))
		}
		b, err := proto.Marshal(out)
		if err != nil {
			return nil
		}
		return echoFrame(resp, b) // the route's padding, as an unknown field
	}
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: EchoService,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Echo",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var body Frame
				out, err := h.answer(ctx, method, &body, dec, typed)
				if err != nil {
					return nil, err
				}
				return &out, nil
			},
		}},
		Metadata: echoFile.Path(),
	}, struct{}{})
}
