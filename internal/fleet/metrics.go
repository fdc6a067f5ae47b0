package fleet

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reconnects prometheus.Counter
	connected  prometheus.GaugeFunc
	lag        prometheus.Gauge
}

func newMetrics(f *Fleet) metrics {
	return metrics{
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "popdns", Subsystem: "fleet", Name: "reconnects_total",
			Help: "Reconnections to NATS after the connection was lost.",
		}),
		connected: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "popdns", Subsystem: "fleet", Name: "connected",
			Help: "1 while connected to NATS, 0 while not (serving the last known state).",
		}, func() float64 {
			if f.nc != nil && f.nc.IsConnected() {
				return 1
			}
			return 0
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "popdns", Subsystem: "fleet", Name: "kv_lag_seconds",
			Help: "From a bucket write (the NATS server's clock) to its arrival at this instance's watcher, for the last change seen.",
		}),
	}
}

func (m metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.reconnects, m.connected, m.lag}
}

func (m metrics) register(reg prometheus.Registerer) error {
	var done []prometheus.Collector
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return err
		}
		done = append(done, c)
	}
	return nil
}

// unregister lets a later Open register afresh (a reload).
func (m metrics) unregister(reg prometheus.Registerer) {
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}
