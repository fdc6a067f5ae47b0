package dnsserver

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// DNS over TCP is served here rather than by miekg/dns's server, whose
// loop could not be fixed from outside: a zero-length frame (or any frame
// it cannot decode) made it read the next one with a fresh idle timeout,
// so one empty frame every few seconds held a connection forever; its
// shutdown set every connection's read deadline in the past, dropping
// pipelined queries the kernel had already received; it had no
// connection limit; and a failing Accept (EMFILE) was retried at once,
// spinning. This loop answers pipelined queries in order (RFC 7766
// §6.2.1.1), one at a time per connection, as miekg/dns did, through the
// same handler and the same screening (acceptQuery, screenECS).
//
// Connections are limited in number, globally and per source prefix, so
// that they cannot take the file descriptors the health probes, HTTP and
// reloads need (Config.TCPMaxConnections documents the arithmetic). A
// connection over its network's limit is accepted and closed at once, and
// counted. At the global limit, a new connection from a network under its
// own takes the place of the connection that has gone longest without a
// query answered (of a few sampled): else a flood from enough networks
// would hold every connection and no resolver could get in, while a
// resolver that asks keeps its connection over those that only wait.

// tcpServer serves DNS over TCP on every listener of a Server. Its limits
// hold across listeners.
type tcpServer struct {
	s        *Server
	cfg      *Config
	m        *tcpMetrics
	errLog   zerolog.Logger // sampled: accept errors under descriptor pressure
	stopping chan struct{}  // closed by shutdown: stop accepting, drain
	drainEnd time.Time      // the latest a listener's backlog is accepted; set before stopping closes
	wg       sync.WaitGroup // the accept loops and every connection

	mu       sync.Mutex // mu guards the fields below
	draining bool
	open     int // connections being served, evicted ones until they end
	evicting int // of open, those closed to make room, not yet ended
	byPrefix map[netip.Prefix]int
	conns    map[*tcpConn]struct{}
}

func newTCPServer(s *Server) *tcpServer {
	return &tcpServer{
		s:        s,
		cfg:      &s.cfg,
		m:        s.tcpMetrics,
		errLog:   s.log.Sample(&zerolog.BurstSampler{Burst: 3, Period: 10 * time.Second}),
		stopping: make(chan struct{}),
		byPrefix: map[netip.Prefix]int{},
		conns:    map[*tcpConn]struct{}{},
	}
}

const (
	// tcpWriteTimeout bounds the write of one reply to a client that does
	// not read.
	tcpWriteTimeout = 2 * time.Second
	// acceptBackoffMax is the longest pause after a failed Accept.
	acceptBackoffMax = time.Second
	// drainPoll is how long a draining connection waits for more bytes:
	// what the kernel has already received is read at once; this only
	// ends the read when there is nothing.
	drainPoll = 5 * time.Millisecond
	// acceptDrainIdle and acceptDrainMax bound the accepting of a
	// listener's backlog on shutdown: connections the kernel completed
	// but nobody accepted yet, reset if the listener closes with them.
	// Accepting stops once none has come for acceptDrainIdle, and at
	// most acceptDrainMax after the shutdown. A process that another has
	// taken over from (package reuseport) gets no new connections, so
	// its backlog only empties; one that stops alone, under load, gets
	// new ones all the time and must not take them for long.
	acceptDrainIdle = 20 * time.Millisecond
	acceptDrainMax  = 500 * time.Millisecond
	// drainFirstWait is how long, once draining, a connection that has
	// not sent its first query yet may take to send it (a client
	// connects, then writes; one starved of CPU, or far away, writes
	// later). Bounded so that connections that never ask do not hold a
	// shutdown for tcp_read_timeout.
	drainFirstWait = 500 * time.Millisecond
)

// serve accepts connections on l until shutdown, then accepts l's
// backlog (acceptDrainIdle) and closes l; an error other than shutdown's
// ends it. A failed Accept (out of descriptors, for one) pauses it, 5 ms
// doubling up to a second, as net/http's does.
func (t *tcpServer) serve(l net.Listener) error {
	if _, ok := l.(deadliner); ok {
		defer l.Close() // else acceptDrainDeadline closes it
	}
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			select {
			case <-t.stopping:
				// A timeout with connections still waiting: this loop
				// was slow, not the backlog empty.
				if backlogWaiting(l) && time.Now().Before(t.drainEnd) {
					t.acceptDrainDeadline(l)
					continue
				}
				// The backlog is empty (a timeout), or l was closed.
				return nil
			default:
			}
			if !acceptRetryable(err) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), acceptBackoffMax)
			t.m.acceptErrors.Inc()
			t.errLog.Warn().Err(err).Dur("pause", delay).Msg("TCP accept failed; pausing before the next")
			timer := time.NewTimer(delay)
			select {
			case <-timer.C:
			case <-t.stopping:
				timer.Stop()
				return nil
			}
			continue
		}
		delay = 0
		backlog := false
		select {
		case <-t.stopping:
			backlog = true
			t.acceptDrainDeadline(l)
		default:
		}
		tc, refused := t.admit(c, backlog)
		if tc == nil {
			// Counted before the close, so that whoever sees the close
			// (a client, a test) finds it counted.
			t.m.refused.WithLabelValues(refused).Inc()
			c.Close()
			continue
		}
		t.m.accepted.Inc()
		go tc.serve()
	}
}

// acceptRetryable reports whether Accept may succeed later: the process
// or the system was out of descriptors or memory, or one connection was
// reset before it was taken.
func acceptRetryable(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// admit takes c under the connection limits, or says which it is over:
// "per_prefix", "global" (when no connection can make room), or
// "shutdown" (but for a connection of the backlog shutdown accepts). At
// the global limit it evicts the least active connection
// of evictSample: that one's descriptor is released as soon as its
// goroutine sees the close, so the descriptors in use exceed the limit by
// at most the evictions under way, for microseconds.
func (t *tcpServer) admit(c net.Conn, backlog bool) (*tcpConn, string) {
	remote := addrPortOf(c.RemoteAddr())
	prefix := t.prefixOf(remote.Addr())
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.draining && !backlog:
		return nil, "shutdown"
	case t.byPrefix[prefix] >= t.cfg.TCPMaxConnectionsPerPrefix:
		return nil, "per_prefix"
	case t.open-t.evicting >= t.cfg.TCPMaxConnections:
		victim := t.leastActiveLocked()
		if victim == nil {
			return nil, "global"
		}
		victim.evicted = true
		t.evicting++
		victim.conn.Close()
		t.m.evicted.Inc()
	}
	tc := &tcpConn{t: t, conn: c, prefix: prefix, accepted: now, waitFirst: true, draining: backlog}
	if backlog {
		tc.firstBy = now.Add(drainFirstWait)
	}
	tc.active.Store(now.UnixNano())
	t.open++
	t.byPrefix[prefix]++
	t.conns[tc] = struct{}{}
	t.wg.Add(1)
	t.m.open.Inc()
	return tc, ""
}

// evictSample is how many connections admit compares to pick the one to
// evict: a few, so that admitting at the limit costs the same whatever
// the limit. Go starts each map iteration at a random place.
const evictSample = 16

// leastActiveLocked is the connection of a sample that has gone longest
// without a query answered (or since it was accepted), not already
// evicted; nil if there is none.
func (t *tcpServer) leastActiveLocked() *tcpConn {
	var victim *tcpConn
	seen := 0
	for tc := range t.conns {
		if tc.evicted {
			continue
		}
		if victim == nil || tc.active.Load() < victim.active.Load() {
			victim = tc
		}
		if seen++; seen == evictSample {
			break
		}
	}
	return victim
}

// prefixOf is the network a source address counts against.
func (t *tcpServer) prefixOf(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := t.cfg.TCPPrefixV6
	if a.Is4() {
		bits = t.cfg.TCPPrefixV4
	}
	p, _ := a.Prefix(bits)
	return p
}

func (t *tcpServer) release(tc *tcpConn) {
	t.mu.Lock()
	t.open--
	if tc.evicted {
		t.evicting--
	}
	if t.byPrefix[tc.prefix]--; t.byPrefix[tc.prefix] <= 0 {
		delete(t.byPrefix, tc.prefix)
	}
	delete(t.conns, tc)
	t.mu.Unlock()
	t.m.open.Dec()
	t.wg.Done()
}

// shutdown stops accepting, closing the listeners, and tells every
// connection to answer the queries it has received and close.
func (t *tcpServer) shutdown(listeners ...net.Listener) {
	t.mu.Lock()
	t.draining = true
	conns := make([]*tcpConn, 0, len(t.conns))
	for tc := range t.conns {
		conns = append(conns, tc)
	}
	t.mu.Unlock()
	drainMax := acceptDrainMax
	if t.s.acceptDrainMax > 0 {
		drainMax = t.s.acceptDrainMax
	}
	t.drainEnd = time.Now().Add(drainMax)
	close(t.stopping) // before the listeners stop: their Accept's error is shutdown's
	for _, l := range listeners {
		t.acceptDrainDeadline(l)
	}
	for _, tc := range conns {
		tc.drain()
	}
}

// acceptDrainDeadline sets the deadline of l's next Accept while the
// backlog is being accepted; a listener without deadlines is closed.
func (t *tcpServer) acceptDrainDeadline(l net.Listener) {
	dl, ok := l.(deadliner)
	if !ok {
		l.Close()
		return
	}
	dl.SetDeadline(minTime(time.Now().Add(acceptDrainIdle), t.drainEnd))
}

// deadliner is a listener whose Accept can time out, as *net.TCPListener's.
type deadliner interface{ SetDeadline(time.Time) error }

// closeAll ends every connection still open, when the grace period is
// over.
func (t *tcpServer) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for tc := range t.conns {
		tc.conn.Close()
	}
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// tcpConn is one client connection. Its goroutine reads frames into buf
// and answers each complete query before reading the next.
type tcpConn struct {
	t        *tcpServer
	conn     net.Conn
	prefix   netip.Prefix
	accepted time.Time
	buf      []byte // holds buf[start:end], unread frames
	start    int
	end      int
	out      []byte // the reply being written, with its length prefix; reused
	closed   bool   // the handler called Close, or a reply could not be written whole: the stream ends
	// active is when a query was last answered (Unix nanoseconds; the
	// accept time before the first): what eviction goes by.
	active  atomic.Int64
	evicted bool // closed to make room; tcpServer.mu guards it

	mu       sync.Mutex // mu guards the fields below, and the read deadline against drain
	draining bool
	// waitFirst: no query answered yet. Draining, such a connection
	// still gets the time of any new connection for its first query
	// (one from the listener's backlog, or one whose client has not
	// sent yet: a client connects, then writes), and drains after it.
	waitFirst bool
	firstBy   time.Time // draining and waitFirst: the first query's deadline
}

// tcpBufSize holds a typical query; a larger frame grows the buffer for
// as long as it is being read.
const tcpBufSize = 512

// drain makes the connection answer what it has received and close:
// a read waiting for more returns at once. One still waiting for its
// first query waits on, drainFirstWait at most (waitFirst).
func (c *tcpConn) drain() {
	c.mu.Lock()
	c.draining = true
	if !c.waitFirst {
		c.conn.SetReadDeadline(time.Now())
	} else {
		c.firstBy = time.Now().Add(drainFirstWait)
		c.conn.SetReadDeadline(c.firstBy)
	}
	c.mu.Unlock()
}

// answeredFirst records that the first query is answered: draining, the
// connection now drains.
func (c *tcpConn) answeredFirst() {
	c.mu.Lock()
	c.waitFirst = false
	c.mu.Unlock()
}

// setReadDeadline sets the deadline of the next read: d, or while
// draining, just long enough to take what the kernel holds (but for the
// first query). It reports whether the connection is draining.
func (c *tcpConn) setReadDeadline(d time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.draining && !c.waitFirst:
		d = time.Now().Add(drainPoll)
	case c.draining:
		d = minTime(d, c.firstBy)
	}
	c.conn.SetReadDeadline(d)
	return c.draining
}

// serve reads and answers queries until the client closes, a timeout, a
// limit or shutdown. The idle deadline moves only when a query is
// answered: a zero-length frame, a response, or anything else that is
// not a query keeps the connection no longer. The first query must come
// within the read or the idle timeout of the connection, whichever is
// shorter, as a client sends it at once; later ones within the idle
// timeout of the last. Once a frame has
// begun, the whole of it must come within the read timeout, so that a
// client cannot trickle one query for as long as it keeps sending.
func (c *tcpConn) serve() {
	defer c.t.release(c)
	defer c.conn.Close()
	cfg := c.t.cfg
	c.buf = make([]byte, tcpBufSize)
	idleBy := c.accepted.Add(min(cfg.TCPReadTimeout, cfg.TCPIdleTimeout))
	var frameStart time.Time // when the first byte of the frame being read came
	queries := 0
	eof := false
	for {
		if c.closed {
			return
		}
		if frame, ok := c.nextFrame(); ok {
			if c.answer(frame) {
				queries++
				now := time.Now()
				c.active.Store(now.UnixNano())
				idleBy = now.Add(cfg.TCPIdleTimeout)
				if c.closed || (cfg.TCPMaxQueries > 0 && queries >= cfg.TCPMaxQueries) {
					return
				}
				if queries == 1 {
					c.answeredFirst()
				}
			}
			frameStart = time.Time{}
			if c.end > c.start {
				frameStart = time.Now()
			}
			continue
		}
		if eof {
			return
		}
		deadline := idleBy
		if c.end > c.start {
			deadline = minTime(deadline, frameStart.Add(cfg.TCPReadTimeout))
		}
		draining := c.setReadDeadline(deadline)
		c.makeRoom()
		n, err := c.conn.Read(c.buf[c.end:])
		if n > 0 && c.end == c.start {
			frameStart = time.Now()
		}
		c.end += n
		if err == nil {
			continue
		}
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			if !draining && c.isDraining() {
				continue // woken by drain: read again without waiting
			}
			if draining {
				return // nothing more was received
			}
			if c.end > c.start {
				c.t.m.timedOut.WithLabelValues("read").Inc()
			} else {
				c.t.m.timedOut.WithLabelValues("idle").Inc()
			}
			return
		default:
			// EOF or a reset: answer what came before it.
			eof = true
		}
	}
}

func (c *tcpConn) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// nextFrame takes one whole frame's message from the buffer, if there is
// one.
func (c *tcpConn) nextFrame() ([]byte, bool) {
	have := c.end - c.start
	if have < 2 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(c.buf[c.start:]))
	if have < 2+n {
		return nil, false
	}
	m := c.buf[c.start+2 : c.start+2+n]
	c.start += 2 + n
	return m, true
}

// makeRoom leaves room in buf to read more of the frame being read: the
// unread bytes move to the front when the frame would not fit after them,
// and a full buffer doubles, up to the frame's size, rather than growing
// to the size its first two bytes declare: a client that sends a length
// of 65535 and nothing more holds tcpBufSize bytes, not 64 KiB, so memory
// follows what clients send. It shrinks back once a large frame is done.
func (c *tcpConn) makeRoom() {
	have := c.end - c.start
	need := tcpBufSize
	if have >= 2 {
		need = max(need, 2+int(binary.BigEndian.Uint16(c.buf[c.start:])))
	}
	if c.start > 0 && (c.end == len(c.buf) || len(c.buf)-c.start < need) {
		copy(c.buf, c.buf[c.start:c.end])
		c.start, c.end = 0, have
	}
	switch {
	case c.end == len(c.buf) && len(c.buf) < need:
		c.resize(min(need, 2*len(c.buf)))
	case len(c.buf) > tcpBufSize && need == tcpBufSize && have <= tcpBufSize:
		c.resize(tcpBufSize)
	}
}

func (c *tcpConn) resize(size int) {
	have := c.end - c.start
	nb := make([]byte, size)
	copy(nb, c.buf[c.start:c.end])
	c.buf, c.start, c.end = nb, 0, have
}

// answer handles one frame as miekg/dns's server does: a message too
// short for a header or a response is dropped; one acceptQuery rejects,
// or that does not decode, gets FORMERR; the rest go to the handler. It
// reports whether the handler answered a query.
func (c *tcpConn) answer(m []byte) bool {
	m = screenECS(m)
	if len(m) < 12 {
		return false
	}
	dh := dns.Header{
		Id:      binary.BigEndian.Uint16(m[0:]),
		Bits:    binary.BigEndian.Uint16(m[2:]),
		Qdcount: binary.BigEndian.Uint16(m[4:]),
		Ancount: binary.BigEndian.Uint16(m[6:]),
		Nscount: binary.BigEndian.Uint16(m[8:]),
		Arcount: binary.BigEndian.Uint16(m[10:]),
	}
	req := new(dns.Msg)
	switch acceptQuery(dh) {
	case dns.MsgIgnore:
		return false
	case dns.MsgReject:
		setHeader(req, dh)
		c.formErr(req)
		return false
	}
	if err := req.Unpack(m); err != nil {
		c.formErr(req)
		return false
	}
	c.t.s.ServeDNS(tcpWriter{c}, req)
	return true
}

// formErr answers req, of which only the header (and maybe part of the
// question) could be read, with FORMERR, as miekg/dns's server does.
func (c *tcpConn) formErr(req *dns.Msg) {
	req.SetRcodeFormatError(req)
	req.Zero = false
	req.Ns, req.Answer, req.Extra = nil, nil, nil
	tcpWriter{c}.WriteMsg(req)
}

// setHeader sets m's header from a wire header, as dns.Msg.Unpack does.
func setHeader(m *dns.Msg, dh dns.Header) {
	const qr, aa, tc, rd, ra, z, ad, cd = 1 << 15, 1 << 10, 1 << 9, 1 << 8, 1 << 7, 1 << 6, 1 << 5, 1 << 4
	m.Id = dh.Id
	m.Response = dh.Bits&qr != 0
	m.Opcode = int(dh.Bits>>11) & 0xF
	m.Authoritative = dh.Bits&aa != 0
	m.Truncated = dh.Bits&tc != 0
	m.RecursionDesired = dh.Bits&rd != 0
	m.RecursionAvailable = dh.Bits&ra != 0
	m.Zero = dh.Bits&z != 0
	m.AuthenticatedData = dh.Bits&ad != 0
	m.CheckingDisabled = dh.Bits&cd != 0
	m.Rcode = int(dh.Bits & 0xF)
}

// tcpWriter is the dns.ResponseWriter of one query on a connection.
type tcpWriter struct{ c *tcpConn }

var _ dns.ResponseWriter = tcpWriter{}

func (w tcpWriter) LocalAddr() net.Addr  { return w.c.conn.LocalAddr() }
func (w tcpWriter) RemoteAddr() net.Addr { return w.c.conn.RemoteAddr() }

func (w tcpWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Write sends one message with its length prefix, in one write.
func (w tcpWriter) Write(b []byte) (int, error) {
	if len(b) > dns.MaxMsgSize {
		return 0, errors.New("dnsserver: message too large for TCP")
	}
	c := w.c
	out := append(c.out[:0], 0, 0)
	binary.BigEndian.PutUint16(out, uint16(len(b)))
	out = append(out, b...)
	c.out = out[:0]
	c.conn.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
	if _, err := c.conn.Write(out); err != nil {
		// Part of the frame may have gone: a next reply would be read
		// from the middle of this one. The connection ends here.
		c.closed = true
		return 0, err
	}
	return len(b), nil
}

// Close ends the connection once the query is answered.
func (w tcpWriter) Close() error {
	w.c.closed = true
	return nil
}

func (tcpWriter) TsigStatus() error   { return nil }
func (tcpWriter) TsigTimersOnly(bool) {}
func (tcpWriter) Hijack()             {}

// tcpMetrics count TCP connections.
type tcpMetrics struct {
	open         prometheus.Gauge
	accepted     prometheus.Counter
	refused      *prometheus.CounterVec
	timedOut     *prometheus.CounterVec
	acceptErrors prometheus.Counter
	evicted      prometheus.Counter
}

func newTCPMetrics(reg prometheus.Registerer) (*tcpMetrics, error) {
	m := &tcpMetrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "popdns", Subsystem: "dns", Name: "tcp_connections",
			Help: "TCP connections open.",
		}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "popdns", Subsystem: "dns", Name: "tcp_connections_accepted_total",
			Help: "TCP connections accepted and served.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "popdns", Subsystem: "dns", Name: "tcp_connections_refused_total",
			Help: "TCP connections closed at once, by the limit they were over (global, per_prefix, shutdown).",
		}, []string{"reason"}),
		timedOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "popdns", Subsystem: "dns", Name: "tcp_connections_timed_out_total",
			Help: "TCP connections closed by a timeout: idle (no query within the idle timeout) or read (a message not read whole within the read timeout).",
		}, []string{"reason"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "popdns", Subsystem: "dns", Name: "tcp_connections_evicted_total",
			Help: "TCP connections closed at the global limit to make room for a new one: the least active of a sample.",
		}),
		acceptErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "popdns", Subsystem: "dns", Name: "tcp_accept_errors_total",
			Help: "Failed TCP accepts (out of file descriptors, for one), each followed by a pause.",
		}),
	}
	for _, r := range []string{"global", "per_prefix", "shutdown"} {
		m.refused.WithLabelValues(r)
	}
	for _, r := range []string{"idle", "read"} {
		m.timedOut.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.open, m.accepted, m.refused, m.timedOut, m.acceptErrors, m.evicted} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// signalKeepalive adds to a reply over TCP, whose query carried the
// edns-tcp-keepalive option, the idle timeout in units of 100 ms (RFC
// 7828 §3.2.2). Only over TCP: the option of a query over UDP is ignored,
// and no reply over UDP carries it. The reply's OPT is last in the
// additional section (respondTo).
func (s *Server) signalKeepalive(resp *dns.Msg) {
	if len(resp.Extra) == 0 {
		return
	}
	opt, ok := resp.Extra[len(resp.Extra)-1].(*dns.OPT)
	if !ok {
		return
	}
	units := max(1, min(s.cfg.TCPIdleTimeout/(100*time.Millisecond), 0xFFFF)) // 0 would send no TIMEOUT
	opt.Option = append(opt.Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE, Timeout: uint16(units)})
}
