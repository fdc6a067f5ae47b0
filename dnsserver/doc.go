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
// DNS cookies (RFC 7873) are answered on both paths (cookie.go): package
// dnscookie makes and checks the interoperable server cookie of RFC 9018,
// under secrets a reload may replace (Server.SetCookieSecrets).
//
// On Linux, UDP goes through a fast path, package
// dnsserver/internal/udpfast: one reader per socket answers a query of a
// shape it has seen from the packed reply the general path gave it,
// patched, and hands anything unusual to the miekg/dns server. Its package
// doc states the invariants that keep its replies byte for byte the
// general path's: what keys an entry, what a cached reply may be patched
// with, which decision a geo query gets, and what invalidates. dnsserver
// wires it in (Serve) and implements its udpfast.Host (fasthost.go): the
// snapshot, the decision epoch and cache, Server.decide (the one decision
// function of both paths), and the general path returning its trace.
//
// ECS scopes are widened off the query path (widen.go): a geo decision is
// answered at once with steer.Rank's scope and handed, without waiting,
// to a worker that runs steer.Widen under the same steer.Env and the
// server's locator, at most WidenConfig.PerSecond a second (each 256
// network lookups counting as one; a full queue drops the decision,
// which keeps its scope). The worker replaces the
// client's decision in the shared cache with the widened one and keeps the
// widened prefix, per record and query type, in a store valid for one
// epoch and one GeoIP database generation (geo.Locator.Generation): any
// change of either drops every prefix, as the decision cache starts over,
// so a wide scope never outlives the inputs it was proven under. Server.decide
// asks the store before ranking: a client inside a widened prefix gets its
// decision and scope without a ranking. A decision waiting to be widened
// is marked (udpfast.Decision.Widening), so that a UDP reader's memo asks
// the shared cache for it again once a widening has finished.
//
// With a learned-latency table, both paths explore (explore.go,
// Config.ExplorePct): a share of the geo answers whose decision names an
// exploration target put it first, drawn per answer without a lock, so
// that measurements come to exist for the PoPs a client could move to;
// such an answer is never cached as the client's decision and keeps its
// ECS scope, and popdns_learned_explored_total counts it.
//
// Both paths rate-limit UDP replies (response rate limiting, package
// internal/rrl; ratelimit.go) once the reply's class is known and before
// it is fitted, packed or copied: one Limiter, shared by every reader and
// the general path, decides whether a reply goes out, goes out as a
// minimal truncated reply (slip), or is dropped. A query with a client
// cookie slips as BADCOOKIE with the server cookie that exempts its next
// query instead (cookie.go). TCP is never limited.
//
// TCP is served by dnsserver's own loop (tcp.go), not miekg/dns's: it
// bounds connections globally and per source network below the
// file-descriptor limit, closes a connection that sends no query within
// the idle timeout whatever else it sends, and on shutdown answers the
// queries each connection has received. Serve's shutdown answers what the
// UDP sockets hold as well: the fast path's readers drain their sockets
// and the general path the queries handed to it.
//
// Listen binds with SO_REUSEPORT (package internal/reuseport) so that a
// new process can bind the same addresses while an old one serves: a
// Server that finds its addresses served is TakingOver, and gets no query
// until its caller, ready in full, calls TakeOver; the old one then gets
// nothing new, and its shutdown empties its UDP queues and accepts its TCP
// listeners' backlog rather than reset it (docs/operations.md).
package dnsserver
