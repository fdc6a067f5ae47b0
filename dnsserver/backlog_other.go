//go:build !linux

package dnsserver

import "net"

// backlogWaiting cannot tell here: the backlog is accepted until
// acceptDrainIdle passes with nothing, as on Linux without TCP_INFO.
func backlogWaiting(net.Listener) bool { return false }
