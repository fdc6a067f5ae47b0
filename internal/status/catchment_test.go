package status

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/traffic"
)

// demoCountries are where the demo's traffic comes from: code, continent
// and relative volume.
var demoCountries = []struct {
	code, continent string
	weight          float64
}{
	{"US", "NA", 100}, {"DE", "EU", 55}, {"GB", "EU", 45}, {"FR", "EU", 40}, {"NL", "EU", 25}, {"JP", "AS", 40},
	{"BR", "SA", 30}, {"IN", "AS", 35}, {"CA", "NA", 20}, {"AU", "OC", 18}, {"IT", "EU", 22}, {"ES", "EU", 20},
	{"PL", "EU", 12}, {"SE", "EU", 8}, {"BE", "EU", 9}, {"CH", "EU", 8}, {"AT", "EU", 6}, {"IE", "EU", 6},
	{"MX", "NA", 15}, {"AR", "SA", 10}, {"CL", "SA", 6}, {"CO", "SA", 7}, {"ZA", "AF", 9}, {"NG", "AF", 7},
	{"EG", "AF", 6}, {"KE", "AF", 4}, {"KR", "AS", 18}, {"CN", "AS", 12}, {"ID", "AS", 14}, {"SG", "AS", 10},
	{"TH", "AS", 8}, {"VN", "AS", 7}, {"PH", "AS", 7}, {"TR", "AS", 9}, {"SA", "AS", 6}, {"AE", "AS", 5},
	{"RU", "EU", 10}, {"UA", "EU", 5}, {"NZ", "OC", 4}, {"NO", "EU", 5}, {"DK", "EU", 5}, {"FI", "EU", 4},
	{"PT", "EU", 6}, {"CZ", "EU", 5}, {"RO", "EU", 5}, {"GR", "EU", 4}, {"HU", "EU", 4}, {"PE", "SA", 4},
}

// demoTraffic makes a traffic report for ps as steering would: each
// country's answers mostly to its nearest PoP that is up, some to the
// second nearest.
func demoTraffic(ps []PoP, now time.Time) *traffic.Report {
	rep := &traffic.Report{Since: now.Add(-26 * time.Hour), SampledAt: now}
	perPoP := map[string]*traffic.PoPRate{}
	for _, p := range ps {
		perPoP[p.Name] = &traffic.PoPRate{Rate: traffic.Rate{Name: p.Name}}
	}
	continents := map[string]*traffic.Catchment{}
	var sumH uint64
	for _, dc := range demoCountries {
		c := centroidOf()[dc.code]
		var up []PoP
		for _, p := range ps {
			if p.Up {
				up = append(up, p)
			}
		}
		slices.SortFunc(up, func(a, b PoP) int {
			return cmp.Compare(arcDeg(c, lonLat{a.Lon, a.Lat}), arcDeg(c, lonLat{b.Lon, b.Lat}))
		})
		hour := uint64(dc.weight * 3600 * 2)
		split := []uint64{hour * 85 / 100, hour - hour*85/100}
		ct := traffic.Catchment{Code: dc.code, Continent: dc.continent, Top: up[0].Name}
		k := continents[dc.continent]
		if k == nil {
			k = &traffic.Catchment{Code: dc.continent}
			continents[dc.continent] = k
		}
		for i, n := range split {
			p := up[i]
			ct.PoPs = append(ct.PoPs, traffic.PoPCount{PoP: p.Name, LastHour: n, Total: n * 20})
			ct.LastHour += n
			ct.Total += n * 20
			perPoP[p.Name].LastHour += n
			perPoP[p.Name].Total += n * 20
			sumH += n
			j := slices.IndexFunc(k.PoPs, func(pc traffic.PoPCount) bool { return pc.PoP == p.Name })
			if j < 0 {
				k.PoPs = append(k.PoPs, traffic.PoPCount{PoP: p.Name})
				j = len(k.PoPs) - 1
			}
			k.PoPs[j].LastHour += n
			k.PoPs[j].Total += n * 20
			k.LastHour += n
			k.Total += n * 20
		}
		rep.Countries = append(rep.Countries, ct)
	}
	for _, p := range ps {
		r := perPoP[p.Name]
		r.PerSecH = float64(r.LastHour) / 3600
		r.PerSecM = r.PerSecH * 1.08
		if sumH > 0 {
			r.ShareH = float64(r.LastHour) / float64(sumH)
			r.ShareTotal = r.ShareH
		}
		rep.PoPs = append(rep.PoPs, *r)
	}
	for _, k := range continents {
		slices.SortFunc(k.PoPs, func(a, b traffic.PoPCount) int { return cmp.Compare(b.LastHour, a.LastHour) })
		k.Top = k.PoPs[0].PoP
		rep.Continents = append(rep.Continents, *k)
	}
	slices.SortFunc(rep.Continents, func(a, b traffic.Catchment) int { return cmp.Compare(b.LastHour, a.LastHour) })
	slices.SortFunc(rep.Countries, func(a, b traffic.Catchment) int { return cmp.Compare(b.LastHour, a.LastHour) })
	for _, z := range []struct {
		name string
		qps  float64
	}{{"cdn.test.", 610.5}, {"example.test.", 212.25}} {
		rep.Zones = append(rep.Zones, traffic.Rate{Name: z.name, PerSecM: z.qps * 1.05, PerSecH: z.qps,
			LastHour: uint64(z.qps * 3600), Total: uint64(z.qps * 3600 * 26)})
	}
	return rep
}

// arcDeg is the great-circle angle between two points, in degrees.
func arcDeg(a, b lonLat) float64 {
	rad := math.Pi / 180
	la1, la2 := a[1]*rad, b[1]*rad
	d := math.Sin(la1)*math.Sin(la2) + math.Cos(la1)*math.Cos(la2)*math.Cos((a[0]-b[0])*rad)
	return math.Acos(max(-1, min(1, d))) / rad
}

// trafficPageFixture is the page fixture with the European PoPs close
// together (ams, fra, lhr, cdg) and traffic from many countries.
func trafficPageFixture(now time.Time) Status {
	st := statusPageFixture(now)
	for _, p := range []PoP{
		{Name: "ams", Lat: 52.31, Lon: 4.76, Country: "NL", Continent: "EU"},
		{Name: "lhr", Lat: 51.47, Lon: -0.45, Country: "GB", Continent: "EU"},
		{Name: "cdg", Lat: 49.01, Lon: 2.55, Country: "FR", Continent: "EU"},
		{Name: "sjc", Lat: 37.36, Lon: -121.93, Country: "US", Continent: "NA"},
		{Name: "jnb", Lat: -26.14, Lon: 28.24, Country: "ZA", Continent: "AF"},
		{Name: "bom", Lat: 19.09, Lon: 72.87, Country: "IN", Continent: "AS"},
	} {
		p.State, p.Healthy, p.Up, p.Targets, p.TargetsUp = "active", true, true, 2, 2
		st.PoPs = append(st.PoPs, p)
	}
	st.Traffic = demoTraffic(st.PoPs, now)
	return st
}

// TestTrafficPageZones: the page lists the busiest pageZones zones and
// one row summing the others, those the report lists past them and those
// it left out.
func TestTrafficPageZones(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	st := trafficPageFixture(now)
	st.Traffic.Zones = nil
	for i := range pageZones + 5 {
		n := uint64(1000 - i)
		st.Traffic.Zones = append(st.Traffic.Zones, traffic.Rate{Name: fmt.Sprintf("z%02d.test.", i), PerSecM: float64(n) / 60,
			PerSecH: float64(n) / 3600, LastHour: n, Total: 2 * n})
	}
	st.Traffic.OtherZones = traffic.OtherZones{Zones: 80, PerSecM: 1, PerSecH: 0.5, LastHour: 1800, Total: 5000}
	p := newStatusPage(st, now)
	if len(p.Traffic.Zones) != pageZones || p.Traffic.Zones[0].Name != "z00.test." {
		t.Errorf("%d zones on the page, first %+v", len(p.Traffic.Zones), p.Traffic.Zones[0])
	}
	// The five past pageZones: 1000-20 … 1000-24 in the last hour.
	want := trafficRow{Name: "85 other zones", QPSM: fmtRate(1 + 4890.0/60), QPSH: fmtRate(0.5 + 4890.0/3600), LastHour: 1800 + 4890, Total: 5000 + 2*4890}
	if o := p.Traffic.OtherZones; o == nil || *o != want {
		t.Errorf("others %+v, want %+v", o, want)
	}
	page := renderTestStatusPage(t, st)
	if !strings.Contains(page, `<tr class="others"><td class="name none">85 other zones</td>`) || strings.Contains(page, "z20.test.") {
		t.Error("the page does not list the top zones and one row for the others")
	}
}

// TestTrafficPage: the traffic section lists every PoP and zone with its
// rates; the map tints the countries and draws their lines; the Europe
// inset shows ams, fra, lhr and cdg with labels that do not overlap.
func TestTrafficPage(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	st := trafficPageFixture(now)
	page := renderTestStatusPage(t, st)
	if f := os.Getenv("POPDNS_DUMP_PAGE"); f != "" {
		_ = os.WriteFile(f, []byte(page), 0o644)
	}
	for _, want := range []string{
		`<section class="traffic"`, `<h2 id="inset-title">Europe`, `data-country="DE"`, `data-country="SG"`,
		`<td class="name">cdn.test.</td><td class="num">641.0</td><td class="num">610.5</td>`,
		`Catchment (last hour)`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if n := strings.Count(page, `<path class="flow"`); n < 2*len(demoCountries) {
		t.Errorf("%d flows drawn (world and inset), want at least %d", n, 2*len(demoCountries))
	}
	p := newStatusPage(st, now)
	if p.Traffic == nil {
		t.Fatal("no traffic on the page")
	}
	inset := map[string]popDot{}
	for _, d := range p.Traffic.Inset.Dots {
		inset[d.Name] = d
	}
	for _, name := range []string{"ams", "fra", "lhr", "cdg"} {
		if _, ok := inset[name]; !ok {
			t.Errorf("the inset has no %s", name)
		}
	}
	if _, ok := inset["iad"]; ok {
		t.Error("the inset shows iad")
	}
	// Labels in the inset: none overlaps another or a dot.
	var boxes []labelBox
	for _, d := range p.Traffic.Inset.Dots {
		x, y := atof(t, d.X), atof(t, d.Y)
		boxes = append(boxes, labelBox{x - dotRadius, y - dotRadius, x + dotRadius, y + dotRadius})
	}
	for _, d := range p.Traffic.Inset.Dots {
		lx, ly := atof(t, d.LabelX), atof(t, d.LabelY)
		w := float64(len(d.Label)) * labelCharWidth
		b := labelBox{lx, ly - labelSize*0.75, lx + w, ly + labelSize*0.25}
		switch d.Anchor {
		case "end":
			b.x0, b.x1 = lx-w, lx
		case "middle":
			b.x0, b.x1 = lx-w/2, lx+w/2
		}
		for _, o := range boxes {
			if b.overlaps(o) {
				t.Errorf("inset label %s %+v overlaps %+v", d.Label, b, o)
			}
		}
		boxes = append(boxes, b)
	}
	// Germany, nearest fra, is tinted fra's colour.
	colour := map[string]string{}
	for _, c := range p.Traffic.Colors {
		colour[c.Name] = c.Color
	}
	for _, c := range p.Traffic.World.Countries {
		if c.Code == "DE" && c.Color != colour["fra"] {
			t.Errorf("DE tinted %s, want fra's %s", c.Color, colour["fra"])
		}
	}
	// The page says nothing of traffic without it.
	st.Traffic = nil
	if page := renderTestStatusPage(t, st); strings.Contains(page, "traffic") || strings.Contains(page, `class="flow"`) {
		t.Error("a page without traffic shows some")
	}
}

func atof(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCountryShapes: the generated table is sorted (shapeOf searches it)
// and has the countries traffic comes from most.
func TestCountryShapes(t *testing.T) {
	if !slices.IsSortedFunc(countryShapes, func(a, b countryShape) int { return strings.Compare(a.Code, b.Code) }) {
		t.Error("countryShapes is not sorted by code")
	}
	for _, code := range []string{"US", "DE", "GB", "FR", "NL", "JP", "BR", "IN", "AU", "ZA", "LU"} {
		if s := shapeOf(code); s == nil || len(s.Rings) == 0 {
			t.Errorf("no shape for %s", code)
		}
	}
	for _, dc := range demoCountries {
		if _, ok := centroidOf()[dc.code]; !ok {
			t.Errorf("no centroid for %s", dc.code)
		}
	}
}
