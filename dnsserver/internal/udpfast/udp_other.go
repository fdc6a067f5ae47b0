//go:build !linux

package udpfast

import (
	"net"
	"time"
)

// Socket is the Linux fast path's socket (udp_linux.go). Elsewhere the
// miekg/dns server reads UDP itself.
type Socket struct{}

// NewSocket returns nil: there is no fast path to take pc over.
func NewSocket(net.PacketConn, Host, Config) (*Socket, error) { return nil, nil }
func (u *Socket) Handoff() net.PacketConn                     { return nil }
func (u *Socket) Start(chan<- error)                          {}
func (u *Socket) Stop(time.Time)                              {}
func (u *Socket) Wait()                                       {}
func (u *Socket) FinishHandoff()                              {}
func (u *Socket) CloseHandoff()                               {}
func (u *Socket) Close()                                      {}
func (u *Socket) Control(func(uintptr)) error                 { return nil }
