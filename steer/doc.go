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
package steer
