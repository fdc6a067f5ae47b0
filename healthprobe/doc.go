// Package healthprobe owns liveness and latency of the targets popdns
// answers with: the probers (HTTP, TCP, DNS), their schedules, rise/fall
// thresholds, and the immutable Status snapshot that the query path reads.
//
// This package imports no other popdns package.
package healthprobe
