// Package geo owns client location: where a client is, from the EDNS Client
// Subnet or the source address looked up in a MaxMind-format database, and
// how far (in distance and estimated latency) it is from a point.
//
// This package imports no other popdns package. Its values are immutable
// and safe for concurrent use.
package geo
