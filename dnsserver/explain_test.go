package dnsserver

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
)

func TestExplainMatchesServeDNS(t *testing.T) {
	s := newGeoServer(t)
	for _, tc := range []struct {
		name     string
		req      ExplainRequest
		wantPoP  string
		wantRule string
		scope    int
	}{
		{"ECS from Berlin", ExplainRequest{Name: "www.geo.test", ECS: netip.MustParsePrefix("81.2.69.0/24")}, "fra", "", 24},
		{"source address in Tokyo", ExplainRequest{Name: "www.geo.test", Source: netip.MustParseAddr("126.1.2.3")}, "nrt", "", -1},
		{"a rule applies", ExplainRequest{Name: "ruled.geo.test", Type: dns.TypeA, ECS: netip.MustParsePrefix("1.2.3.0/24")}, "sin", "country CN", 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex, err := s.Explain(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if len(ex.Decisions) != 1 {
				t.Fatalf("%d decisions, want 1", len(ex.Decisions))
			}
			d := ex.Decisions[0]
			var chosen []string
			for _, c := range d.Candidates {
				if c.Chosen {
					chosen = append(chosen, c.PoP)
				}
				if c.Rank == 1 && !c.Chosen {
					t.Errorf("rank 1 (%s) not chosen", c.PoP)
				}
			}
			if !slices.Equal(chosen, []string{tc.wantPoP}) || !strings.HasPrefix(d.Rule, tc.wantRule) {
				t.Errorf("chosen %v rule %q, want %s and %q", chosen, d.Rule, tc.wantPoP, tc.wantRule)
			}
			if tc.scope < 0 && ex.ECSScope != nil || tc.scope >= 0 && (ex.ECSScope == nil || *ex.ECSScope != tc.scope) {
				t.Errorf("ECS scope %v, want %d", ex.ECSScope, tc.scope)
			}
			// The explanation's answer is what ServeDNS sends the same client.
			m := query(dns.Fqdn(tc.req.Name), dns.TypeA)
			src := "127.0.0.1"
			if tc.req.ECS.IsValid() {
				withECS(tc.req.ECS.Addr().String(), uint8(tc.req.ECS.Bits()))(m)
			}
			if tc.req.Source.IsValid() {
				src = tc.req.Source.String()
			}
			w := dnstest.NewUDP(src)
			s.ServeDNS(w, m)
			var served []string
			for _, rr := range w.Msg.Answer {
				served = append(served, strings.ReplaceAll(rr.String(), "\t", " "))
			}
			if !slices.Equal(served, ex.Answer) {
				t.Errorf("explained answer %v, served %v", ex.Answer, served)
			}
		})
	}
	if _, err := s.Explain(ExplainRequest{Name: "bad name with spaces"}); err == nil {
		t.Error("Explain accepted a bad name")
	}
}

func TestExplainCandidates(t *testing.T) {
	s := newGeoServer(t)
	ex, err := s.Explain(ExplainRequest{Name: "states.geo.test", ECS: netip.MustParsePrefix("81.2.69.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	byPoP := map[string]ExplainedCandidate{}
	for _, c := range ex.Decisions[0].Candidates {
		byPoP[c.PoP] = c
	}
	fra, iad, sin := byPoP["fra"], byPoP["iad"], byPoP["sin"]
	if fra.State != "drain" || fra.Eligible || iad.State != "down" || iad.Eligible || !sin.Chosen {
		t.Errorf("candidates %+v", ex.Decisions[0].Candidates)
	}
	if fra.DistanceKm == nil || *fra.DistanceKm < 400 || *fra.DistanceKm > 500 || fra.Source != "distance" {
		t.Errorf("fra distance %v source %s, want Berlin–Frankfurt ≈ 420 km from distance", fra.DistanceKm, fra.Source)
	}
	if loc := ex.Decisions[0].Location; loc.Network != "81.2.69.0/24" || loc.Country != "DE" || !loc.HasPoint {
		t.Errorf("location %+v", loc)
	}
}
