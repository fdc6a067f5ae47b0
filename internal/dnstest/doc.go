// Package dnstest holds test helpers for DNS handlers: a ResponseWriter that
// records the reply as it would go on the wire, and RR parsing for
// expectations. It is imported only by _test.go files.
package dnstest
