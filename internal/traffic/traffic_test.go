package traffic

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
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

func load(t testing.TB, zone string, popNames ...string) *zones.Snapshot {
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
		c := New(at(time.Time{}))
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
// TestRatesBeforeFirstSample: answers counted before the first sample
// (its ticker ran late) are in the last minute and hour, which reach back
// to the start.
func TestRatesBeforeFirstSample(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := New(at(t0))
	snap := load(t, testZone, "fra", "iad")
	c.SetZones(snap)
	g := snap.Match("t.test.").Geos()[0]
	de := c.PlaceOf("DE", "EU")
	for range 21 {
		c.Target(g, 0).Count(de)
		c.Zone("t.test.").Add(1)
	}
	c.Sample(t0.Add(time.Second))
	c.Target(g, 0).Count(de)
	c.Zone("t.test.").Add(1)
	r := c.ReportAt(t0.Add(2 * time.Second))
	for _, p := range r.PoPs {
		if p.Name == "fra" && (p.Total != 22 || p.LastHour != 22) {
			t.Errorf("fra: total %d, last hour %d; want 22 and 22", p.Total, p.LastHour)
		}
	}
	if len(r.Countries) != 1 || r.Countries[0].Total != 22 || r.Countries[0].LastHour != 22 {
		t.Errorf("countries %+v; want DE with 22 in the last hour", r.Countries)
	}
	if len(r.Zones) != 1 || r.Zones[0].LastHour != 22 || r.Zones[0].PerSecM != 11 {
		t.Errorf("zones %+v; want t.test. with 22 in the last hour, 11 a second", r.Zones)
	}
}

func TestRates(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := New(at(t0))
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
	if len(r.Zones) != 0 || r.OtherZones != (OtherZones{}) {
		t.Errorf("an hour later, zones not queried in it are listed: %+v %+v", r.Zones, r.OtherZones)
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
	if want := []Rate{{Name: "t.test.", PerSecM: 30.0 / 55, PerSecH: 30.0 / 3595, Total: 840, LastHour: 30}}; !slices.Equal(r.Zones, want) {
		t.Errorf("zones since the last sample: %+v, want %+v", r.Zones, want)
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
	recs, other := c.Records(MaxRecordSeries)
	if want := []RecordCount{{RecordKey{"t.test.", "www.t.test.", "fra"}, 720}}; !slices.Equal(recs, want) {
		t.Errorf("records after the reload: %v", recs)
	}
	if want := []PoPTotal{{"fra", 0}}; !slices.Equal(other, want) {
		t.Errorf("others after the reload: %v", other)
	}
	// A query still on the old snapshot counts in its PoP, unattributed.
	c.Target(g, 0).Count(de)
	if c.Target(g, 1) != nil {
		t.Error("a dropped PoP still counts")
	}
	if _, other := c.Records(MaxRecordSeries); !slices.Equal(other, []PoPTotal{{"fra", 1}}) {
		t.Errorf("an answer from the old snapshot: others %v", other)
	}
}

// TestCountAllocs: counting allocates nothing.
func TestCountAllocs(t *testing.T) {
	c := New(time.Now)
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
// status reports and reloads swap the table, to freshly loaded snapshots
// of the same zone: the queries still on the first snapshot count in its
// PoPs unattributed, and no count is lost (run it with -race).
func TestConcurrentCounting(t *testing.T) {
	c := New(time.Now)
	snap := load(t, testZone, "fra", "iad")
	c.SetZones(snap)
	c.Sample(time.Now()) // as Run does first
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
				c.SetZones(load(t, testZone, "fra", "iad")) // the same names: the counters are kept
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
	if r.PoPs[0].Name != "fra" || r.PoPs[0].Total != workers*each || len(r.Zones) != 1 || r.Zones[0].Total != workers*each {
		t.Errorf("after %d answers: %+v, %+v", workers*each, r.PoPs, r.Zones)
	}
	recs, other := c.Records(MaxRecordSeries)
	sum := map[string]uint64{}
	for _, rc := range recs {
		sum[rc.PoP] += rc.N
	}
	for _, o := range other {
		sum[o.PoP] += o.N
	}
	if sum["fra"] != workers*each || sum["iad"] != 0 {
		t.Errorf("records and others by PoP: %v, want fra %d", sum, workers*each)
	}
}

// at is a clock stopped at t.
func at(t time.Time) func() time.Time { return func() time.Time { return t } }

// manyZones is a snapshot of n zones, each with one geo record on fra
// and iad.
func manyZones(tb testing.TB, n int) *zones.Snapshot {
	tb.Helper()
	inv, err := pops.New(pops.PoP{Name: "fra"}, pops.PoP{Name: "iad", Point: geo.Point{Lat: 1, Lon: 1}})
	if err != nil {
		tb.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for i := range n {
		fsys[fmt.Sprintf("z%d.test.yaml", i)] = &fstest.MapFile{Data: []byte(strings.Replace(testZone, "t.test.", fmt.Sprintf("z%06d.test.", i), 1))}
	}
	snap, err := zones.Load(fsys, inv, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return snap
}

// fakeZones gives c n zone counters, z000000.test. on, as SetZones
// would for n zones without geo records: loading that many zones takes
// a second per 1,000.
func fakeZones(c *Counters, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &table{zones: map[string]*Counter{}}
	c.zoneList = nil
	for i := range n {
		origin := fmt.Sprintf("z%06d.test.", i)
		t.zones[origin] = new(Counter)
		c.zoneList = append(c.zoneList, namedCounter{origin, t.zones[origin]})
	}
	c.zones = t.zones
	c.tbl.Store(t)
}

// TestRingMemory: an hour of samples of 10,000 zones, a few of them
// queried, costs memory in proportion to the traffic, not to the zones
// (it was 150 MiB when each sample held every zone's count).
func TestRingMemory(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := New(at(t0))
	fakeZones(c, 10_000)
	busy := []*Counter{c.Zone("z000001.test."), c.Zone("z000500.test."), c.Zone("z009999.test.")}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for s := range ringLen {
		for _, z := range busy {
			z.Add(uint64(s))
		}
		c.Sample(t0.Add(time.Duration(s) * SampleEvery))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("ring of %d samples of 10,000 zones: %d KiB", ringLen, grown>>10)
	if grown > 4<<20 {
		t.Errorf("ring of %d samples of 10,000 zones: %d KiB, want < 4 MiB", ringLen, grown>>10)
	}
	r := c.ReportAt(t0.Add(time.Duration(ringLen-1) * SampleEvery))
	if len(r.Zones) != 3 || r.Zones[0].LastHour != r.Zones[0].Total || r.Zones[0].Total != uint64((ringLen-1)*ringLen/2) {
		t.Errorf("zones %+v", r.Zones)
	}
	runtime.KeepAlive(c)
}

// TestReportZonesCapped: /status lists the busiest MaxReportZones zones
// of the last hour and sums the rest; zones not queried are left out.
func TestReportZonesCapped(t *testing.T) {
	const queried = MaxReportZones + 30
	snap := manyZones(t, 2*queried)
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := New(at(t0))
	c.SetZones(snap)
	c.Sample(t0)
	var other OtherZones
	for i := range queried {
		r := Rate{Name: fmt.Sprintf("z%06d.test.", 2*i), Total: uint64(i + 1), LastHour: uint64(i + 1), PerSecH: float64(i+1) / 60, PerSecM: float64(i+1) / 60}
		c.Zone(r.Name).Add(r.Total)
		if i < queried-MaxReportZones {
			other.Add(r)
		}
	}
	rep := c.ReportAt(t0.Add(time.Minute))
	if len(rep.Zones) != MaxReportZones || rep.Zones[0].Name != fmt.Sprintf("z%06d.test.", 2*(queried-1)) ||
		rep.Zones[MaxReportZones-1].LastHour != queried-MaxReportZones+1 {
		t.Fatalf("%d zones, first %+v", len(rep.Zones), rep.Zones[0])
	}
	if rep.OtherZones.Zones != other.Zones || rep.OtherZones.Total != other.Total || rep.OtherZones.LastHour != other.LastHour ||
		math.Abs(rep.OtherZones.PerSecH-other.PerSecH) > 1e-9 {
		t.Errorf("others %+v, want %+v", rep.OtherZones, other)
	}
}

// TestRecordsCapped: past max series, whole records go to the others of
// their PoPs, in zone order, so that the sum by PoP stays exact.
func TestRecordsCapped(t *testing.T) {
	snap := manyZones(t, 10)
	c := New(time.Now)
	c.SetZones(snap)
	for _, z := range snap.Zones() {
		g := z.Geos()[0]
		c.Target(g, 0).Count(0)
		c.Target(g, 1).Count(0)
		c.Target(g, 1).Count(0)
	}
	recs, other := c.Records(7) // three whole records of two targets
	if len(recs) != 6 || recs[0].Zone != "z000000.test." || recs[5].Zone != "z000002.test." || recs[5].PoP != "iad" || recs[5].N != 2 {
		t.Errorf("records %v", recs)
	}
	if want := []PoPTotal{{"fra", 7}, {"iad", 14}}; !slices.Equal(other, want) {
		t.Errorf("others %v, want %v", other, want)
	}
}

// BenchmarkSample: one sample of 100,000 zones, a hundred of them queried.
func BenchmarkSample(b *testing.B) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := New(at(t0))
	fakeZones(c, 100_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		for j := 0; j < 100_000; j += 1000 {
			c.zoneList[j].c.Add(1)
		}
		c.Sample(t0.Add(time.Duration(i) * SampleEvery))
	}
}

// BenchmarkCount: one geo answer and its zone's query counted, as a
// query does, from one goroutine and from GOMAXPROCS goroutines (the v4
// and v6 fast-path readers and the general path) counting the same place
// of the same target, the worst case for the shared cache lines.
func BenchmarkCount(b *testing.B) {
	c := New(time.Now)
	snap := load(b, testZone, "fra", "iad")
	c.SetZones(snap)
	g := snap.Match("t.test.").Geos()[0]
	tg, zc := c.Target(g, 0), c.Zone("t.test.")
	pl := c.PlaceOf("DE", "EU")
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			tg.Count(pl)
			zc.Add(1)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tg.Count(pl)
				zc.Add(1)
			}
		})
	})
}

// BenchmarkReport: the report of 100,000 zones, an hour of samples, a
// hundred zones queried.
func BenchmarkReport(b *testing.B) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := New(at(t0))
	fakeZones(c, 100_000)
	for s := range ringLen {
		for j := 0; j < 100_000; j += 1000 {
			c.zoneList[j].c.Add(1)
		}
		c.Sample(t0.Add(time.Duration(s) * SampleEvery))
	}
	now := t0.Add(time.Duration(ringLen-1) * SampleEvery)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if r := c.ReportAt(now); len(r.Zones) != 100 {
			b.Fatalf("%d zones", len(r.Zones))
		}
	}
}
