// Package learn owns learned latency: round-trip times measured from real
// clients to the PoPs (browser beacons, TCP RTTs from the PoPs' web
// servers), parsed and checked (ParseBatch), aggregated per (cell, PoP)
// into a decaying, outlier-clipped mean (Aggregator), and published as an
// immutable Snapshot that the query path reads without locks or
// allocations. A cell is the client's /24 (IPv4) or /48 (IPv6), the
// GeoIP network that contains it, or its AS; a lookup borrows per PoP from
// the most specific cell with enough fresh samples, in that order.
//
// It also holds the stabiliser (ShouldMove), which keeps a client on its
// PoP unless another is better by a margin in ms and in percent, and the
// aggregator's persistence (Save, Load and LoadState: an atomic,
// versioned state file, streamed on load) and export in the latency
// package's table format.
//
// The package does no geo lookups and knows no inventory: callers pass the
// GeoIP network and AS of a client, and a func that says whether a PoP
// exists. An Aggregator is safe for concurrent use (a mutex guards it; the
// query path never touches it); a Snapshot is immutable and safe for
// concurrent use, and a nil *Snapshot is empty. See
// docs/learned-latency.md for the design.
package learn
