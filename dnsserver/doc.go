// Package dnsserver owns the DNS protocol side of popdns: the UDP and TCP
// listeners, request checks, EDNS(0), building authoritative answers from a
// zones.Snapshot, and fitting each reply to what the client can receive.
// Which PoPs a geo record answers with is the steer package's decision;
// dnsserver locates the client, asks steer.Rank, and caches decisions
// keyed by the steer.Env's epoch.
//
// The query path reads the current snapshot through an atomic pointer that
// a reload replaces whole; it takes no lock that loading holds. Everything a
// query reads from the snapshot is immutable, so RRs are shared between
// replies and never modified.
//
// On Linux, UDP goes through a fast path (fastpath.go, udp_linux.go): one
// reader per socket moves queries and replies in batches (recvmmsg,
// sendmmsg) and answers a query of a shape it has seen from the packed
// reply the general path gave it, patched, without allocating. It learns
// those replies by watching the general path answer, so the two cannot
// disagree; anything unusual is handed to the miekg/dns server unchanged.
package dnsserver
