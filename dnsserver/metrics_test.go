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
	for _, tc := range []struct{ proto, qtype, rcode string }{{"udp", "A", "NOERROR"}, {"tcp", "A", "NXDOMAIN"}} {
		if got := testutilCounter(t, s.metrics.requests.WithLabelValues(tc.proto, tc.qtype, tc.rcode)); got != 1 {
			t.Errorf("requests_total%v = %v, want 1", tc, got)
		}
	}
}
