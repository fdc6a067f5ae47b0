// Package steer owns the rules that choose which PoPs answer a geo record:
// a target's effective admin state (its own, its PoP's and the operators'
// runtime override), its health (its PoP's probe and its own), whether it
// is eligible, its estimated round-trip time (measured latency, else
// great-circle distance, calibrated, plus bias and probe penalty), the
// record's rules, spread and when_all_down policy, and the ECS scope over
// which the decision holds.
//
// # Learned latency
//
// With a learned-latency table ([Env.WithLearned]: RTTs measured from real
// clients, latency/learn), a candidate's RTT comes from it before the
// latency table and the distance estimate. The client's RTTs are compared
// in one cell: the finest (its /24 or /48, its GeoIP network, its AS
// when the database places it no better than a country) in which an
// eligible target's PoP has a fresh estimate resting on at least
// CellWeight measurements, else the finest with a fresh estimate: a
// /24's RTTs from a beacon every few minutes are each one noisy sample,
// while its network's include them and many more. The cell's leader
// (learn.Found.LeaderIn), which the aggregator keeps from snapshot to
// snapshot until another PoP is better by the margin, stands for the PoP
// its clients are on now; when it is no eligible target of the record,
// the PoP measured most lately does. A PoP that cell lacks borrows its
// estimate from a coarser one, scaled up by how much slower the current
// PoP is in the client's cell than in the coarser one, never down. An AS's
// clients are spread too widely for its RTTs to be those of a client
// placed within a city or region. A PoP
// nobody measured keeps its distance estimate, calibrated as today. The
// stabiliser keeps the client on its current PoP unless the best one is
// better by Options.LearnedMargin (learn.ShouldMove). Decision.Explore
// names the best ranked alternative whose RTT the client's cell has not
// measured lately, for the server's exploration share. A decision reads
// the table's snapshot only, so it is pure, and its generation is a
// gradual part of the Epoch.
//
// # Location uncertainty
//
// A distance estimate is taken from the far edge of the database's
// accuracy circle (geo.Location.AccuracyKm): a client placed at a
// country's centroid, hundreds of km uncertain, gets estimates that many
// km longer, so that any measured RTT, its own or its network's or AS's,
// beats them, while estimates among themselves keep their order.
//
// It is pure: [Rank] reads a record, a query type, the client's address and
// location and an [Env], and does no I/O, takes no lock and does not
// allocate. Everything that needs to know which PoP wins or whether a
// target gets clients (the DNS server and its caches, the status model,
// explain, the steering simulation in bench/steer) asks this package
// instead of re-deriving its rules. An Env's [Epoch] says when decisions
// made under it go stale, which is what the server's caches key on.
//
// # ECS scope
//
// Rank's scope is the database network that placed the client, narrowed
// until no CIDR rule and no latency span crosses its edge: correct, but
// often far narrower than it need be, since neighbouring networks tend to
// get the same answer. [Widen] grows it to the widest prefix around the
// client over which the answer provably does not change. A decision is a
// function of the record, the Env, the client's Location (point, country,
// continent, ASN, and the GeoIP network where it has learned RTTs) and its
// address only through CIDR rules, latency spans, learned /24 and /48
// cells and spread's hash. Inside a prefix that no CIDR rule of the record
// and no latency span of any of its PoPs splits, addresses differ only by
// location, so the prefix is correct iff every network in it (a gap in the
// database is a network too, of unknown location) ranks to the same
// answer: the same targets in the same order, or the same NoData,
// Servfail and all-down outcome. Widen checks one sibling half at a time,
// and the first half with another answer ends it, since every wider
// prefix contains that half too: the result is the widest prefix not
// split by a rule or latency span. Records with spread are not widened,
// because spread hashes the client network at the scope: a wider scope
// would change the choice it stands for. Widening looks networks up, which
// costs microseconds each, so it takes a budget of lookups; running out
// leaves a scope that is correct, only not the widest. The DNS server
// runs it in the background, never on the query path, and keeps what it
// proves for one Epoch (package dnsserver, widen.go).
package steer
