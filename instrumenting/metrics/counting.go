package metrics

import (
	"context"
	"time"

	"github.com/anyroute/anyroute/service"
)

// Counting returns a service middleware that records every answer in agg: route, method, status
// and how long the service took. It costs a few atomic adds and no allocation, so it can stay on
// for every request.
func Counting(agg *Aggregator) service.Middleware {
	return func(next service.Service) service.Service {
		return &counting{next: next, agg: agg}
	}
}

type counting struct {
	next service.Service
	agg  *Aggregator
}

func (c *counting) Handle(ctx context.Context, req service.Request) (service.Response, error) {
	token := c.agg.Begin()
	begin := monotonic()
	resp, err := c.next.Handle(ctx, req)
	c.agg.End(token, resp.RouteID, req.Method, resp.Status, monotonic()-begin)
	return resp, err
}

// epoch anchors monotonic.
var epoch = time.Now()

// monotonic reads only the monotonic clock: time.Since of a time that carries a monotonic reading
// skips the wall clock, which time.Now also reads and which costs as much again on some virtual
// machines. A duration needs nothing more.
func monotonic() time.Duration { return time.Since(epoch) }
