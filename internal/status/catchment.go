package status

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/popdns/popdns/internal/traffic"
)

// countryShape is one country of the catchment map: its ISO 3166-1
// alpha-2 code, the centroid of its largest part (where its lines to its
// PoPs start) and its coarse outline (countries_gen.go).
type countryShape struct {
	Code     string
	Centroid lonLat
	Rings    [][]lonLat
}

// smallCountries are centroids of countries too small for Natural Earth's
// 1:110m shapes, where much traffic comes from all the same: the map
// draws a disc for them.
var smallCountries = map[string]lonLat{
	"SG": {103.8, 1.35}, "HK": {114.2, 22.3}, "MO": {113.55, 22.2}, "MT": {14.4, 35.9}, "BH": {50.55, 26.05},
	"MU": {57.55, -20.3}, "MV": {73.5, 4.2}, "LI": {9.55, 47.15}, "MC": {7.42, 43.74}, "AD": {1.55, 42.55},
	"SM": {12.45, 43.94}, "VA": {12.45, 41.9}, "GI": {-5.35, 36.14}, "JE": {-2.13, 49.21}, "GG": {-2.58, 49.45},
	"IM": {-4.53, 54.23}, "FO": {-6.9, 62.0}, "BB": {-59.55, 13.15}, "AW": {-69.97, 12.52}, "CW": {-68.95, 12.17},
	"KY": {-81.25, 19.3}, "BM": {-64.75, 32.3}, "MQ": {-61.0, 14.65}, "GP": {-61.55, 16.25}, "RE": {55.5, -21.1},
	"SC": {55.45, -4.65}, "KN": {-62.75, 17.3}, "LC": {-60.97, 13.9}, "VC": {-61.2, 13.25}, "GD": {-61.68, 12.12},
	"AG": {-61.8, 17.07}, "DM": {-61.35, 15.42}, "TO": {-175.2, -21.2}, "WS": {-172.1, -13.75}, "PF": {-149.4, -17.65},
	"GU": {144.8, 13.45}, "KI": {173.0, 1.4}, "FM": {158.2, 6.9}, "MH": {171.2, 7.1}, "PW": {134.55, 7.5},
	"ST": {6.6, 0.2}, "CV": {-23.6, 15.1}, "KM": {43.35, -11.7}, "AS": {-170.7, -14.3}, "VI": {-64.85, 18.33},
}

// centroidOf is where a country's lines start, and whether it is known.
var centroidOf = sync.OnceValue(func() map[string]lonLat {
	m := make(map[string]lonLat, len(countryShapes)+len(smallCountries))
	for _, c := range countryShapes {
		m[c.Code] = c.Centroid
	}
	for code, p := range smallCountries {
		m[code] = p
	}
	return m
})

func shapeOf(code string) *countryShape {
	i, ok := slices.BinarySearchFunc(countryShapes, code, func(c countryShape, code string) int { return strings.Compare(c.Code, code) })
	if !ok {
		return nil
	}
	return &countryShapes[i]
}

// popPalette colours PoPs on the catchment map, in the order of the
// status's PoPs: distinct hues, none the health colours' green and red.
var popPalette = []string{
	"#3a6fd8", "#8e44ad", "#e07b00", "#0f9aa8", "#c2185b", "#6d8b00",
	"#7a5230", "#5c6bc0", "#d4a017", "#00897b", "#ad1457", "#455a64",
}

// projection maps longitude and latitude linearly to one drawing's
// coordinates: the world map's, or the Europe inset's.
type projection struct {
	west, north, scale float64
	width, height      float64
}

func (p projection) point(lat, lon float64) (x, y float64) {
	return (lon - p.west) * p.scale, (p.north - lat) * p.scale
}

// sees reports whether any of outline is on the map.
func (p projection) sees(outline []lonLat) bool {
	x0, y0, x1, y1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, v := range outline {
		x, y := p.point(v[1], v[0])
		x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
	}
	return x1 >= 0 && y1 >= 0 && x0 <= p.width && y0 <= p.height
}

// europeInset is the zoomed map of western and central Europe, where
// PoPs such as ams, fra, lhr and cdg are too close on the world map to
// read their lines.
var europeInset = projection{west: -12, north: 61, scale: 13, width: 46 * 13, height: 26 * 13}

// catchmentMap is the catchment as one map draws it.
type catchmentMap struct {
	Width, Height float64
	Land, Seas    []string // the outlines, for the inset
	Countries     []tintedCountry
	Flows         []flow
	Dots          []popDot // the inset's own dots
}

// tintedCountry is a country tinted with the colour of the PoP most of its
// answers went to.
type tintedCountry struct {
	Code, Color, Title string
	Opacity            string
	Points             []string // polygons; empty for a small country
	X, Y, R            string   // its disc, for a small country
}

// flow is the line from a country to a PoP, as wide as its traffic.
type flow struct {
	D, Color, Width, Title string
}

// trafficPage is the traffic section and the catchment drawn on the map.
type trafficPage struct {
	PoPs  []trafficRow
	Zones []trafficRow // the busiest pageZones of the last hour
	// OtherZones sums the rest the report has (its Zones past pageZones
	// and its OtherZones); nil when there are none.
	OtherZones *trafficRow
	Countries  []catchRow
	Continents []catchRow
	// Measure is what the catchment counts: the last hour's answers, or,
	// before any, all since the start.
	Measure string
	World   catchmentMap
	Inset   catchmentMap
	Colors  []popColor
}

type trafficRow struct {
	Name, Color     string
	QPSM, QPSH      string
	Share           string // of geo answers over the last hour, as a percentage
	ShareW          string // the share bar's width, in %
	Total, LastHour uint64
}

type catchRow struct {
	Code, Continent, Top, TopColor, TopShare string
	N                                        uint64
	PoPs                                     string
}

type popColor struct{ Name, Color string }

// maxFlows bounds the lines drawn: the busiest country→PoP pairs.
const maxFlows = 80

// pageZones bounds the zones the page lists: the busiest of the last hour
// (the report has them busiest first), then one row for the others, so
// that 100,000 zones do not make megabytes of HTML per refresh.
const pageZones = 20

func newTrafficPage(rep *traffic.Report, ps []PoP) *trafficPage {
	tp := &trafficPage{Measure: "last hour"}
	color := map[string]string{}
	where := map[string]lonLat{}
	for i, p := range ps {
		color[p.Name] = popPalette[i%len(popPalette)]
		where[p.Name] = lonLat{p.Lon, p.Lat}
		tp.Colors = append(tp.Colors, popColor{p.Name, color[p.Name]})
	}
	for _, p := range rep.PoPs {
		tp.PoPs = append(tp.PoPs, trafficRow{Name: p.Name, Color: color[p.Name], QPSM: fmtRate(p.PerSecM), QPSH: fmtRate(p.PerSecH),
			Share: fmt.Sprintf("%.1f %%", 100*p.ShareH), ShareW: fmt.Sprintf("%.1f", 100*p.ShareH), Total: p.Total, LastHour: p.LastHour})
	}
	others := rep.OtherZones
	for i, z := range rep.Zones {
		if i >= pageZones {
			others.Add(z)
			continue
		}
		tp.Zones = append(tp.Zones, trafficRow{Name: z.Name, QPSM: fmtRate(z.PerSecM), QPSH: fmtRate(z.PerSecH), Total: z.Total, LastHour: z.LastHour})
	}
	if others.Zones > 0 {
		name := fmt.Sprintf("%d other zones", others.Zones)
		if others.Zones == 1 {
			name = "1 other zone"
		}
		tp.OtherZones = &trafficRow{Name: name, QPSM: fmtRate(others.PerSecM), QPSH: fmtRate(others.PerSecH), Total: others.Total, LastHour: others.LastHour}
	}
	hour := slices.ContainsFunc(rep.Countries, func(c traffic.Catchment) bool { return c.LastHour > 0 })
	if !hour {
		tp.Measure = "since the start"
	}
	n := func(last, total uint64) uint64 {
		if hour {
			return last
		}
		return total
	}
	rows := func(cs []traffic.Catchment) []catchRow {
		var out []catchRow
		for _, c := range cs {
			total := n(c.LastHour, c.Total)
			if total == 0 {
				continue
			}
			r := catchRow{Code: c.Code, Continent: c.Continent, Top: c.Top, TopColor: color[c.Top], N: total}
			var parts []string
			for _, p := range c.PoPs {
				if k := n(p.LastHour, p.Total); k > 0 {
					if p.PoP == c.Top {
						r.TopShare = fmt.Sprintf("%.0f %%", 100*float64(k)/float64(total))
					}
					parts = append(parts, fmt.Sprintf("%s %d", p.PoP, k))
				}
			}
			r.PoPs = strings.Join(parts, ", ")
			out = append(out, r)
		}
		return out
	}
	tp.Countries, tp.Continents = rows(rep.Countries), rows(rep.Continents)

	world := projection{west: -180, north: mapNorth, scale: mapScale, width: mapWidth, height: mapHeight}
	tp.World = drawCatchment(rep, world, color, where, n)
	tp.Inset = drawCatchment(rep, europeInset, color, where, n)
	tp.Inset.Land, tp.Inset.Seas = projectOutlines(landOutlines, europeInset), projectOutlines(inlandSeas, europeInset)
	var inside []PoP
	for _, p := range ps {
		if x, y := europeInset.point(p.Lat, p.Lon); x >= 0 && y >= 0 && x <= europeInset.width && y <= europeInset.height {
			inside = append(inside, p)
		}
	}
	tp.Inset.Dots = placeDotsOn(inside, europeInset.point, europeInset.width, europeInset.height)
	return tp
}

// drawCatchment tints the countries and draws the flows on one map.
func drawCatchment(rep *traffic.Report, pr projection, color map[string]string, where map[string]lonLat,
	n func(last, total uint64) uint64) catchmentMap {
	m := catchmentMap{Width: pr.width, Height: pr.height}
	var most uint64
	type pair struct {
		country, pop string
		n            uint64
	}
	var pairs []pair
	for _, c := range rep.Countries {
		most = max(most, n(c.LastHour, c.Total))
		for _, p := range c.PoPs {
			if k := n(p.LastHour, p.Total); k > 0 {
				pairs = append(pairs, pair{c.Code, p.PoP, k})
			}
		}
	}
	if most == 0 {
		return m
	}
	for _, c := range rep.Countries {
		total := n(c.LastHour, c.Total)
		if total == 0 || color[c.Top] == "" {
			continue
		}
		t := tintedCountry{Code: c.Code, Color: color[c.Top],
			Opacity: mapCoord(0.3 + 0.45*math.Sqrt(float64(total)/float64(most))),
			Title:   fmt.Sprintf("%s: %d answers (%s), most to %s", c.Code, total, measureWord(rep, n), c.Top)}
		if s := shapeOf(c.Code); s != nil {
			t.Points = projectOutlines(slices.DeleteFunc(slices.Clone(s.Rings), func(r []lonLat) bool { return !pr.sees(r) }), pr)
			if len(t.Points) == 0 {
				continue
			}
		} else if p, ok := smallCountries[c.Code]; ok {
			x, y := pr.point(p[1], p[0])
			t.X, t.Y, t.R = mapCoord(x), mapCoord(y), mapCoord(max(3, pr.scale*0.8))
		} else {
			continue
		}
		m.Countries = append(m.Countries, t)
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if a.n != b.n {
			if a.n > b.n {
				return -1
			}
			return 1
		}
		return strings.Compare(a.country+a.pop, b.country+b.pop)
	})
	if len(pairs) > maxFlows {
		pairs = pairs[:maxFlows]
	}
	var biggest uint64
	for _, p := range pairs {
		biggest = max(biggest, p.n)
	}
	for _, p := range pairs {
		from, ok := centroidOf()[p.country]
		to, known := where[p.pop]
		if !ok || !known {
			continue
		}
		x1, y1 := pr.point(from[1], from[0])
		x2, y2 := pr.point(to[1], to[0])
		// A gentle arc: the control point off the middle, to the left of
		// the way, so that the lines to one PoP fan out.
		mx, my := (x1+x2)/2, (y1+y2)/2
		dx, dy := x2-x1, y2-y1
		cx, cy := mx-dy*0.15, my+dx*0.15
		w := 1 + 6*math.Sqrt(float64(p.n)/float64(biggest))
		m.Flows = append(m.Flows, flow{
			D:     fmt.Sprintf("M%s %sQ%s %s %s %s", mapCoord(x1), mapCoord(y1), mapCoord(cx), mapCoord(cy), mapCoord(x2), mapCoord(y2)),
			Color: color[p.pop], Width: mapCoord(w),
			Title: fmt.Sprintf("%s → %s: %d answers", p.country, p.pop, p.n),
		})
	}
	// The widest last, on top.
	slices.Reverse(m.Flows)
	return m
}

func measureWord(rep *traffic.Report, n func(last, total uint64) uint64) string {
	if n(1, 0) == 1 {
		return "last hour"
	}
	return "since the start"
}

// projectOutlines is polygonPoints on another projection.
func projectOutlines(outlines [][]lonLat, pr projection) []string {
	out := make([]string, 0, len(outlines))
	for _, o := range outlines {
		var b strings.Builder
		for i, p := range o {
			if i > 0 {
				b.WriteByte(' ')
			}
			x, y := pr.point(p[1], p[0])
			b.WriteString(mapCoord(x))
			b.WriteByte(',')
			b.WriteString(mapCoord(y))
		}
		out = append(out, b.String())
	}
	return out
}

// fmtRate shows queries per second.
func fmtRate(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 1000:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
