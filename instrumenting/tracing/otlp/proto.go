package otlp

import (
	"math"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// OTLP's protobuf messages (opentelemetry/proto trace/v1, common/v1, resource/v1), written
// straight from the SDK's finished spans into one reused buffer. The exporter's own conversion
// (otlptrace's tracetransform) builds a message struct per span, attribute and value first, about
// 13 allocations per span here, and then marshals them. The content is the same as that
// conversion's, field for field (TestProtoMatchesTheExporter): the same flags, status, kinds and
// attribute value types, the same fields left out when empty.

// Field numbers.
const (
	// ResourceSpans
	rsResource  = 1
	rsScopeSpan = 2
	rsSchemaURL = 3
	// Resource
	resAttributes = 1
	// ScopeSpans
	ssScope     = 1
	ssSpans     = 2
	ssSchemaURL = 3
	// InstrumentationScope
	scopeName       = 1
	scopeVersion    = 2
	scopeAttributes = 3
	// Span
	spTraceID       = 1
	spSpanID        = 2
	spTraceState    = 3
	spParentSpanID  = 4
	spName          = 5
	spKind          = 6
	spStart         = 7
	spEnd           = 8
	spAttributes    = 9
	spDroppedAttrs  = 10
	spEvents        = 11
	spDroppedEvents = 12
	spLinks         = 13
	spDroppedLinks  = 14
	spStatus        = 15
	spFlags         = 16
	// Span.Event
	evTime         = 1
	evName         = 2
	evAttributes   = 3
	evDroppedAttrs = 4
	// Span.Link
	lkTraceID      = 1
	lkSpanID       = 2
	lkAttributes   = 4
	lkDroppedAttrs = 5
	lkFlags        = 6
	// Status
	stMessage = 2
	stCode    = 3
	// KeyValue, KeyValueList, ArrayValue
	kvKey    = 1
	kvValue  = 2
	listElem = 1
	// AnyValue
	avString = 1
	avBool   = 2
	avInt    = 3
	avDouble = 4
	avArray  = 5
	avKVList = 6
	avBytes  = 7
)

// Enum values of trace/v1.
const (
	statusOK    = 1
	statusError = 2

	flagsContextHasIsRemote = 0x100
	flagsContextIsRemote    = 0x200
)

// beginMessage writes an embedded message's tag and a one-byte length to be set by endMessage,
// and returns where the message's content starts.
func beginMessage(b []byte, field protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return append(b, 0), len(b) + 1
}

// endMessage sets the length of the message begun at start; a length of 128 or more takes more
// than the byte kept for it, so the content moves up to make room.
func endMessage(b []byte, start int) []byte {
	n := len(b) - start
	if n < 0x80 {
		b[start-1] = byte(n)
		return b
	}
	extra := protowire.SizeVarint(uint64(n)) - 1
	for range extra {
		b = append(b, 0)
	}
	copy(b[start+extra:], b[start:start+n])
	protowire.AppendVarint(b[:start-1], uint64(n))
	return b
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, field, protowire.BytesType), s)
}

func appendBytes(b []byte, field protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return protowire.AppendBytes(protowire.AppendTag(b, field, protowire.BytesType), v)
}

func appendUint(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, field, protowire.VarintType), v)
}

func appendFixed64(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendFixed64(protowire.AppendTag(b, field, protowire.Fixed64Type), v)
}

func appendFixed32(b []byte, field protowire.Number, v uint32) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendFixed32(protowire.AppendTag(b, field, protowire.Fixed32Type), v)
}

// clampCount is a dropped count as the exporter writes it: negative as 0, at most MaxUint32.
func clampCount(n int) uint64 { return uint64(min(max(n, 0), math.MaxUint32)) }

// unixNano is a time as the exporter writes it: before 1970 as 0.
func unixNano(ns int64) uint64 { return uint64(max(ns, 0)) }

func appendKeyValues(b []byte, field protowire.Number, kvs []attribute.KeyValue) []byte {
	for _, kv := range kvs {
		b = appendKeyValue(b, field, kv)
	}
	return b
}

func appendKeyValue(b []byte, field protowire.Number, kv attribute.KeyValue) []byte {
	b, start := beginMessage(b, field)
	b = appendString(b, kvKey, string(kv.Key))
	b = appendAnyValue(b, kvValue, kv.Value)
	return endMessage(b, start)
}

// appendAnyValue writes an AnyValue. Its value is a oneof, so a zero value is still written
// (false, 0, ""), and an empty attribute is an AnyValue with no value.
func appendAnyValue(b []byte, field protowire.Number, v attribute.Value) []byte {
	b, start := beginMessage(b, field)
	switch v.Type() {
	case attribute.BOOL:
		b = protowire.AppendVarint(protowire.AppendTag(b, avBool, protowire.VarintType), protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		b = protowire.AppendVarint(protowire.AppendTag(b, avInt, protowire.VarintType), uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = protowire.AppendFixed64(protowire.AppendTag(b, avDouble, protowire.Fixed64Type), math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		b = protowire.AppendString(protowire.AppendTag(b, avString, protowire.BytesType), v.AsString())
	case attribute.BYTESLICE:
		b = protowire.AppendBytes(protowire.AppendTag(b, avBytes, protowire.BytesType), v.AsByteSlice())
	case attribute.BOOLSLICE:
		b = appendArray(b, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		b = appendArray(b, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		b = appendArray(b, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		b = appendArray(b, v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		b = appendArray(b, v.AsSlice(), func(v attribute.Value) attribute.Value { return v })
	case attribute.MAP:
		var list int
		b, list = beginMessage(b, avKVList)
		b = appendKeyValues(b, listElem, v.AsMap())
		b = endMessage(b, list)
	case attribute.EMPTY:
	default:
		b = protowire.AppendString(protowire.AppendTag(b, avString, protowire.BytesType), "INVALID")
	}
	return endMessage(b, start)
}

func appendArray[T any](b []byte, elems []T, value func(T) attribute.Value) []byte {
	b, start := beginMessage(b, avArray)
	for _, e := range elems {
		b = appendAnyValue(b, listElem, value(e))
	}
	return endMessage(b, start)
}

func appendIterator(b []byte, field protowire.Number, it attribute.Iterator) []byte {
	for it.Next() {
		b = appendKeyValue(b, field, it.Attribute())
	}
	return b
}

// appendResource writes ResourceSpans' resource field: nothing for no resource.
func appendResource(b []byte, r *resource.Resource) []byte {
	if r == nil {
		return b
	}
	b, start := beginMessage(b, rsResource)
	b = appendIterator(b, resAttributes, r.Iter())
	return endMessage(b, start)
}

// appendScope writes ScopeSpans' scope field: nothing for the zero scope.
func appendScope(b []byte, s instrumentation.Scope) []byte {
	if s == (instrumentation.Scope{}) {
		return b
	}
	b, start := beginMessage(b, ssScope)
	b = appendString(b, scopeName, s.Name)
	b = appendString(b, scopeVersion, s.Version)
	b = appendIterator(b, scopeAttributes, s.Attributes.Iter())
	return endMessage(b, start)
}

// spanFlags are the W3C trace flags with the bits that say whether the parent was remote.
func spanFlags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	flags := uint32(tf) | flagsContextHasIsRemote
	if parent.IsRemote() {
		flags |= flagsContextIsRemote
	}
	return flags
}

func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	b, start := beginMessage(b, ssSpans)
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytes(b, spTraceID, tid[:])
	b = appendBytes(b, spSpanID, sid[:])
	b = appendString(b, spTraceState, sc.TraceState().String())
	parent := s.Parent()
	if psid := parent.SpanID(); psid.IsValid() {
		b = appendBytes(b, spParentSpanID, psid[:])
	}
	b = appendString(b, spName, s.Name())
	b = appendUint(b, spKind, uint64(spanKind(s.SpanKind())))
	b = appendFixed64(b, spStart, unixNano(s.StartTime().UnixNano()))
	b = appendFixed64(b, spEnd, unixNano(s.EndTime().UnixNano()))
	b = appendKeyValues(b, spAttributes, s.Attributes())
	b = appendUint(b, spDroppedAttrs, clampCount(s.DroppedAttributes()))
	for _, e := range s.Events() {
		var ev int
		b, ev = beginMessage(b, spEvents)
		b = appendFixed64(b, evTime, unixNano(e.Time.UnixNano()))
		b = appendString(b, evName, e.Name)
		b = appendKeyValues(b, evAttributes, e.Attributes)
		b = appendUint(b, evDroppedAttrs, clampCount(e.DroppedAttributeCount))
		b = endMessage(b, ev)
	}
	b = appendUint(b, spDroppedEvents, clampCount(s.DroppedEvents()))
	for _, l := range s.Links() {
		var lk int
		b, lk = beginMessage(b, spLinks)
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		b = appendBytes(b, lkTraceID, ltid[:])
		b = appendBytes(b, lkSpanID, lsid[:])
		b = appendKeyValues(b, lkAttributes, l.Attributes)
		b = appendUint(b, lkDroppedAttrs, clampCount(l.DroppedAttributeCount))
		b = appendFixed32(b, lkFlags, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
		b = endMessage(b, lk)
	}
	b = appendUint(b, spDroppedLinks, clampCount(s.DroppedLinks()))
	// The status is always there, empty when unset.
	var st int
	b, st = beginMessage(b, spStatus)
	status := s.Status()
	b = appendString(b, stMessage, status.Description)
	switch status.Code {
	case codes.Ok:
		b = appendUint(b, stCode, statusOK)
	case codes.Error:
		b = appendUint(b, stCode, statusError)
	}
	b = endMessage(b, st)
	b = appendFixed32(b, spFlags, spanFlags(sc.TraceFlags(), parent))
	return endMessage(b, start)
}

// spanKind is trace/v1's SpanKind: the SDK's kinds in the same order, anything else unspecified.
func spanKind(k trace.SpanKind) int {
	switch k {
	case trace.SpanKindInternal, trace.SpanKindServer, trace.SpanKindClient, trace.SpanKindProducer, trace.SpanKindConsumer:
		return int(k)
	}
	return 0
}
