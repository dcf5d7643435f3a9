//go:build external

package test

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestHelmGRPCPort: the gRPC listener is off by default (no flag, no port anywhere); grpc.enabled
// passes -grpc.addr for ports.grpc, names the container port grpc and puts it in the Service as
// service.grpcPort with appProtocol grpc.
func TestHelmGRPCPort(t *testing.T) {
	grpcPorts := func(r *rendered) (args []string, container []corev1.ContainerPort, service []corev1.ServicePort) {
		c := r.server.Spec.Template.Spec.Containers[0]
		for _, a := range c.Args {
			if len(a) > 11 && a[:11] == "-grpc.addr=" {
				args = append(args, a)
			}
		}
		for _, p := range c.Ports {
			if p.Name == "grpc" {
				container = append(container, p)
			}
		}
		for _, s := range r.services {
			for _, p := range s.Spec.Ports {
				if p.Name == "grpc" {
					service = append(service, p)
				}
			}
		}
		return args, container, service
	}
	if a, c, s := grpcPorts(renderChart(t, "anyroute")); len(a)+len(c)+len(s) > 0 {
		t.Errorf("gRPC off by default, yet rendered %v %v %v", a, c, s)
	}
	a, c, s := grpcPorts(renderChart(t, "anyroute", "--set", "grpc.enabled=true,ports.grpc=9191,service.grpcPort=50051"))
	if !slices.Equal(a, []string{"-grpc.addr=:9191"}) {
		t.Errorf("args %v, want -grpc.addr=:9191", a)
	}
	if len(c) != 1 || c[0].ContainerPort != 9191 || c[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("container ports %+v, want grpc 9191/TCP", c)
	}
	if len(s) != 1 || s[0].Port != 50051 || s[0].TargetPort.StrVal != "grpc" || s[0].AppProtocol == nil || *s[0].AppProtocol != "grpc" {
		t.Errorf("service ports %+v, want grpc 50051 → grpc, appProtocol grpc", s)
	}
	if _, stderr, err := runHelm(t, templateArgs("anyroute", "--set", "grpc.enabled=yes")...); err == nil {
		t.Error("grpc.enabled=yes rendered; the values schema should refuse a string")
	} else {
		t.Logf("refused as it should be: %s", stderr)
	}
}
