// Package healthprobe owns liveness and latency of the targets popdns
// answers with: the probers (HTTP, TCP, DNS), their schedules, rise/fall
// thresholds, and the immutable Status snapshot that the query path reads.
//
// Today it holds only the Status types that the query path will read; the
// probers arrive with the health-probe issue, and until then every target
// counts as healthy.
//
// This package imports no other popdns package.
package healthprobe
