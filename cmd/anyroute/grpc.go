package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/service"
)

// listenGRPC opens the gRPC listener, or none when grpc.addr is empty.
func listenGRPC(c config.GRPC) (net.Listener, error) {
	if c.Addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return nil, fmt.Errorf("gRPC listener: %w", err)
	}
	return ln, nil
}

// grpcActors serve the gRPC listener. The first's interrupt begins the drain and returns at once,
// so that the API's drain (the next actor) runs beside it within the same grace period; the
// second's waits for the drain to end, so that the flusher, the admin listener and the tracer stop
// only after the last call is answered and counted. The drain is grpc-go's GracefulStop: no new
// calls (the clients are sent GOAWAY), the health watches end, the calls in flight finish; when
// grace runs out the calls still running are cut (their context's cause is service.ErrStopping,
// so they are answered UNAVAILABLE and counted 503, as HTTP requests are) and given a moment to
// be answered before Stop closes every connection. Without a listener both are the zero actor.
func grpcActors(a *app, ln net.Listener, sd *shutdown, logger log.Logger) (start, drained actor) {
	if ln == nil || a.grpc == nil {
		return actor{}, actor{}
	}
	done := make(chan struct{})
	start = actor{func() error {
		_ = level.Info(logger).Log("msg", "gRPC listening", "addr", ln.Addr())
		return a.grpc.Serve(ln) // returns nil once GracefulStop or Stop has begun
	}, func(error) {
		a.drain()
		go func() {
			defer close(done)
			stopped := make(chan struct{})
			go func() { a.grpc.GracefulStop(); close(stopped) }()
			ctx, cancel := context.WithTimeout(sd.force, sd.Grace.D())
			defer cancel()
			select {
			case <-stopped:
				return
			case <-ctx.Done():
			}
			inFlight := a.inFlight()
			_ = level.Warn(logger).Log("msg", "gRPC drain cut short", "in_flight", inFlight)
			if inFlight > 0 {
				sd.drainCut.Store(true)
			}
			a.cut(service.ErrStopping)
			waitCtx(context.Background(), cutAnswerTime, func() bool { return a.inFlight() == 0 })
			a.grpc.Stop()
			<-stopped
		}()
	}}
	drained = actor{func() error {
		<-done
		return nil
	}, func(error) {
		select {
		case <-done:
		case <-time.After(sd.Grace.D() + 2*cutAnswerTime + 5*time.Second): // a bound, should Stop hang
		}
		_ = level.Info(logger).Log("msg", "gRPC stopped")
	}}
	return start, drained
}
