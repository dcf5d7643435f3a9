package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/anyroute/anyroute/test/kit"
)

// rawCodec is what a client with a proto of its own looks like on the wire, without one of ours:
// it sends bytes and reads bytes. Messages of the health and reflection clients pass through it
// as protobuf only because the tests use those clients on their own connections.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// grpcProc is anyroute with its gRPC listener on.
type grpcProc struct {
	*proc
	grpcAddr string
}

// startGRPC runs anyroute with configJSON (an object) and grpc.addr set to a free port.
func startGRPC(t *testing.T, configJSON string) *grpcProc {
	t.Helper()
	addr := kit.FreeAddr(t)
	return &grpcProc{proc: start(t, withGRPCAddr(t, configJSON, addr)), grpcAddr: addr}
}

// withGRPCAddr sets grpc.addr in a config document.
func withGRPCAddr(t *testing.T, configJSON, addr string) string {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(configJSON), &doc); err != nil {
		t.Fatal(err)
	}
	doc["grpc"] = map[string]any{"addr": addr}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dialRaw connects a raw-bytes client to addr.
func dialRaw(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// dialProto connects a client of the standard codec (health, reflection) to addr.
func dialProto(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// rawCall is one call's outcome.
type rawCall struct {
	out             []byte
	code            codes.Code
	header, trailer metadata.MD
	took            time.Duration
}

// facts returns the echo's facts: the header's on OK, the trailer's otherwise.
func (c rawCall) facts() metadata.MD {
	if c.code == codes.OK {
		return c.header
	}
	return c.trailer
}

func (c rawCall) fact(key string) string {
	if v := c.facts().Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func invoke(ctx context.Context, conn *grpc.ClientConn, method string, in []byte, md ...string) rawCall {
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	var c rawCall
	begin := time.Now()
	err := conn.Invoke(ctx, method, &in, &c.out, grpc.Header(&c.header), grpc.Trailer(&c.trailer))
	c.took = time.Since(begin)
	c.code = status.Code(err)
	return c
}

// message is a protobuf message of some client's own type: field 1, a string.
func message(s string) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), s)
}

// fields parses a protobuf message into its bytes fields by number; it fails on malformed input.
func fields(t *testing.T, b []byte) map[protowire.Number][]byte {
	t.Helper()
	out := map[protowire.Number][]byte{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			t.Fatalf("not a message of bytes fields: %x", b)
		}
		b = b[n:]
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			t.Fatalf("field %d cut short", num)
		}
		out[num], b = v, b[m:]
	}
	return out
}

// TestGRPCAnswersAnyMethodByTheRouteRules: calls of services no one defined are answered by the
// route rules matched on their full method names (exact, segment and prefix patterns): each
// trigger alone, its code (mapped from the status, or the rule's grpc_code), its delay, its echo
// of the request message, its facts in metadata, and its count in app_requests_total under
// method GRPC and the HTTP status as the code.
func TestGRPCAnswersAnyMethodByTheRouteRules(t *testing.T) {
	p := startGRPC(t, `{"metrics": {"flush_interval": "100ms"}, "routes": [
  {"name": "checkout", "match": "/shop.Cart/Checkout", "delay": "300ms"},
  {"name": "store", "match": "/shop.Store/{method}", "status": 500, "grpc_code": "DATA_LOSS"},
  {"name": "gate", "match": "/auth.Gate/*", "status": 403},
  {"name": "padded", "match": "/pad.Pad/Big", "body_bytes": 100},
  {"name": "unimplemented", "match": "/x.Y/Missing", "status": 501}]}`)
	conn := dialRaw(t, p.grpcAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in := message("hello, anyroute")
	cases := []struct {
		method, route string
		code          codes.Code
		httpStatus    string
		minTook       time.Duration
	}{
		{"/shop.Cart/Checkout", "checkout", codes.OK, "200", 300 * time.Millisecond},
		{"/shop.Store/Put", "store", codes.DataLoss, "500", 0},
		{"/auth.Gate/Open", "gate", codes.PermissionDenied, "403", 0},
		{"/auth.Gate/Close", "gate", codes.PermissionDenied, "403", 0},
		{"/x.Y/Missing", "unimplemented", codes.Unimplemented, "501", 0},
		{"/any.Thing/Else", "other", codes.OK, "200", 0},
	}
	for _, c := range cases {
		got := invoke(ctx, conn, c.method, in, "x-request-id", "req-"+c.route)
		if got.code != c.code || got.fact("x-anyroute-route") != c.route || got.fact("x-anyroute-http-status") != c.httpStatus {
			t.Errorf("%s: code %v route %q status %q, want %v %q %q (header %v trailer %v)", c.method, got.code,
				got.fact("x-anyroute-route"), got.fact("x-anyroute-http-status"), c.code, c.route, c.httpStatus, got.header, got.trailer)
		}
		if got.fact("x-request-id") != "req-"+c.route {
			t.Errorf("%s: x-request-id %q, want the caller's", c.method, got.fact("x-request-id"))
		}
		if got.took < c.minTook {
			t.Errorf("%s took %v, want at least %v", c.method, got.took, c.minTook)
		}
		if c.code == codes.OK && !bytes.Equal(got.out, in) {
			t.Errorf("%s: echo %x, want the request's %x", c.method, got.out, in)
		}
	}
	padded := invoke(ctx, conn, "/pad.Pad/Big", in)
	f := fields(t, padded.out)
	if padded.code != codes.OK || string(f[1]) != "hello, anyroute" || len(f[536870911]) != 100 {
		t.Errorf("padded echo: code %v, fields %q", padded.code, f)
	}
	kit.WaitFor(t, 5*time.Second, "the calls counted under method GRPC", func() bool {
		m, err := kit.Scrape(p.admin + "/metrics")
		return err == nil && m.Sum("app_requests_total", "method", "GRPC") == float64(len(cases)+1) &&
			m.Sum("app_requests_total", "method", "GRPC", "route", "store", "code", "500") == 1 &&
			m.Sum("app_requests_total", "method", "GRPC", "route", "gate", "code", "403") == 2 &&
			m.HistogramCount("app_request_duration_seconds", "method", "GRPC", "route", "checkout", "code", "200") == 1
	})
}

// TestGRPCStatusMixSharesAndExactCounts: a route's status mix answers each status's share of gRPC
// calls within 5 standard errors, each as its code (503 UNAVAILABLE, and 500 as the share's
// grpc_code ABORTED), and app_requests_total holds exactly what the clients counted.
func TestGRPCStatusMixSharesAndExactCounts(t *testing.T) {
	p := startGRPC(t, `{"metrics": {"flush_interval": "100ms"}, "routes": [
  {"name": "mix", "match": "/mix.Svc/*", "errors": [{"status": 503, "rate": 0.3}, {"status": 500, "rate": 0.2, "grpc_code": "ABORTED"}]}]}`)
	conn := dialRaw(t, p.grpcAddr)
	const n = 2000
	var mu sync.Mutex
	got := map[codes.Code]int{}
	statuses := map[string]int{}
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 8 {
		wg.Go(func() {
			for next.Add(1) <= n {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				c := invoke(ctx, conn, "/mix.Svc/Do", message("m"))
				cancel()
				mu.Lock()
				got[c.code]++
				statuses[c.fact("x-anyroute-http-status")]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, want := range []struct {
		code   codes.Code
		status string
		rate   float64
	}{{codes.Unavailable, "503", 0.3}, {codes.Aborted, "500", 0.2}, {codes.OK, "200", 0.5}} {
		se := math.Sqrt(want.rate * (1 - want.rate) / n)
		share := float64(got[want.code]) / n
		if math.Abs(share-want.rate) > 5*se {
			t.Errorf("%v: share %.3f, want %.2f within 5 SE (%.3f)", want.code, share, want.rate, 5*se)
		}
		if statuses[want.status] != got[want.code] {
			t.Errorf("%d calls got %v, %d carried http status %s", got[want.code], want.code, statuses[want.status], want.status)
		}
	}
	if len(got) != 3 {
		t.Errorf("codes %v, want only OK, UNAVAILABLE and ABORTED", got)
	}
	kit.WaitUntil(t, 5*time.Second, "app_requests_total to equal the clients' counts", func() (bool, string, error) {
		m, err := kit.Scrape(p.admin + "/metrics")
		if err != nil {
			return false, "", err
		}
		c200 := m.Sum("app_requests_total", "method", "GRPC", "route", "mix", "code", "200")
		c503 := m.Sum("app_requests_total", "method", "GRPC", "route", "mix", "code", "503")
		c500 := m.Sum("app_requests_total", "method", "GRPC", "route", "mix", "code", "500")
		state := fmt.Sprintf("published 200=%v 503=%v 500=%v; clients %v", c200, c503, c500, got)
		return c200 == float64(got[codes.OK]) && c503 == float64(got[codes.Unavailable]) && c500 == float64(got[codes.Aborted]), state, nil
	})
}

// TestGRPCMetadataOverridesAreCapped: x-anyroute-status and x-anyroute-delay choose the answer of
// a rule that allows overrides, the delay up to its max_delay and no further (a longer one is
// refused INVALID_ARGUMENT at once, as HTTP refuses it 400); a rule that does not allow them
// ignores them.
func TestGRPCMetadataOverridesAreCapped(t *testing.T) {
	p := startGRPC(t, `{"routes": [
  {"name": "open", "match": "/o.Svc/*", "allow_overrides": true, "max_delay": "400ms"},
  {"name": "closed", "match": "/c.Svc/*"}]}`)
	conn := dialRaw(t, p.grpcAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in := message("x")
	if c := invoke(ctx, conn, "/o.Svc/A", in, "x-anyroute-status", "404", "x-anyroute-delay", "300ms"); c.code != codes.NotFound || c.took < 300*time.Millisecond {
		t.Errorf("status 404 and delay 300ms: %v after %v", c.code, c.took)
	}
	if c := invoke(ctx, conn, "/o.Svc/A", in, "x-anyroute-delay", "5s"); c.code != codes.InvalidArgument || c.took > 3*time.Second || c.fact("x-anyroute-http-status") != "400" {
		t.Errorf("delay past max_delay: %v after %v (%v), want INVALID_ARGUMENT at once", c.code, c.took, c.trailer)
	}
	if c := invoke(ctx, conn, "/o.Svc/A", in, "x-anyroute-status", "700"); c.code != codes.InvalidArgument {
		t.Errorf("status 700: %v, want INVALID_ARGUMENT", c.code)
	}
	if c := invoke(ctx, conn, "/c.Svc/A", in, "x-anyroute-status", "503", "x-anyroute-delay", "2s"); c.code != codes.OK || c.took > 1500*time.Millisecond {
		t.Errorf("a rule without allow_overrides: %v after %v, want OK at once", c.code, c.took)
	}
}

// TestGRPCHealthFollowsReadiness: grpc.health.v1 answers what /readyz answers, through the
// lifecycle toggle and back, by Check and by Watch; an unknown service is NOT_FOUND.
func TestGRPCHealthFollowsReadiness(t *testing.T) {
	p := startGRPC(t, `{"admin": {"lifecycle": true}}`)
	health := healthpb.NewHealthClient(dialProto(t, p.grpcAddr))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	check := func() healthpb.HealthCheckResponse_ServingStatus {
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStatus()
	}
	if s := check(); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("ready process: %v", s)
	}
	watch, err := health.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recv := func() healthpb.HealthCheckResponse_ServingStatus {
		r, err := watch.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStatus()
	}
	if s := recv(); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch starts with %v", s)
	}
	post := func(path string) {
		if code, body := kit.Do(ctx, http.MethodPost, p.admin+path, nil, nil); code != 200 {
			t.Fatalf("POST %s: %d %s", path, code, body)
		}
	}
	post("/-/readyz/disable")
	if s := check(); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("forced unready: Check %v", s)
	}
	if s := recv(); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("forced unready: Watch %v", s)
	}
	if code, _ := kit.Get(p.admin + "/readyz"); code != 503 {
		t.Errorf("/readyz %d while forced unready", code)
	}
	post("/-/readyz/enable")
	if s := check(); s != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("enabled again: Check %v", s)
	}
	if s := recv(); s != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("enabled again: Watch %v", s)
	}
	if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.Such"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown service: %v, want NOT_FOUND", err)
	}
}

// TestGRPCReflectionListsOurServices: server reflection lists the services the listener defines,
// anyroute.v1.Echo, health and reflection, and describes the health service's file.
func TestGRPCReflectionListsOurServices(t *testing.T) {
	p := startGRPC(t, `{}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(dialProto(t, p.grpcAddr)).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	listed := map[string]bool{}
	for _, s := range r.GetListServicesResponse().GetService() {
		listed[s.GetName()] = true
	}
	for _, want := range []string{"anyroute.v1.Echo", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !listed[want] {
			t.Errorf("reflection lists %v, not %s", listed, want)
		}
	}
	fd := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "grpc.health.v1.Health"}})
	if len(fd.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Errorf("no file descriptor for grpc.health.v1.Health: %v", fd)
	}
}

// TestGRPCGracefulStopDrainsInFlightCalls: SIGTERM while calls are in flight: each is answered OK
// within shutdown.grace, a new call is refused, the process exits 0, and the final flush publishes
// exactly the calls the clients saw answered.
func TestGRPCGracefulStopDrainsInFlightCalls(t *testing.T) {
	p := startGRPC(t, `{"metrics": {"flush_interval": "100ms"}, "routes": [{"name": "slow", "match": "/*", "delay": "1500ms"}],
  "shutdown": {"grace": "20s", "metrics_linger": "5s"}}`)
	conn := dialRaw(t, p.grpcAddr)
	const n = 16
	codesSeen := make(chan codes.Code, n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range n {
		go func() { codesSeen <- invoke(ctx, conn, "/drain.Svc/Call", message("x")).code }()
	}
	kit.WaitFor(t, 10*time.Second, "the calls in flight", func() bool {
		m, err := kit.Scrape(p.admin + "/metrics")
		return err == nil && m.Sum("app_requests_in_flight") == n
	})
	p.SignalT(t, syscall.SIGTERM)
	ok := 0
	for range n {
		if c := <-codesSeen; c == codes.OK {
			ok++
		} else {
			t.Errorf("an in-flight call got %v", c)
		}
	}
	kit.WaitFor(t, 10*time.Second, "new calls refused", func() bool {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return invoke(c, dialRaw(t, p.grpcAddr), "/drain.Svc/Call", message("x")).code == codes.Unavailable
	})
	kit.WaitUntil(t, 10*time.Second, "the final flush", func() (bool, string, error) {
		m, err := kit.Scrape(p.admin + "/metrics")
		got := m.Sum("app_requests_total", "method", "GRPC", "route", "slow", "code", "200")
		return err == nil && got == float64(ok), "published " + strconv.FormatFloat(got, 'f', -1, 64), nil
	})
	if code := p.WaitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestGRPCGraceCutAnswersUnavailable: calls still running when shutdown.grace ends are cut:
// answered UNAVAILABLE and counted 503, and the process exits 3, as for HTTP.
func TestGRPCGraceCutAnswersUnavailable(t *testing.T) {
	p := startGRPC(t, `{"metrics": {"flush_interval": "100ms"}, "http": {"write_timeout": "2m"}, "routes": [{"name": "stuck", "match": "/*", "delay": "1m"}],
  "shutdown": {"grace": "1s", "metrics_linger": "5s"}}`)
	conn := dialRaw(t, p.grpcAddr)
	const n = 4
	codesSeen := make(chan codes.Code, n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range n {
		go func() { codesSeen <- invoke(ctx, conn, "/stuck.Svc/Call", message("x")).code }()
	}
	kit.WaitFor(t, 10*time.Second, "the calls in flight", func() bool {
		m, err := kit.Scrape(p.admin + "/metrics")
		return err == nil && m.Sum("app_requests_in_flight") == n
	})
	p.SignalT(t, syscall.SIGTERM)
	for range n {
		if c := <-codesSeen; c != codes.Unavailable {
			t.Errorf("a cut call got %v, want UNAVAILABLE", c)
		}
	}
	kit.WaitFor(t, 10*time.Second, "the cut calls counted 503", func() bool {
		m, err := kit.Scrape(p.admin + "/metrics")
		return err == nil && m.Sum("app_requests_total", "method", "GRPC", "route", "stuck", "code", "503") == n
	})
	if code := p.WaitExit(t, 20*time.Second); code != 3 {
		t.Fatalf("exit %d, want 3 (drain cut short)", code)
	}
}

// TestGRPCFaultsAsGRPCAllows: each fault kind alone, as a gRPC client sees it: reset and close end
// the call UNAVAILABLE, truncate sends half the echo, malformed a message no parser takes, hang
// answers nothing until the client's deadline; each counted under its kind's code label.
func TestGRPCFaultsAsGRPCAllows(t *testing.T) {
	p := startGRPC(t, `{"metrics": {"flush_interval": "100ms"}, "routes": [
  {"name": "reset", "match": "/f.Reset/*", "faults": [{"kind": "reset", "rate": 1}]},
  {"name": "close", "match": "/f.Close/*", "faults": [{"kind": "close", "rate": 1}]},
  {"name": "truncate", "match": "/f.Truncate/*", "faults": [{"kind": "truncate", "rate": 1}]},
  {"name": "malformed", "match": "/f.Malformed/*", "faults": [{"kind": "malformed", "rate": 1}]},
  {"name": "hang", "match": "/f.Hang/*", "faults": [{"kind": "hang", "rate": 1}]}]}`)
	conn := dialRaw(t, p.grpcAddr)
	in := message("0123456789")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, m := range []string{"/f.Reset/X", "/f.Close/X"} {
		if c := invoke(ctx, conn, m, in); c.code != codes.Unavailable {
			t.Errorf("%s: %v, want UNAVAILABLE", m, c.code)
		}
	}
	if c := invoke(ctx, conn, "/f.Truncate/X", in); c.code != codes.OK || !bytes.Equal(c.out, in[:len(in)/2]) {
		t.Errorf("truncate: %v %x, want OK and half of %x", c.code, c.out, in)
	}
	if c := invoke(ctx, conn, "/f.Malformed/X", in); c.code != codes.OK {
		t.Errorf("malformed: %v", c.code)
	} else if _, _, n := protowire.ConsumeField(c.out); n >= 0 {
		t.Errorf("malformed: %x parses", c.out)
	}
	hangCtx, hangCancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer hangCancel()
	if c := invoke(hangCtx, conn, "/f.Hang/X", in); c.code != codes.DeadlineExceeded || c.took < 500*time.Millisecond {
		t.Errorf("hang: %v after %v, want DEADLINE_EXCEEDED at the client's deadline", c.code, c.took)
	}
	kit.WaitFor(t, 5*time.Second, "each fault counted under its kind", func() bool {
		m, err := kit.Scrape(p.admin + "/metrics")
		if err != nil {
			return false
		}
		for _, k := range []string{"reset", "close", "truncate", "malformed", "hang"} {
			if m.Sum("app_requests_total", "method", "GRPC", "route", k, "code", k) != 1 {
				return false
			}
		}
		return true
	})
}

// TestGRPCUpstreamCallOutcomes: a grpc:// call's status is what the upstream answered (its code's
// HTTP twin, or the status an anyroute upstream names), and a call to a closed port is no answer,
// counted under code error; the route fails on it as for HTTP calls (502).
func TestGRPCUpstreamCallOutcomes(t *testing.T) {
	up := startGRPC(t, `{"routes": [{"name": "lost", "match": "/up.Svc/Lost", "status": 500, "grpc_code": "DATA_LOSS"}, {"name": "gone", "match": "/up.Svc/Gone", "status": 404}]}`)
	closed := kit.FreeAddr(t)
	p := start(t, fmt.Sprintf(`{"metrics": {"flush_interval": "100ms"}, "routes": [
  {"name": "gone", "match": "/gone", "on_call_error": "ignore", "calls": [{"name": "up", "url": "grpc://%s/up.Svc/Gone"}]},
  {"name": "lost", "match": "/lost", "calls": [{"name": "up", "url": "grpc://%s/up.Svc/Lost"}]},
  {"name": "closed", "match": "/closed", "calls": [{"name": "down", "url": "grpc://%s/up.Svc/Any", "timeout": "2s"}]}]}`, up.grpcAddr, up.grpcAddr, closed))
	for _, c := range []struct {
		path       string
		status     int
		callStatus int
	}{{"/gone", 200, 404}, {"/lost", 500, 500}, {"/closed", 502, 0}} {
		code, e := kit.Echo(t, "GET", p.api+c.path, nil)
		if code != c.status || len(e.Calls) != 1 || e.Calls[0].Status != c.callStatus {
			t.Errorf("%s: %d %+v, want %d with a call answered %d", c.path, code, e, c.status, c.callStatus)
		}
	}
	if _, e := kit.Echo(t, "GET", p.api+"/gone", nil); len(e.Calls) == 1 {
		var answer map[string]string
		if err := json.Unmarshal(e.Calls[0].Answer, &answer); err != nil || answer["grpc_code"] != "NOT_FOUND" ||
			answer["route"] != "gone" || answer["http_status"] != "404" || answer["request_id"] != e.RequestID {
			t.Errorf("the call's nested answer %s (%v), want the upstream's facts under request id %s", e.Calls[0].Answer, err, e.RequestID)
		}
	}
	kit.WaitFor(t, 5*time.Second, "the calls counted", func() bool {
		m := p.metrics(t)
		return m.Sum("app_upstream_requests_total", "route", "gone", "code", "404") == 2 &&
			m.Sum("app_upstream_requests_total", "route", "lost", "code", "500") == 1 &&
			m.Sum("app_upstream_requests_total", "route", "closed", "code", "error") == 1
	})
}

// TestGRPCLargeMessagesAndMethodFilters: a message past http.max_body_bytes is answered
// RESOURCE_EXHAUSTED (by grpc-go itself, which refuses to read it) and counted 413 by the service;
// metadata past http.max_header_bytes is refused; a rule listing methods answers gRPC calls only
// when it lists GRPC.
func TestGRPCLargeMessagesAndMethodFilters(t *testing.T) {
	p := startGRPC(t, `{"http": {"max_body_bytes": 1024, "max_header_bytes": 8192}, "metrics": {"flush_interval": "100ms"}, "routes": [
  {"name": "httponly", "match": "/m.Svc/*", "methods": ["POST"], "status": 418},
  {"name": "grpconly", "match": "/m.Svc/*", "methods": ["GRPC"], "status": 404}]}`)
	conn := dialRaw(t, p.grpcAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if c := invoke(ctx, conn, "/big.Svc/Put", bytes.Repeat([]byte{'x'}, 4096)); c.code != codes.ResourceExhausted {
		t.Errorf("4 KiB past a 1 KiB limit: %v %v", c.code, c.trailer)
	}
	if c := invoke(ctx, conn, "/big.Svc/Put", bytes.Repeat([]byte{'x'}, 1000)); c.code != codes.OK || len(c.out) != 1000 {
		t.Errorf("1000 bytes under the limit: %v, %d bytes back", c.code, len(c.out))
	}
	if c := invoke(ctx, conn, "/m.Svc/Do", message("x")); c.code != codes.NotFound || c.fact("x-anyroute-route") != "grpconly" {
		t.Errorf("methods filter: %v route %q, want the GRPC rule's NOT_FOUND", c.code, c.fact("x-anyroute-route"))
	}
	if code, _ := kit.Do(ctx, http.MethodPost, p.api+"/m.Svc/Do", nil, nil); code != 418 {
		t.Errorf("HTTP POST to the same path: %d, want the POST rule's 418", code)
	}
	// Metadata past http.max_header_bytes (8 KiB here) is refused by grpc-go, and the next call
	// on the same connection is answered.
	if c := invoke(ctx, conn, "/big.Svc/Put", message("x"), "x-padding", strings.Repeat("p", 16<<10)); c.code == codes.OK {
		t.Errorf("16 KiB of metadata past an 8 KiB limit answered OK")
	}
	if c := invoke(ctx, conn, "/big.Svc/Put", message("x")); c.code != codes.OK {
		t.Errorf("the call after the refused one: %v", c.code)
	}
	kit.WaitFor(t, 5*time.Second, "the large message counted 413", func() bool {
		m, err := kit.Scrape(p.admin + "/metrics")
		return err == nil && m.Sum("app_requests_total", "method", "GRPC", "route", "other", "code", "413") == 1
	})
}

// TestGRPCTypedEchoFromReflection: a client that knows nothing of anyroute.v1.Echo learns its
// schema by reflection, calls it with a message built from that schema, and gets a typed reply
// (the message back, the route and status the rules decided); the call goes through the route
// rules like any other.
func TestGRPCTypedEchoFromReflection(t *testing.T) {
	p := startGRPC(t, `{"routes": [{"name": "typed", "match": "/anyroute.v1.Echo/*", "status": 201}]}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(dialProto(t, p.grpcAddr)).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "anyroute.v1.Echo"}}); err != nil {
		t.Fatal(err)
	}
	r, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	files := r.GetFileDescriptorResponse().GetFileDescriptorProto()
	if len(files) != 1 {
		t.Fatalf("reflection gave %d files for anyroute.v1.Echo: %v", len(files), r)
	}
	var fdp descriptorpb.FileDescriptorProto
	if err := proto.Unmarshal(files[0], &fdp); err != nil {
		t.Fatal(err)
	}
	fd, err := protodesc.NewFile(&fdp, nil)
	if err != nil {
		t.Fatal(err)
	}
	method := fd.Services().ByName("Echo").Methods().ByName("Echo")
	if method == nil {
		t.Fatalf("no Echo method in %v", fd.Path())
	}
	in := dynamicpb.NewMessage(method.Input())
	in.Set(method.Input().Fields().ByName("message"), protoreflect.ValueOfString("typed hello"))
	b, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	c := invoke(ctx, dialRaw(t, p.grpcAddr), "/anyroute.v1.Echo/Echo", b)
	if c.code != codes.OK {
		t.Fatalf("Echo: %v %v", c.code, c.trailer)
	}
	out := dynamicpb.NewMessage(method.Output())
	if err := proto.Unmarshal(c.out, out); err != nil {
		t.Fatal(err)
	}
	get := func(name string) string {
		return out.Get(method.Output().Fields().ByName(protoreflect.Name(name))).String()
	}
	if get("message") != "typed hello" || get("route") != "typed" || get("status") != "201" || get("method") != "/anyroute.v1.Echo/Echo" || len(get("request_id")) != 32 {
		t.Errorf("reply %v", out)
	}
}

// TestGRPCCallsInMetadata: a gRPC call whose route makes upstream calls gets them in the
// x-anyroute-calls metadata, JSON as the HTTP echo's calls, with the request id forwarded.
func TestGRPCCallsInMetadata(t *testing.T) {
	up := start(t, `{"routes": [{"name": "items", "match": "/items/*", "status": 202}]}`)
	p := startGRPC(t, fmt.Sprintf(`{"routes": [{"name": "relay", "match": "/r.Svc/*", "calls": [{"name": "items", "url": "%s/items/x"}]}]}`, up.api))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := invoke(ctx, dialRaw(t, p.grpcAddr), "/r.Svc/Do", message("x"), "x-request-id", "chain-42")
	var calls []struct {
		Name   string `json:"name"`
		Status int    `json:"status"`
	}
	if c.code != codes.OK {
		t.Fatalf("call: %v %v", c.code, c.trailer)
	}
	if err := json.Unmarshal([]byte(c.fact("x-anyroute-calls")), &calls); err != nil || len(calls) != 1 || calls[0].Name != "items" || calls[0].Status != 202 {
		t.Errorf("x-anyroute-calls %q (%v), want the one call answered 202", c.fact("x-anyroute-calls"), err)
	}
	if c.fact("x-request-id") != "chain-42" {
		t.Errorf("x-request-id %q, want the caller's", c.fact("x-request-id"))
	}
}
