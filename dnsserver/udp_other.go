//go:build !linux

package dnsserver

import "net"

// udpSocket is the Linux fast path's socket (udp_linux.go). Elsewhere the
// miekg/dns server reads UDP itself.
type udpSocket struct {
	handoff *handoffConn
}

func (s *Server) newUDPSocket(net.PacketConn) (*udpSocket, error) { return nil, nil }
func (u *udpSocket) start(chan<- error)                           {}
func (u *udpSocket) shutdown()                                    {}
func (u *udpSocket) close()                                       {}
