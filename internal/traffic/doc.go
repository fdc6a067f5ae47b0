// Package traffic owns the counts of what the DNS server answered that the
// status page and Prometheus show: queries per zone, geo answers per
// (zone, record, PoP answered first), and the catchment, geo answers per
// (PoP, client's place): its country, or its continent when the GeoIP
// database names no country; continents are summed from countries when
// read, so that an answer costs one add. Both of dnsserver's
// paths count here, on the query path, with atomic adds on counters
// resolved before the query (Counters.SetZones builds the table the query
// reads through one atomic.Pointer): no lock, no allocation. Memory is
// bounded by the configuration: one fixed array of places per PoP,
// one counter per geo record target and per zone, and counters a reload
// removes are dropped.
//
// Rates come from a ring of samples of the counters that Counters.Run
// takes every SampleEvery, an hour of them: nothing on the query path. A
// sample holds only the zones and places that grew since the one before,
// so the ring's memory follows the traffic, not the zones configured.
// Report reads the counters and the ring, and lists only the busiest
// zones of the hour; Prometheus gets a series per geo record target up to
// MaxRecordSeries and the rest summed per PoP.
package traffic
