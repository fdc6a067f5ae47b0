// Package steer owns the rules that choose which PoPs answer a geo record:
// a target's effective admin state (its own, its PoP's and the operators'
// runtime override), its health (its PoP's probe and its own), whether it
// is eligible, its estimated round-trip time (measured latency, else
// great-circle distance, calibrated, plus bias and probe penalty), the
// record's rules, spread and when_all_down policy, and the ECS scope over
// which the decision holds.
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
// continent, ASN) and its address only through CIDR rules, latency
// spans and spread's hash. Inside a prefix that no CIDR rule of the record
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
