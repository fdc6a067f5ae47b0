package geo

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DBInfo describes one open database from its metadata.
type DBInfo struct {
	// Type is the database type its metadata names, such as
	// GeoLite2-City or GeoLite2-ASN: the same across file names and
	// versions, so it is what the metric is labelled with.
	Type string
	// Built is when the database was built (its BuildEpoch).
	Built time.Time
}

// Info describes db's databases: the City one, then the ASN one when
// there is one.
func (db *DB) Info() []DBInfo {
	infos := []DBInfo{infoOf(db.city.Metadata.DatabaseType, db.city.Metadata.BuildEpoch)}
	if db.asn != nil {
		infos = append(infos, infoOf(db.asn.Metadata.DatabaseType, db.asn.Metadata.BuildEpoch))
	}
	return infos
}

func infoOf(typ string, epoch uint) DBInfo {
	return DBInfo{Type: typ, Built: time.Unix(int64(epoch), 0).UTC()}
}

// Databases describes the databases every Locate uses now; none without
// a database.
func (l *Locator) Databases() []DBInfo {
	r := l.acquire()
	if r == nil {
		return nil
	}
	defer l.release(r)
	return r.db.Info()
}

// Collector returns the Prometheus collector of
// popdns_geoip_build_timestamp_seconds{database}: each database's build
// time, database being its type. It reads the databases at each scrape,
// so a swapped database shows at once and a removed one goes away.
func (l *Locator) Collector() prometheus.Collector { return locatorCollector{l} }

var buildDesc = prometheus.NewDesc("popdns_geoip_build_timestamp_seconds",
	"When each GeoIP database serving was built (its metadata's build epoch), by database type.", []string{"database"}, nil)

type locatorCollector struct{ l *Locator }

func (c locatorCollector) Describe(ch chan<- *prometheus.Desc) { ch <- buildDesc }

func (c locatorCollector) Collect(ch chan<- prometheus.Metric) {
	infos := c.l.Databases()
	for i, d := range infos {
		if i > 0 && d.Type == infos[0].Type {
			continue // one series per type: a scrape must not fail on a duplicate
		}
		ch <- prometheus.MustNewConstMetric(buildDesc, prometheus.GaugeValue, float64(d.Built.Unix()), d.Type)
	}
}
