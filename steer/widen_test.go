package steer

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/internal/geodbgen"
	"github.com/popdns/popdns/latency/learn"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
	"github.com/rs/zerolog"
)

// widenBase is where the random databases put their networks; the rest
// of the address space is a gap, which Widen must treat as a network too.
var widenBase = netip.MustParsePrefix("198.18.0.0/20")

var widenPoPs = []pops.PoP{
	{Name: "fra", Point: geo.Point{Lat: 50.11, Lon: 8.68}, Country: "DE", Continent: "EU"},
	{Name: "iad", Point: geo.Point{Lat: 38.95, Lon: -77.45}, Country: "US", Continent: "NA"},
	{Name: "sin", Point: geo.Point{Lat: 1.35, Lon: 103.82}, Country: "SG", Continent: "AS"},
	{Name: "syd", Point: geo.Point{Lat: -33.94, Lon: 151.18}, Country: "AU", Continent: "OC"},
}

var widenPlaces = map[string]geodbgen.Place{
	"ber": {City: "Berlin", Lat: 52.52, Lon: 13.40, Country: "DE", Continent: "EU"},
	"muc": {City: "Munich", Lat: 48.14, Lon: 11.58, Country: "DE", Continent: "EU"},
	"lon": {City: "London", Lat: 51.51, Lon: -0.13, Country: "GB", Continent: "EU"},
	"nyc": {City: "New York", Lat: 40.71, Lon: -74.01, Country: "US", Continent: "NA"},
	"tyo": {City: "Tokyo", Lat: 35.68, Lon: 139.69, Country: "JP", Continent: "AS"},
	"per": {City: "Perth", Lat: -31.95, Lon: 115.86, Country: "AU", Continent: "OC"},
}

// randomNetworks partitions p at random into networks down to /maxBits,
// each given to leaf (which may leave it out: a gap), and nests a few
// more specific networks inside some of them.
func randomNetworks(rng *rand.Rand, p netip.Prefix, maxBits int, leaf func(netip.Prefix)) {
	if p.Bits() < maxBits && rng.IntN(3) > 0 {
		randomNetworks(rng, netip.PrefixFrom(p.Addr(), p.Bits()+1), maxBits, leaf)
		randomNetworks(rng, sibling(netip.PrefixFrom(p.Addr(), p.Bits()+1)), maxBits, leaf)
		return
	}
	leaf(p)
	if p.Bits() < maxBits && rng.IntN(6) == 0 {
		inner := netip.PrefixFrom(randomAddr(rng, p), p.Bits()+1+rng.IntN(maxBits-p.Bits())).Masked()
		leaf(inner)
	}
}

func randomAddr(rng *rand.Rand, p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n |= rng.Uint32() & (1<<(32-p.Bits()) - 1)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// widenWorld is one random database, record and latency table.
type widenWorld struct {
	loc     *geo.Locator
	g       *zones.Geo
	env     Env
	bounds  []netip.Addr // every address where some input changes, sorted
	zone    string
	learned int // learned measurements, 0: learning off
}

func newWidenWorld(t testing.TB, rng *rand.Rand) *widenWorld {
	t.Helper()
	w := &widenWorld{}
	var bounds []netip.Addr
	edge := func(p netip.Prefix) {
		bounds = append(bounds, p.Addr())
		if n := lastOf(p).Next(); n.IsValid() {
			bounds = append(bounds, n)
		}
	}
	edge(widenBase)
	places := []string{"ber", "muc", "lon", "nyc", "tyo", "per"}
	src := &geodbgen.Source{BuildEpoch: 1735689600, Places: widenPlaces}
	seen := map[netip.Prefix]bool{}
	randomNetworks(rng, widenBase, 28, func(p netip.Prefix) {
		if seen[p] || rng.IntN(8) == 0 {
			return // a gap
		}
		seen[p] = true
		edge(p)
		n := geodbgen.CityNetwork{Network: p}
		switch rng.IntN(10) {
		case 0:
			n.Country, n.Continent = "CH", "EU"
		case 1:
			n.RegisteredCountry, n.Continent = "BR", "SA"
		default:
			// Few places, so that neighbours often look alike.
			n.Place = places[rng.IntN(2+rng.IntN(len(places)-1))]
		}
		src.City = append(src.City, n)
	})
	clear(seen)
	randomNetworks(rng, widenBase, 26, func(p netip.Prefix) {
		if seen[p] || rng.IntN(3) == 0 {
			return
		}
		seen[p] = true
		edge(p)
		asn := 64500 + uint32(rng.IntN(3))
		src.ASN = append(src.ASN, geodbgen.ASNNetwork{Network: p, ASN: asn, Org: "AS" + fmt.Sprint(asn)})
	})
	city, err := src.CityDB()
	if err != nil {
		t.Fatal(err)
	}
	asn, err := src.ASNDB()
	if err != nil {
		t.Fatal(err)
	}
	db, err := geo.FromBytes(city, asn)
	if err != nil {
		t.Fatal(err)
	}
	w.loc = geo.NewLocator(db, zerolog.Nop())
	t.Cleanup(func() { _ = w.loc.Close() })

	// The record: every PoP, random answers, random rules.
	var z strings.Builder
	z.WriteString("origin: widen.test.\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 60\n    - ns: ns1\n  ns1:\n    - a: 192.0.2.53\n  www:\n    - geo:\n")
	fmt.Fprintf(&z, "        answers: %d\n", 1+rng.IntN(2))
	if rng.IntN(8) == 0 {
		z.WriteString("        spread_ms: 30\n")
	}
	z.WriteString("        targets:\n")
	for i, p := range widenPoPs {
		fmt.Fprintf(&z, "          %s: { a: 192.0.2.%d }\n", p.Name, i+1)
	}
	var rules []string
	only := func() string { return widenPoPs[rng.IntN(len(widenPoPs))].Name }
	if rng.IntN(2) == 0 {
		rules = append(rules, fmt.Sprintf("{ country: %s, only: [%s] }", []string{"DE", "GB", "CH", "BR"}[rng.IntN(4)], only()))
	}
	if rng.IntN(2) == 0 {
		rules = append(rules, fmt.Sprintf("{ continent: %s, exclude: [%s] }", []string{"EU", "NA", "AS"}[rng.IntN(3)], only()))
	}
	if rng.IntN(2) == 0 {
		rules = append(rules, fmt.Sprintf("{ asn: %d, only: [%s] }", 64500+rng.IntN(3), only()))
	}
	if rng.IntN(2) == 0 {
		var cidrs []string
		for range 1 + rng.IntN(2) {
			p := netip.PrefixFrom(randomAddr(rng, widenBase), 21+rng.IntN(8)).Masked()
			if !slices.Contains(cidrs, p.String()) {
				cidrs = append(cidrs, p.String())
				edge(p)
			}
		}
		rules = append(rules, fmt.Sprintf("{ cidr: [%s], only: [%s] }", strings.Join(cidrs, ", "), only()))
	}
	if len(rules) > 0 {
		z.WriteString("        rules:\n")
		for _, r := range rules {
			z.WriteString("          - " + r + "\n")
		}
	}
	fs := fstest.MapFS{"widen.test.yaml": {Data: []byte(z.String())}}
	if rng.IntN(2) == 0 {
		var cells strings.Builder
		used := map[string]bool{}
		for range 1 + rng.IntN(4) {
			p := netip.PrefixFrom(randomAddr(rng, widenBase), 20+rng.IntN(9)).Masked()
			pop := widenPoPs[rng.IntN(len(widenPoPs))].Name
			if used[p.String()+pop] {
				continue
			}
			used[p.String()+pop] = true
			edge(p)
			fmt.Fprintf(&cells, "%s,%s,%d\n", p, pop, 1+rng.IntN(300))
		}
		fs["cells.csv"] = &fstest.MapFile{Data: []byte(cells.String())}
	}
	w.zone = z.String()
	inv, err := pops.New(widenPoPs...)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(fs, inv, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, z.String())
	}
	w.g = geoOf(t, snap, "www.widen.test.")
	w.env = NewEnv(provisioned(t, Options{}), snap, nil, nil, time.Now)
	if rng.IntN(2) == 0 {
		// Learned RTTs of random /24s, of random ages: their prefix,
		// network and AS cells. A /24 measured less than MinSamples is
		// no cell, while its network, pooling several, may be one.
		agg := learn.NewAggregator(learn.Config{MinSamples: 3, HalfLife: time.Hour, CountHalfLife: time.Hour})
		locate := func(a netip.Addr) (netip.Prefix, uint32) { return learn.Located(w.loc.Locate(a)) }
		var ms []learn.Measurement
		for range 1 + rng.IntN(12) {
			p := netip.PrefixFrom(randomAddr(rng, widenBase), 24).Masked()
			edge(p)
			for _, pop := range widenPoPs {
				if rng.IntN(2) == 0 {
					m := learn.Measurement{Prefix: p, PoP: pop.Name, RTTMS: 5 + rng.Float64()*200, Weight: 1,
						Time: learnNow.Add(-time.Duration(rng.IntN(30)) * time.Minute)}
					for range 1 + rng.IntN(3) {
						ms = append(ms, m)
					}
				}
			}
		}
		if _, err := agg.Ingest(ms, learnNow, locate); err != nil {
			t.Fatal(err)
		}
		w.env = w.env.WithLearned(agg.Snapshot(learnNow))
		w.learned = len(ms)
	}
	slices.SortFunc(bounds, netip.Addr.Compare)
	w.bounds = slices.Compact(bounds)
	return w
}

// sameOver is the brute force: it ranks every piece of p between two
// consecutive bounds, at both ends of the piece (inside a piece no
// database network, rule network or latency prefix begins or ends, so
// nothing Rank reads changes), and reports whether each answers as d.
func (w *widenWorld) sameOver(t *testing.T, p netip.Prefix, d *Decision) bool {
	t.Helper()
	var cands Candidates
	last := lastOf(p)
	check := func(a netip.Addr) bool {
		o := Rank(w.g, dns.TypeA, a, w.loc.Locate(a), &w.env, &cands)
		return sameAnswer(&o, d)
	}
	start := p.Addr()
	i, _ := slices.BinarySearchFunc(w.bounds, start, netip.Addr.Compare)
	for ; ; i++ {
		end := last
		if i < len(w.bounds) && w.bounds[i].Compare(last) <= 0 {
			if w.bounds[i] == start {
				continue
			}
			end = w.bounds[i].Prev()
		}
		if !check(start) || !check(end) {
			return false
		}
		if end == last {
			return true
		}
		start = end.Next()
	}
}

// TestWidenBruteForce checks Widen against the brute force over random
// databases (gaps, nested and alike neighbouring networks, City and ASN),
// random rules of every kind and random latency cells: every address in
// the widened prefix gets the client's answer, and where no CIDR rule or
// latency span limits it, the prefix one bit wider holds another answer
// (it is the widest).
func TestWidenBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 1))
	worlds, clients := 40, 40
	if testing.Short() {
		worlds = 10
	}
	widened, maximal := 0, 0
	for wi := range worlds {
		w := newWidenWorld(t, rng)
		var cands Candidates
		for ci := range clients {
			client := randomAddr(rng, widenBase)
			if ci%10 == 0 {
				client = randomAddr(rng, netip.MustParsePrefix("198.18.0.0/15"))
			}
			l := w.loc.Locate(client)
			d := Rank(w.g, dns.TypeA, client, l, &w.env, &cands)
			s := Widen(w.g, dns.TypeA, client, &d, &w.env, w.loc, 1<<20, &cands)
			where := fmt.Sprintf("world %d client %s (located %v, Rank scope %d, Widen %d, %d learned)\n%s", wi, client, l, d.Scope, s,
				w.learned, w.zone)
			if s > d.Scope {
				t.Fatalf("narrower than Rank: %s", where)
			}
			if w.g.SpreadMS > 0 || d.Untailored {
				if s != d.Scope {
					t.Fatalf("widened a spread or untailored decision: %s", where)
				}
				continue
			}
			p, _ := client.Prefix(s)
			if !w.sameOver(t, p, &d) {
				t.Fatalf("%s holds another answer: %s", p, where)
			}
			if s < d.Scope {
				widened++
			}
			if floor := addrScope(w.g, client, &w.env); s > floor {
				wider, _ := client.Prefix(s - 1)
				if w.sameOver(t, wider, &d) {
					t.Fatalf("not the widest: %s answers alike too: %s", wider, where)
				}
				maximal++
			}
		}
	}
	t.Logf("%d of %d decisions widened; %d stopped by another answer", widened, worlds*clients, maximal)
	if widened == 0 || maximal == 0 {
		t.Errorf("the random worlds never widened (%d) or never hit another answer (%d): the test tests nothing", widened, maximal)
	}
}

// TestWidenBudget checks that a budget too small to reach the widest scope
// still gives a correct one, between Rank's and the widest.
func TestWidenBudget(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 2))
	cut := 0
	for range 20 {
		w := newWidenWorld(t, rng)
		var cands Candidates
		for range 20 {
			client := randomAddr(rng, widenBase)
			d := Rank(w.g, dns.TypeA, client, w.loc.Locate(client), &w.env, &cands)
			full := Widen(w.g, dns.TypeA, client, &d, &w.env, w.loc, 1<<20, &cands)
			s := Widen(w.g, dns.TypeA, client, &d, &w.env, w.loc, 3, &cands)
			if s < full || s > d.Scope {
				t.Fatalf("budget 3 gave /%d, outside [/%d, /%d]", s, full, d.Scope)
			}
			if s != full {
				cut++
			}
		}
	}
	if cut == 0 {
		t.Error("a budget of 3 lookups never stopped the widening: the test tests nothing")
	}
}

func TestWidenAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 3))
	w := newWidenWorld(t, rng)
	client := randomAddr(rng, widenBase)
	var cands Candidates
	d := Rank(w.g, dns.TypeA, client, w.loc.Locate(client), &w.env, &cands)
	if n := testing.AllocsPerRun(100, func() { Widen(w.g, dns.TypeA, client, &d, &w.env, w.loc, 256, &cands) }); n != 0 {
		t.Errorf("Widen allocates %v times per call", n)
	}
}

func TestSibling(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"198.18.0.0/24", "198.18.1.0/24"},
		{"198.18.1.0/24", "198.18.0.0/24"},
		{"128.0.0.0/1", "0.0.0.0/1"},
		{"10.0.0.7/32", "10.0.0.6/32"},
		{"2001:db8::/32", "2001:db9::/32"},
		{"::1/128", "::/128"},
	} {
		if got := sibling(netip.MustParsePrefix(c.in)); got.String() != c.want {
			t.Errorf("sibling(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}

// BenchmarkWiden widens one decision in a random database: the cost of a
// decision cache miss on top of Rank.
func BenchmarkWiden(b *testing.B) {
	rng := rand.New(rand.NewPCG(17, 3))
	w := newWidenWorld(b, rng)
	client := randomAddr(rng, widenBase)
	var cands Candidates
	d := Rank(w.g, dns.TypeA, client, w.loc.Locate(client), &w.env, &cands)
	b.ReportAllocs()
	for b.Loop() {
		Widen(w.g, dns.TypeA, client, &d, &w.env, w.loc, DefaultWidenBudget, &cands)
	}
}

// TestWidenIPv6 widens an IPv6 client over its alike sibling and stops at
// a network that answers otherwise.
func TestWidenIPv6(t *testing.T) {
	src := &geodbgen.Source{BuildEpoch: 1735689600, Places: widenPlaces, City: []geodbgen.CityNetwork{
		{Network: netip.MustParsePrefix("2001:db8::/48"), Place: "ber"},
		{Network: netip.MustParsePrefix("2001:db8:1::/48"), Place: "muc"},
		{Network: netip.MustParsePrefix("2001:db8:2::/47"), Place: "nyc"},
	}}
	city, err := src.CityDB()
	if err != nil {
		t.Fatal(err)
	}
	db, err := geo.FromBytes(city, nil)
	if err != nil {
		t.Fatal(err)
	}
	loc := geo.NewLocator(db, zerolog.Nop())
	defer loc.Close()
	inv, _ := pops.New(widenPoPs...)
	// iad first: an address the database does not place (all but the
	// two networks) is answered iad, so widening stops at the /22.
	zone := "origin: widen.test.\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 60\n    - ns: ns1\n  ns1:\n    - a: 192.0.2.53\n" +
		"  www:\n    - geo:\n        targets:\n          fra: { aaaa: 2001:db8::f }\n          iad: { aaaa: 2001:db8::1 }\n"
	snap, err := zones.Load(fstest.MapFS{"widen.test.yaml": {Data: []byte(zone)}}, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := geoOf(t, snap, "www.widen.test.")
	env := NewEnv(provisioned(t, Options{}), snap, nil, nil, time.Now)
	client := netip.MustParseAddr("2001:db8:1::1")
	var cands Candidates
	d := Rank(g, dns.TypeAAAA, client, loc.Locate(client), &env, &cands)
	if got := Widen(g, dns.TypeAAAA, client, &d, &env, loc, DefaultWidenBudget, &cands); d.Scope != 48 || got != 47 {
		t.Errorf("Rank scope /%d, widened /%d; want /48 widened to /47 (Berlin and Munich, not New York)", d.Scope, got)
	}
}

// TestWidenLearnedNetworkCell: a network whose own learned RTTs (a
// network cell, pooled from /24s too little measured to be cells
// themselves) send its clients elsewhere must stop the widening, though
// its location answers as the client's.
func TestWidenLearnedNetworkCell(t *testing.T) {
	src := &geodbgen.Source{BuildEpoch: 1735689600, Places: widenPlaces, City: []geodbgen.CityNetwork{
		{Network: netip.MustParsePrefix("198.18.0.0/23"), Place: "ber"},
		{Network: netip.MustParsePrefix("198.18.2.0/23"), Place: "muc"}, // one record would merge the two
	}}
	city, err := src.CityDB()
	if err != nil {
		t.Fatal(err)
	}
	db, err := geo.FromBytes(city, nil)
	if err != nil {
		t.Fatal(err)
	}
	loc := geo.NewLocator(db, zerolog.Nop())
	t.Cleanup(func() { _ = loc.Close() })
	inv, err := pops.New(widenPoPs...)
	if err != nil {
		t.Fatal(err)
	}
	// iad first: an address the database does not place (all but the
	// two networks) is answered iad, so widening stops at the /22.
	zone := "origin: widen.test.\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 60\n    - ns: ns1\n" +
		"  ns1:\n    - a: 192.0.2.53\n  www:\n    - geo:\n        targets:\n          iad: { a: 192.0.2.2 }\n          fra: { a: 192.0.2.1 }\n"
	snap, err := zones.Load(fstest.MapFS{"widen.test.yaml": {Data: []byte(zone)}}, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := geoOf(t, snap, "www.widen.test.")
	agg := learn.NewAggregator(learn.Config{MinSamples: 3})
	locate := func(a netip.Addr) (netip.Prefix, uint32) { return loc.Locate(a).Prefix, 0 }
	var ms []learn.Measurement
	for _, p := range []string{"198.18.2.0/24", "198.18.3.0/24"} {
		for range 2 { // two measurements each: a /24 is no cell, the /23 of both is
			ms = append(ms, learn.Measurement{Prefix: netip.MustParsePrefix(p), PoP: "fra", RTTMS: 100, Weight: 1, Time: learnNow},
				learn.Measurement{Prefix: netip.MustParsePrefix(p), PoP: "iad", RTTMS: 5, Weight: 1, Time: learnNow})
		}
	}
	if _, err := agg.Ingest(ms, learnNow, locate); err != nil {
		t.Fatal(err)
	}
	ls := agg.Snapshot(learnNow)
	if !ls.HasNetworkCell(netip.MustParsePrefix("198.18.2.0/23")) {
		t.Fatal("the test needs a network cell")
	}
	if lo, _ := ls.PrefixGap(netip.MustParseAddr("198.18.0.1")); lo.IsValid() {
		t.Fatal("the test needs no prefix cell")
	}
	for _, tt := range []struct {
		name    string
		learned bool
		want    int
	}{
		{"without learned RTTs the networks answer alike", false, 22},
		{"the network cell answers otherwise", true, 23},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := NewEnv(provisioned(t, Options{}), snap, nil, nil, time.Now)
			if tt.learned {
				env = env.WithLearned(ls)
			}
			client := netip.MustParseAddr("198.18.0.10")
			var cands Candidates
			d := Rank(g, dns.TypeA, client, loc.Locate(client), &env, &cands)
			if got := g.Targets[d.Ranked[0]].Name(); got != "fra" {
				t.Fatalf("the client is answered %s, want fra", got)
			}
			if s := Widen(g, dns.TypeA, client, &d, &env, loc, 1<<10, &cands); s != tt.want {
				t.Errorf("widened to /%d, want /%d", s, tt.want)
			}
		})
	}
}
