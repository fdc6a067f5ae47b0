// Package dnsserver owns the DNS protocol side of popdns: the UDP and TCP
// listeners, request checks, EDNS(0), building authoritative answers from a
// zones.Snapshot, and fitting each reply to what the client can receive.
//
// The query path reads the current snapshot through an atomic pointer that
// a reload replaces whole; it takes no lock that loading holds. Everything a
// query reads from the snapshot is immutable, so RRs are shared between
// replies and never modified.
package dnsserver
