// Package dnscookie owns DNS cookies (RFC 7873) as a server makes and
// checks them, with the interoperable server cookie of RFC 9018, so that
// every instance holding the same secret (and any other server that
// implements RFC 9018: BIND, Knot, PowerDNS) accepts the cookies of the
// others:
//
//	Server Cookie = Version (1 octet, 1) | Reserved (3 octets, 0)
//	              | Timestamp (4 octets, seconds since 1970, serial arithmetic)
//	              | Hash (8 octets)
//	Hash = SipHash-2-4(key = the 128-bit secret,
//	                   Client Cookie | Version | Reserved | Timestamp | Client-IP)
//
// where Client-IP is the query's source address, 4 octets for IPv4 and 16
// for IPv6. A server cookie is valid when its hash is that of the current
// secret or of the previous one (so that a secret can be rolled over
// without breaking clients), and its timestamp is at most an hour old and
// at most five minutes ahead (RFC 9018 §4.3). A valid cookie older than
// half an hour is replaced by a fresh one in the reply; a younger one is
// echoed as it came.
//
// The package is pure: no I/O but reading a secret file's bytes handed
// to it, no clock (callers pass the time), no state. Making and checking
// a cookie do not allocate, so the UDP fast path calls them per query.
// SipHash-2-4 is written here (siphash.go) rather than imported: it is
// sixty lines, held to the reference test vectors of the SipHash paper.
package dnscookie
