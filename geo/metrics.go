package geo

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns the Prometheus collector of
// popdns_geoip_build_timestamp_seconds{database}: each database's build
// time, database being its type (Info's Type), which stays the same when
// a deploy tool renames the files. It reads the databases at each scrape,
// so a swapped database shows at once and a removed one goes away.
func (l *Locator) Collector() prometheus.Collector { return locatorCollector{l} }

var buildDesc = prometheus.NewDesc("popdns_geoip_build_timestamp_seconds",
	"When each GeoIP database serving was built (its metadata's build epoch), by database type.", []string{"database"}, nil)

type locatorCollector struct{ l *Locator }

func (c locatorCollector) Describe(ch chan<- *prometheus.Desc) { ch <- buildDesc }

func (c locatorCollector) Collect(ch chan<- prometheus.Metric) {
	infos := c.l.Info()
	for i, d := range infos {
		if i > 0 && d.Type == infos[0].Type {
			continue // one series per type: a scrape must not fail on a duplicate
		}
		ch <- prometheus.MustNewConstMetric(buildDesc, prometheus.GaugeValue, float64(d.Built.Unix()), d.Type)
	}
}
