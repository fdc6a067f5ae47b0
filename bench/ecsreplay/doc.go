// Command ecsreplay measures what a resolver with an ECS cache pays for the
// scopes an authoritative server returns, and whether the scopes are
// correct (issue 17, "the widest correct ECS scope").
//
// It samples client /24s from GeoLite2 City (sample.go), serves the
// benchmark's geo name (bench/workload.yaml: six PoPs, nearest by great
// circle) from popdns and from gdnsd with the same database
// (backends.go), puts one Unbound with subnetcache in front of each, with
// a counting UDP proxy between Unbound and the backend (proxy.go), and
// asks Unbound once for every sampled /24 with that /24 as the client's
// ECS (replay.go). It reports, per backend, the queries Unbound sent
// upstream and the answers that differ from what the backend itself
// answers for that /24 when asked directly (report.go). See
// bench/README.md, "ECS scopes through a caching resolver".
//
// Everything listens on 127.0.0.1 and every send goes to 127.0.0.1: the
// program refuses other addresses. Every wait has a timeout, and the
// replay is bounded in rate and time.
package main
