package reuseport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// Index values for Steer: which socket of a group, in the order the
// sockets joined, gets what arrives.
const (
	// Oldest is the socket that has been in the group longest: the
	// running process's while another is starting.
	Oldest = 0
	// Newest is, in a group of two, the socket that joined last: the
	// process taking over. Alone in its group, a socket gets everything
	// anyway (the index is past the last socket, which falls back to the
	// kernel's hash).
	Newest = 1
)

// Supported reports whether this system can share an address between
// processes and steer it (Linux).
func Supported() bool { return supported }

// ListenTCP listens on addr ("tcp", host:port) with SO_REUSEPORT when share
// is true and the system supports it, then steers the group to its oldest
// socket. Without share the address is bound exclusively, as net.Listen
// does.
func ListenTCP(addr string, share bool) (net.Listener, error) {
	lc := net.ListenConfig{}
	if share && supported {
		lc.Control = control
		// Go listens with MPTCP where the kernel has it, and an MPTCP
		// socket refuses a reuseport program (EOPNOTSUPP). DNS clients
		// do not speak MPTCP anyway.
		lc.SetMultipathTCP(false)
	}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, explain(err, share)
	}
	if share && supported {
		if err := Steer(l.(*net.TCPListener), Oldest); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// ListenUDP is ListenTCP for a UDP socket.
func ListenUDP(addr string, share bool) (*net.UDPConn, error) {
	lc := net.ListenConfig{}
	if share && supported {
		lc.Control = control
	}
	pc, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, explain(err, share)
	}
	c := pc.(*net.UDPConn)
	if share && supported {
		if err := Steer(c, Oldest); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// explain adds to an address-in-use error what the operator can do.
func explain(err error, share bool) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	if share && supported {
		return fmt.Errorf("%w (another process holds it without SO_REUSEPORT, or runs as another user: a popdns taking over from another must run as the same user, and both with reuse_port on)", err)
	}
	if supported {
		return fmt.Errorf("%w (reuse_port is off: no second process can bind it while this one runs)", err)
	}
	return err
}

// Held reports whether some socket is already bound to the UDP address
// addr: another process serving it, which a new one is taking over from.
// It binds addr exclusively for a moment to find out; port 0 is never
// held.
func Held(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" {
		return false
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return errors.Is(err, syscall.EADDRINUSE)
	}
	pc.Close()
	return false
}

// Steer makes the reuseport group of c (a socket bound by ListenTCP or
// ListenUDP) send every new datagram or connection to the socket at index,
// Oldest or Newest. It does nothing where Supported is false.
func Steer(c syscall.Conn, index uint32) error {
	if !supported {
		return nil
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("reuseport: steer: %w", err)
	}
	return SteerControl(rc, index)
}

// Controller runs f on a socket's descriptor, as syscall.RawConn's Control
// does: for a socket that is no longer a net.Conn (the UDP fast path's).
type Controller interface {
	Control(f func(fd uintptr)) error
}

// SteerControl is Steer for the socket c controls.
func SteerControl(c Controller, index uint32) error {
	if !supported {
		return nil
	}
	var serr error
	if err := c.Control(func(fd uintptr) { serr = steer(int(fd), index) }); err != nil {
		return fmt.Errorf("reuseport: steer: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("reuseport: steer to socket %d: %w", index, serr)
	}
	return nil
}
