package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/latency/learn"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
)

// synthLocator places the synthetic world's networks, pool subnets and
// resolver sites as GeoLite2 would: the longest known prefix, with its
// accuracy radius (pool points and sites are city-level, 20 km).
type synthLocator map[netip.Prefix]geo.Location

func newSynthLocator(smp *sampleResult) synthLocator {
	l := synthLocator{}
	put := func(p netip.Prefix, pt geo.Point, km float64, country string) {
		l[p.Masked()] = geo.Location{Point: pt, HasPoint: true, AccuracyKm: uint16(km), Country: country, Continent: "EU", Prefix: p.Masked(), Found: true}
	}
	for country, pool := range smp.Pools {
		for _, pp := range pool {
			put(pp.Subnet, pp.Point, 20, country)
		}
	}
	for _, s := range smp.Sites {
		put(s.Subnet, s.Point, 20, s.Name)
	}
	for _, c := range smp.Clients {
		put(c.Network, c.Point, c.AccuracyKm, c.Country)
	}
	return l
}

func (l synthLocator) Locate(addr netip.Addr) geo.Location {
	for bits := 32; bits >= 8; bits-- {
		p, _ := addr.Prefix(bits)
		if loc, ok := l[p]; ok {
			return loc
		}
	}
	p, _ := addr.Prefix(8)
	return geo.Location{Prefix: p}
}

// testSnapshot is example.test over the current PoPs, without a latency
// table.
func testSnapshot(t testing.TB) *zones.Snapshot {
	t.Helper()
	inv, err := newPoPs()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := loadZones(inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// testAdapter is the learned mode's adapter over the synthetic world smp.
func testAdapter(t testing.TB, smp *sampleResult, cs []client, tl Timeline) *learnAdapter {
	t.Helper()
	a, err := newLearnAdapter(cs, tl.Learn, learn.Margin{MS: tl.MarginMS, Percent: tl.MarginPct * 100}, newSynthLocator(smp), testSnapshot(t))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestLearnAdapterDecides: the adapter's keys carry the database's accuracy
// radius and AS, its choice is steer.Rank's over the published snapshot
// (the nearest PoP with no data; the measured better one, beyond the
// margin, once the key's cell has data), and it names the exploration
// target the selector names.
func TestLearnAdapterDecides(t *testing.T) {
	smp := synthWorld(10)
	m := HardModel(2)
	cs := smp.remodel(&m)
	tl := DefaultTimeline()
	a := testAdapter(t, smp, cs, tl)
	// A country-level record (i%10 == 0) of DE, deciding with ECS.
	var c *client
	for i := range cs {
		if cs[i].Country == "DE" && cs[i].AccuracyKm == 1000 && cs[i].Via == viaECS {
			c = &cs[i]
			break
		}
	}
	if c == nil {
		t.Fatal("no country-level ECS client in the synthetic world")
	}
	k := a.info(c)
	if k.Loc.AccuracyKm != 1000 || k.Loc.ASN != asNumber(c.AS) || k.Loc.Prefix != c.Network.Masked() {
		t.Fatalf("key %s located %+v, want accuracy 1000 km, AS %d, network %s", k.Key, k.Loc, asNumber(c.AS), c.Network)
	}
	now := time.Unix(1_000_000, 0)
	a.Publish(now)
	nearest := measuredPoPs(c.Point, 1)[0]
	if got, x := a.Choose(&k); got != nearest || x < 0 {
		t.Errorf("no data: chose %s exploring %d, want the nearest, %s, and some exploration", thePoPs[got].Name, x, thePoPs[nearest].Name)
	}
	// The key's /24 measures its PoP and another, 30 ms faster: it moves.
	other := (nearest + 1) % len(thePoPs)
	for i := range 5 {
		at := now.Add(time.Duration(i) * time.Second)
		a.Observe(k.Key, thePoPs[nearest].Name, 60, at)
		a.Observe(k.Key, thePoPs[nearest].Name, 60, at)
		a.Observe(k.Key, thePoPs[other].Name, 30, at)
	}
	a.Publish(now.Add(time.Minute))
	if a.errs != 0 {
		t.Fatalf("%d ingest errors", a.errs)
	}
	got, _ := a.Choose(&k)
	if got != other {
		t.Errorf("after the beacons: chose %s, want %s", thePoPs[got].Name, thePoPs[other].Name)
	}
	if kd := a.last[k.Key]; kd.Level != learn.CellPrefix || kd.Source != steer.Learned || kd.Held {
		t.Errorf("decision %+v, want in the /24, learned, not held", kd)
	}
	if est, ok := a.Estimate(k.Key, thePoPs[other].Name, now); !ok || !near(est, 30, 1e-9) {
		t.Errorf("Estimate = %v, %v, want 30", est, ok)
	}
}
