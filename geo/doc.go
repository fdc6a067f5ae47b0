// Package geo owns client location: where a client is, looked up by address
// (from the EDNS Client Subnet or the source address) in MaxMind-format
// databases, and how far it is from a point, in kilometres and in estimated
// fibre round-trip time.
//
// [DB] wraps one City database (GeoLite2/GeoIP2 City or DB-IP City Lite)
// and optionally an ASN database, read into memory and checked whole when
// opened, so that a file rewritten in place cannot crash a lookup and a
// corrupt one is refused instead of answering wrongly. [Locator] is what a server holds: it never
// fails, and it swaps databases atomically while lookups continue, closing a
// replaced database only once no lookup uses it any more. [DistanceKm] and
// [FibreRTT] turn two [Point]s into a distance and a latency estimate.
//
// A Locator's Collector exports popdns_geoip_build_timestamp_seconds, read
// from the metadata of the databases serving at each scrape (metrics.go).
//
// Values of this package are immutable once built, and every exported
// function and method is safe for concurrent use unless its doc comment says
// otherwise. This package imports no other popdns package.
package geo
