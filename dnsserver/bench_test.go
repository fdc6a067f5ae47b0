package dnsserver

import (
	"testing"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
)

var benchQueries = []struct {
	name string
	req  *dns.Msg
}{
	{"static_A", query("www.example.test.", dns.TypeA)},
	{"static_A_EDNS", query("www.example.test.", dns.TypeA, withEDNS(1232, false))},
	{"NXDOMAIN", query("nope.example.test.", dns.TypeA)},
	{"wildcard", query("x.wild.example.test.", dns.TypeTXT)},
	{"CNAME_chain", query("chain1.example.test.", dns.TypeA)},
	{"referral", query("host.sub.example.test.", dns.TypeA)},
	{"MX_additional", query("example.test.", dns.TypeMX)},
}

// BenchmarkServeDNS measures the answer path from a decoded query to a
// packed reply (the Recorder packs it, as the real writer would).
func BenchmarkServeDNS(b *testing.B) {
	s := newTestServer(b, Config{})
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			w := dnstest.NewUDP("192.0.2.1")
			for b.Loop() {
				s.ServeDNS(w, q.req)
			}
		})
	}
}

// TestAllocBudget holds the allocations of the general answer path (without
// packing) to what they are today, so a change that adds some shows up.
// The UDP fast path of the benchmark issue will have its own budget of zero.
func TestAllocBudget(t *testing.T) {
	s := newTestServer(t, Config{})
	budget := map[string]float64{
		"static_A": 5, "static_A_EDNS": 7, "NXDOMAIN": 5, "wildcard": 7,
		"CNAME_chain": 7, "referral": 6, "MX_additional": 6,
	}
	client := dnstest.NewUDP("192.0.2.1").RemoteAddr()
	for _, q := range benchQueries {
		t.Run(q.name, func(t *testing.T) {
			got := testing.AllocsPerRun(200, func() {
				resp, cut := s.respondTo(q.req, client, nil)
				fit(resp, 512, cut)
			})
			t.Logf("%.0f allocations per query", got)
			if got > budget[q.name] {
				t.Errorf("%.0f allocations per query, budget %.0f", got, budget[q.name])
			}
		})
	}
}
