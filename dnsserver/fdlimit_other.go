//go:build !unix

package dnsserver

// fileLimit is 0 where there is no RLIMIT_NOFILE: the connection limits
// then take fixed defaults.
func fileLimit() int { return 0 }
