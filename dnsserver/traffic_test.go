package dnsserver

import (
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/internal/dnstest"
)

// TestTrafficCountingAllocs holds the general path's geo answers, counted
// in the traffic counters (observe), to the allocations they had before
// traffic was counted: counting adds none. The fast path's budget is 0
// (TestFastPathAllocs).
func TestTrafficCountingAllocs(t *testing.T) {
	s := newGeoServer(t)
	client := dnstest.NewUDP("126.5.5.5").RemoteAddr()
	for _, tc := range []struct {
		name    string
		req     *dns.Msg
		country string
		budget  float64
	}{
		{"ECS", query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)), "DE", 7},
		{"source address", query("www.geo.test.", dns.TypeA), "JP", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.ServeDNS(dnstest.NewUDP("126.5.5.5"), tc.req) // the decision is cached
			const runs = 200
			got := testing.AllocsPerRun(runs, func() {
				resp, out := s.respondTo(tc.req, parseEDNS(tc.req), client, false, udpfast.ExploreDraw, nil)
				s.observe(tc.req, resp, &out, false, time.Now())
			})
			if got > tc.budget {
				t.Errorf("%.0f allocations per query, budget %.0f", got, tc.budget)
			}
			var n uint64
			for _, c := range s.Traffic().Countries {
				if c.Code == tc.country {
					n = c.Total
				}
			}
			if n < runs {
				t.Errorf("%s: %d answers counted, want at least %d", tc.country, n, runs)
			}
		})
	}
}
