//go:build linux && amd64

package main

// sysSENDMMSG is sendmmsg(2), which package syscall does not name on amd64.
const sysSENDMMSG = 307
