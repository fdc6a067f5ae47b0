//go:build linux && arm64

package main

import "syscall"

// sysSENDMMSG is sendmmsg(2).
const sysSENDMMSG = syscall.SYS_SENDMMSG
