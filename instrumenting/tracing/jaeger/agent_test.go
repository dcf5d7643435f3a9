package jaeger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	otlog "github.com/opentracing/opentracing-go/log"
	"github.com/uber/jaeger-client-go"
	"github.com/uber/jaeger-client-go/thrift"
	"github.com/uber/jaeger-client-go/thrift-gen/agent"
	j "github.com/uber/jaeger-client-go/thrift-gen/jaeger"
)

func libraryCompact(t *testing.T, s thrift.TStruct) []byte {
	t.Helper()
	buf := thrift.NewTMemoryBuffer()
	if err := s.Write(context.Background(), thrift.NewTCompactProtocolConf(buf, &thrift.TConfiguration{})); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCompactMatchesTheLibrary: every kind of tag value, logs, references, lists longer than a
// short list header holds, negative and large numbers: the bytes are the library's.
func TestCompactMatchesTheLibrary(t *testing.T) {
	str := func(s string) *string { return &s }
	f64 := func(f float64) *float64 { return &f }
	boolean := func(b bool) *bool { return &b }
	i64 := func(i int64) *int64 { return &i }
	tags := []*j.Tag{
		{Key: "s", VType: j.TagType_STRING, VStr: str("a string")},
		{Key: "empty", VType: j.TagType_STRING, VStr: str("")},
		{Key: "d", VType: j.TagType_DOUBLE, VDouble: f64(-0.25)},
		{Key: "t", VType: j.TagType_BOOL, VBool: boolean(true)},
		{Key: "f", VType: j.TagType_BOOL, VBool: boolean(false)},
		{Key: "l", VType: j.TagType_LONG, VLong: i64(-1 << 62)},
		{Key: "b", VType: j.TagType_BINARY, VBinary: []byte{0, 1, 0xff}},
		{Key: "b0", VType: j.TagType_BINARY, VBinary: []byte{}},
	}
	many := make([]*j.Tag, 0, 40)
	for i := range 40 {
		many = append(many, &j.Tag{Key: fmt.Sprintf("k%d", i), VType: j.TagType_LONG, VLong: i64(int64(i) * 1000003)})
	}
	spans := []*j.Span{
		{TraceIdLow: -1, TraceIdHigh: 1 << 40, SpanId: 7, ParentSpanId: 0, OperationName: "op", Flags: 1,
			StartTime: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC).UnixMicro(), Duration: 1234,
			Tags: tags,
			Logs: []*j.Log{{Timestamp: 5, Fields: tags[:2]}, {Timestamp: 6, Fields: []*j.Tag{}}},
			References: []*j.SpanRef{
				{RefType: j.SpanRefType_CHILD_OF, TraceIdLow: 3, TraceIdHigh: 4, SpanId: 5},
				{RefType: j.SpanRefType_FOLLOWS_FROM, TraceIdLow: -3, TraceIdHigh: 0, SpanId: -5},
			}},
		{OperationName: strings.Repeat("x", 300), Tags: many, Logs: []*j.Log{}, References: []*j.SpanRef{}},
		{OperationName: "no lists"},
	}
	for i, s := range spans {
		if got, want := appendSpan(nil, s), libraryCompact(t, s); !bytes.Equal(got, want) {
			t.Errorf("span %d:\n got %x\nwant %x", i, got, want)
		}
	}
	for i, p := range []*j.Process{{ServiceName: "svc", Tags: tags}, {ServiceName: "svc"}, {ServiceName: "svc", Tags: many}} {
		if got, want := appendProcess(nil, p), libraryCompact(t, p); !bytes.Equal(got, want) {
			t.Errorf("process %d:\n got %x\nwant %x", i, got, want)
		}
	}
	// A whole datagram, as the library's agent client writes it (its first call).
	for _, n := range []int{1, 3, 15, 40} {
		batch := &j.Batch{Process: &j.Process{ServiceName: "svc", Tags: tags}, SeqNo: i64(int64(n) << 33),
			Stats: &j.ClientStats{FullQueueDroppedSpans: 1, TooLargeDroppedSpans: 1 << 50, FailedToEmitSpans: -1}}
		var written []byte
		for i := range n {
			s := spans[i%len(spans)]
			batch.Spans = append(batch.Spans, s)
			written = appendSpan(written, s)
		}
		buf := thrift.NewTMemoryBuffer()
		if err := agent.NewAgentClientFactory(buf, thrift.NewTCompactProtocolFactoryConf(&thrift.TConfiguration{})).EmitBatch(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		got := appendBatchHead(nil, 1, appendProcess(nil, batch.Process), n)
		got = append(got, written...)
		got = appendBatchTail(got, *batch.SeqNo, *batch.Stats)
		if !bytes.Equal(got, buf.Bytes()) {
			t.Errorf("batch of %d:\n got %x\nwant %x", n, got, buf.Bytes())
		}
	}
}

// listenUDP is a stand-in agent: it returns the datagrams it receives.
func listenUDP(t *testing.T) (*net.UDPConn, func() []byte) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn, func() []byte {
		t.Helper()
		buf := make([]byte, 70000)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return buf[:n]
	}
}

// tracedSpans makes finished spans of a real tracer: tags of every kind, a log, a child with a
// reference, the root's sampler tags and the tracer's process tags.
func tracedSpans(t testing.TB, n int) []*jaeger.Span {
	t.Helper()
	rep := jaeger.NewInMemoryReporter()
	tracer, closer := jaeger.NewTracer("agent-test", jaeger.NewConstSampler(true), rep,
		jaeger.TracerOptions.Gen128Bit(true), jaeger.TracerOptions.Tag("process.tag", "yes"))
	t.Cleanup(func() { _ = closer.Close() })
	for i := range n {
		root := tracer.StartSpan(fmt.Sprintf("root %d", i))
		ext.SpanKindRPCServer.Set(root)
		root.SetTag("http.status_code", uint16(200)).SetTag("ratio", 0.5).SetTag("ok", true).SetTag("bin", []byte("b"))
		root.SetTag("dup", "first").SetTag("dup", "second")
		root.LogFields(otlog.String("event", "something"), otlog.Int("n", i))
		child := tracer.StartSpan("child", opentracing.ChildOf(root.Context()), opentracing.FollowsFrom(root.Context()))
		child.Finish()
		root.Finish()
	}
	var spans []*jaeger.Span
	for _, s := range rep.GetSpans() {
		spans = append(spans, s.(*jaeger.Span))
	}
	return spans
}

// TestAgentSenderSendsWhatTheLibrarySends: the same spans through the library's UDP transport
// and through ours reach an agent as the same datagram.
func TestAgentSenderSendsWhatTheLibrarySends(t *testing.T) {
	spans := tracedSpans(t, 3)
	libConn, libRead := listenUDP(t)
	ourConn, ourRead := listenUDP(t)
	lib, err := jaeger.NewUDPTransport(libConn.LocalAddr().String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	ours, err := newAgentSender(ourConn.LocalAddr().String(), 0, nil, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	for _, tr := range []jaeger.Transport{lib, ours} {
		for _, s := range spans {
			if n, err := tr.Append(s); n != 0 || err != nil {
				t.Fatalf("%T: Append = %d, %v", tr, n, err)
			}
		}
		if n, err := tr.Flush(); n != len(spans) || err != nil {
			t.Fatalf("%T: Flush = %d, %v; want %d", tr, n, err, len(spans))
		}
	}
	want, got := libRead(), ourRead()
	if !bytes.Equal(got, want) {
		t.Fatalf("datagrams differ:\n got %x\nwant %x", got, want)
	}
	if n, err := ours.Flush(); n != 0 || err != nil {
		t.Errorf("a second Flush = %d, %v; want nothing sent", n, err)
	}
}

func decodeBatch(t *testing.T, packet []byte) *j.Batch {
	t.Helper()
	buf := thrift.NewTMemoryBuffer()
	_, _ = buf.Write(packet)
	p := thrift.NewTCompactProtocolConf(buf, &thrift.TConfiguration{})
	ctx := context.Background()
	if name, _, _, err := p.ReadMessageBegin(ctx); err != nil || name != "emitBatch" {
		t.Fatalf("message %q, %v", name, err)
	}
	var args agent.AgentEmitBatchArgs
	if err := args.Read(ctx, p); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatalf("%d bytes after the call", buf.Len())
	}
	return args.Batch
}

// TestAgentSenderSplitsPackets: with small packets, every span arrives once and in order, no
// packet is larger than allowed, a span too large for any packet is dropped and counted, and the
// batches carry sequence numbers and the drop counts.
func TestAgentSenderSplitsPackets(t *testing.T) {
	spans := tracedSpans(t, 20)
	conn, read := listenUDP(t)
	const maxPacket = 1500
	var queueFull atomic.Int64
	queueFull.Store(7)
	s, err := newAgentSender(conn.LocalAddr().String(), maxPacket, &queueFull, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	huge := tracedSpans(t, 1)[0]
	for k := range 20 { // values are truncated to 256 bytes, so many of them
		huge.SetTag(fmt.Sprintf("huge %d", k), strings.Repeat("h", 200))
	}
	sent, packets := 0, 0
	for i, sp := range spans {
		if i == 5 {
			if n, err := s.Append(huge); n != 1 || !errors.Is(err, errSpanTooLarge) {
				t.Fatalf("a span larger than a packet: Append = %d, %v", n, err)
			}
		}
		n, err := s.Append(sp)
		if err != nil {
			t.Fatal(err)
		}
		sent += n
		if n > 0 {
			packets++
		}
	}
	n, err := s.Flush()
	if err != nil {
		t.Fatal(err)
	}
	sent += n
	packets++
	if sent != len(spans) || packets < 3 {
		t.Fatalf("%d spans sent in %d packets, want %d in several", sent, packets, len(spans))
	}
	var got []*j.Span
	for i := range packets {
		packet := read()
		if len(packet) > maxPacket {
			t.Errorf("packet %d: %d bytes", i, len(packet))
		}
		b := decodeBatch(t, packet)
		if b.Process.ServiceName != "agent-test" || *b.SeqNo != int64(i+1) {
			t.Errorf("packet %d: service %q, seqNo %d", i, b.Process.ServiceName, *b.SeqNo)
		}
		if b.Stats.TooLargeDroppedSpans != 1 && i > 0 || b.Stats.FullQueueDroppedSpans != 7 {
			t.Errorf("packet %d: stats %+v", i, b.Stats)
		}
		got = append(got, b.Spans...)
	}
	for i, sp := range spans {
		want := jaeger.BuildJaegerThrift(sp)
		if i >= len(got) || !bytes.Equal(libraryCompact(t, got[i]), libraryCompact(t, want)) {
			t.Fatalf("span %d did not arrive as sent", i)
		}
	}
}

// TestAgentSenderCountsFailedSends: with no agent listening, a flush fails and the batch stats of
// the next packet say so.
func TestAgentSenderCountsFailedSends(t *testing.T) {
	conn, _ := listenUDP(t)
	addr := conn.LocalAddr().String()
	s, err := newAgentSender(addr, 0, nil, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	spans := tracedSpans(t, 2)
	_ = conn.Close()
	// The first write after the port closes may still succeed; the refusal comes back for a
	// later one.
	failed := 0
	for range 20 {
		if _, err := s.Append(spans[0]); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Flush(); err != nil {
			failed += n
		}
		if failed > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if failed == 0 {
		t.Fatal("no send failed with nothing listening")
	}
	conn2, err := net.ListenUDP("udp", conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatalf("listening again on the agent's port: %v", err)
	}
	defer conn2.Close()
	if _, err := s.Append(spans[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 70000)
	_ = conn2.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn2.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := decodeBatch(t, buf[:n]); b.Stats.FailedToEmitSpans != int64(failed) {
		t.Errorf("stats %+v, want %d failed", b.Stats, failed)
	}
}

func testLogger() logger { return logger{warn: log.NewNopLogger(), debug: log.NewNopLogger()} }

// BenchmarkAgentTransport is the reporter's work per finished span, the library's UDP transport
// beside ours: the conversion, the serialization and a packet sent every so often to a socket
// that does not read (the kernel drops what does not fit, the writes succeed).
//
//	go test -run '^$' -bench AgentTransport -benchmem ./instrumenting/tracing/jaeger/
func BenchmarkAgentTransport(b *testing.B) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	addr := conn.LocalAddr().String()
	spans := tracedSpans(b, 4)
	for _, bc := range []struct {
		name string
		new  func() (jaeger.Transport, error)
	}{
		{"library", func() (jaeger.Transport, error) { return jaeger.NewUDPTransport(addr, 0) }},
		{"ours", func() (jaeger.Transport, error) { return newAgentSender(addr, 0, nil, testLogger()) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tr, err := bc.new()
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Close()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := tr.Append(spans[i%len(spans)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if _, err := tr.Flush(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
