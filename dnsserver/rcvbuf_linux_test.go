package dnsserver

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestUDPReadBuffer: a UDP socket gets udpReadBuffer, or as much of it as
// net.core.rmem_max allows (the kernel reports twice what it grants).
func TestUDPReadBuffer(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skip(err)
	}
	rmemMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	l, err := bind("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.udp.Close()
	defer l.tcp.Close()
	rc, err := l.udp.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := rc.Control(func(fd uintptr) { got, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if want := 2 * min(udpReadBuffer, rmemMax); got < want {
		t.Errorf("SO_RCVBUF %d, want %d (rmem_max %d)", got, want, rmemMax)
	}
}
