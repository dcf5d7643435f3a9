package otlp

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// capture is an otlptrace.Client that keeps the request body the HTTP client would send.
type capture struct {
	bodies [][]byte
	err    error
}

func (c *capture) Start(context.Context) error { return nil }
func (c *capture) Stop(context.Context) error  { return nil }
func (c *capture) UploadTraces(_ context.Context, rss []*tracepb.ResourceSpans) error {
	body, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rss})
	if err != nil {
		return err
	}
	c.bodies = append(c.bodies, body)
	return c.err
}

// decoded is a request body as a collector reads it, its resources in a fixed order (the
// library's exporter puts them in map order).
func decoded(t *testing.T, body []byte) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	if len(req.ProtoReflect().GetUnknown()) > 0 {
		t.Fatal("unknown fields left in the request")
	}
	slices.SortFunc(req.ResourceSpans, func(a, b *tracepb.ResourceSpans) int {
		return strings.Compare(prototext.Format(a.Resource), prototext.Format(b.Resource))
	})
	return &req
}

// recordedSpans are finished spans of two tracer providers (two resources, one without a schema
// URL), two scopes, with every kind of attribute value, events, links, statuses, span kinds, a
// remote parent and a trace state.
func recordedSpans(t *testing.T) []sdktrace.ReadOnlySpan {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	res1 := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0", attribute.String("service.name", "one"), attribute.Int("n", 1))
	res2 := resource.NewSchemaless(attribute.String("service.name", "two"))
	for _, res := range []*resource.Resource{res1, res2} {
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(rec))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		a := tp.Tracer("scope-a", trace.WithInstrumentationVersion("1.2.3"),
			trace.WithInstrumentationAttributes(attribute.Bool("scoped", true)), trace.WithSchemaURL("https://example.com/s"))
		b := tp.Tracer("scope-b")

		ts, err := trace.ParseTraceState("vendor=value,other=x")
		if err != nil {
			t.Fatal(err)
		}
		remote := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
			TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
		})
		ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote)
		long := strings.Repeat("long value ", 30) // lengths past one varint byte
		ctx, root := a.Start(ctx, "root", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithLinks(trace.Link{SpanContext: remote, Attributes: []attribute.KeyValue{attribute.String("link", "attr")}}),
			trace.WithAttributes(
				attribute.String("s", "v"), attribute.String("empty", ""), attribute.String("long", long),
				attribute.Bool("t", true), attribute.Bool("f", false),
				attribute.Int64("i", -42), attribute.Int64("zero", 0), attribute.Float64("d", math.Pi),
				attribute.BoolSlice("bs", []bool{true, false}), attribute.Int64Slice("is", []int64{1, -1}),
				attribute.Float64Slice("ds", []float64{0.5}), attribute.StringSlice("ss", []string{"a", ""}),
				attribute.StringSlice("none", nil),
			))
		root.AddEvent("event", trace.WithTimestamp(time.Unix(1, 5)), trace.WithAttributes(attribute.Int("e", 1)))
		root.AddEvent("bare")
		root.RecordError(errors.New("boom"))
		root.SetStatus(codes.Error, "it failed")
		for _, kind := range []trace.SpanKind{trace.SpanKindUnspecified, trace.SpanKindInternal, trace.SpanKindClient, trace.SpanKindProducer, trace.SpanKindConsumer} {
			_, child := b.Start(ctx, "child "+kind.String(), trace.WithSpanKind(kind))
			child.SetStatus(codes.Ok, "")
			child.End()
		}
		_, old := b.Start(context.Background(), "before 1970", trace.WithTimestamp(time.Unix(-5, 0)))
		old.End(trace.WithTimestamp(time.Unix(-1, 0)))
		root.End()
	}
	spans := rec.Ended()
	// Interleave the resources and scopes, as a batch from several providers would.
	slices.SortStableFunc(spans, func(x, y sdktrace.ReadOnlySpan) int { return strings.Compare(x.Name(), y.Name()) })
	return spans
}

// TestProtoMatchesTheExporter: a collector decodes the same request from our exporter as from
// otlptrace's, batch after batch (the buffers are reused).
func TestProtoMatchesTheExporter(t *testing.T) {
	spans := recordedSpans(t)
	ctx := context.Background()
	lib, ours := new(capture), new(capture)
	libExp, err := otlptrace.New(ctx, lib)
	if err != nil {
		t.Fatal(err)
	}
	ourExp, err := newProtoExporter(ctx, ours)
	if err != nil {
		t.Fatal(err)
	}
	batches := [][]sdktrace.ReadOnlySpan{spans, spans[:1], spans[3:], spans}
	for _, batch := range batches {
		if err := libExp.ExportSpans(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := ourExp.ExportSpans(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if len(ours.bodies) != len(batches) {
		t.Fatalf("%d requests, want %d", len(ours.bodies), len(batches))
	}
	for i := range batches {
		want, got := decoded(t, lib.bodies[i]), decoded(t, ours.bodies[i])
		if !proto.Equal(got, want) {
			t.Errorf("batch %d differs:\n got %v\nwant %v", i, prototext.Format(got), prototext.Format(want))
		}
	}
	if n := len(decoded(t, ours.bodies[0]).ResourceSpans); n != 2 {
		t.Errorf("%d resources in the first batch, want 2", n)
	}
	if err := ourExp.ExportSpans(ctx, nil); err != nil || len(ours.bodies) != len(batches) {
		t.Errorf("an empty batch: %v, %d requests", err, len(ours.bodies))
	}
	ours.err = errors.New("refused")
	if err := ourExp.ExportSpans(ctx, spans); !errors.Is(err, ours.err) {
		t.Errorf("a failed upload: %v", err)
	}
}

// TestScopeGrouping: spans of one resource stay together even when a new scope of it comes
// after another resource's.
func TestScopeGrouping(t *testing.T) {
	r1, r2 := resource.NewSchemaless(attribute.String("r", "1")), resource.NewSchemaless(attribute.String("r", "2"))
	stub := func(r *resource.Resource, scope, name string) sdktrace.ReadOnlySpan {
		return tracetest.SpanStub{Name: name, Resource: r, InstrumentationScope: instrumentation.Scope{Name: scope}}.Snapshot()
	}
	var e protoExporter
	e.group([]sdktrace.ReadOnlySpan{stub(r1, "a", "1"), stub(r2, "a", "2"), stub(r1, "b", "3"), stub(r1, "a", "4"), nil, stub(r2, "a", "5")})
	var got []string
	for _, g := range e.groups {
		names := []string{}
		for _, s := range g.spans {
			names = append(names, s.Name())
		}
		got = append(got, g.scope.Name+":"+strings.Join(names, ","))
	}
	if want := []string{"a:1,4", "b:3", "a:2,5"}; !slices.Equal(got, want) {
		t.Errorf("groups %v, want %v", got, want)
	}
	e.group([]sdktrace.ReadOnlySpan{stub(r2, "c", "6")})
	if len(e.groups) != 1 || e.groups[0].scope.Name != "c" || len(e.groups[0].spans) != 1 {
		t.Errorf("the next batch's groups: %+v", e.groups)
	}
}

// BenchmarkExport is the exporter's work per span, otlptrace's beside ours, without the HTTP
// request (the client marshals the request and keeps nothing).
//
//	go test -run '^$' -bench Export -benchmem ./instrumenting/tracing/otlp/
func BenchmarkExport(b *testing.B) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "bench"))),
		sdktrace.WithSpanProcessor(rec))
	tr := tp.Tracer(tracerName)
	for range 512 {
		_, s := tr.Start(context.Background(), "GET /orders/{id}", trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("http.method", "GET"), attribute.String("http.url", "/orders/42?expand=1"),
			attribute.Int64("http.status_code", 200), attribute.String("route", "orders"),
			attribute.String("request_id", "0123456789abcdef0123456789abcdef")))
		s.End()
	}
	spans := rec.Ended()
	for _, bc := range []struct {
		name string
		new  func(otlptrace.Client) (sdktrace.SpanExporter, error)
	}{
		{"library", func(c otlptrace.Client) (sdktrace.SpanExporter, error) { return otlptrace.New(context.Background(), c) }},
		{"ours", func(c otlptrace.Client) (sdktrace.SpanExporter, error) {
			return newProtoExporter(context.Background(), c)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			exp, err := bc.new(discard{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := exp.ExportSpans(context.Background(), spans); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(spans)), "ns/span")
		})
	}
}

// discard is a client that marshals the request, as otlptracehttp's does, and sends nothing.
type discard struct{}

func (discard) Start(context.Context) error { return nil }
func (discard) Stop(context.Context) error  { return nil }
func (discard) UploadTraces(_ context.Context, rss []*tracepb.ResourceSpans) error {
	_, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rss})
	return err
}
