// Package udpfast is dnsserver's UDP fast path: on Linux, one reader per
// socket moves queries and replies in batches (recvmmsg, sendmmsg;
// udp_linux.go), parses each query in place (wire.go) and answers a query
// of a shape it has seen from the packed reply the general path gave it,
// patched, without allocating (fastpath.go, memo.go). It learns those
// replies by watching the general path answer, so the two cannot
// disagree; anything unusual is handed to dnsserver's miekg/dns server
// unchanged (handoff.go). Elsewhere than on Linux, NewSocket declines and
// miekg/dns reads UDP itself (udp_other.go).
//
// The package knows nothing of the server it answers for but the Host
// interface, which dnsserver implements: the current zones snapshot, the
// decision epoch, the shared decision cache, the decision function both
// paths call (steer.Rank behind dnsserver's Server.decide), and the
// general path, which returns what shaped each reply as a Trace. The ECS
// rules both paths apply to the wire (DecodeECS, PublicAddr, ReplyScope)
// live here, below both, so that there is one copy of each (ecs.go).
//
// # Invariants
//
// These are what keep the fast path's replies byte for byte those of the
// general path; a change to either path must keep them. dnsserver's tests
// (TestFastPathMatchesGeneralPath, FuzzFastPath, TestFastPathCountsAsGeneralPath)
// hold the two paths to them.
//
//   - What keys an entry (wireQuery.key, built by parseWire): the question
//     name lower-cased, its type, the shape bits (RD, CD, EDNS present, DO,
//     NSID asked, ECS present and its family, COOKIE present when
//     cookies are on), the ECS SOURCE
//     PREFIX-LENGTH, and how many of the name's last labels are all lower
//     case. Anything else that could change the reply's bytes makes
//     parseWire refuse the query: other opcodes, classes and section
//     counts, EDNS versions, options other than one ECS, NSID, COOKIE and
//     PADDING, a malformed ECS, a malformed or second COOKIE (which the
//     general path answers FORMERR), the CO flag (which changes a signed
//     denial's rcode), compression pointers and names that need
//     escaping. Those go to the general path.
//   - What an entry holds (fastEntry): for a static answer, one packed
//     reply; for a geo record, one packed reply per distinct Decision
//     (answered targets in order, NODATA, SERVFAIL, all-down), at most
//     maxVariants. A reply is kept only when its Trace shows that nothing
//     but the key (and, for geo, one decision) shaped it: the snapshot it
//     was answered from is the reader's, fit cut nothing (Trace.Whole),
//     the rcode is not FORMERR, the question's case cannot change the
//     compression (Trace.CaseSafe), and at most one geo decision was made;
//     never a BADCOOKIE reply.
//     The same key answered two different ways is dropped, never guessed.
//   - What a cached reply may be patched with, and nothing else: the
//     message ID, the question name's bytes as asked (0x20 case), and for
//     ECS the SCOPE PREFIX-LENGTH (ReplyScope of the decision's scope) and
//     the ADDRESS bytes echoed as the query sent them; for COOKIE, the
//     option's data: the client cookie as the query sent it and the server
//     cookie made for this query (dnscookie's Secrets.Reply, with the
//     secrets and the time of Host.Cookies read once per batch, as the
//     general path makes it). The reply's COOKIE option, when the query
//     has one, is its last bytes (its data is zeroed in the entry: no
//     client's cookie is kept), and its ECS option comes just before;
//     remember checks both before keeping it.
//     A reply larger than the query's size limit is not patched down: the
//     general path fits it.
//   - Which decision a geo query gets: the reader's memo (decisionMemo)
//     answers (entry, client network) → reply within one strict epoch of
//     steer.Epoch; past that, the shared decision cache (Host.Cached);
//     past that, a new decision (Host.Decide), made by the same function
//     the general path calls. The client network is the ECS address when
//     the option is usable, else the source address, as the general path
//     decides; a source address is a resolver's, decided apart from an
//     ECS network at the same address (the resolver argument of Cached
//     and Decide, steer.ForResolver). The key tells a query without ECS
//     or with SOURCE 0 from one with a usable network, but not one whose
//     network nobody routes: the general path answers those, and their
//     decisions are not memoised. A memoised decision that was Widening (the server widens
//     its ECS scope in the background) is looked up in the shared cache
//     again once Host.Widenings has moved since it was memoised (a mark
//     read before the lookup, so that a widening finishing in between is
//     not missed): the memo then holds the widened scope.
//   - Exploration (Config.Explore): a query whose decision has an
//     exploration target (Decision.Explores) draws once, lock-free
//     (Explorer); drawn, it gets the entry's reply for the exploring
//     order (ExploredOrder: the target first, then the decision's others),
//     which is byte for byte the reply of any decision answering that
//     order, patched as usual with the decision's ECS scope. Without such
//     a reply the query goes to the general path with its draw
//     (Host.ServeTraced's Exploring), which answers it exploring; that
//     reply (Trace.Explored) is kept as the variant of its order and never
//     memoised for the client, whose memo keeps the decision itself: every
//     query draws afresh. A memoised decision does not carry its target
//     (the memo's slots have no byte to spare): a query answered from the
//     memo that draws to explore looks its decision up in the shared cache
//     (Host.Cached), and answers as memoised when it is not there.
//   - What invalidates: a new zones snapshot drops every entry and the memo
//     (entries belong to one snapshot), and so does a new generation of
//     presigned signatures (Host.Signatures), so that re-signed RRsets
//     reach clients; a new strict epoch (zones
//     generation, health, operator overrides) starts the memo and the
//     shared cache over; a move of the gradual part (probe penalties,
//     latency ages) marks memoised decisions stale, and a reader re-decides
//     at most RefreshesPerBatch of them per batch, answering the rest as
//     decided until their turn. Caches are bounded (fastCacheCap entries,
//     MemoCap memoised decisions, and as many shared decisions in
//     dnsserver's cache) and start over when full.
//   - Rate limiting (Config.RRL, package rrl): a reply is charged to the
//     account its entry learnt from the general path (Trace.RRL: the class
//     and name the general path charged for it), for the packet's source
//     address, at the time its batch was read (Path.Begin), before it is
//     copied. A limited reply is dropped (Dropped) or slipped: the cached
//     reply's header with TC set, its question and a bare OPT record if
//     the query had one, patched as a reply is,
//     the same bytes as the general path's slip; for a query with a
//     client cookie, Path.BadCookie's reply instead. Neither counts as an
//     answer; both count in Metrics.RRL, and one per batch is logged. A
//     query with a valid server cookie (judged before the entry is looked
//     up) proves its source and is never limited; the general path names
//     the account of its reply all the same, for the entry.
//   - Counting: every fast answer counts in the same metrics as a general
//     one (Config.Metrics: requests, answers by PoP, ECS use and scope,
//     all-down by policy, cookies by outcome), added per batch in Flush; the query log, when
//     on, sends every query through the general path. Each lookup of a
//     geo decision counts when it is made, whether the query is then
//     answered here or handed over: memo when the reader's memo had it,
//     else hit when the shared cache had it and miss when it was ranked
//     afresh (Metrics.DecisionMemo, DecisionHit, DecisionMiss). A query
//     handed to the general path after a lookup counts again there, as
//     a hit when the fast path just decided it: two lookups. It counts in the same traffic counters too (package
//     traffic, Trace.Target and Trace.ZoneCount): per query, the
//     catchment of the PoP answered first, for the client's place
//     (Decision.Place), which a memoised decision carries
//     (clientReply.place) since a memo hit does not locate the client;
//     per batch, the record's and the zone's counts.
package udpfast
