// Package fleet owns what several popdns instances share over NATS
// JetStream key-value buckets: the operators' overrides (bucket
// popdns_overrides, replicated, with history as the audit trail and
// compare-and-set on the revision) and the health observations each
// instance publishes per probe (bucket popdns_observations, every key
// expiring by itself a few probe intervals after its last write), and
// the learned-latency stream (popdns_learned, a subject per instance:
// LatencyStream), which package learned publishes its measurements to
// and follows from a sequence. It owns the connection to NATS (reconnecting forever, metrics and log
// lines on every change) and, when configured, a NATS server embedded in
// the process so that a small fleet needs no separate service.
//
// It does not decide anything: Fleet.Overrides is an overrides.Store
// that cmd/popdns watches like the state_dir file, and
// Fleet.WatchObservations hands every instance's fresh observations to
// the health rule (package healthprobe). Nothing here is called on the
// query path: NATS being slow or away costs a query nothing. While NATS
// is unreachable, writes fail fast with overrides.ErrUnavailable,
// watchers keep the last state they handed out, and on reconnect they
// read the buckets again from scratch (a resync) before reporting; a
// watch whose consumer died with its cluster server while the connection
// stayed up notices within about 2 s and resyncs too.
//
// Built with -tags popdns_noembed, popdns leaves the embedded server out
// (about 14 MB of binary); Config.Embedded is then refused by Open.
package fleet
