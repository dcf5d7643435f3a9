package main

// kind is how a case's server is started and what it exposes.
type kind int

const (
	kindBare     kind = iota // bench/bare
	kindAnyroute             // this tree's anyroute, built as the image builds it
	kindPeer                 // a peer built by scripts/tools.sh
	kindScrapes              // anyroute with 200 routes, quiet and storm windows
)

// group is the table a case is shown in.
type group string

const (
	groupTracing group = "tracing"
	groupPeers   group = "peers"
	groupCall    group = "call"
	groupScrapes group = "scrapes"
	// groupProtocols: gRPC and h2c, each beside a bare server of the same protocol, driven by
	// bench/rpcload instead of wrk.
	groupProtocols group = "protocols"
)

// What a case's client speaks: wrk's HTTP/1.1, or one of bench/rpcload's.
const (
	protoHTTP1 = ""     // wrk, a GET of Path with only a Host header
	protoGRPC  = "grpc" // rpcload: unary calls of the full method name Path
	protoH2C   = "h2c"  // rpcload: GETs of Path over HTTP/2 with prior knowledge
)

// grpcMethod is what the gRPC cases call: fortio's ping method, with a PingMessage fortio decodes
// (bench/rpcload), so that one client and one message serve all three servers; anyroute and the
// bare server echo any method.
const grpcMethod = "/fgrpc.PingServer/Ping"

// Case is one server configuration of the run. Every case with a Base is measured in pairs of
// windows, one of the case and one of its Base, back to back on warm servers; the ratios of a
// pair are the figures.
type Case struct {
	ID     string
	Name   string
	Path   string // what wrk asks for, always a GET with only a Host header; a gRPC case's full method name
	Proto  string // the client's protocol: protoHTTP1 (wrk), protoGRPC or protoH2C (bench/rpcload)
	Base   string // the case each window is paired with; "" for a baseline
	Target float64
	Kind   kind
	Group  group
	// anyroute's config for the case; {agent} stands for the Jaeger agent's address, {otlp} for
	// its OTLP receiver's, {upstream} for the upstream's.
	Config  string
	Service string // the service name the traced cases report under
	Tool    string // a peer's scripts/tools.sh name
	Upstream,
	Memory bool // makes one upstream call per request; in the idle-connection memory figures
	// Peers: what the request answers, and whether it is comparable work.
	Does, Comparable string
	Ref              bool // the scrape storm's baseline: the binary of -baseline-ref
}

// Targets are issue 29's: CPU per request ÷ the base's, median of the pairs, at most this.
// The scrape storm's is CPU per request quiet ÷ storm, at least 0.95 (issue 17's throughput
// target, read on CPU).
var cases = []Case{
	{ID: "bare", Name: "bare net/http", Path: "/bench/x", Kind: kindBare, Group: groupTracing, Memory: true},
	{ID: "none", Name: "anyroute, tracing none", Path: "/bench/x", Base: "bare", Target: 1.05, Kind: kindAnyroute,
		Group: groupTracing, Config: `{}`, Memory: true},
	{ID: "jaeger-prob", Name: "anyroute, jaeger probabilistic 0.01", Path: "/bench/x", Base: "bare", Target: 1.07,
		Kind: kindAnyroute, Group: groupTracing, Service: "bench-jaeger-prob",
		Config: `{"tracing": {"backend": "jaeger", "service_name": "bench-jaeger-prob", "sampler": {"type": "probabilistic", "param": 0.01}, "jaeger": {"agent_addr": "{agent}"}}}`},
	{ID: "jaeger-const", Name: "anyroute, jaeger const 1", Path: "/bench/x", Base: "bare", Target: 1.30,
		Kind: kindAnyroute, Group: groupTracing, Service: "bench-jaeger-const",
		Config: `{"tracing": {"backend": "jaeger", "service_name": "bench-jaeger-const", "sampler": {"type": "const", "param": 1}, "jaeger": {"agent_addr": "{agent}"}}}`},
	{ID: "otlp-const", Name: "anyroute, otlp const 1", Path: "/bench/x", Base: "bare", Target: 1.30,
		Kind: kindAnyroute, Group: groupTracing, Service: "bench-otlp-const",
		Config: `{"tracing": {"backend": "otlp", "service_name": "bench-otlp-const", "sampler": {"type": "const", "param": 1}, "otlp": {"endpoint": "{otlp}", "insecure": true}}}`},
	{ID: "podinfo", Name: "podinfo 6.9.2", Path: "/headers", Base: "bare", Kind: kindPeer, Group: groupPeers, Tool: "podinfo", Memory: true,
		Does:       "the request's headers as indented JSON (`{}`-like for wrk's one Host header), through gorilla/mux with its Prometheus middleware (a histogram and a counter per request, client_golang vectors), otelmux (no-op tracer) and its logging middleware (debug level, off)",
		Comparable: "yes: JSON, per-request metrics (not an echo of method and path)"},
	{ID: "go-httpbin", Name: "go-httpbin v2.26.0", Path: "/anything/bench/x", Base: "bare", Kind: kindPeer, Group: groupPeers, Tool: "go-httpbin", Memory: true,
		Does:       "a JSON echo (indented) of method, URL, headers, query args, origin, body, form; no metrics; its per-request log (an Info line) is off at WARN, though the line is still formatted",
		Comparable: "partly: JSON echo, no metrics"},
	{ID: "fortio", Name: "fortio 1.63.0", Path: "/debug", Base: "bare", Kind: kindPeer, Group: groupPeers, Tool: "fortio", Memory: true,
		Does:       "a text dump of method, URL, protocol, headers and body, with the host name and uptime; no JSON, no per-request metrics; its per-request log is off at warning",
		Comparable: "no: text, no metrics"},
	{ID: "bare-call", Name: "bare net/http, one upstream call", Path: "/bench/x", Kind: kindBare, Group: groupCall, Upstream: true},
	{ID: "anyroute-call", Name: "anyroute, one upstream call", Path: "/bench/x", Base: "bare-call", Target: 1.10,
		Kind: kindAnyroute, Group: groupCall, Upstream: true,
		Config: `{"routes": [{"name": "hop", "match": "/*", "calls": [{"name": "up", "url": "http://{upstream}/up/{path}", "timeout": "1s"}]}]}`},
	{ID: "bare-grpc", Name: "bare grpc-go", Path: grpcMethod, Proto: protoGRPC, Kind: kindBare, Group: groupProtocols},
	{ID: "grpc", Name: "anyroute, gRPC", Path: grpcMethod, Proto: protoGRPC, Base: "bare-grpc", Kind: kindAnyroute,
		Group: groupProtocols, Config: `{}`},
	{ID: "grpc-fortio", Name: "fortio 1.63.0, gRPC ping", Path: grpcMethod, Proto: protoGRPC, Base: "bare-grpc", Kind: kindPeer,
		Group: groupProtocols, Tool: "fortio",
		Does:       "fortio's `fgrpc.PingServer/Ping`: the PingMessage decoded, its ts set, encoded back (protobuf both ways, generated code); no per-call metrics; its per-call log is off at warning",
		Comparable: "partly: an echo, through a decode and an encode where the others copy bytes; no metrics"},
	{ID: "bare-h2c", Name: "bare net/http, h2c", Path: "/bench/x", Proto: protoH2C, Kind: kindBare, Group: groupProtocols},
	{ID: "h2c", Name: "anyroute, h2c", Path: "/bench/x", Proto: protoH2C, Base: "bare-h2c", Kind: kindAnyroute,
		Group: groupProtocols, Config: `{}`},
	{ID: "storm", Name: "anyroute (this tree)", Kind: kindScrapes, Group: groupScrapes, Target: 0.95},
	{ID: "storm-baseline", Name: "anyroute at %s (promhttp per scrape)", Kind: kindScrapes, Group: groupScrapes, Ref: true},
}

// caseByID is the case of that id, and whether there is one.
func caseByID(id string) (Case, bool) {
	for _, c := range cases {
		if c.ID == id {
			return c, true
		}
	}
	return Case{}, false
}

// caseIndex is the case's place in the table, which gives its ports.
func caseIndex(id string) int {
	for i, c := range cases {
		if c.ID == id {
			return i
		}
	}
	return -1
}

// request is what a case's client asks, for the tables.
func (c Case) request() string {
	switch c.Proto {
	case protoGRPC:
		return "unary `" + c.Path + "`"
	case protoH2C:
		return "`GET " + c.Path + "` (h2c)"
	}
	return "`GET " + c.Path + "`"
}
