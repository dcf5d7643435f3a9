// Package endpoint adapts the service to go-kit's endpoint model, the layer every transport and
// endpoint middleware (tracing, logging, instrumenting) works on.
package endpoint

import (
	"context"

	kitendpoint "github.com/go-kit/kit/endpoint"

	"github.com/anyroute/anyroute/service"
)

// HandleRequest is the request of the Handle endpoint.
type HandleRequest struct {
	service.Request
}

// HandleResponse is the response of the Handle endpoint, with the request it answers (the body
// echoes it, its trace id included: Request.TraceID, which the tracing middleware set). Errors,
// business or not, ride in Response.Err, so that one encoder decides the status and every answer
// takes the same path. Request points to the decoder's HandleRequest rather than copying it: a
// copy would make every response 128 bytes larger, while the request lives as long anyway.
// Nil is the zero request.
type HandleResponse struct {
	service.Response
	Request *service.Request
}

// Failed implements go-kit's endpoint.Failer, so middlewares can tell failures apart.
func (r *HandleResponse) Failed() error { return r.Err }

// MakeHandleEndpoint returns the endpoint that calls Service.Handle.
func MakeHandleEndpoint(s service.Service) kitendpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(*HandleRequest)
		resp, err := s.Handle(ctx, req.Request)
		if resp.Err == nil {
			resp.Err = err
		}
		return &HandleResponse{Response: resp, Request: &req.Request}, nil
	}
}
