// Package healthprobe owns liveness and latency of the targets popdns
// answers with: the probes (HTTP, HTTPS, TCP connect, DNS), their
// schedules, rise/fall hysteresis, RTT smoothing with a per-target
// baseline, and the immutable Status snapshot that the query path reads.
//
// A Prober runs one goroutine per distinct probe (Targets with equal Key
// share one), starting with an immediate first round and then every
// interval, with jitter after the first probe so targets drift apart.
// Each result updates the target's state and publishes a new *Status
// through an atomic pointer; readers call Status once per query and never
// lock. A target not yet probed counts as healthy, so that a restart never
// blackholes a name; its first result decides its state, and later changes
// need Rise consecutive successes or Fall consecutive failures.
//
// The latency penalty of a target is max(0, EWMA - baseline), where the
// EWMA (alpha 0.3) and the baseline (p10 of the last 360 RTTs) are over
// successful probes only.
//
// In a fleet, each instance publishes its Results as Observations, and
// Combine turns every instance's fresh observations of a probe into one
// Result by the fleet's Rule (majority, fraction, regional), the same on
// every instance that holds the same observations; with too few
// observers it keeps the local Result. Combine is pure: the transport
// that carries observations lives in internal/fleet.
//
// Metrics: popdns_probe_up{target}, popdns_probe_rtt_seconds{target},
// popdns_probe_errors_total{target,reason}, popdns_probe_duration_seconds{target}
// (a histogram of successful probes' RTTs) and
// popdns_probe_results_total{target,outcome} (outcome ok or a reason, all
// created with the target), where target is a configured
// probe ID and reason one of the Reason constants.
//
// This package imports no other popdns package.
package healthprobe
