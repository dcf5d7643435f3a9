package jaeger

import (
	"encoding/binary"
	"math"

	j "github.com/uber/jaeger-client-go/thrift-gen/jaeger"
)

// The Thrift compact protocol, only as far as jaeger.thrift's Batch and agent.thrift's emitBatch
// need it, appending to a byte slice. The library's protocol writes through an interface call per
// value and looks each field's type up in a map, and its UDP sender serializes every span twice
// (once to measure it); this writes each span once, and a packet is its spans' bytes put together.
// TestCompactMatchesTheLibrary holds the bytes equal to the library's.

// Compact protocol type codes (thrift's compact protocol specification).
const (
	ctBoolTrue  = 1
	ctBoolFalse = 2
	ctI32       = 5
	ctI64       = 6
	ctDouble    = 7
	ctBinary    = 8
	ctList      = 9
	ctStruct    = 12
)

// fields writes one struct's field headers: a header names its field by the difference to the
// previous field's id when that is 1 to 15, so the writer remembers the last id.
type fields struct{ last int16 }

func (f *fields) begin(b []byte, id int16, typ byte) []byte {
	if d := id - f.last; d > 0 && d <= 15 {
		b = append(b, byte(d)<<4|typ)
	} else {
		b = append(b, typ)
		b = appendVarint(b, zigzag64(int64(id)))
	}
	f.last = id
	return b
}

func (f *fields) i64(b []byte, id int16, v int64) []byte {
	return appendVarint(f.begin(b, id, ctI64), zigzag64(v))
}

func (f *fields) i32(b []byte, id int16, v int32) []byte {
	return appendVarint(f.begin(b, id, ctI32), zigzag64(int64(v)))
}

func (f *fields) str(b []byte, id int16, v string) []byte {
	b = appendVarint(f.begin(b, id, ctBinary), uint64(len(v)))
	return append(b, v...)
}

func (f *fields) bin(b []byte, id int16, v []byte) []byte {
	b = appendVarint(f.begin(b, id, ctBinary), uint64(len(v)))
	return append(b, v...)
}

func (f *fields) boolean(b []byte, id int16, v bool) []byte {
	if v {
		return f.begin(b, id, ctBoolTrue)
	}
	return f.begin(b, id, ctBoolFalse)
}

func (f *fields) double(b []byte, id int16, v float64) []byte {
	return binary.LittleEndian.AppendUint64(f.begin(b, id, ctDouble), math.Float64bits(v))
}

// list writes a list field's header; its n elements follow.
func (f *fields) list(b []byte, id int16, elem byte, n int) []byte {
	return appendListHeader(f.begin(b, id, ctList), elem, n)
}

func appendListHeader(b []byte, elem byte, n int) []byte {
	if n <= 14 {
		return append(b, byte(n)<<4|elem)
	}
	return appendVarint(append(b, 0xf0|elem), uint64(uint32(int32(n))))
}

const stop = 0

func zigzag64(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func appendVarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendTag(b []byte, t *j.Tag) []byte {
	var f fields
	b = f.str(b, 1, t.Key)
	b = f.i32(b, 2, int32(t.VType))
	if t.VStr != nil {
		b = f.str(b, 3, *t.VStr)
	}
	if t.VDouble != nil {
		b = f.double(b, 4, *t.VDouble)
	}
	if t.VBool != nil {
		b = f.boolean(b, 5, *t.VBool)
	}
	if t.VLong != nil {
		b = f.i64(b, 6, *t.VLong)
	}
	if t.VBinary != nil {
		b = f.bin(b, 7, t.VBinary)
	}
	return append(b, stop)
}

func appendTags(b []byte, f *fields, id int16, tags []*j.Tag) []byte {
	b = f.list(b, id, ctStruct, len(tags))
	for _, t := range tags {
		b = appendTag(b, t)
	}
	return b
}

// appendSpan writes a span as jaeger.thrift's Span struct: optional lists only when set, as the
// generated code does (an empty list that is set is written empty).
func appendSpan(b []byte, s *j.Span) []byte {
	var f fields
	b = f.i64(b, 1, s.TraceIdLow)
	b = f.i64(b, 2, s.TraceIdHigh)
	b = f.i64(b, 3, s.SpanId)
	b = f.i64(b, 4, s.ParentSpanId)
	b = f.str(b, 5, s.OperationName)
	if s.References != nil {
		b = f.list(b, 6, ctStruct, len(s.References))
		for _, r := range s.References {
			var rf fields
			b = rf.i32(b, 1, int32(r.RefType))
			b = rf.i64(b, 2, r.TraceIdLow)
			b = rf.i64(b, 3, r.TraceIdHigh)
			b = rf.i64(b, 4, r.SpanId)
			b = append(b, stop)
		}
	}
	b = f.i32(b, 7, s.Flags)
	b = f.i64(b, 8, s.StartTime)
	b = f.i64(b, 9, s.Duration)
	if s.Tags != nil {
		b = appendTags(b, &f, 10, s.Tags)
	}
	if s.Logs != nil {
		b = f.list(b, 11, ctStruct, len(s.Logs))
		for _, l := range s.Logs {
			var lf fields
			b = lf.i64(b, 1, l.Timestamp)
			b = appendTags(b, &lf, 2, l.Fields)
			b = append(b, stop)
		}
	}
	return append(b, stop)
}

func appendProcess(b []byte, p *j.Process) []byte {
	var f fields
	b = f.str(b, 1, p.ServiceName)
	if p.Tags != nil {
		b = appendTags(b, &f, 2, p.Tags)
	}
	return append(b, stop)
}

// The datagram the agent reads is an emitBatch call whose one argument is a Batch: the process,
// the list of spans, the batch's sequence number and the client's drop counts. appendBatchHead
// writes everything before the spans' bytes, appendBatchTail everything after them, so spans
// written once by appendSpan go between the two unchanged.

// maxBatchHead is the most appendBatchHead writes besides the process: the message header
// (2 bytes, a sequence id of up to 5, the method's name with its length, 10), two field headers
// and the list's header (up to 6).
const maxBatchHead = 2 + 5 + 10 + 2 + 6

// maxBatchTail is the most appendBatchTail writes: the sequence number's field (up to 11 bytes),
// the stats' field header, three counts (up to 11 each) and three stops.
const maxBatchTail = 11 + 1 + 3*11 + 3

func appendBatchHead(b []byte, seqID int32, process []byte, n int) []byte {
	const (
		protocolID = 0x82
		version    = 1
		call       = 1 // emitBatch is oneway, but the library's client sends it as a call
		typeShift  = 5
	)
	b = append(b, protocolID, version|call<<typeShift)
	b = appendVarint(b, uint64(uint32(seqID)))
	b = appendVarint(b, uint64(len("emitBatch")))
	b = append(b, "emitBatch"...)
	var args fields
	b = args.begin(b, 1, ctStruct) // emitBatch's batch
	var batch fields
	b = batch.begin(b, 1, ctStruct)
	b = append(b, process...)
	return batch.list(b, 2, ctStruct, n)
}

func appendBatchTail(b []byte, batchSeqNo int64, stats j.ClientStats) []byte {
	batch := fields{last: 2} // after the spans' list
	b = batch.i64(b, 3, batchSeqNo)
	b = batch.begin(b, 4, ctStruct)
	var st fields
	b = st.i64(b, 1, stats.FullQueueDroppedSpans)
	b = st.i64(b, 2, stats.TooLargeDroppedSpans)
	b = st.i64(b, 3, stats.FailedToEmitSpans)
	b = append(b, stop)    // ClientStats
	b = append(b, stop)    // Batch
	return append(b, stop) // the arguments
}
