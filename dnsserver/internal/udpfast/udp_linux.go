//go:build linux

package udpfast

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket serves one listener's UDP socket on the fast path. Its reader
// takes up to udpBatch queries per recvmmsg and sends the replies with one
// sendmmsg. Both calls are non-blocking and made without telling the
// scheduler (RawSyscall), which is cheap; when the socket has nothing
// more, the reader parks in the netpoller on the same thread. A reader
// blocking in recvmmsg instead measured slower on one core: the scheduler
// takes the P from a thread blocked in a system call for more than 20 µs
// and wakes another thread to poll the network, so every pause in the
// traffic cost several thread switches (bench/OPTIMISATIONS.md). Queries
// the fast path does not take go to the general path's miekg/dns server
// through handoff.
//
// The socket is in no epoll set while the reader works: a UDP socket's
// send buffer "has room" again as each reply leaves, and with anything on
// the socket's wait queue (Go's netpoller keeps every file registered)
// each reply sent ran a wake-up (about 5 % of the server's CPU at max
// load; gdnsd, blocking in recvmmsg, pays nothing for it). So the socket
// is taken out of the netpoller (the listener's conn is closed, a
// duplicate of its descriptor kept), and only when recvmmsg finds nothing
// does the reader add it, for reading, to an epoll set of its own, the
// set being what it waits on in the netpoller. It takes it out again when
// a batch is long (keepArmedBelow); while batches are short, the wake-ups
// cost less than the two epoll_ctl and the empty recvmmsg per batch that
// taking it out would add.
type Socket struct {
	host    Host
	cfg     Config
	fd      int      // the socket, a duplicate of the listener's; close releases it
	epfd    int      // the epoll set the reader waits on; ep owns it
	ep      *os.File // epfd in the netpoller
	rc      syscall.RawConn
	pktinfo bool // bound to a wildcard address: replies leave from the address asked
	local   net.Addr
	handoff *handoffConn
	stop    atomic.Bool
	drainBy time.Time // set before stop: how long the reader may drain
	// queueMax bounds how many datagrams a drain reads: as many as the
	// receive buffer can hold of the smallest, so that a drain under a
	// load that goes on ends once it has read what was queued at the stop.
	queueMax int
	wg       sync.WaitGroup
}

const (
	// udpBatch is how many datagrams one recvmmsg or sendmmsg moves.
	udpBatch = 64
	// maxUDPRead holds any datagram, as miekg/dns's server does.
	maxUDPRead = 65535
	ctrlLen    = 64 // room for one IP_PKTINFO or IPV6_PKTINFO message
	// keepArmedBelow is the batch length from which the reader takes the
	// socket out of its epoll set (see Socket).
	keepArmedBelow = 8
	// minTruesize is less than the receive buffer space the kernel
	// charges the smallest datagram (its skb's truesize, some 768 bytes
	// on Linux), so SO_RCVBUF / minTruesize is more datagrams than the
	// queue can hold; defaultQueueMax stands in where SO_RCVBUF is not
	// read.
	minTruesize     = 256
	defaultQueueMax = 4096
)

// NewSocket prepares pc for the fast path, answering for host; nil when
// pc is not a UDP socket it can drive. It takes pc over: the miekg/dns
// server reads what the fast path does not answer from Handoff.
func NewSocket(pc net.PacketConn, host Host, cfg Config) (*Socket, error) {
	conn, ok := pc.(*net.UDPConn)
	if !ok {
		return nil, nil
	}
	laddr, _ := conn.LocalAddr().(*net.UDPAddr)
	if laddr == nil {
		return nil, nil
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	u := &Socket{host: host, cfg: cfg, fd: -1, local: laddr, pktinfo: laddr.IP.IsUnspecified()}
	if u.pktinfo {
		var serr error
		err = rc.Control(func(fd uintptr) {
			// An IPv6 socket may carry IPv4-mapped traffic too, where the
			// kernel allows it.
			if laddr.IP.To4() == nil {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
			}
			if err4 := unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1); laddr.IP.To4() != nil {
				serr = err4
			}
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return nil, fmt.Errorf("udpfast: prepare UDP socket: %w", err)
		}
	}
	u.queueMax = defaultQueueMax
	_ = rc.Control(func(fd uintptr) {
		if n, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF); err == nil && n > 0 {
			u.queueMax = n / minTruesize
		}
	})
	if err := u.detach(conn, rc); err != nil {
		return nil, fmt.Errorf("udpfast: prepare UDP socket: %w", err)
	}
	u.handoff = newHandoffConn(laddr, u.sendTo)
	return u, nil
}

// detach takes the socket out of Go's netpoller and makes the epoll set
// the reader waits on (see Socket); it closes conn.
func (u *Socket) detach(conn *net.UDPConn, rc syscall.RawConn) error {
	var derr error
	if err := rc.Control(func(fd uintptr) {
		u.fd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return err
	}
	if derr != nil {
		return derr
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		unix.Close(u.fd)
		return err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(u.fd)
		return err
	}
	u.epfd, u.ep = epfd, os.NewFile(uintptr(epfd), "epoll")
	if u.rc, err = u.ep.SyscallConn(); err != nil {
		u.ep.Close()
		unix.Close(u.fd)
		return err
	}
	// The duplicate keeps the socket open; closing conn takes its
	// descriptor out of the netpoller.
	conn.Close()
	return nil
}

// Start runs the reader; if it fails, it reports to errc. One reader per
// socket: the socket's read lock would serialise more.
func (u *Socket) Start(errc chan<- error) {
	r := newUDPReader(u)
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		if err := r.run(); err != nil {
			errc <- err
		}
	}()
}

// Stop tells the reader to stop reading new queries and answer, until
// deadline, what the socket holds; it does not wait. A server with several
// sockets stops them all before it waits for any, so that each drains from
// the moment of the stop.
func (u *Socket) Stop(deadline time.Time) {
	u.drainBy = deadline
	u.stop.Store(true)
	u.ep.SetReadDeadline(time.Unix(1, 0)) // wakes the reader
}

// Wait waits for the reader that Stop stopped. Before it stops, the reader
// drains the socket (drain): the queries queued in it at the stop are read
// too, as long as the deadline allows. Every query it read has been
// answered or handed off when Wait returns; FinishHandoff then lets the
// general path answer those handed off.
func (u *Socket) Wait() { u.wg.Wait() }

// FinishHandoff tells the general path's server, once the reader has
// stopped (Stop, Wait), that the hand-off ends: it reads every query still
// queued, then its reads fail with net.ErrClosed, which ends it after it
// has answered them.
func (u *Socket) FinishHandoff() { u.handoff.finish() }

// CloseHandoff ends the hand-off at once, dropping what is queued: for
// when the grace period is over.
func (u *Socket) CloseHandoff() { u.handoff.Close() }

// Handoff is the net.PacketConn that the general path's miekg/dns server
// reads the queries the fast path does not answer from.
func (u *Socket) Handoff() net.PacketConn { return u.handoff }

// Control runs f on the socket's descriptor, for an option set while the
// reader runs (the reuseport steering of a process taking over); not
// after Close.
func (u *Socket) Control(f func(fd uintptr)) error {
	f(uintptr(u.fd))
	return nil
}

// Close releases the socket; the handoff server must be done with it.
func (u *Socket) Close() {
	u.ep.Close()
	unix.Close(u.fd)
}

// sendTo writes a reply of the general path.
func (u *Socket) sendTo(b []byte, to *Peer) error {
	var sa unix.Sockaddr
	if a := to.addr.Addr(); a.Is4() {
		sa = &unix.SockaddrInet4{Port: int(to.addr.Port()), Addr: a.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(to.addr.Port()), Addr: a.As16()}
	}
	for {
		_, err := unix.SendmsgN(u.fd, b, to.oob, sa, unix.MSG_DONTWAIT)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			// The send buffer is full, which is rare: wait for room, but
			// not past the grace period of a shutdown, which waits for
			// this reply's handler.
			if u.stop.Load() && !time.Now().Before(u.drainBy) {
				return os.NewSyscallError("sendmsg", err)
			}
			if werr := waitWritable(u.fd); werr != nil {
				return werr
			}
			continue
		}
		if err != nil {
			return os.NewSyscallError("sendmsg", err)
		}
		return nil
	}
}

// waitWritable waits until the socket can take a datagram: rarely, since
// UDP sockets seldom fill, so a blocking poll(2) is good enough and keeps
// the socket's wait queue empty the rest of the time.
func waitWritable(fd int) error {
	pfd := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	_, err := unix.Poll(pfd[:], 1000)
	if err != nil && err != unix.EINTR {
		return os.NewSyscallError("poll", err)
	}
	return nil
}

// mmsghdr is struct mmsghdr; Go lays it out as C does on every Linux port.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// udpReader is one reader of a socket and everything it reuses.
type udpReader struct {
	u    *Socket
	fast *Path
	// serve is the reader's method as a value made once: a method value
	// made per call would allocate.
	serve      func(fd uintptr) bool
	armed      bool            // the socket is in the epoll set
	ev         unix.EpollEvent // how it is
	got        int             // what the last recvmmsg returned
	sent, todo int             // replies sent, replies in the batch
	errno      unix.Errno      // of the last call
	failed     string          // the system call errno is of
	used       int             // messages of the last recvmmsg, whose headers need resetting
	rmsgs      [udpBatch]mmsghdr
	riov       [udpBatch]unix.Iovec
	names      [udpBatch]unix.RawSockaddrInet6
	ctrl       [udpBatch][ctrlLen]byte
	rbuf       []byte
	smsgs      [udpBatch]mmsghdr
	siov       [udpBatch]unix.Iovec
	out        [udpBatch][]byte
}

func newUDPReader(u *Socket) *udpReader {
	r := &udpReader{u: u, fast: New(u.host, u.cfg), rbuf: make([]byte, udpBatch*maxUDPRead)}
	for i := range r.rmsgs {
		r.riov[i].Base = &r.rbuf[i*maxUDPRead]
		r.riov[i].SetLen(maxUDPRead)
		h := &r.rmsgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &r.riov[i]
		h.SetIovlen(1)
		if u.pktinfo {
			h.Control = &r.ctrl[i][0]
			h.SetControllen(ctrlLen)
		}
		r.out[i] = make([]byte, 0, u.cfg.UDPSize)
		r.smsgs[i].hdr.Iov = &r.siov[i]
		r.smsgs[i].hdr.SetIovlen(1)
	}
	r.used = udpBatch
	r.serve = r.serveBatches
	r.ev = unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(u.fd)}
	return r
}

func (r *udpReader) run() error {
	u := r.u
	for !u.stop.Load() {
		if err := u.rc.Read(r.serve); err != nil {
			if u.stop.Load() {
				break
			}
			return fmt.Errorf("udpfast: serve udp: %w", err)
		}
		switch r.errno {
		case 0:
		case unix.EINTR, unix.ECONNREFUSED:
			continue
		default:
			return fmt.Errorf("udpfast: serve udp: %w", os.NewSyscallError(r.failed, r.errno))
		}
	}
	r.drain()
	return nil
}

// drain answers, on shutdown, the queries the socket already holds: it
// reads batches until one is short (it has caught up with the queue), the
// socket is empty, it has read as many datagrams as the receive buffer
// could hold at the stop (queueMax: under a load that goes on, what came
// after the stop is not its to answer), or the grace period is over.
// Before it, a shutdown under load left the socket's queue unread: 6 of
// 2,885 queued queries were answered.
func (r *udpReader) drain() {
	for read := 0; read < r.u.queueMax && time.Now().Before(r.u.drainBy); read += r.got {
		r.resetHeaders()
		if !r.recvBatch() || r.errno != 0 {
			return
		}
		r.used = r.got
		r.serveBatch()
		if r.got < udpBatch {
			return
		}
	}
}

// resetHeaders readies the receive headers the last batch used.
func (r *udpReader) resetHeaders() {
	for i := range r.used {
		h := &r.rmsgs[i].hdr
		h.Namelen = unix.SizeofSockaddrInet6
		if r.u.pktinfo {
			h.SetControllen(ctrlLen)
		}
		h.Flags = 0
	}
	r.used = 0
}

// serveBatch answers the batch just received, sends the replies and
// counts them.
func (r *udpReader) serveBatch() {
	start := time.Now() // one clock read per batch, and one in flush
	r.fast.Begin(start)
	m := 0
	for i := range r.got {
		if r.handle(i, m) {
			m++
		}
	}
	r.send(m)
	r.fast.Flush(start)
}

// serveBatches answers batches until the socket has nothing more; false tells
// the netpoller to wait until the epoll set reports it readable, true
// that the reader must stop or see r.errno. It loops within one
// RawConn.Read: a readiness reported while it works is kept for the wait
// that follows, where a new Read would clear it, so after a short batch
// with the socket in the epoll set it can wait at once without the
// recvmmsg that would find nothing.
func (r *udpReader) serveBatches(uintptr) bool {
	u := r.u
	for !u.stop.Load() {
		r.resetHeaders()
		if !r.recvBatch() {
			return false
		}
		if r.errno != 0 {
			return true
		}
		r.used = r.got
		r.serveBatch()
		if r.armed {
			// The batch was short, so recvmmsg stopped at an empty socket:
			// on a UDP socket without IP_RECVERR nothing else ends a
			// batch early. The next datagram wakes the reader.
			return false
		}
	}
	return true
}

// recvBatch is one non-blocking recvmmsg; false when the socket has
// nothing, with the socket then in the epoll set. Adding it finds a
// datagram that came in meanwhile, so none is missed. A batch of
// keepArmedBelow or more takes it out of the set again.
func (r *udpReader) recvBatch() bool {
	u := r.u
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&r.rmsgs[0])),
		udpBatch, unix.MSG_DONTWAIT, 0, 0)
	if errno == unix.EAGAIN {
		if !r.armed {
			if errno := epollCtl(u.epfd, unix.EPOLL_CTL_ADD, u.fd, &r.ev); errno != 0 {
				r.got, r.errno, r.failed = 0, errno, "epoll_ctl"
				return true
			}
			r.armed = true
		}
		return false
	}
	if errno != 0 {
		r.got, r.errno, r.failed = 0, errno, "recvmmsg"
		return true
	}
	r.got, r.errno = int(n), 0
	if r.armed && r.got >= keepArmedBelow {
		r.armed = false
		if errno := epollCtl(u.epfd, unix.EPOLL_CTL_DEL, u.fd, &r.ev); errno != 0 {
			// The reader stops, and what it read is lost with it.
			r.used, r.got, r.errno, r.failed = r.got, 0, errno, "epoll_ctl"
		}
	}
	return true
}

// handle answers message i of the batch into send slot m, or hands it
// off; it reports whether slot m now holds a reply.
func (r *udpReader) handle(i, m int) (queued bool) {
	msg := &r.rmsgs[i]
	packet := r.rbuf[i*maxUDPRead : i*maxUDPRead+int(msg.n)]
	src, ok := sockaddrAddrPort(&r.names[i])
	if !ok || len(packet) < 12 {
		return false // miekg/dns drops these too
	}
	handedOff := false
	defer func() {
		if p := recover(); p != nil {
			r.u.host.Panicked(p)
			if !handedOff {
				r.handOff(i, packet, src)
			}
			queued = false
		}
	}()
	reply, res := r.fast.Answer(packet, src.Addr().Unmap(), r.out[m][:0])
	if res == ToLearn {
		b, ok := r.fast.Learn(packet, src, r.u.local)
		switch {
		case !ok:
			res = HandOff
		case b == nil:
			return false
		default:
			reply = append(r.out[m][:0], b...)
		}
	}
	if res == Dropped {
		return false
	}
	if res == HandOff {
		handedOff = true
		r.handOff(i, packet, src)
		return false
	}
	s := &r.smsgs[m].hdr
	s.Name, s.Namelen = msg.hdr.Name, msg.hdr.Namelen
	r.siov[m].Base = &reply[0]
	r.siov[m].SetLen(len(reply))
	s.Control, s.Controllen = nil, 0
	if r.u.pktinfo && r.replySource(i) {
		s.Control, s.Controllen = msg.hdr.Control, msg.hdr.Controllen
	}
	return true
}

// handOff gives message i to the general path.
func (r *udpReader) handOff(i int, packet []byte, src netip.AddrPort) {
	defer r.fast.epochStale() // the general path's queue may make it wait
	msg := &r.rmsgs[i]
	peer := &Peer{addr: src}
	if r.u.pktinfo && r.replySource(i) {
		peer.oob = append([]byte(nil), unsafe.Slice(msg.hdr.Control, msg.hdr.Controllen)...)
	}
	r.u.handoff.give(handoff{packet: append([]byte(nil), packet...), from: peer})
}

// replySource turns the received packet-info message of message i into
// the one that makes its reply leave from the address the query was sent
// to, as miekg/dns does; false when there is none.
func (r *udpReader) replySource(i int) bool {
	h := &r.rmsgs[i].hdr
	if h.Controllen < unix.SizeofCmsghdr {
		return false
	}
	c := (*unix.Cmsghdr)(unsafe.Pointer(&r.ctrl[i][0]))
	data := r.ctrl[i][unix.CmsgLen(0):]
	switch {
	case c.Level == unix.IPPROTO_IP && c.Type == unix.IP_PKTINFO && int(c.Len) >= unix.CmsgLen(unix.SizeofInet4Pktinfo):
		p := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
		p.Ifindex, p.Spec_dst = 0, p.Addr
	case c.Level == unix.IPPROTO_IPV6 && c.Type == unix.IPV6_PKTINFO && int(c.Len) >= unix.CmsgLen(unix.SizeofInet6Pktinfo):
		p := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
		p.Ifindex = 0
	default:
		return false
	}
	h.SetControllen(int(c.Len))
	return true
}

// send writes the first m replies of the batch. The socket is not in the
// netpoller for writing (see Socket): when it is full, which UDP
// sockets seldom are, the reader waits in poll(2), while shutting down
// until the grace period is over.
func (r *udpReader) send(m int) {
	r.sent, r.todo = 0, m
	for r.sent < r.todo {
		if !r.sendBatch() && (waitWritable(r.u.fd) != nil || r.u.stop.Load() && !time.Now().Before(r.u.drainBy)) {
			return // a socket full past the grace period loses these replies
		}
	}
}

// sendBatch is one non-blocking sendmmsg of the replies not yet sent;
// false when the socket cannot take more yet.
func (r *udpReader) sendBatch() bool {
	n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(r.u.fd), uintptr(unsafe.Pointer(&r.smsgs[r.sent])),
		uintptr(r.todo-r.sent), unix.MSG_DONTWAIT, 0, 0)
	switch errno {
	case 0:
		r.sent += int(n)
	case unix.EAGAIN:
		return false
	case unix.EINTR:
	default:
		r.sent++ // that reply cannot go; the others may
	}
	return true
}

// epollCtl is epoll_ctl(2), which never blocks: made without telling the
// scheduler, as recvmmsg is.
func epollCtl(epfd, op, fd int, ev *unix.EpollEvent) unix.Errno {
	_, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd),
		uintptr(unsafe.Pointer(ev)), 0, 0)
	return errno
}

// sockaddrAddrPort reads a received socket address.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) (netip.AddrPort, bool) {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port), true
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port), true
	}
	return netip.AddrPort{}, false
}
