package dnsserver

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// tcpStateListen is TCP_LISTEN in the kernel's enum of TCP states
// (include/net/tcp_states.h), as TCP_INFO reports it.
const tcpStateListen = 10

// backlogWaiting reports whether connections the kernel completed wait in
// l's accept queue. A listening socket's TCP_INFO gives the queue's length
// in tcpi_unacked. Shutdown asks it when an Accept of the backlog times
// out: on a starved machine the accept loop can go longer than
// acceptDrainIdle between two Accepts, and closing then would reset
// connections that are already waiting.
func backlogWaiting(l net.Listener) bool {
	sc, ok := l.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	waiting := false
	_ = raw.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		waiting = err == nil && info.State == tcpStateListen && info.Unacked > 0
	})
	return waiting
}
