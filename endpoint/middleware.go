package endpoint

import (
	"context"
	"math/rand/v2"
	"time"

	kitendpoint "github.com/go-kit/kit/endpoint"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// AccessLog logs a sample of requests at level info: sample is the fraction logged, 0 none, 1 all.
// A full access log costs more than the rest of the request path together, so it is off by default
// and sampling lets a load test keep a trickle of examples. With sample 0 the endpoint is returned
// unwrapped. A traced request's line names its trace (Request.TraceID, which the tracing
// middleware outside resolved).
func AccessLog(logger log.Logger, sample float64) kitendpoint.Middleware {
	logger = level.Info(logger)
	return func(next kitendpoint.Endpoint) kitendpoint.Endpoint {
		if sample <= 0 {
			return next
		}
		return func(ctx context.Context, request any) (any, error) {
			if sample < 1 && rand.Float64() >= sample {
				return next(ctx, request)
			}
			begin := time.Now()
			response, err := next(ctx, request)
			req := request.(*HandleRequest)
			kv := []any{"msg", "request", "method", req.Method, "path", req.Path, "took", time.Since(begin)}
			if resp, ok := response.(*HandleResponse); ok {
				kv = append(kv, "route", resp.Route, "status", resp.Status)
				if resp.Fault != nil { // the transport breaks the answer instead of writing it
					kv = append(kv, "fault", resp.Fault.Kind.String())
				}
				if resp.Err != nil {
					kv = append(kv, "err", resp.Err)
				}
			}
			if err != nil {
				kv = append(kv, "err", err)
			}
			if req.TraceID != "" {
				kv = append(kv, "trace_id", req.TraceID)
			}
			_ = logger.Log(kv...)
			return response, err
		}
	}
}
