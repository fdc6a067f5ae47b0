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
	src := netip.MustParseAddrPort("81.2.69.53:5300")
	ecs := query("www.geo.test.", dns.TypeA, withECS("81.2.69.53", 32))
	plain := query("www.geo.test.", dns.TypeA, withEDNS(1232, false))
	type ask struct {
		name string
		m    *dns.Msg
		want string
	}
	for _, order := range [][2]ask{
		{{"ECS", ecs, fra}, {"no ECS", plain, iad}},
		{{"no ECS", plain, iad}, {"ECS", ecs, fra}},
	} {
		t.Run(order[0].name+" first", func(t *testing.T) {
			s, _ := newExploringServer(t, 0, learned)
			f := newFastPath(s)
			for round := range 3 { // the first learns the reply, the others are the fast path's
				for _, a := range order {
					p, err := a.m.Pack()
					if err != nil {
						t.Fatal(err)
					}
					for _, path := range []struct {
						name  string
						reply []byte
					}{
						{"general", generalUDP(s, p, src)},
						{"fast", func() []byte { b, _, _ := fastUDP(t, f, p, src); return b }()},
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
