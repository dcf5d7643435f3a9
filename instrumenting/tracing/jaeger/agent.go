package jaeger

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uber/jaeger-client-go"
	j "github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	"github.com/uber/jaeger-client-go/utils"
)

// agentSender is the reporter's transport to a Jaeger agent over UDP, in place of the library's
// (jaeger.NewUDPTransportWithParams), which converted each span to Thrift structs, serialized it
// once to measure it and again in the packet, and kept the converted spans until the packet was
// sent. This one takes the same conversion (jaeger.BuildJaegerThrift, so the agent receives the
// same tags, logs and references, truncated alike), writes it once into the packet's buffer and
// lets the structs go at once. The datagrams are the library's byte for byte
// (TestAgentSenderSendsWhatTheLibrarySends), and they are as large: up to 65,000 bytes.
//
// The reporter calls Append, Flush and Close from its one goroutine, so the sender has no lock
// of its own; only the connection, which a resolver goroutine replaces, has one.
type agentSender struct {
	conn       *agentConn
	maxPacket  int
	queueFull  *atomic.Int64 // the reporter's queue drops, for the batch's stats
	process    []byte        // the process struct, written at the first span
	headroom   int           // room in front of the spans for the batch's head
	buf        []byte        // headroom, then the spans of the next packet, each written once
	n          int           // spans in buf
	head       []byte        // the batch's head, made at each flush
	aside      []byte        // a span waiting while the packet before it is sent
	seqID      int32         // the call's sequence id, as the library's client counts it
	batchSeqNo int64
	tooLarge   int64 // spans dropped because no packet could hold them
	failed     int64 // spans in packets that could not be sent
}

// errSpanTooLarge: a span that does not fit in a packet even alone is dropped (and counted as a
// failed send), as the library does.
var errSpanTooLarge = errors.New("span is too large for one UDP packet")

// newAgentSender sends to the agent at hostPort in datagrams of at most maxPacket bytes
// (utils.UDPPacketMaxLength when 0). queueFull is read for each batch's stats.
func newAgentSender(hostPort string, maxPacket int, queueFull *atomic.Int64, l logger) (*agentSender, error) {
	if maxPacket == 0 {
		maxPacket = utils.UDPPacketMaxLength
	}
	conn, err := dialAgent(hostPort, maxPacket, agentResolveInterval, l)
	if err != nil {
		return nil, err
	}
	// The packet's buffer is made once, as large as a packet: grown span by span, it would be
	// copied a dozen times before it reached its size.
	return &agentSender{conn: conn, maxPacket: maxPacket, queueFull: queueFull, buf: make([]byte, 0, maxPacket)}, nil
}

// Append writes the span into the next packet. When it does not fit beside the spans before it,
// those are sent first, and the count sent (or failed) is returned, as the reporter expects.
func (s *agentSender) Append(span *jaeger.Span) (int, error) {
	if s.process == nil {
		s.process = appendProcess(nil, jaeger.BuildJaegerProcessThrift(span))
		s.headroom = maxBatchHead + len(s.process)
		s.buf = slices.Grow(s.buf[:0], s.headroom)[:s.headroom] // a process too large for a packet fails each span below
	}
	start := len(s.buf)
	s.buf = appendSpan(s.buf, jaeger.BuildJaegerThrift(span))
	size := len(s.buf) - start
	limit := s.maxPacket - maxBatchTail // the head's room is inside buf already
	switch {
	case s.headroom+size > limit:
		s.buf = s.buf[:start]
		s.tooLarge++
		return 1, errSpanTooLarge
	case len(s.buf) <= limit:
		s.n++
		return 0, nil
	}
	// Send the spans before this one without it, then put it first in the next packet. The
	// batch's tail is written after the spans sent, where this span is, so it waits aside.
	s.aside = append(s.aside[:0], s.buf[start:]...)
	s.buf = s.buf[:start]
	n, err := s.send()
	s.buf = append(s.buf, s.aside...)
	s.n = 1
	return n, err
}

// Flush sends the spans written so far.
func (s *agentSender) Flush() (int, error) { return s.send() }

// send sends buf's spans as one packet and forgets them.
func (s *agentSender) send() (int, error) {
	n := s.n
	if n == 0 {
		return 0, nil
	}
	s.seqID++
	s.batchSeqNo++
	s.head = appendBatchHead(s.head[:0], s.seqID, s.process, n)
	from := s.headroom - len(s.head)
	copy(s.buf[from:], s.head)
	stats := j.ClientStats{TooLargeDroppedSpans: s.tooLarge, FailedToEmitSpans: s.failed}
	if s.queueFull != nil {
		stats.FullQueueDroppedSpans = s.queueFull.Load()
	}
	s.buf = slices.Grow(s.buf, maxBatchTail) // the tail goes in buf's own array, kept for the next packet
	packet := appendBatchTail(s.buf[from:], s.batchSeqNo, stats)
	var err error
	if len(packet) > s.maxPacket { // cannot happen: Append keeps room for head and tail
		err = fmt.Errorf("jaeger batch of %d spans is %d bytes, more than a packet's %d", n, len(packet), s.maxPacket)
	} else {
		err = s.conn.write(packet)
	}
	s.n = 0
	s.buf = s.buf[:s.headroom]
	if err != nil {
		s.failed += int64(n)
	}
	return n, err
}

// Close closes the connection; the reporter flushes before it closes its transport.
func (s *agentSender) Close() error { return s.conn.close() }

// agentResolveInterval is how often the agent's name is resolved again, as the library does, so
// an agent that moves (a new pod, a new address) is followed.
const agentResolveInterval = 30 * time.Second

// agentConn is a UDP connection to the agent that a background goroutine re-dials whenever the
// agent's name resolves to another address. A name that does not resolve yet is not an error:
// packets fail (and are counted) until it does.
type agentConn struct {
	hostPort  string
	maxPacket int
	log       logger
	mu        sync.RWMutex
	conn      *net.UDPConn
	stop      chan struct{}
	done      chan struct{}
}

var errNoAgent = errors.New("jaeger agent address not resolved yet")

func dialAgent(hostPort string, maxPacket int, every time.Duration, l logger) (*agentConn, error) {
	if _, _, err := net.SplitHostPort(hostPort); err != nil {
		return nil, err
	}
	c := &agentConn{hostPort: hostPort, maxPacket: maxPacket, log: l, stop: make(chan struct{}), done: make(chan struct{})}
	if err := c.redial(); err != nil {
		c.log.Error(fmt.Sprintf("jaeger agent %s: %v", hostPort, err))
	}
	go c.resolveEvery(every)
	return c, nil
}

func (c *agentConn) resolveEvery(every time.Duration) {
	defer close(c.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			if err := c.redial(); err != nil {
				c.log.Error(fmt.Sprintf("jaeger agent %s: %v", c.hostPort, err))
			}
		}
	}
}

// redial resolves the agent's name and, when the address is new, dials it and retires the old
// connection.
func (c *agentConn) redial() error {
	addr, err := net.ResolveUDPAddr("udp", c.hostPort)
	if err != nil {
		return err
	}
	c.mu.RLock()
	same := c.conn != nil && c.conn.RemoteAddr().String() == addr.String()
	c.mu.RUnlock()
	if same {
		return nil
	}
	conn, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		return err
	}
	if err := conn.SetWriteBuffer(c.maxPacket); err != nil {
		_ = conn.Close()
		return err
	}
	c.mu.Lock()
	old := c.conn
	c.conn = conn
	c.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return nil
}

func (c *agentConn) write(p []byte) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.conn == nil {
		return errNoAgent
	}
	_, err := c.conn.Write(p)
	return err
}

func (c *agentConn) close() error {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}
