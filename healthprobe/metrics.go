package healthprobe

import "github.com/prometheus/client_golang/prometheus"

// metrics are the Prober's Prometheus collectors. The target label is a
// configured probe ID, so its cardinality is bounded by configuration, and
// reason is one of the Reason constants.
type metrics struct {
	up     *prometheus.GaugeVec
	rtt    *prometheus.GaugeVec
	errors *prometheus.CounterVec
}

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
	}
	reg.MustRegister(m.up, m.rtt, m.errors)
	return m
}

// observe exports r for target id; reason is set for a failed probe.
func (m *metrics) observe(id string, r Result, reason string) {
	up := 0.0
	if r.Healthy {
		up = 1
	}
	m.up.WithLabelValues(id).Set(up)
	m.rtt.WithLabelValues(id).Set(r.RTT.Seconds())
	if reason != "" {
		m.errors.WithLabelValues(id, reason).Inc()
	}
}

// forget drops every series of target id.
func (m *metrics) forget(id string) {
	m.up.DeleteLabelValues(id)
	m.rtt.DeleteLabelValues(id)
	m.errors.DeletePartialMatch(prometheus.Labels{"target": id})
}
