package crosscheck

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/geo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// widenings reads popdns_geo_ecs_widen_total{result="done"}.
func widenings(t *testing.T, g prometheus.Gatherer) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "popdns_geo_ecs_widen_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "done" {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

// TestUnboundECSWidened puts Unbound with its subnetcache in front of
// popdns with ECS scope widening on (the real Locator, which widening
// needs): once popdns has widened a London /24's scope from its database
// network (/19) to 198.18.0.0/16, the next client in that /16 that
// reaches popdns is answered for the whole /16, and Unbound then answers
// every other client of it, Nairobi's 198.18.42.0/24 included, from its
// cache, with the answer popdns gives that client itself.
func TestUnboundECSWidened(t *testing.T) {
	unbound := findUnbound(t)
	db, err := geo.Open("../testdata/geo/city.mmdb", "../testdata/geo/asn.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	loc := geo.NewLocator(db, zerolog.Nop())
	t.Cleanup(func() { _ = loc.Close() })
	reg := prometheus.NewRegistry()
	pop := startPopdns(t, loadGeoZone(t), loc, reg)
	ub := startUnbound(t, unbound, pop)

	ask := func(t *testing.T, server, subnet string, rd bool) ([]string, int) {
		t.Helper()
		req := ecsQuery(geoName, dns.TypeA, netip.MustParsePrefix(subnet))
		req.RecursionDesired = rd
		r, err := exchange(server, false, req, queryTimeout)
		if err != nil {
			t.Fatalf("%s, A from %s: %v", server, subnet, err)
		}
		scope := -1
		if e := ecsOf(r.msg); e != nil {
			scope = int(e.SourceScope)
		}
		return answerPoPs(r.msg), scope
	}
	step := func(t *testing.T, subnet, want string, scope int, reaches bool) {
		t.Helper()
		n := requestsTotal(t, reg)
		pops, got := ask(t, ub, subnet, true)
		if !slices.Equal(pops, []string{want}) || got != scope {
			t.Errorf("via unbound from %s: %v scope /%d, want [%s] scope /%d", subnet, pops, got, want, scope)
		}
		wantN := n
		if reaches {
			wantN++
		}
		if n2 := waitRequests(t, reg, wantN); n2 != wantN {
			t.Errorf("from %s: popdns counted %d queries, want %d", subnet, n2-n, wantN-n)
		}
		t.Logf("%-16s → %v scope /%d, popdns queries +%d", subnet, pops, got, requestsTotal(t, reg)-n)
	}

	// Rank's scope first: the database network around 198.18.1.0.
	step(t, "198.18.1.0/24", "fra", 19, true)
	deadline := time.After(waitFor)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for widenings(t, reg) < 1 {
		select {
		case <-deadline:
			t.Fatalf("popdns widened nothing within %v", waitFor)
		case <-tick.C:
		}
	}
	// Outside the /19 Unbound holds: popdns answers from the widened
	// prefix, for all of 198.18.0.0/16.
	step(t, "198.18.100.0/24", "fra", 16, true)
	// Inside the /16: Unbound's cache answers.
	step(t, "198.18.200.0/24", "fra", 16, false)
	step(t, "198.18.42.0/24", "fra", 16, false)
	if pops, _ := ask(t, pop, "198.18.42.0/24", false); !slices.Equal(pops, []string{"fra"}) {
		t.Errorf("popdns itself answers 198.18.42.0/24 (Nairobi) with %v, Unbound's cache with [fra]: widened too far", pops)
	}
	// Outside the /16: popdns again, with the other answer.
	step(t, "198.19.5.0/24", "sin", 17, true)
}
