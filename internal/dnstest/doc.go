// Package dnstest holds test helpers for DNS handlers: a ResponseWriter that
// records the reply as it would go on the wire, and RR parsing for
// expectations; and a channel receive with a time limit, so that no test
// waits on a channel unbounded. It is imported only by _test.go files.
package dnstest
