package dnsserver

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/steer"
)

// TestResolverDecidedApart: a query without ECS is decided for its
// source, a resolver whose users may be anywhere around it, so its
// location counts as uncertain (steer.ForResolver) and distance estimates
// come from 250 km further out. From Berlin, with iad measured between
// fra's distance estimate from Berlin and from 250 km beyond, an ECS
// client network is answered fra and the resolver at the same address
// iad. Each keeps its own decision in the cache, on the general path and
// on the fast path, whichever asks first.
func TestResolverDecidedApart(t *testing.T) {
	berlin := testPlaces.Locate(netip.MustParseAddr("81.2.69.53"))
	km := geo.DistanceKm(berlin.Point, sixPoPs[0].Point) // fra
	estimate := func(loc geo.Location) float64 {
		return float64(geo.FibreRTT(km+float64(loc.AccuracyKm), steer.DefaultPathInflation).Nanoseconds()) / 1e6
	}
	asClient, asResolver := estimate(berlin), estimate(steer.ForResolver(berlin))
	if asResolver <= asClient {
		t.Fatalf("fra's estimate for a resolver (%.2f ms) is not above a client's (%.2f ms)", asResolver, asClient)
	}
	learned := learnedOf(t, rtt{"81.2.69.0/24", "iad", (asClient + asResolver) / 2})
	const fra, iad = "192.0.2.1", "192.0.2.2"
	resolver, other := netip.MustParseAddrPort("81.2.69.53:5300"), netip.MustParseAddrPort("9.9.9.9:5300")
	type ask struct {
		name string
		m    *dns.Msg
		src  netip.AddrPort
		want string
	}
	asks := []ask{
		{"ECS", query("www.geo.test.", dns.TypeA, withECS("81.2.69.53", 32)), resolver, fra},
		{"no ECS", query("www.geo.test.", dns.TypeA, withEDNS(1232, false)), resolver, iad},
		// A private network says nothing of the client: the source
		// decides, in the fast path's entry of usable /32s.
		{"private ECS", query("www.geo.test.", dns.TypeA, withECS("10.1.2.3", 32)), resolver, iad},
		{"ECS from elsewhere", query("www.geo.test.", dns.TypeA, withECS("81.2.69.53", 32)), other, fra},
	}
	for _, order := range [][]ask{asks, {asks[3], asks[2], asks[1], asks[0]}, {asks[2], asks[3], asks[1], asks[0]}} {
		t.Run(order[0].name+" first", func(t *testing.T) {
			s, _ := newExploringServer(t, 0, learned)
			f := newFastPath(s)
			for round := range 3 { // the first learns the replies, the others are the fast path's
				for _, a := range order {
					p, err := a.m.Pack()
					if err != nil {
						t.Fatal(err)
					}
					for _, path := range []struct {
						name  string
						reply []byte
					}{
						{"general", generalUDP(s, p, a.src)},
						{"fast", func() []byte { b, _, _ := fastUDP(t, f, p, a.src); return b }()},
					} {
						var r dns.Msg
						if err := r.Unpack(path.reply); err != nil {
							t.Fatalf("round %d, %s, %s path: %v", round, a.name, path.name, err)
						}
						if got := addrs(r.Answer); len(got) != 1 || got[0] != a.want {
							t.Errorf("round %d, %s, %s path: %v, want %s", round, a.name, path.name, got, a.want)
						}
					}
				}
			}
		})
	}
}

// TestResolverNotWidened: a resolver's decision is never widened, nor
// answered from a prefix widened for ECS clients: its reply has no scope.
func TestResolverNotWidened(t *testing.T) {
	s, _ := newWidenServer(t, WidenConfig{})
	s.widen.running.Store(true) // and not draining: the jobs stay queued
	snap := s.Zones()
	env := s.decisionEnv(snap)
	g := snap.Match("www.geo.test.").Lookup("www.geo.test.", dns.TypeA).Node.Geo()
	client := netip.MustParseAddr("198.18.0.0")
	var cands steer.Candidates
	_, asClient := s.decide(&env, g, dns.TypeA, client, false, s.locate(client), &cands, true)
	_, asResolver := s.decide(&env, g, dns.TypeA, client, true, steer.ForResolver(s.locate(client)), &cands, true)
	if !asClient.Widening {
		t.Fatal("the ECS client's decision is not being widened: nothing to compare with")
	}
	if asResolver.Widening {
		t.Error("the resolver's decision is being widened")
	}
}
