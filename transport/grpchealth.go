package transport

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Health is the standard gRPC health service (grpc.health.v1.Health) of the gRPC listener, reading
// the same readiness /readyz answers by: SERVING while ready, NOT_SERVING otherwise (starting,
// forced unready, shutting down). It knows the overall health ("") and the services the listener
// defines; any other name is NOT_FOUND, as the protocol asks. grpc-go's own health server keeps a
// status of its own, which would be a second copy of readiness to keep in step; this one reads it.
type Health struct {
	healthpb.UnimplementedHealthServer
	ready    func() bool
	services map[string]bool
	// stopping ends every Watch, so that a graceful stop is not held up by watchers, which never
	// end on their own; a watcher sees NOT_SERVING first.
	stopping context.Context
}

// healthPoll is how often a Watch reads readiness for a change: readiness is an atomic flag that
// three parties set, with no notification to hook into.
const healthPoll = 100 * time.Millisecond

// NewHealth returns the health service over ready, for the overall health and the services named;
// stopping ends the watches.
func NewHealth(ready func() bool, stopping context.Context, services ...string) *Health {
	h := &Health{ready: ready, services: map[string]bool{"": true}, stopping: stopping}
	for _, s := range services {
		h.services[s] = true
	}
	return h
}

func (h *Health) status(service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	if !h.services[service] {
		return healthpb.HealthCheckResponse_SERVICE_UNKNOWN, status.Errorf(codes.NotFound, "unknown service %q", service)
	}
	if h.ready() {
		return healthpb.HealthCheckResponse_SERVING, nil
	}
	return healthpb.HealthCheckResponse_NOT_SERVING, nil
}

// Check answers the readiness of the service asked about.
func (h *Health) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	st, err := h.status(req.GetService())
	if err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: st}, nil
}

// List answers the readiness of every service the listener defines.
func (h *Health) List(context.Context, *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	out := &healthpb.HealthListResponse{Statuses: map[string]*healthpb.HealthCheckResponse{}}
	for s := range h.services {
		st, _ := h.status(s)
		out.Statuses[s] = &healthpb.HealthCheckResponse{Status: st}
	}
	return out, nil
}

// Watch sends the service's status at once and again at each change, until the client leaves or
// the server stops; an unknown service is SERVICE_UNKNOWN, as the protocol asks of Watch.
func (h *Health) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	t := time.NewTicker(healthPoll)
	defer t.Stop()
	last := healthpb.HealthCheckResponse_ServingStatus(-1)
	for {
		st, _ := h.status(req.GetService())
		if h.stopping.Err() != nil && st == healthpb.HealthCheckResponse_SERVING {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		if st != last {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return err
			}
			last = st
		}
		if h.stopping.Err() != nil {
			return status.Error(codes.Unavailable, "server stopping")
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-h.stopping.Done():
		case <-t.C:
		}
	}
}
