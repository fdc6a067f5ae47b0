package healthprobe

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prober's Prometheus collectors. The target label is a
// configured probe ID, so its cardinality is bounded by configuration, and
// reason is one of the Reason constants.
type metrics struct {
	up       *prometheus.GaugeVec
	rtt      *prometheus.GaugeVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	results  *prometheus.CounterVec
}

// outcomes are the values of popdns_probe_results_total's outcome label:
// ok and every Reason, all created with a target so that a rate over any
// of them exists before the first failure.
var outcomes = []string{"ok", ReasonTimeout, ReasonRefused, ReasonReset, ReasonStatus, ReasonBody, ReasonDNSRcode, ReasonOther}

// durationBuckets span a probe to the same rack (under a millisecond) up
// to one that takes most of a long timeout.
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "popdns", Subsystem: "probe", Name: "up",
			Help: "Whether the probe target is up after rise/fall hysteresis (1) or down (0).",
		}, []string{"target"}),
		rtt: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "popdns", Subsystem: "probe", Name: "rtt_seconds",
			Help: "Smoothed (EWMA) round-trip time of successful probes.",
		}, []string{"target"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "popdns", Subsystem: "probe", Name: "errors_total",
			Help: "Failed probes by target and reason.",
		}, []string{"target", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "popdns", Subsystem: "probe", Name: "duration_seconds",
			Help:    "Round-trip time of each successful probe (a failed one has no RTT: see popdns_probe_results_total).",
			Buckets: durationBuckets,
		}, []string{"target"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "popdns", Subsystem: "probe", Name: "results_total",
			Help: "Probes by target and outcome: ok, or the reason it failed (timeout, refused, reset, status, body, dns_rcode, other).",
		}, []string{"target", "outcome"}),
	}
	reg.MustRegister(m.up, m.rtt, m.errors, m.duration, m.results)
	return m
}

// create makes target id's histogram and outcome counters, at zero, when
// the target is configured: an alert on a rate of timeouts must not wait
// for the first timeout to have a series.
func (m *metrics) create(id string) {
	m.duration.WithLabelValues(id)
	for _, o := range outcomes {
		m.results.WithLabelValues(id, o)
	}
}

// observe exports r for target id, and one probe that took rtt; reason is
// set for a failed probe.
func (m *metrics) observe(id string, r Result, rtt time.Duration, reason string) {
	up := 0.0
	if r.Healthy {
		up = 1
	}
	m.up.WithLabelValues(id).Set(up)
	m.rtt.WithLabelValues(id).Set(r.RTT.Seconds())
	if reason != "" {
		m.errors.WithLabelValues(id, reason).Inc()
		m.results.WithLabelValues(id, reason).Inc()
		return
	}
	m.duration.WithLabelValues(id).Observe(rtt.Seconds())
	m.results.WithLabelValues(id, "ok").Inc()
}

// forget drops every series of target id.
func (m *metrics) forget(id string) {
	m.up.DeleteLabelValues(id)
	m.rtt.DeleteLabelValues(id)
	m.errors.DeletePartialMatch(prometheus.Labels{"target": id})
	m.duration.DeleteLabelValues(id)
	m.results.DeletePartialMatch(prometheus.Labels{"target": id})
}
