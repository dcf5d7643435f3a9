package otlp

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// protoExporter is the SDK's span exporter, in place of otlptrace's: it writes each batch's
// spans to OTLP protobuf itself (proto.go) instead of converting them to message structs, and
// hands the bytes to otlptracehttp's client. That client stays, for everything it does besides
// the conversion: the endpoint and its path, the OTEL_EXPORTER_OTLP_* variables (headers,
// compression, certificates, timeout), proxies, and reading the collector's answer.
//
// The client takes ResourceSpans messages. Each one passed here carries its content as the
// message's unknown fields: protobuf marshals unknown fields as they are, so the request the
// client sends holds exactly the bytes written, and a collector decodes them as the resource,
// scope spans and schema URL they are.
type protoExporter struct {
	client otlptrace.Client
	mu     sync.Mutex // the batch processor exports from one goroutine; Shutdown may overlap
	buf    []byte     // the batch's bytes, reused
	groups []group
	bounds []int // where each ResourceSpans' bytes end in buf
	rss    []*tracepb.ResourceSpans
}

// group is the spans of one resource and scope, in the order they came.
type group struct {
	resource *resource.Resource
	scope    instrumentation.Scope
	spans    []sdktrace.ReadOnlySpan
}

func newProtoExporter(ctx context.Context, client otlptrace.Client) (*protoExporter, error) {
	if err := client.Start(ctx); err != nil {
		return nil, err
	}
	return &protoExporter{client: client}, nil
}

func (e *protoExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.group(spans)
	// One ResourceSpans per resource, its scopes' spans inside, as the exporter groups them.
	e.buf, e.bounds, e.rss = e.buf[:0], e.bounds[:0], e.rss[:0]
	for i := 0; i < len(e.groups); {
		r := e.groups[i].resource
		e.buf = appendResource(e.buf, r)
		for ; i < len(e.groups) && sameResource(e.groups[i].resource, r); i++ {
			g := e.groups[i]
			var start int
			e.buf, start = beginMessage(e.buf, rsScopeSpan)
			e.buf = appendScope(e.buf, g.scope)
			for _, s := range g.spans {
				e.buf = appendSpan(e.buf, s)
			}
			e.buf = appendString(e.buf, ssSchemaURL, g.scope.SchemaURL)
			e.buf = endMessage(e.buf, start)
		}
		if r != nil {
			e.buf = appendString(e.buf, rsSchemaURL, r.SchemaURL())
		}
		e.bounds = append(e.bounds, len(e.buf))
	}
	from := 0
	for _, to := range e.bounds {
		rs := new(tracepb.ResourceSpans)
		rs.ProtoReflect().SetUnknown(protoreflect.RawFields(e.buf[from:to:to]))
		e.rss = append(e.rss, rs)
		from = to
	}
	err := e.client.UploadTraces(ctx, e.rss)
	clear(e.rss)
	for i := range e.groups {
		clear(e.groups[i].spans)
	}
	return err
}

// group sorts spans into e.groups by resource and scope, reusing the groups' slices from batch
// to batch. Groups of one resource end up next to each other.
func (e *protoExporter) group(spans []sdktrace.ReadOnlySpan) {
	e.groups = e.groups[:cap(e.groups)]
	n := 0 // groups in use
	for _, s := range spans {
		if s == nil {
			continue
		}
		r, scope := s.Resource(), s.InstrumentationScope()
		i := 0
		for ; i < n; i++ {
			if sameResource(e.groups[i].resource, r) && e.groups[i].scope == scope {
				break
			}
		}
		if i == n {
			// A new group goes after the last of its resource's.
			i = n
			for j := n - 1; j >= 0; j-- {
				if sameResource(e.groups[j].resource, r) {
					i = j + 1
					break
				}
			}
			if n == len(e.groups) {
				e.groups = append(e.groups, group{})
			}
			kept := e.groups[n].spans[:0]
			copy(e.groups[i+1:n+1], e.groups[i:n])
			e.groups[i] = group{resource: r, scope: scope, spans: kept}
			n++
		}
		e.groups[i].spans = append(e.groups[i].spans, s)
	}
	e.groups = e.groups[:n]
}

// sameResource: resources with the same attributes are one, as the exporter keys them (the
// first span's resource gives the group its schema URL).
func sameResource(a, b *resource.Resource) bool {
	return a == b || a.Equivalent() == b.Equivalent()
}

func (e *protoExporter) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.client.Stop(ctx)
}
