package sample

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/popdns/popdns/bench/internal/workload"
)

func description(t *testing.T, perContinent int) *workload.Description {
	t.Helper()
	d, err := workload.Load("../../workload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d.Clients.PerContinent = perContinent
	return d
}

// check verifies what every sample must satisfy, against db itself.
func check(t *testing.T, db *maxminddb.Reader, d *workload.Description, res *Result) {
	t.Helper()
	seen := map[netip.Prefix]bool{}
	for _, c := range res.Clients {
		if seen[c.Subnet] {
			t.Errorf("%s twice", c.Subnet)
		}
		seen[c.Subnet] = true
		if c.Subnet.Bits() != 24 || !c.Subnet.Addr().Is4() || c.Subnet.Masked() != c.Subnet {
			t.Errorf("subnet %s is not a /24", c.Subnet)
		}
		if !c.Network.Overlaps(c.Subnet) {
			t.Errorf("%s is outside its network %s", c.Subnet, c.Network)
		}
		loc, _, err := Lookup(db, c.Subnet.Addr())
		if err != nil || !loc.HasPoint || loc.Continent != c.Continent || loc.Lat != c.Lat || loc.Lon != c.Lon {
			t.Errorf("%s: sampled %s %.2f,%.2f; database says %+v %v", c.Subnet, c.Continent, c.Lat, c.Lon, loc, err)
		}
		i, margin := workload.Nearest(d.PoPs, c.Lat, c.Lon)
		if d.PoPs[i].Name != c.PoP || margin != c.Margin {
			t.Errorf("%s: PoP %s margin %v, want %s %v", c.Subnet, c.PoP, c.Margin, d.PoPs[i].Name, margin)
		}
		if !slices.Contains(d.Clients.Continents, c.Continent) {
			t.Errorf("%s: continent %s not asked for", c.Subnet, c.Continent)
		}
	}
	for _, cont := range d.Clients.Continents {
		if n := len(ByContinent(res.Clients)[cont]); n == 0 || n > d.Clients.PerContinent {
			t.Errorf("%s: %d clients, want 1..%d", cont, n, d.Clients.PerContinent)
		}
	}
	if len(res.Located) != len(d.PoPs) {
		t.Fatalf("%d located PoPs", len(res.Located))
	}
	for i, l := range res.Located {
		loc, _, err := Lookup(db, l.Addr)
		if err != nil || !loc.HasPoint || loc.Lat != l.Lat || loc.Lon != l.Lon || l.PoP != d.PoPs[i].Name {
			t.Errorf("located %+v: database says %+v %v", l, loc, err)
		}
	}
}

// TestSampleSynthetic samples the repository's tiny synthetic City
// database, whose networks sit at the demo PoPs' airports.
func TestSampleSynthetic(t *testing.T) {
	db, err := maxminddb.Open("../../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := description(t, 3)
	// Its only South American networks are /26s whose /24 starts in
	// another continent's network.
	d.Clients.Continents = []string{"AF", "AS", "EU", "NA", "OC"}
	res, err := Sample(db, d)
	if err != nil {
		t.Fatal(err)
	}
	check(t, db, d, res)
	// Every PoP has a network at its own coordinates.
	for _, l := range res.Located {
		if l.Km > 1 {
			t.Errorf("PoP %s located %.0f km away, at %s", l.PoP, l.Km, l.Addr)
		}
	}
	// Deterministic for a seed.
	again, err := Sample(db, d)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Clients, again.Clients) {
		t.Error("two samples with one seed differ")
	}
	// The tables read back as written.
	var buf bytes.Buffer
	if err := WriteClients(&buf, res.Clients); err != nil {
		t.Fatal(err)
	}
	back, err := ReadClients(&buf)
	if err != nil || len(back) != len(res.Clients) {
		t.Fatalf("read back %d clients: %v", len(back), err)
	}
	for i := range back {
		if back[i].Subnet != res.Clients[i].Subnet || back[i].PoP != res.Clients[i].PoP || back[i].Country != res.Clients[i].Country {
			t.Errorf("read back %+v, wrote %+v", back[i], res.Clients[i])
		}
	}
	buf.Reset()
	if err := WriteLocated(&buf, res.Located); err != nil {
		t.Fatal(err)
	}
	if l, err := ReadLocated(&buf); err != nil || len(l) != len(res.Located) || l[0].Addr != res.Located[0].Addr {
		t.Errorf("located read back %+v %v", l, err)
	}
}

func TestSubnet24(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, c := range []struct{ network, within string }{
		{"203.0.113.64/26", "203.0.113.0/24"},
		{"203.0.113.0/24", "203.0.113.0/24"},
		{"198.18.0.0/15", "198.18.0.0/15"},
		{"10.0.0.0/8", "10.0.0.0/8"},
	} {
		for range 50 {
			p := Subnet24(netip.MustParsePrefix(c.network), rng)
			if p.Bits() != 24 || !netip.MustParsePrefix(c.within).Contains(p.Addr()) || p.Masked() != p {
				t.Fatalf("Subnet24(%s) = %s", c.network, p)
			}
		}
	}
}

func TestRoutable(t *testing.T) {
	for a, want := range map[string]bool{
		"8.8.8.0": true, "10.1.2.3": false, "192.168.1.0": false, "100.64.1.0": false, "100.128.0.0": true,
		"127.0.0.1": false, "169.254.1.1": false, "224.0.0.1": false, "0.1.2.3": false, "240.0.0.1": false,
	} {
		if got := Routable(netip.MustParseAddr(a)); got != want {
			t.Errorf("Routable(%s) = %v", a, got)
		}
	}
}

// TestSampleGeoLite samples the real GeoLite2 City database, when it is
// there (README.md, "Running the tests", says how to fetch it) and asked for
// with POPDNS_BENCH_GEOLITE=1: walking its 3 million IPv4 networks takes
// seconds, and half a minute under the race detector.
func TestSampleGeoLite(t *testing.T) {
	if os.Getenv("POPDNS_BENCH_GEOLITE") != "1" {
		t.Skip("set POPDNS_BENCH_GEOLITE=1 to sample the real GeoLite2 City database")
	}
	dir := os.Getenv("POPDNS_GEOLITE_DIR")
	if dir == "" {
		dir = "../../../testdata/geo/real"
	}
	path := filepath.Join(dir, "GeoLite2-City.mmdb")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no GeoLite2 City database at %s (README.md, \"Running the tests\", says how to fetch it into "+
			"testdata/geo/real; or set POPDNS_GEOLITE_DIR to a directory that has it)", path)
	}
	db, err := maxminddb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := description(t, 40)
	res, err := Sample(db, d)
	if err != nil {
		t.Fatal(err)
	}
	check(t, db, d, res)
	for _, cont := range d.Clients.Continents {
		if n := len(ByContinent(res.Clients)[cont]); n != 40 {
			t.Errorf("%s: %d clients, want 40", cont, n)
		}
	}
	for _, l := range res.Located {
		if l.Km > 50 {
			t.Errorf("PoP %s located %.0f km away", l.PoP, l.Km)
		}
	}
}
