package tracing

import (
	"github.com/opentracing/opentracing-go"
	otlog "github.com/opentracing/opentracing-go/log"
)

// remoteParent lends go-kit's HTTPToContext the tracer's Extract but not its StartSpan: the span
// HTTPToContext would start is never finished (TraceServer starts the one that is) and would leave
// every trace with a missing parent. remoteParent hands back an inert span instead, carrying the
// extracted context to TraceServer. A tracer that fails on a header (some return a zero context
// beside the error) or panics is treated as having found nothing usable.
type remoteParent struct{ opentracing.Tracer }

func (p remoteParent) Extract(format, carrier any) (sc opentracing.SpanContext, err error) {
	defer func() {
		if recover() != nil {
			sc, err = nil, opentracing.ErrSpanContextCorrupted
		}
	}()
	if sc, err = p.Tracer.Extract(format, carrier); err != nil {
		return nil, err
	}
	return sc, nil
}

func (p remoteParent) StartSpan(_ string, opts ...opentracing.StartSpanOption) opentracing.Span {
	var o opentracing.StartSpanOptions
	for _, opt := range opts {
		opt.Apply(&o)
	}
	in := &incoming{}
	if len(o.References) > 0 {
		in.remote = o.References[0].ReferencedContext
	}
	return in
}

// incoming is the inert span HTTPToContext leaves in the request context: Context returns the
// caller's span context, so TraceServer's span becomes its child.
type incoming struct {
	remote opentracing.SpanContext
}

func (s *incoming) Context() opentracing.SpanContext               { return s.remote }
func (s *incoming) Finish()                                        {}
func (s *incoming) FinishWithOptions(opentracing.FinishOptions)    {}
func (s *incoming) SetOperationName(string) opentracing.Span       { return s }
func (s *incoming) SetTag(string, any) opentracing.Span            { return s }
func (s *incoming) SetBaggageItem(string, string) opentracing.Span { return s }
func (s *incoming) BaggageItem(string) string                      { return "" }
func (s *incoming) LogKV(...any)                                   {}
func (s *incoming) LogEvent(string)                                {}
func (s *incoming) LogEventWithPayload(string, any)                {}
func (s *incoming) Log(opentracing.LogData)                        {}
func (s *incoming) LogFields(...otlog.Field)                       {}

// Tracer is a no-op tracer, so that opentracing.ContextWithSpan runs no tracer's context hook
// (the OpenTelemetry bridge warns about spans it did not make).
func (s *incoming) Tracer() opentracing.Tracer { return opentracing.NoopTracer{} }
