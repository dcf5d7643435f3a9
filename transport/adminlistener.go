package transport

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
)

// AdminListener is the admin port's listener. It holds at most a given number of connections, as
// the API's Listener does, but it never makes a new connection wait for a slot: at the cap it
// closes one of the connections held by the client address that holds the most (a whole /64 for
// IPv6), the one of those that has waited longest for a request (an idle keep-alive, or one whose
// head is still arriving), and only when every one of them is inside a handler, the one that
// entered its handler first. A limit that blocks lets anyone who can reach the port take every
// slot with idle connections and hold them for the idle timeout, starving the kubelet's probes and
// Prometheus' scrapes; evicting the oldest waiter keeps the port answering whatever is held open
// to it, and still bounds the descriptors it takes. Evicting from the heaviest address keeps a
// client that floods the port with new connections from evicting the probes and scrapes of the
// others: with every slot churning, a probe's connection would otherwise be the oldest waiter
// before its head was read, and be closed (three probes in four were, under a loopback flood).
//
// The listener learns which connections are inside a handler from the server's ConnState hook:
// set http.Server.ConnState to the listener's ConnState.
type AdminListener struct {
	net.Listener
	max     int
	mu      sync.Mutex
	conns   map[*adminConn]struct{}
	held    map[netip.Prefix]int // connections held by each client address
	seq     uint64               // a clock of state changes: a lower stamp changed state earlier
	evicted atomic.Uint64
}

// NewAdminListener wraps ln, holding at most maxConns connections at once.
func NewAdminListener(ln net.Listener, maxConns int) *AdminListener {
	return &AdminListener{
		Listener: ln,
		max:      max(maxConns, 1),
		conns:    make(map[*adminConn]struct{}, maxConns),
		held:     make(map[netip.Prefix]int, maxConns),
	}
}

// adminConn is an accepted connection and what its listener knows of it; busy and stamp are
// guarded by the listener's mutex.
type adminConn struct {
	net.Conn
	l         *AdminListener
	from      netip.Prefix // the client's address (its /64 for IPv6)
	busy      bool         // inside a handler
	stamp     uint64       // when it last changed state
	closeOnce sync.Once
}

// Accept implements net.Listener: it never waits for a slot, and makes one by evicting when the
// listener is full.
func (l *AdminListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	ac := &adminConn{Conn: c, l: l, from: clientPrefix(c.RemoteAddr())}
	l.mu.Lock()
	var victim *adminConn
	if len(l.conns) >= l.max {
		victim = l.oldestLocked()
		l.forgetLocked(victim)
	}
	l.seq++
	ac.stamp = l.seq
	l.conns[ac] = struct{}{}
	l.held[ac.from]++
	l.mu.Unlock()
	if victim != nil {
		l.evicted.Add(1)
		_ = victim.Close() // its server goroutine sees the read or write fail and ends
	}
	return ac, nil
}

// oldestLocked returns, among the connections of the client addresses that hold the most, the one that has waited longest outside a
// handler, else the one that has been inside a handler longest. The listener is full, so there is
// one.
func (l *AdminListener) oldestLocked() *adminConn {
	most := 0
	for _, n := range l.held {
		most = max(most, n)
	}
	var idle, busy *adminConn
	for c := range l.conns {
		if l.held[c.from] < most {
			continue
		}
		if c.busy {
			if busy == nil || c.stamp < busy.stamp {
				busy = c
			}
		} else if idle == nil || c.stamp < idle.stamp {
			idle = c
		}
	}
	if idle != nil {
		return idle
	}
	return busy
}

// clientPrefix is what the listener counts a client's connections under: its IP address, or its
// /64 for IPv6, since one host may hold a whole /64.
func clientPrefix(a net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Prefix{} // not TCP/IP (a unix socket in tests): all such clients are one
	}
	ip := ap.Addr().Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p
	}
	return netip.PrefixFrom(ip, 32)
}

// ConnState is the http.Server's ConnState hook: it records when each connection enters and leaves
// its handlers.
func (l *AdminListener) ConnState(c net.Conn, s http.ConnState) {
	ac, ok := c.(*adminConn)
	if !ok {
		return
	}
	switch s {
	case http.StateClosed, http.StateHijacked:
		l.forget(ac)
	default:
		l.mu.Lock()
		l.seq++
		ac.busy, ac.stamp = s == http.StateActive, l.seq
		l.mu.Unlock()
	}
}

func (l *AdminListener) forget(ac *adminConn) {
	l.mu.Lock()
	l.forgetLocked(ac)
	l.mu.Unlock()
}

// forgetLocked drops ac, if the listener still holds it, and its count under its address.
func (l *AdminListener) forgetLocked(ac *adminConn) {
	if _, ok := l.conns[ac]; !ok {
		return
	}
	delete(l.conns, ac)
	if l.held[ac.from]--; l.held[ac.from] <= 0 {
		delete(l.held, ac.from)
	}
}

// Open returns the number of connections the listener holds.
func (l *AdminListener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Evicted returns the number of connections closed to make room for a newer one.
func (l *AdminListener) Evicted() uint64 { return l.evicted.Load() }

func (c *adminConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { c.l.forget(c) })
	return err
}

// CloseWrite keeps net/http's half-close before it closes a connection it refused a request on,
// so that the client reads the answer instead of a reset.
func (c *adminConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
