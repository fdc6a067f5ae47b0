package main

import (
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// buildInfo is popdns_build_info: 1, labelled with the version popdns
// version prints, the VCS revision the binary was built from ("unknown"
// when the build recorded none, as with -trimpath outside a checkout) and
// the Go version, so that a dashboard can tell which build each instance
// runs.
func buildInfo() prometheus.Collector {
	revision, goVersion := "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "popdns", Name: "build_info",
		Help:        "Always 1, labelled with the version, VCS revision and Go version of the running binary.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion}})
	g.Set(1)
	return g
}
