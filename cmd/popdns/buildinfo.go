package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// buildInfoMetric is popdns_build_info: 1, labelled with the build that
// /status shows (buildInfo): the version popdns version prints, the VCS
// revision ("unknown" when the build recorded none, as with -trimpath
// outside a checkout) and the Go version, so that a dashboard can tell
// which build each instance runs.
func buildInfoMetric() prometheus.Collector {
	b := buildInfo(time.Time{}) // the start time is /status's, not a label
	revision, goVersion := b.Revision, b.GoVersion
	if revision == "" {
		revision = "unknown"
	}
	if goVersion == "" {
		goVersion = "unknown"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "popdns", Name: "build_info",
		Help:        "Always 1, labelled with the version, VCS revision and Go version of the running binary.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": revision, "goversion": goVersion}})
	g.Set(1)
	return g
}
