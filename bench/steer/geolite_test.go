//go:build slow

package main

import (
	"os"
	"strings"
	"testing"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/rs/zerolog"

	"github.com/popdns/popdns/geo"
)

// geoLitePath is where README.md's "Running the tests" puts GeoLite2 City;
// it is not in git, so the test skips without it.
const geoLitePath = "../../testdata/geo/real/GeoLite2-City.mmdb"

// TestGeoLite runs the whole simulation on a small sample of the real
// database. Sampling walks all of GeoLite2 City: 12 s, and over 2 minutes
// under the race detector, hence the slow tag.
func TestGeoLite(t *testing.T) {
	if _, err := os.Stat(geoLitePath); err != nil {
		t.Skipf("no GeoLite2 City database (README.md, \"Running the tests\", says how to fetch it into testdata/geo/real): %v", err)
	}
	o, err := parseFlags([]string{"-db", geoLitePath, "-per-continent", "40", "-rounds", "8", "-sweep", "1", "-worst", "2", "-warm", "10m", "-after", "5m"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	mmdb, err := maxminddb.Open(o.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer mmdb.Close()
	smp, err := sampleClients(mmdb, o.Continents, o.PerContinent, &o.Model)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(smp.Clients), 40*len(o.Continents); got != want {
		t.Fatalf("sampled %d networks, want %d", got, want)
	}
	again, err := sampleClients(mmdb, o.Continents, o.PerContinent, &o.Model)
	if err != nil {
		t.Fatal(err)
	}
	for i := range smp.Clients {
		if smp.Clients[i].Subnet != again.Clients[i].Subnet {
			t.Fatalf("the sample is not reproducible: %s then %s", smp.Clients[i].Subnet, again.Clients[i].Subnet)
		}
	}
	db, err := geo.Open(o.DB, "")
	if err != nil {
		t.Fatal(err)
	}
	locator := geo.NewLocator(db, zerolog.Nop())
	defer locator.Close()
	for _, c := range smp.Clients {
		if loc := locator.Locate(c.Subnet.Addr()); loc.Prefix != c.Network || loc.Continent != c.Continent {
			t.Errorf("popdns places %s in %s (%s), the sample in %s (%s)", c.Subnet, loc.Prefix, loc.Continent, c.Network, c.Continent)
		}
	}
	rep, err := simulate(o, smp, locator)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Full == nil || rep.Full.Out.Within < 0.99 {
		t.Errorf("a table of every network: %+v, want nearly all within 10 %%", rep.Full)
	}
	md := rep.markdown()
	if len(rep.Timelines) != 2 || len(rep.HardStatic) != 2 || rep.HardPoPs != len(densePoPs) || len(thePoPs) != 6 {
		t.Errorf("%d timelines, %d harder static modes, %d harder PoPs, %d PoPs after", len(rep.Timelines), len(rep.HardStatic), rep.HardPoPs, len(thePoPs))
	}
	for _, want := range []string{"| distance only |", "### Slow PoP", "### Dead PoP", "Worst 2 of distance only", "### Over time", "| harder | " + standInName, "| harder | " + learnName + " |"} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
}
