//go:build unix

package dnsserver

import "syscall"

// fileLimit is the process's limit on open file descriptors: the soft
// RLIMIT_NOFILE. It is not raised here: the Go runtime (since 1.19)
// raises it at start to the hard limit less one (syscall/rlimit.go), and
// a Setrlimit of ours would make child processes inherit the raised
// limit instead of the original.
func fileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if rl.Cur > 1<<30 {
		return 1 << 30
	}
	return int(rl.Cur)
}
