package status

import (
	"bytes"
	"cmp"
	"embed"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/popdns/popdns/pops"
)

// PageCSP is the Content-Security-Policy of the status page. The
// page is one self-contained document: it loads nothing, runs no script
// and refreshes with a meta tag, so the policy allows only inline styles
// and the data: URL of its empty favicon. Anything that tries to load
// more, such as an injected script or image, is blocked, and the browser
// says so in its console, which the Chromium test watches.
const PageCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// statusPageRefresh is how often the page reloads itself, in seconds.
const statusPageRefresh = 30

//go:embed statuspage/status.html
var statusPageFS embed.FS

var statusPageTemplate = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"ms":       fmtMS,
	"ago":      relTime,
	"stamp":    utcStamp,
	"popClass": popClass,
	"rowClass": targetClass,
}).ParseFS(statusPageFS, "statuspage/status.html"))

// WritePage serves the status page with the headers it needs, the
// CSP above all.
func WritePage(w http.ResponseWriter, st Status, now time.Time) {
	h := w.Header()
	h.Set("Content-Security-Policy", PageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	page, err := statusPageBytes(st, now)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(page) // the client went away: nothing to tell it
}

// renderStatusPage writes the status page for st as it is at now.
func renderStatusPage(w io.Writer, st Status, now time.Time) error {
	page, err := statusPageBytes(st, now)
	if err != nil {
		return err
	}
	_, err = w.Write(page)
	return err
}

// statusPageBytes renders the page into memory, so that a template error
// never leaves half a page behind and the caller can still answer with an
// error instead.
func statusPageBytes(st Status, now time.Time) ([]byte, error) {
	var buf bytes.Buffer
	if err := statusPageTemplate.Execute(&buf, newStatusPage(st, now)); err != nil {
		return nil, fmt.Errorf("status page: %w", err)
	}
	return buf.Bytes(), nil
}

// statusPage is what the template draws: the status itself and what is
// derived from it for the map and the summary.
type statusPage struct {
	Status
	Now     time.Time
	Refresh int
	Map     mapGeometry
	Width   float64
	Height  float64
	Dots    []popDot
	Counts  []stateCount
	PoPsUp  int
	// FileErrors are broken files that no served zone comes from, such as
	// a new zone whose first version does not load.
	FileErrors []fileError
	// ZoneTotal counts every zone served; OneZone is the zone asked for
	// alone, and PageLinks lead to the other pages of zones.
	ZoneTotal int
	OneZone   string
	PageLinks []pageLink
	// OverridesShown: the status has a store of overrides (a list, maybe
	// empty) or could not read it; ObserversShown: its probes carry the
	// fleet's quorum, drawn as a column of their table.
	OverridesShown bool
	ObserversShown bool
	// Traffic is the traffic section and the catchment on the map; nil
	// when the status has no traffic.
	Traffic *trafficPage
}

// pageLink is one link to a page of zones.
type pageLink struct {
	Page    int
	Current bool
}

// pageLinks are the links to the pages of zones around page of pages:
// the first, the last and a few either side, so that ten thousand zones
// do not make a hundred links.
func pageLinks(page, pages int) []pageLink {
	if pages <= 1 {
		return nil
	}
	var out []pageLink
	for n := 1; n <= pages; n++ {
		if n == 1 || n == pages || n >= page-3 && n <= page+3 {
			out = append(out, pageLink{n, n == page})
		}
	}
	return out
}

type stateCount struct {
	Class string
	N     int
}

type fileError struct{ File, Error string }

// popDot is one PoP on the map, with its label placed where it does not
// cover another.
type popDot struct {
	Name, Class, Label, Title string
	X, Y, R, Halo             string
	LabelX, LabelY            string
	Anchor                    string
	// LeaderX and LeaderY end the line from the dot to a label pushed
	// away from it; empty when the label sits beside its dot.
	LeaderX, LeaderY string
}

// popClasses are the health classes of a PoP, from fine to most in need
// of a person: an operator's down or drain is deliberate, a failing probe
// is not. The map draws the neediest last, on top, so that no problem
// hides under a healthy PoP nearby, and labels them first, closest to
// their dots.
var popClasses = []string{"up", "down", "draining", "unhealthy"}

// popClass says how a PoP is doing, in the words of the map's legend. An
// operator's down wins over the probes, since the PoP gets no clients
// either way; an unhealthy draining PoP is shown unhealthy, because that
// is what needs someone to look. A PoP whose own probe is fine but none of
// whose targets gets clients is not up: unhealthy if an active target's
// probe is down, else draining (every target taken out by its own state
// or an override).
func popClass(p PoP) string {
	switch {
	case p.State == pops.Down.String():
		return "down"
	case !p.Healthy:
		return "unhealthy"
	case p.Targets > 0 && p.TargetsUp == 0 && p.TargetsUnhealthy > 0:
		return "unhealthy"
	case p.State == pops.Drain.String(), p.Targets > 0 && p.TargetsUp == 0:
		return "draining"
	}
	return "up"
}

// targetClass is popClass for a table row of targets.
func targetClass(t Target) string {
	return popClass(PoP{State: t.State, Healthy: t.Healthy})
}

func newStatusPage(st Status, now time.Time) statusPage {
	p := statusPage{Status: st, Now: now, Refresh: statusPageRefresh, Map: worldMap(), Width: mapWidth, Height: mapHeight}
	counts := map[string]int{}
	for _, pop := range st.PoPs {
		counts[popClass(pop)]++
		if pop.Up {
			p.PoPsUp++
		}
	}
	for _, c := range popClasses {
		p.Counts = append(p.Counts, stateCount{c, counts[c]})
	}
	p.Dots = placeDots(st.PoPs)
	// A Status built by hand may list its zones without counting them.
	p.ZoneTotal = max(st.ZoneCount, len(st.Zones))
	if st.Page == 0 && len(st.Zones) == 1 {
		p.OneZone = st.Zones[0].Origin
	} else {
		p.PageLinks = pageLinks(st.Page, st.Pages)
	}

	served := st.servedFiles
	if served == nil {
		served = map[string]bool{}
		for _, z := range st.Zones {
			served[z.File] = true
		}
	}
	for file, err := range st.Errors {
		if !served[file] {
			p.FileErrors = append(p.FileErrors, fileError{file, err})
		}
	}
	slices.SortFunc(p.FileErrors, func(a, b fileError) int { return cmp.Compare(a.File, b.File) })
	p.OverridesShown = st.Overrides != nil || st.OverridesStale
	if st.Traffic != nil {
		p.Traffic = newTrafficPage(st.Traffic, st.PoPs)
	}
	p.ObserversShown = st.Fleet != nil || slices.ContainsFunc(st.Probes, func(pr Probe) bool { return pr.Quorum != nil })
	return p
}

// Sizes on the map, in SVG units: the dot's radius and the label's font.
// labelCharWidth is a generous average for the bold sans-serif font, since
// the server cannot measure text.
const (
	dotRadius      = 8.0
	labelSize      = 14.0
	labelCharWidth = 8.2
	labelGap       = 4.0
)

type labelBox struct{ x0, y0, x1, y1 float64 }

func (a labelBox) overlaps(b labelBox) bool {
	return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1
}

func (a labelBox) inside(w, h float64) bool { return a.x0 >= 0 && a.y0 >= 0 && a.x1 <= w && a.y1 <= h }

// labelSpot is one place a label may go: its box, the point it hangs
// from and how the text aligns there.
type labelSpot struct {
	b      labelBox
	lx, ly float64
	anchor string
	px, py float64 // the point next to the dot; a leader line runs to it
}

// labelDirections are tried in order: beside the dot reads best, then above
// and below, then the diagonals.
var labelDirections = [][2]float64{{1, 0}, {-1, 0}, {0, -1}, {0, 1}, {1, -1}, {1, 1}, {-1, -1}, {-1, 1}}

// labelSpotAt places a label of width w in direction dir from the dot at x, y,
// at distance d from the dot's centre.
func labelSpotAt(x, y, w, d float64, dir [2]float64) labelSpot {
	const asc, desc = labelSize * 0.75, labelSize * 0.25
	dx, dy := dir[0], dir[1]
	if dx != 0 && dy != 0 {
		dx, dy = dx*0.75, dy*0.75
	}
	s := labelSpot{px: x + dx*d, py: y + dy*d}
	switch {
	case dx > 0:
		s.anchor, s.b.x0 = "start", s.px
	case dx < 0:
		s.anchor, s.b.x0 = "end", s.px-w
	default:
		s.anchor, s.b.x0 = "middle", s.px-w/2
	}
	switch {
	case dy < 0:
		s.b.y0 = s.py - asc - desc
	case dy > 0:
		s.b.y0 = s.py
	default:
		s.b.y0 = s.py - (asc+desc)/2
	}
	s.b.x1, s.b.y1 = s.b.x0+w, s.b.y0+asc+desc
	s.lx, s.ly = s.px, s.b.y0+asc
	return s
}

// placeDots puts every PoP on the map and finds each label a place that
// covers no dot and no label placed before it: PoPs close together, such
// as those of one region, would otherwise print their names over each
// other. The worst off are labelled first, so that theirs sit closest.
// A label pushed away from its dot gets a leader line.
func placeDots(pops []PoP) []popDot { return placeDotsOn(pops, mapProject, mapWidth, mapHeight) }

// placeDotsOn is placeDots on a map of width × height drawn with project.
func placeDotsOn(pops []PoP, project func(lat, lon float64) (x, y float64), width, height float64) []popDot {
	order := make([]int, len(pops))
	taken := make([]labelBox, 0, 2*len(pops))
	for i, p := range pops {
		order[i] = i
		x, y := project(p.Lat, p.Lon)
		r := dotRadius + 1
		taken = append(taken, labelBox{x - r, y - r, x + r, y + r})
	}
	severity := func(i int) int { return slices.Index(popClasses, popClass(pops[i])) }
	slices.SortStableFunc(order, func(a, b int) int { return severity(b) - severity(a) })

	dots := make([]popDot, len(pops))
	for _, i := range order {
		p := pops[i]
		class := popClass(p)
		label := p.Name
		if class != "up" {
			label += " (" + class + ")"
		}
		x, y := project(p.Lat, p.Lon)
		w := float64(len([]rune(label))) * labelCharWidth
		spots := make([]labelSpot, 0, 3*len(labelDirections))
		for _, extra := range []float64{0, 16, 32} {
			for _, dir := range labelDirections {
				spots = append(spots, labelSpotAt(x, y, w, dotRadius+labelGap+extra, dir))
			}
		}
		// When nothing is free, beside the dot on the side that stays on
		// the map.
		pick := 0
		if x > width/2 {
			pick = 1
		}
	search:
		for c, s := range spots {
			if !s.b.inside(width, height) {
				continue
			}
			for j, t := range taken {
				if j != i && s.b.overlaps(t) {
					continue search
				}
			}
			pick = c
			break
		}
		s := spots[pick]
		taken = append(taken, s.b)
		title := fmt.Sprintf("%s: %s, state %s, %d of %d targets up", p.Name, class, p.State, p.TargetsUp, p.Targets)
		if p.Override != "" {
			title += ", set " + p.Override + " by an operator"
		}
		d := popDot{
			Name: p.Name, Class: class, Label: label, Title: title,
			X: mapCoord(x), Y: mapCoord(y), R: mapCoord(dotRadius), Halo: mapCoord(dotRadius + 5),
			LabelX: mapCoord(s.lx), LabelY: mapCoord(s.ly), Anchor: s.anchor,
		}
		if pick >= len(labelDirections) {
			d.LeaderX, d.LeaderY = mapCoord(s.px), mapCoord(s.py)
		}
		dots[i] = d
	}
	// Worst last, so that it is drawn on top.
	slices.SortStableFunc(dots, func(a, b popDot) int {
		return slices.Index(popClasses, a.Class) - slices.Index(popClasses, b.Class)
	})
	return dots
}

// fmtMS shows a duration in milliseconds; 0 means not measured.
func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 1000:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// relTime says how long before now t was, in the one or two units a person
// reads at a glance; utcStamp has the exact time.
func relTime(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		// Another clock, a little ahead of ours.
		return "just now"
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm ago", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// utcStamp is the exact time, in UTC so that operators in different places
// read the same thing.
func utcStamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
