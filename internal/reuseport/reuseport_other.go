//go:build !linux

package reuseport

import "syscall"

const supported = false

func control(_, _ string, _ syscall.RawConn) error { return nil }

func steer(int, uint32) error { return nil }
