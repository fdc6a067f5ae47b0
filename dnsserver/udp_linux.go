//go:build linux

package dnsserver

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpSocket serves one listener's UDP socket on the fast path. Its readers
// block in recvmmsg on their own copy of the socket, in blocking mode, so a
// busy server takes up to udpBatch queries per system call and sends the
// replies with one sendmmsg, and an idle one sleeps in the kernel: the Go
// netpoller, which would park and wake the reader around every batch,
// stays out of it. Queries the fast path does not take go to the general
// path's miekg/dns server through handoff.
type udpSocket struct {
	s       *Server
	conn    *net.UDPConn // the listener's socket; Serve closes it
	fd      int          // a blocking duplicate of conn's descriptor
	v6      bool
	pktinfo bool // bound to a wildcard address: replies leave from the address asked
	local   net.Addr
	handoff *handoffConn
	stop    atomic.Bool
	wg      sync.WaitGroup
}

const (
	// udpBatch is how many datagrams one recvmmsg or sendmmsg moves.
	udpBatch = 64
	// maxUDPRead holds any datagram, as miekg/dns's server does.
	maxUDPRead = 65535
	ctrlLen    = 64 // room for one IP_PKTINFO or IPV6_PKTINFO message
)

// newUDPSocket prepares pc for the fast path; nil when pc is not a UDP
// socket it can drive.
func (s *Server) newUDPSocket(pc net.PacketConn) (*udpSocket, error) {
	conn, ok := pc.(*net.UDPConn)
	if !ok {
		return nil, nil
	}
	laddr, _ := conn.LocalAddr().(*net.UDPAddr)
	if laddr == nil {
		return nil, nil
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var serr error
	if err := raw.Control(func(orig uintptr) {
		fd, serr = unix.FcntlInt(orig, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, os.NewSyscallError("dup", serr)
	}
	u := &udpSocket{s: s, conn: conn, fd: fd, local: laddr, pktinfo: laddr.IP.IsUnspecified()}
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err == nil {
		u.v6 = domain == unix.AF_INET6
		// Blocking reads that still return now and then, so that a reader
		// notices shutdown even if the wake-up below were lost.
		err = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 250_000})
	}
	if err == nil && u.pktinfo {
		if u.v6 {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1) // IPv4-mapped traffic, where allowed
		} else {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
	}
	if err == nil {
		// The descriptor's file status is shared with conn's: conn is only
		// kept to own and close the socket, never read.
		err = unix.SetNonblock(fd, false)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("dnsserver: prepare UDP socket: %w", err)
	}
	u.handoff = newHandoffConn(laddr, u.sendTo)
	return u, nil
}

// start runs n readers; a reader that fails reports to errc.
func (u *udpSocket) start(n int, errc chan<- error) {
	for range n {
		r := newUDPReader(u)
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			if err := r.run(); err != nil {
				errc <- err
			}
		}()
	}
}

// shutdown stops the readers and waits for them: every query they read
// has been answered or handed off when it returns.
func (u *udpSocket) shutdown() {
	u.stop.Store(true)
	// Shutting the socket down for reading wakes readers blocked in
	// recvmmsg (Linux reports ENOTCONN for an unconnected socket, but
	// wakes them all the same).
	_ = unix.Shutdown(u.fd, unix.SHUT_RD)
	u.wg.Wait()
}

// close releases the socket; the handoff server must be done with it.
func (u *udpSocket) close() {
	unix.Close(u.fd)
	u.conn.Close()
}

// sendTo writes a reply of the general path.
func (u *udpSocket) sendTo(b []byte, to *udpPeer) error {
	var sa unix.Sockaddr
	a := to.addr.Addr()
	if u.v6 {
		sa = &unix.SockaddrInet6{Port: int(to.addr.Port()), Addr: a.As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: int(to.addr.Port()), Addr: a.Unmap().As4()}
	}
	_, err := unix.SendmsgN(u.fd, b, to.oob, sa, 0)
	return err
}

// mmsghdr is struct mmsghdr; Go lays it out as C does on every Linux port.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// udpReader is one reader of a socket and everything it reuses.
type udpReader struct {
	u     *udpSocket
	fast  *fastPath
	used  int // messages of the last recvmmsg, whose headers need resetting
	rmsgs [udpBatch]mmsghdr
	riov  [udpBatch]unix.Iovec
	names [udpBatch]unix.RawSockaddrInet6
	ctrl  [udpBatch][ctrlLen]byte
	rbuf  []byte
	smsgs [udpBatch]mmsghdr
	siov  [udpBatch]unix.Iovec
	out   [udpBatch][]byte
}

func newUDPReader(u *udpSocket) *udpReader {
	r := &udpReader{u: u, fast: newFastPath(u.s), rbuf: make([]byte, udpBatch*maxUDPRead)}
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
		r.out[i] = make([]byte, 0, u.s.cfg.UDPSize)
		r.smsgs[i].hdr.Iov = &r.siov[i]
		r.smsgs[i].hdr.SetIovlen(1)
	}
	r.used = udpBatch
	return r
}

func (r *udpReader) run() error {
	u := r.u
	for !u.stop.Load() {
		for i := range r.used {
			h := &r.rmsgs[i].hdr
			h.Namelen = unix.SizeofSockaddrInet6
			if u.pktinfo {
				h.SetControllen(ctrlLen)
			}
			h.Flags = 0
		}
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&r.rmsgs[0])),
			udpBatch, unix.MSG_WAITFORONE, 0, 0)
		runtime.KeepAlive(r)
		if errno != 0 {
			r.used = 0
			switch errno {
			case unix.EINTR, unix.EAGAIN, unix.ECONNREFUSED:
				continue
			}
			if u.stop.Load() {
				return nil
			}
			return fmt.Errorf("dnsserver: serve udp: %w", os.NewSyscallError("recvmmsg", errno))
		}
		r.used = int(n)
		m := 0
		for i := range int(n) {
			if r.handle(i, m) {
				m++
			}
		}
		r.send(m)
	}
	return nil
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
			r.u.s.fastPanic(p)
			if !handedOff {
				r.handOff(i, packet, src)
			}
			queued = false
		}
	}()
	reply, res := r.fast.answer(packet, src.Addr().Unmap(), r.out[m][:0])
	if res == fastLearn {
		b, ok := r.fast.learn(packet, src, r.u.local)
		switch {
		case !ok:
			res = fastHandOff
		case b == nil:
			return false
		default:
			reply = append(r.out[m][:0], b...)
		}
	}
	if res == fastHandOff {
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
	msg := &r.rmsgs[i]
	peer := &udpPeer{addr: src}
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

// send writes the first m replies of the batch.
func (r *udpReader) send(m int) {
	for off := 0; off < m; {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(r.u.fd), uintptr(unsafe.Pointer(&r.smsgs[off])),
			uintptr(m-off), 0, 0, 0)
		runtime.KeepAlive(r)
		switch {
		case errno == unix.EINTR:
		case errno != 0:
			off++ // that reply cannot go; the others may
		default:
			off += int(n)
		}
	}
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
