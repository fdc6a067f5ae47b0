package dnsserver

import (
	"bytes"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
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
		s, err := New(Config{Listen: []string{"127.0.0.1:0"}, QueryLog: on}, Deps{Log: zerolog.New(&buf), Metrics: prometheus.NewRegistry()})
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
	for pop, want := range map[string]float64{"fra": 1, "iad": 1, "nrt": 2, "sin": 0} {
		if got := testutilCounter(t, s.metrics.answers.WithLabelValues(pop)); got != want {
			t.Errorf("geo answers_total{pop=%s} = %v, want %v", pop, got, want)
		}
	}
	for use, want := range map[string]float64{"used": 3, "ignored": 1} {
		if got := testutilCounter(t, s.metrics.ecs.WithLabelValues(use)); got != want {
			t.Errorf("ecs_requests_total{ecs=%s} = %v, want %v", use, got, want)
		}
	}
	var m dto.Metric
	if err := s.metrics.scope.Write(&m); err != nil {
		t.Fatal(err)
	}
	h := m.GetHistogram()
	// Scopes 24, 16, 24 (the private subnet's own length) and 0.
	if h.GetSampleCount() != 4 || h.GetSampleSum() != 64 {
		t.Errorf("scope histogram: %d samples summing to %v, want 4 summing to 64", h.GetSampleCount(), h.GetSampleSum())
	}
}
