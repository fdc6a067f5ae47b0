//go:build linux && (amd64 || arm64)

package main

import (
	"errors"
	"net"
	"syscall"
	"time"
	"unsafe"
)

// mmsghdr is struct mmsghdr of sendmmsg(2) and recvmmsg(2).
type mmsghdr struct {
	hdr syscall.Msghdr
	n   uint32
	_   [4]byte
}

// batch is a set of message buffers for one sendmmsg or recvmmsg call on
// a connected socket (no addresses).
type batch struct {
	hdrs []mmsghdr
	iovs []syscall.Iovec
	bufs [][]byte
	ctrl [][]byte // per message, for the kernel's receive timestamp; nil for sending
}

// ctrlLen holds one SCM_TIMESTAMPNS control message.
const ctrlLen = 64

// withControl gives b room for each message's receive timestamp.
func (b *batch) withControl() *batch {
	b.ctrl = make([][]byte, len(b.hdrs))
	for i := range b.ctrl {
		b.ctrl[i] = make([]byte, ctrlLen)
	}
	return b
}

// rxStamp is the wall-clock time, in ns since the Unix epoch, at which
// the kernel queued message i on the socket (SO_TIMESTAMPNS), or false.
// It tells the server's latency apart from the time this generator took
// to read the reply, which at high rates is most of the tail.
func (b *batch) rxStamp(i int) (int64, bool) {
	if b.ctrl == nil {
		return 0, false
	}
	h := &b.hdrs[i].hdr
	if int(h.Controllen) < syscall.CmsgLen(16) {
		return 0, false
	}
	c := (*syscall.Cmsghdr)(unsafe.Pointer(&b.ctrl[i][0]))
	if c.Level != syscall.SOL_SOCKET || c.Type != syscall.SCM_TIMESTAMPNS || int(c.Len) < syscall.CmsgLen(16) {
		return 0, false
	}
	ts := (*syscall.Timespec)(unsafe.Pointer(&b.ctrl[i][syscall.CmsgLen(0)]))
	return ts.Nano(), true
}

func newBatch(n, size int) *batch {
	b := &batch{hdrs: make([]mmsghdr, n), iovs: make([]syscall.Iovec, n), bufs: make([][]byte, n)}
	for i := range n {
		b.bufs[i] = make([]byte, size)
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(size)
		b.hdrs[i].hdr.Iov = &b.iovs[i]
		b.hdrs[i].hdr.Iovlen = 1
	}
	return b
}

// conn is a connected UDP socket read and written in batches through the
// runtime's poller.
type conn struct {
	uc *net.UDPConn
	rc syscall.RawConn
}

func dial(server string, bufBytes int) (*conn, error) {
	addr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, err
	}
	uc, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		return nil, err
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		return nil, err
	}
	// Large buffers on the generator's side, so that a burst of replies
	// is not dropped here; root may go past rmem_max/wmem_max.
	_ = rc.Control(func(fd uintptr) {
		for _, opt := range [][2]int{{syscall.SO_RCVBUFFORCE, syscall.SO_RCVBUF}, {syscall.SO_SNDBUFFORCE, syscall.SO_SNDBUF}} {
			if syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt[0], bufBytes) != nil {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt[1], bufBytes)
			}
		}
		// Without the timestamps, the rx latency is simply not reported.
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	})
	return &conn{uc: uc, rc: rc}, nil
}

// send sends the first n messages of b, whose lengths are set in b.iovs.
// It returns how many were sent; an ICMP error queued by an earlier packet
// (ECONNREFUSED) is returned as an error after the packets it interrupted.
func (c *conn) send(b *batch, n int) (int, error) {
	sent := 0
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		for sent < n {
			r, e := mmsg(sysSENDMMSG, fd, b.hdrs[sent:n], 0)
			switch e {
			case 0:
				sent += r
			case syscall.EAGAIN:
				return false
			default:
				serr = e
				return true
			}
		}
		return true
	})
	if err == nil {
		err = serr
	}
	return sent, err
}

// recv reads up to len(b.hdrs) messages, waiting for the first until the
// connection's read deadline. The length of message i is b.hdrs[i].n.
func (c *conn) recv(b *batch) (int, error) {
	var got int
	var rerr error
	for i := range b.iovs {
		b.iovs[i].SetLen(len(b.bufs[i]))
		if b.ctrl != nil {
			b.hdrs[i].hdr.Control = &b.ctrl[i][0]
			b.hdrs[i].hdr.SetControllen(ctrlLen)
		}
	}
	err := c.rc.Read(func(fd uintptr) bool {
		r, e := mmsg(syscall.SYS_RECVMMSG, fd, b.hdrs, syscall.MSG_DONTWAIT)
		switch e {
		case 0:
			got = r
		case syscall.EAGAIN:
			return false
		default:
			rerr = e
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	return got, err
}

// mmsg makes one sendmmsg or recvmmsg call (trap) on fd for hdrs,
// again when a signal interrupts it.
func mmsg(trap, fd uintptr, hdrs []mmsghdr, flags uintptr) (int, syscall.Errno) {
	for {
		r, _, e := syscall.Syscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), flags, 0, 0)
		if e != syscall.EINTR {
			return int(r), e
		}
	}
}

// isRefused tells an ICMP port unreachable (nothing listens) apart.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// setTimerSlack sets the calling thread's timer slack (prctl
// PR_SET_TIMERSLACK), so that its sleeps end on time.
func setTimerSlack(d time.Duration) {
	const prSetTimerSlack = 29
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, uintptr(d.Nanoseconds()), 0)
}

// nanosleep blocks the calling thread for d.
func nanosleep(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	_ = syscall.Nanosleep(&ts, nil)
}
