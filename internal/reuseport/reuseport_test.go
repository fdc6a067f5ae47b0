package reuseport

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sendFrom sends one datagram to addr from each of n fresh sockets: n
// source ports, which the kernel's hash would spread over a group.
func sendFrom(t *testing.T, addr net.Addr, n int) {
	t.Helper()
	for i := range n {
		c, err := net.Dial("udp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}

// received counts the datagrams c holds, reading until it has had none
// for a while.
func received(t *testing.T, c *net.UDPConn) int {
	t.Helper()
	buf := make([]byte, 16)
	n := 0
	for {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := c.ReadFrom(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return n
			}
			t.Fatal(err)
		}
		n++
	}
}

func TestSteerUDP(t *testing.T) {
	if !Supported() {
		t.Skip("no SO_REUSEPORT steering here")
	}
	old, err := ListenUDP("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	addr := old.LocalAddr()
	if !Held(addr.String()) {
		t.Errorf("Held(%s) = false with a socket bound to it", addr)
	}
	newer, err := ListenUDP(addr.String(), true)
	if err != nil {
		t.Fatalf("second socket on %s: %v", addr, err)
	}
	defer newer.Close()
	const n = 40
	steps := []struct {
		name       string
		do         func() error
		toOld, toN int
	}{
		{"joined: the oldest keeps everything", func() error { return nil }, n, 0},
		{"taken over: the newest gets everything", func() error { return Steer(newer, Newest) }, 0, n},
		{"the old one closed: the only one left gets everything", func() error { return old.Close() }, -1, n},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		sendFrom(t, addr, n)
		if st.toOld >= 0 {
			if got := received(t, old); got != st.toOld {
				t.Errorf("%s: the old socket got %d of %d, want %d", st.name, got, n, st.toOld)
			}
		}
		if got := received(t, newer); got != st.toN {
			t.Errorf("%s: the new socket got %d of %d, want %d", st.name, got, n, st.toN)
		}
	}
}

// accepted counts the connections l has queued.
func accepted(t *testing.T, l net.Listener) int {
	t.Helper()
	n := 0
	for {
		l.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond))
		c, err := l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return n
			}
			t.Fatal(err)
		}
		c.Close()
		n++
	}
}

func TestSteerTCP(t *testing.T) {
	if !Supported() {
		t.Skip("no SO_REUSEPORT steering here")
	}
	old, err := ListenTCP("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	addr := old.Addr().String()
	newer, err := ListenTCP(addr, true)
	if err != nil {
		t.Fatalf("second listener on %s: %v", addr, err)
	}
	defer newer.Close()
	const n = 20
	connect := func() {
		for range n {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
	}
	connect()
	if got, gotNew := accepted(t, old), accepted(t, newer); got != n || gotNew != 0 {
		t.Errorf("joined: old accepted %d, new %d; want %d and 0", got, gotNew, n)
	}
	if err := Steer(newer.(*net.TCPListener), Newest); err != nil {
		t.Fatal(err)
	}
	connect()
	if got, gotNew := accepted(t, old), accepted(t, newer); got != 0 || gotNew != n {
		t.Errorf("taken over: old accepted %d, new %d; want 0 and %d", got, gotNew, n)
	}
	old.Close()
	connect()
	if got := accepted(t, newer); got != n {
		t.Errorf("old closed: new accepted %d, want %d", got, n)
	}
}

// TestExclusive checks that without share a second bind of the address
// fails, and says why.
func TestExclusive(t *testing.T) {
	// A port free for both (another process may hold the UDP port's
	// number over TCP).
	var addr string
	for range 20 {
		l, err := ListenTCP("127.0.0.1:0", false)
		if err != nil {
			t.Fatal(err)
		}
		first, err := ListenUDP(l.Addr().String(), false)
		if err != nil {
			l.Close()
			continue
		}
		defer l.Close()
		defer first.Close()
		addr = l.Addr().String()
		break
	}
	if addr == "" {
		t.Fatal("no port free for UDP and TCP")
	}
	for _, share := range []bool{false, true} {
		if c, err := ListenUDP(addr, share); err == nil {
			c.Close()
			t.Errorf("UDP %s bound twice (share %v)", addr, share)
		} else if !errors.Is(err, syscall.EADDRINUSE) || (Supported() && !strings.Contains(err.Error(), "reuse_port")) {
			t.Errorf("UDP, share %v: %v; want address in use, naming reuse_port", share, err)
		}
		if c, err := ListenTCP(addr, share); err == nil {
			c.Close()
			t.Errorf("TCP %s bound twice (share %v)", addr, share)
		} else if !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("TCP, share %v: %v; want address in use", share, err)
		}
	}
	if Held("127.0.0.1:0") {
		t.Error("port 0 held")
	}
}
