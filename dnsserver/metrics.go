package dnsserver

import (
	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/rrl"
	"github.com/popdns/popdns/internal/traffic"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus collectors, registered on the
// registry the caller gives New, never on a global one.
type metrics struct {
	requests *prometheus.CounterVec
	panics   prometheus.Counter
	duration *batchHistogram
	// durationUDP and durationTCP are duration's two series.
	durationUDP, durationTCP *histSeries
	allDown                  *prometheus.CounterVec
	geo                      trafficCollector
	ecs                      *prometheus.CounterVec
	scope                    *batchHistogram
	scopeAll                 *histSeries // scope's one series
	cookies                  *prometheus.CounterVec
	// rrl counts replies over their rate limit by what was done (every
	// action but rrl.Pass) and class; rrlN holds its series.
	rrl  *prometheus.CounterVec
	rrlN [rrl.NumActions][rrl.NumClasses]prometheus.Counter
	// decisions counts geo decision lookups by what answered them: the
	// shared cache (hit), a ranking (miss), a UDP reader's memo (memo);
	// its three series are resolved once so that counting hashes no
	// label.
	decisions                               *prometheus.CounterVec
	decisionHit, decisionMiss, decisionMemo prometheus.Counter
	// explored counts exploring answers by the PoP they put first
	// (Config.ExplorePct): bounded by the inventory's PoP names.
	explored *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, tr *traffic.Counters) (*metrics, error) {
	m := &metrics{
		geo: trafficCollector{tr, traffic.MaxRecordSeries},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "popdns", Subsystem: "dns", Name: "requests_total",
			Help: "DNS queries answered, by transport, zone (none: not ours), query type and response code.",
		}, []string{"proto", "zone", "qtype", "rcode"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "popdns", Subsystem: "dns", Name: "panics_total",
			Help: "Queries whose handling panicked and were answered SERVFAIL.",
		}),
		allDown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "popdns", Subsystem: "geo", Name: "all_down_total",
			Help: "Geo answers for which no target was eligible, by the when_all_down policy that decided.",
		}, []string{"policy"}),
		ecs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "popdns", Subsystem: "dns", Name: "ecs_requests_total",
			Help: "Queries with an EDNS Client Subnet option, by whether it placed the client (used) or not (ignored: SOURCE 0 or an unroutable network).",
		}, []string{"ecs"}),
		cookies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "popdns", Subsystem: "dns", Name: "cookies_total",
			Help: "Queries by what their DNS COOKIE option was: none, client_only, valid (a server cookie of ours), invalid (a server cookie that is not: answered with a new one), malformed (FORMERR). Not counted when cookies are off.",
		}, []string{"outcome"}),
	}
	m.rrl = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "popdns", Subsystem: "rrl", Name: "responses_total",
		Help: "UDP replies over their response rate limit, by what was done (slipped: sent truncated, dropped, logged: sent, log_only) and class (answer, nxdomain, nodata, referral, error).",
	}, []string{"action", "class"})
	for a := rrl.Slip; a < rrl.NumActions; a++ {
		for c := range rrl.NumClasses {
			m.rrlN[a][c] = m.rrl.WithLabelValues(a.String(), c.String())
		}
	}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "popdns", Subsystem: "geo", Name: "decision_cache_requests_total",
		Help: "Geo decision lookups, by result: hit (found in the shared decision cache), miss (ranked afresh) or memo (found in a UDP reader's memo, without asking the shared cache).",
	}, []string{"result"})
	m.decisionHit, m.decisionMiss = m.decisions.WithLabelValues("hit"), m.decisions.WithLabelValues("miss")
	m.decisionMemo = m.decisions.WithLabelValues("memo")
	m.explored = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "popdns", Subsystem: "learned", Name: "explored_total",
		Help: "Geo answers that explored: put first the PoP, the label, whose RTT the client's learned-latency cell had not measured lately, instead of the best ranked (learned_latency.explore_share).",
	}, []string{"pop"})
	// At zero from the start, so that a rate or an alert over them has a
	// series before the first event.
	for _, p := range []zones.AllDownPolicy{zones.AllDownNearest, zones.AllDownAll, zones.AllDownFallback, zones.AllDownServfail} {
		m.allDown.WithLabelValues(p.String())
	}
	m.ecs.WithLabelValues("used")
	m.ecs.WithLabelValues("ignored")
	var series []*histSeries
	m.duration, series = newBatchHistogram("popdns_dns_request_duration_seconds",
		"Time from a decoded query to its reply being written.",
		[]float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2}, "proto", "udp", "tcp")
	m.durationUDP, m.durationTCP = series[0], series[1]
	m.scope, series = newBatchHistogram("popdns_dns_ecs_scope_prefix_length",
		"SCOPE PREFIX-LENGTH of replies carrying ECS: how wide a network each answer holds for.",
		[]float64{0, 8, 12, 16, 20, 24, 32, 40, 48, 56, 64, 128}, "")
	m.scopeAll = series[0]
	for _, c := range []prometheus.Collector{m.requests, m.panics, m.duration, m.allDown, m.geo, m.ecs, m.scope, m.rrl, m.cookies, m.decisions, m.explored} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observeGeo counts what a query did with ECS and geo records.
func (m *metrics) observeGeo(q *outcome, rcode int) {
	switch q.ecs {
	case ecsUsed:
		m.ecs.WithLabelValues("used").Inc()
	case ecsIgnored:
		m.ecs.WithLabelValues("ignored").Inc()
	}
	if q.ecs != ecsAbsent && rcode != dns.RcodeFormatError {
		m.scopeAll.observe(float64(q.replyScope))
	}
}

// trafficCollector exports the traffic counters (package traffic) that
// both paths count geo answers in, read at scrape time: a series for each
// geo record target and PoP of the snapshot served, from 0, gone when a
// reload removes it. Past traffic.MaxRecordSeries targets (whole records,
// in zone order, as popdns_target_* are capped), the rest are summed per
// PoP into zone="_other", record="_other", with the answers from records
// a reload had just replaced, so that sum by (pop) stays exact. Clients'
// countries are not a label (too many series): /status shows them.
// The counts are copied out under traffic's lock and sent after it, so
// that a slow scrape never holds a reload up.
type trafficCollector struct {
	c   *traffic.Counters
	max int // the series of records: traffic.MaxRecordSeries, less in tests
}

// otherLabel is the zone and record of the geo answers without a series
// of their own.
const otherLabel = "_other"

var (
	geoAnswersDesc = prometheus.NewDesc("popdns_geo_answers_total",
		"Answers from geo records, by zone, record (owner name) and the PoP answered first; zone and record \"_other\": the records past the cap on series.",
		[]string{"zone", "record", "pop"}, nil)
	catchmentDesc = prometheus.NewDesc("popdns_geo_catchment_answers_total",
		"Answers from geo records, by the client's continent (AF AN AS EU NA OC SA, -- unknown) and the PoP answered first.",
		[]string{"continent", "pop"}, nil)
)

func (t trafficCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- geoAnswersDesc
	ch <- catchmentDesc
}

func (t trafficCollector) Collect(ch chan<- prometheus.Metric) {
	records, other := t.c.Records(t.max)
	for _, r := range records {
		ch <- prometheus.MustNewConstMetric(geoAnswersDesc, prometheus.CounterValue, float64(r.N), r.Zone, r.Record, r.PoP)
	}
	for _, o := range other {
		ch <- prometheus.MustNewConstMetric(geoAnswersDesc, prometheus.CounterValue, float64(o.N), otherLabel, otherLabel, o.PoP)
	}
	for _, k := range t.c.Continents() {
		ch <- prometheus.MustNewConstMetric(catchmentDesc, prometheus.CounterValue, float64(k.N), traffic.Continents[k.Continent], k.PoP)
	}
}

// qtypeLabel keeps the qtype label bounded: types outside this list are
// counted as "other", so a scan of random types cannot grow Prometheus.
func qtypeLabel(t uint16) string {
	switch t {
	case dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeMX, dns.TypeNS, dns.TypeSOA,
		dns.TypeTXT, dns.TypeSRV, dns.TypePTR, dns.TypeCAA, dns.TypeDS, dns.TypeDNSKEY,
		dns.TypeHTTPS, dns.TypeSVCB, dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeNAPTR:
		return dns.TypeToString[t]
	}
	return "other"
}

func rcodeLabel(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return "other"
}
