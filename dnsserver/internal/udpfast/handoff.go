package udpfast

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// handoffConn is the net.PacketConn that the general path's miekg/dns UDP
// server reads from when the fast path's readers own the socket: the
// readers hand it the packets they do not answer themselves (odd opcodes,
// FORMERR cases, TSIG, several questions…), so miekg/dns screens, decodes
// and answers those exactly as it always has. Replies go straight out on
// the socket.
type handoffConn struct {
	in     chan handoff
	local  net.Addr
	send   func(b []byte, to *Peer) error
	closed chan struct{}
	once   sync.Once
	// finishing is closed when no more packets will be given: ReadFrom
	// returns what is queued, then net.ErrClosed.
	finishing  chan struct{}
	finishOnce sync.Once

	mu       sync.Mutex // mu guards the fields below
	deadline time.Time
	wake     chan struct{} // closed when deadline changes
}

// handoff is one packet for the general path and who sent it.
type handoff struct {
	packet []byte
	from   *Peer
}

// Peer is the client of a handed-off packet as the general path sees
// it (ResponseWriter.RemoteAddr), and what the reply needs to reach it.
type Peer struct {
	addr netip.AddrPort
	oob  []byte // control message that sets the reply's source address; nil: none
}

// AddrPort is the client's address and port.
func (p *Peer) AddrPort() netip.AddrPort { return p.addr }

func (p *Peer) Network() string { return "udp" }
func (p *Peer) String() string  { return p.addr.String() }

func newHandoffConn(local net.Addr, send func([]byte, *Peer) error) *handoffConn {
	return &handoffConn{
		in:        make(chan handoff, 256),
		local:     local,
		send:      send,
		closed:    make(chan struct{}),
		finishing: make(chan struct{}),
		wake:      make(chan struct{}),
	}
}

// give queues a packet for the general path; it gives up only once the
// general path has closed.
func (c *handoffConn) give(h handoff) {
	select {
	case c.in <- h:
	case <-c.closed:
	}
}

// finish ends the hand-off once its queue is read; the readers no longer
// give.
func (c *handoffConn) finish() { c.finishOnce.Do(func() { close(c.finishing) }) }

// ReadFrom implements net.PacketConn. A packet queued is returned even
// past the deadline or once finishing: miekg/dns's server sets a
// deadline in the past to stop, and what is queued was read from the
// socket already.
func (c *handoffConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		select {
		case h := <-c.in:
			return copy(b, h.packet), h.from, nil
		case <-c.closed:
			return 0, nil, net.ErrClosed
		default:
		}
		c.mu.Lock()
		deadline, wake := c.deadline, c.wake
		c.mu.Unlock()
		var timeout <-chan time.Time
		var timer *time.Timer
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return 0, nil, errHandoffTimeout
			}
			timer = time.NewTimer(d)
			timeout = timer.C
		}
		select {
		case h := <-c.in:
			stopTimer(timer)
			return copy(b, h.packet), h.from, nil
		case <-wake:
			stopTimer(timer)
		case <-c.finishing:
			stopTimer(timer)
			select {
			case h := <-c.in:
				return copy(b, h.packet), h.from, nil
			default:
				return 0, nil, net.ErrClosed
			}
		case <-timeout:
			return 0, nil, errHandoffTimeout
		case <-c.closed:
			stopTimer(timer)
			return 0, nil, net.ErrClosed
		}
	}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// WriteTo implements net.PacketConn.
func (c *handoffConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	p, ok := addr.(*Peer)
	if !ok {
		return 0, errors.New("udpfast: reply to an address the fast path did not hand off")
	}
	if err := c.send(b, p); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Close implements net.PacketConn. It closes only the handoff: the socket
// belongs to the readers.
func (c *handoffConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// LocalAddr implements net.PacketConn.
func (c *handoffConn) LocalAddr() net.Addr { return c.local }

// SetDeadline implements net.PacketConn; only reads have deadlines.
func (c *handoffConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline implements net.PacketConn.
func (c *handoffConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	close(c.wake)
	c.wake = make(chan struct{})
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline implements net.PacketConn; writes do not wait.
func (c *handoffConn) SetWriteDeadline(time.Time) error { return nil }

type handoffTimeout struct{}

func (handoffTimeout) Error() string   { return "udpfast: handoff read timeout" }
func (handoffTimeout) Timeout() bool   { return true }
func (handoffTimeout) Temporary() bool { return true }

var errHandoffTimeout net.Error = handoffTimeout{}
