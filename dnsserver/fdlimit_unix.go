//go:build unix

package dnsserver

import "syscall"

// fileLimit is the process's limit on open file descriptors
// (RLIMIT_NOFILE), its soft limit first raised to the hard one. Go (since
// 1.19) raises it so at start on its own; this does it again in case
// something lowered it, and reads what holds.
func fileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if rl.Cur < rl.Max {
		raised := rl
		raised.Cur = rl.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			rl = raised
		}
	}
	if rl.Cur > 1<<30 {
		return 1 << 30
	}
	return int(rl.Cur)
}
