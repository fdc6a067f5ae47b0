// Package crosscheck holds tests only: it compares popdns's answers with
// those of a reference authoritative server (Knot DNS) serving the same
// zone, query by query, on the wire. Every difference fails the test unless
// an allow-list entry names the RFC under which both answers are correct,
// or marks it as a known popdns bug.
//
// The tests need knotd and skip without it:
//
//	apt-get install knot knot-dnsutils
package crosscheck
