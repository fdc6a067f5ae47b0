// Steer scores popdns's steering choices rather than its speed: it samples
// client networks from GeoLite2 City on every continent, gives each network
// a modelled "true" round-trip time to each of six PoPs, asks popdns's own
// selector (steer.Rank, over the zones a dnsserver.Server would serve, with
// each network's subnet as the client) which PoP each network gets, and
// reports how close those choices are to the best
// one. It runs three modes: distance only, a latency table built from a
// sample of noisy measurements, and probe penalties while one PoP slows
// down or dies, round by round as the prober would see it. A timeline then
// runs distance only, the static table and a learned mode (fed by a
// measurement stream through the Learner interface; the learner here is a
// stand-in) through a route change, in the kind model and in a harder one
// with correlated path inflation, geolocation error and resolvers that
// send no ECS.
//
// This directory, bench/steer, owns the simulation: the client sample,
// the RTT models (kind and harder), the measurement and probe models, the
// timeline, the scoring and the
// Markdown report. README.md documents the model and its parameters. The
// dnsserver.Server it builds holds the zones and explains the worst
// choices in the report; it answers no query.
//
// Usage, from the repository root (README.md, "Running the tests", says how
// to fetch GeoLite2 City):
//
//	go run ./bench/steer [-per-continent 1000] [-seed 1] [-coverage 0.5] [-out bench/steer/RESULTS.md]
package main
