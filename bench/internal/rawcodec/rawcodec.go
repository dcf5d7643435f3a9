// Package rawcodec is the gRPC codec of the bench's own gRPC programs (the bare echo and rpcload):
// a message is a *[]byte passed as it is, both ways, so that neither needs a schema nor pays for
// protobuf. They share it so that the baseline server and the load client frame messages the
// same way; it stays apart from anyroute's transport.Codec so that the baseline imports nothing
// of the service it is measured against.
package rawcodec

import "fmt"

// Codec passes a *[]byte message's bytes as they are. Its name is "proto", the content subtype
// every gRPC client sends by default.
type Codec struct{}

// Marshal returns the message's bytes.
func (Codec) Marshal(v any) ([]byte, error) {
	if b, ok := v.(*[]byte); ok {
		return *b, nil
	}
	return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
}

// Unmarshal copies: the buffer is the transport's, reused after the call.
func (Codec) Unmarshal(data []byte, v any) error {
	if b, ok := v.(*[]byte); ok {
		*b = append((*b)[:0], data...)
		return nil
	}
	return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
}

// Name is the content subtype the codec serves.
func (Codec) Name() string { return "proto" }
