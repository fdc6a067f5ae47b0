package traffic

import (
	"testing"
	"testing/fstest"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
)

const testZone = `
origin: t.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.1 }
          iad: { a: 192.0.2.2 }
`

func load(t *testing.T, zone string, popNames ...string) *zones.Snapshot {
	t.Helper()
	var list []pops.PoP
	for i, n := range popNames {
		list = append(list, pops.PoP{Name: n, Point: geo.Point{Lat: float64(i), Lon: float64(i)}})
	}
	inv, err := pops.New(list...)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(fstest.MapFS{"t.test.yaml": {Data: []byte(zone)}}, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestPlace(t *testing.T) {
	for _, tc := range []struct {
		country, continent string
		code, cont         string
	}{
		{"DE", "EU", "DE", "EU"},
		{"us", "NA", "US", "NA"},
		{"", "AS", "--", "AS"},
		{"D", "EU", "--", "EU"},
		{"D1", "XX", "--", "--"},
		{"ZZ", "OC", "ZZ", "OC"},
		{"AA", "AF", "AA", "AF"},
	} {
		c := New(time.Time{})
		p := c.PlaceOf(tc.country, tc.continent)
		if got := CountryCode(p.country()); got != tc.code {
			t.Errorf("PlaceOf(%q, %q) country %q, want %q", tc.country, tc.continent, got, tc.code)
		}
		if got := Continents[c.continent(int(p))]; got != tc.cont {
			t.Errorf("PlaceOf(%q, %q) continent %q, want %q", tc.country, tc.continent, got, tc.cont)
		}
	}
}

// TestRates: rates are differences of samples over the minute and the
// hour; shares are of all geo answers; a reload that keeps a record keeps
// its count and one that drops it drops it.
func TestRates(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := New(t0)
	snap := load(t, testZone, "fra", "iad")
	c.SetZones(snap)
	g := snap.Match("t.test.").Geos()[0]
	de, us := c.PlaceOf("DE", "EU"), c.PlaceOf("US", "NA")
	count := func(i int, pl Place, n int) {
		for range n {
			c.Target(g, i).Count(pl)
			c.Zone("t.test.").Add(1)
		}
	}
	c.Sample(t0)
	count(0, de, 600) // fra, before the last minute
	count(1, us, 60)
	for s := 1; s <= 6; s++ {
		c.Sample(t0.Add(time.Duration(s) * SampleEvery))
	}
	count(0, de, 120) // in the last minute
	count(1, de, 30)
	for s := 7; s <= 12; s++ {
		c.Sample(t0.Add(time.Duration(s) * SampleEvery))
	}
	r := c.ReportAt(t0.Add(12 * SampleEvery))
	want := map[string]PoPRate{
		"fra": {Rate: Rate{Name: "fra", PerSecM: 2, PerSecH: 720.0 / 120, Total: 720, LastHour: 720}, ShareH: 720.0 / 810, ShareTotal: 720.0 / 810},
		"iad": {Rate: Rate{Name: "iad", PerSecM: 0.5, PerSecH: 90.0 / 120, Total: 90, LastHour: 90}, ShareH: 90.0 / 810, ShareTotal: 90.0 / 810},
	}
	if len(r.PoPs) != 2 {
		t.Fatalf("PoPs %+v", r.PoPs)
	}
	for _, p := range r.PoPs {
		if p != want[p.Name] {
			t.Errorf("PoP %+v, want %+v", p, want[p.Name])
		}
	}
	if len(r.Zones) != 1 || r.Zones[0].Total != 810 || r.Zones[0].PerSecM != 2.5 {
		t.Errorf("zones %+v", r.Zones)
	}
	if len(r.Countries) != 2 || r.Countries[0].Code != "DE" || r.Countries[0].Top != "fra" || r.Countries[0].Total != 750 ||
		r.Countries[0].Continent != "EU" || len(r.Countries[0].PoPs) != 2 || r.Countries[1].Code != "US" || r.Countries[1].Top != "iad" {
		t.Errorf("countries %+v", r.Countries)
	}
	if len(r.Continents) != 2 || r.Continents[0].Code != "EU" || r.Continents[0].LastHour != 750 {
		t.Errorf("continents %+v", r.Continents)
	}

	// An hour and more later without answers: nothing in the last hour.
	for s := 13; s <= 13+ringLen; s++ {
		c.Sample(t0.Add(time.Duration(s) * SampleEvery))
	}
	later := t0.Add(time.Duration(13+ringLen) * SampleEvery)
	r = c.ReportAt(later)
	for _, p := range r.PoPs {
		if p.LastHour != 0 || p.PerSecH != 0 || p.Total != want[p.Name].Total {
			t.Errorf("an hour later: %+v", p)
		}
	}
	if r.Countries[0].LastHour != 0 || r.Countries[0].Total != 750 {
		t.Errorf("an hour later: %+v", r.Countries[0])
	}

	// Answers since the newest sample count at once; the minute is from
	// the oldest sample within it, 55 s before.
	count(1, us, 30)
	r = c.ReportAt(later.Add(5 * time.Second))
	if r.PoPs[1].Name != "iad" || r.PoPs[1].Total != 120 || r.PoPs[1].LastHour != 30 || r.PoPs[1].PerSecM != 30.0/55 {
		t.Errorf("answers since the last sample: %+v", r.PoPs[1])
	}
	if us := r.Countries[0]; us.Code != "US" || us.LastHour != 30 || us.Total != 90 {
		t.Errorf("answers since the last sample: %+v", us)
	}

	// A reload without iad keeps fra's count and drops iad's.
	c.SetZones(load(t, `
origin: t.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.1 }
`, "fra"))
	got := map[RecordKey]uint64{}
	c.Records(func(k RecordKey, n uint64) { got[k] = n })
	if len(got) != 1 || got[RecordKey{"t.test.", "www.t.test.", "fra"}] != 720 {
		t.Errorf("records after the reload: %v", got)
	}
	if c.Target(g, 0) != nil {
		t.Error("the old snapshot's record still counts")
	}
}

// TestCountAllocs: counting allocates nothing.
func TestCountAllocs(t *testing.T) {
	c := New(time.Now())
	snap := load(t, testZone, "fra", "iad")
	c.SetZones(snap)
	g := snap.Match("t.test.").Geos()[0]
	pl := c.PlaceOf("DE", "EU")
	if n := testing.AllocsPerRun(100, func() {
		c.Target(g, 1).Count(pl)
		c.Zone("t.test.").Add(1)
	}); n != 0 {
		t.Errorf("%v allocations per count", n)
	}
}

// TestConcurrentCounting: queries count while the ticker samples, the
// status reports and a reload swaps the table; no count is lost (run it
// with -race).
func TestConcurrentCounting(t *testing.T) {
	c := New(time.Now())
	snap := load(t, testZone, "fra", "iad")
	c.SetZones(snap)
	g := snap.Match("t.test.").Geos()[0]
	pl := c.PlaceOf("DE", "EU")
	const workers, each = 4, 2000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			c.Sample(time.Now())
			_ = c.Report()
			if i%10 == 0 {
				c.SetZones(snap) // the same names: the counters are kept
			}
		}
	}()
	finished := make(chan struct{}, workers)
	for range workers {
		go func() {
			for range each {
				c.Target(g, 0).Count(pl)
				c.Zone("t.test.").Add(1)
			}
			finished <- struct{}{}
		}()
	}
	for range workers {
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Fatal("counting did not finish")
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("sampling did not finish")
	}
	r := c.Report()
	if r.PoPs[0].Name != "fra" || r.PoPs[0].Total != workers*each || r.Zones[0].Total != workers*each {
		t.Errorf("after %d answers: %+v, %+v", workers*each, r.PoPs, r.Zones)
	}
}
