package dnsserver

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/zones"
	"github.com/rs/zerolog"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func testutilCounter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestQtypeLabelIsBounded(t *testing.T) {
	seen := map[string]bool{}
	for t16 := range 1 << 16 {
		seen[qtypeLabel(uint16(t16))] = true
	}
	if len(seen) > 20 {
		t.Errorf("qtype label takes %d values, want a small bounded set", len(seen))
	}
	if qtypeLabel(65000) != "other" {
		t.Errorf("unknown type label %q, want other", qtypeLabel(65000))
	}
}

func TestQueryLog(t *testing.T) {
	for _, on := range []bool{false, true} {
		var buf bytes.Buffer
		s, err := New(testConfig(Config{Listen: []string{"127.0.0.1:0"}, QueryLog: on}), Deps{Log: zerolog.New(&buf), Metrics: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		s.SetZones(loadTestZones(t))
		s.ServeDNS(dnstest.NewUDP("192.0.2.1"), query("www.example.test.", dns.TypeA))
		logged := strings.Contains(buf.String(), `"qname":"www.example.test."`)
		if logged != on {
			t.Errorf("query_log %v: logged %v: %s", on, logged, buf.String())
		}
	}
}

func TestRequestsCounted(t *testing.T) {
	s := newTestServer(t, Config{})
	s.ServeDNS(dnstest.NewUDP("192.0.2.1"), query("www.example.test.", dns.TypeA))
	s.ServeDNS(dnstest.NewTCP("192.0.2.1"), query("nope.example.test.", dns.TypeA))
	s.ServeDNS(dnstest.NewUDP("192.0.2.1"), query("elsewhere.invalid.", dns.TypeMX))
	for _, tc := range []struct{ proto, zone, qtype, rcode string }{
		{"udp", "example.test.", "A", "NOERROR"},
		{"tcp", "example.test.", "A", "NXDOMAIN"},
		{"udp", "none", "MX", "REFUSED"},
	} {
		if got := testutilCounter(t, s.metrics.requests.WithLabelValues(tc.proto, tc.zone, tc.qtype, tc.rcode)); got != 1 {
			t.Errorf("requests_total%v = %v, want 1", tc, got)
		}
	}
}

func TestGeoMetrics(t *testing.T) {
	s := newGeoServer(t)
	for _, q := range []*dns.Msg{
		query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)),   // used: fra, scope 24
		query("www.geo.test.", dns.TypeA, withECS("24.48.1.0", 24)),   // used: iad, scope 16
		query("www.geo.test.", dns.TypeA, withECS("10.1.2.0", 24)),    // ignored (private): the source, Tokyo
		query("www.geo.test.", dns.TypeTXT, withECS("81.2.69.0", 24)), // used, static: scope 0, no PoP
		query("www.geo.test.", dns.TypeA),                             // no ECS: Tokyo
	} {
		s.ServeDNS(dnstest.NewUDP("126.5.5.5"), q)
	}
	got := gatherCounters(t, s.metrics.geo)
	for series, want := range map[string]float64{
		`popdns_geo_answers_total{pop="fra",record="www.geo.test.",zone="geo.test."}`: 1,
		`popdns_geo_answers_total{pop="iad",record="www.geo.test.",zone="geo.test."}`: 1,
		`popdns_geo_answers_total{pop="nrt",record="www.geo.test.",zone="geo.test."}`: 2,
		`popdns_geo_answers_total{pop="sin",record="www.geo.test.",zone="geo.test."}`: 0, // there from the start
		`popdns_geo_answers_total{pop="fra",record="_other",zone="_other"}`:           0,
		`popdns_geo_catchment_answers_total{continent="EU",pop="fra"}`:                1,
		`popdns_geo_catchment_answers_total{continent="NA",pop="iad"}`:                1,
		`popdns_geo_catchment_answers_total{continent="AS",pop="nrt"}`:                2,
		`popdns_geo_catchment_answers_total{continent="--",pop="sin"}`:                0,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present: %v), want %v", series, v, ok, want)
		}
	}
	for use, want := range map[string]float64{"used": 3, "ignored": 1} {
		if got := testutilCounter(t, s.metrics.ecs.WithLabelValues(use)); got != want {
			t.Errorf("ecs_requests_total{ecs=%s} = %v, want %v", use, got, want)
		}
	}
	h := gatherHistogram(t, s.metrics.scope, "")
	// Scopes 24, 16, 24 (the private subnet's own length) and 0.
	if h.GetSampleCount() != 4 || h.GetSampleSum() != 64 {
		t.Errorf("scope histogram: %d samples summing to %v, want 4 summing to 64", h.GetSampleCount(), h.GetSampleSum())
	}
}

// TestGeoAnswersCapped: past the cap on series, whole records are summed
// per PoP into zone="_other", and so are the answers from a record a
// reload replaced while the query was on the old snapshot; sum by (pop)
// stays the PoPs' geo answers.
func TestGeoAnswersCapped(t *testing.T) {
	s := newGeoServer(t)
	old := s.Zones()
	for _, q := range []*dns.Msg{
		query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)), // fra
		query("www.geo.test.", dns.TypeA, withECS("24.48.1.0", 24)), // iad
		query("www.geo.test.", dns.TypeA),                           // nrt
	} {
		s.ServeDNS(dnstest.NewUDP("126.5.5.5"), q)
	}
	// A query that found the record before a reload counts after it.
	geos := old.Match("geo.test.").Geos()
	g := geos[slices.IndexFunc(geos, func(g *zones.Geo) bool { return g.Owner == "www.geo.test." })]
	nrt := slices.IndexFunc(g.Targets, func(t zones.GeoTarget) bool { return t.Name() == "nrt" })
	s.SetZones(newGeoServer(t).Zones())
	s.traffic.Target(g, nrt).Count(0)

	s.metrics.geo.max = 0
	got := gatherCounters(t, s.metrics.geo)
	for series, want := range map[string]float64{
		`popdns_geo_answers_total{pop="fra",record="_other",zone="_other"}`: 1,
		`popdns_geo_answers_total{pop="iad",record="_other",zone="_other"}`: 1,
		`popdns_geo_answers_total{pop="nrt",record="_other",zone="_other"}`: 2,
		`popdns_geo_answers_total{pop="sin",record="_other",zone="_other"}`: 0,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present: %v), want %v", series, v, ok, want)
		}
	}
	for series := range got {
		if strings.Contains(series, "www.geo.test.") {
			t.Errorf("%s past the cap", series)
		}
	}
}

// gatherCounters is every counter series c exports, by name and labels.
func gatherCounters(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName() + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += l.GetName() + "=\"" + l.GetValue() + "\""
			}
			out[key+"}"] = m.GetCounter().GetValue()
		}
	}
	return out
}

// gatherHistogram is the series of c with the given label value ("" for
// an unlabelled one), as a registry exports it.
func gatherHistogram(t *testing.T, c prometheus.Collector, value string) *dto.Histogram {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 0 && value == "" || len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == value {
				return m.GetHistogram()
			}
		}
	}
	t.Fatalf("no series %q", value)
	return nil
}

// TestBatchHistogram feeds the same observations to a batchHistogram and
// to the client library's histogram, which must export the same buckets,
// count and sum.
func TestBatchHistogram(t *testing.T) {
	type obs struct {
		v float64
		n uint64
	}
	upper := []float64{0, 1e-3, 8, 16, 24}
	tests := []struct {
		name string
		obs  []obs
	}{
		{"bounds are upper-inclusive", []obs{{0, 1}, {8, 2}, {16, 1}, {24, 3}}},
		{"between bounds, below the first, above the last", []obs{{-1, 1}, {5e-4, 4}, {9, 1}, {17.5, 2}, {25, 5}, {1e9, 1}}},
		{"n at a time", []obs{{2e-4, 64}, {12, 1000}, {30, 7}, {3, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ours, series := newBatchHistogram("h", "help", upper, "proto", "udp", "tcp")
			theirs := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "help", Buckets: upper})
			for _, o := range tc.obs {
				series[0].ObserveN(o.v, o.n)
				for range o.n {
					theirs.Observe(o.v)
				}
			}
			var want dto.Metric
			if err := theirs.Write(&want); err != nil {
				t.Fatal(err)
			}
			got, w := gatherHistogram(t, ours, "udp"), want.GetHistogram()
			if got.GetSampleCount() != w.GetSampleCount() || math.Abs(got.GetSampleSum()-w.GetSampleSum()) > 1e-9*math.Abs(w.GetSampleSum()) {
				t.Errorf("count %d sum %v, want %d and %v", got.GetSampleCount(), got.GetSampleSum(), w.GetSampleCount(), w.GetSampleSum())
			}
			if len(got.GetBucket()) != len(w.GetBucket()) {
				t.Fatalf("%d buckets, want %d", len(got.GetBucket()), len(w.GetBucket()))
			}
			for i, b := range w.GetBucket() {
				if g := got.GetBucket()[i]; g.GetUpperBound() != b.GetUpperBound() || g.GetCumulativeCount() != b.GetCumulativeCount() {
					t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), g.GetCumulativeCount(), b.GetCumulativeCount())
				}
			}
		})
	}
}

// TestBatchHistogramSeries checks which series are exported: a labelled
// one from its first observation, an unlabelled histogram from the start.
func TestBatchHistogramSeries(t *testing.T) {
	labelled, series := newBatchHistogram("labelled", "help", []float64{1}, "proto", "udp", "tcp")
	unlabelled, _ := newBatchHistogram("unlabelled", "help", []float64{1}, "")
	series[1].observe(0.5)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(labelled, unlabelled)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()+labels(m)] = fmt.Sprint(m.GetHistogram().GetSampleCount())
		}
	}
	want := map[string]string{"labelled{proto=tcp,}": "1", "unlabelled{}": "0"}
	if !maps.Equal(got, want) {
		t.Errorf("exported %v, want %v", got, want)
	}
}
