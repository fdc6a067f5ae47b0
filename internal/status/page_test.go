package status

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// statusPageNow is the fixed clock of the page tests, so that relative
// times are known.
var statusPageNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// statusPageFixture is a deployment in some trouble: six PoPs, one taken
// down by its configuration, one drained by an operator, one failing its
// probe, a zone whose latest file is broken and a new zone file that has
// never loaded.
func statusPageFixture(now time.Time) Status {
	pop := func(name string, lat, lon float64, country, continent, state string, healthy bool) PoP {
		p := PoP{Name: name, Lat: lat, Lon: lon, Country: country, Continent: continent, State: state,
			Probe: "http://" + name + ".pop.example.net:80/health", Healthy: healthy,
			Up: healthy && state == "active", Targets: 2}
		if p.Up {
			p.TargetsUp = p.Targets
		}
		return p
	}
	st := Status{
		Generation: 42, LoadedAt: now.Add(-5 * time.Minute), Ready: true, Latency: 120,
		Zones: []Zone{
			{Origin: "example.test.", File: "example.test.yaml", Serial: 2026112201, Records: 14},
			{Origin: "cdn.test.", File: "cdn.test.yaml", Serial: 7, Records: 31,
				Error: `cdn.test.yaml:12: unknown key "ttl2"`},
		},
		Errors: map[string]string{
			"cdn.test.yaml": `cdn.test.yaml:12: unknown key "ttl2"`,
			"new.test.yaml": "new.test.yaml:3: origin: not a domain name",
		},
		PoPs: []PoP{
			pop("fra", 50.11, 8.68, "DE", "EU", "active", true),
			pop("iad", 38.95, -77.45, "US", "NA", "active", true),
			pop("sin", 1.35, 103.82, "SG", "AS", "active", false),
			pop("gru", -23.43, -46.47, "BR", "SA", "drain", true),
			pop("syd", -33.94, 151.18, "AU", "OC", "down", true),
			pop("nrt", 35.77, 140.39, "JP", "AS", "active", true),
		},
	}
	st.PoPs[3].Override = "drain"
	for i, p := range st.PoPs {
		for _, name := range []string{"www.example.test.", "api.cdn.test."} {
			t := Target{Zone: "example.test.", Name: name, PoP: p.Name, State: p.State,
				Probes: []string{p.Probe}, Healthy: p.Healthy, Eligible: p.Up,
				RTTMS: 8.5 + 31.7*float64(i), BaselineMS: 7.9 + 30*float64(i), PenaltyMS: 0.6 + 1.7*float64(i),
				LastChange: now.Add(-time.Duration(i+1) * 37 * time.Minute)}
			if strings.HasPrefix(name, "api") {
				t.Zone = "cdn.test."
			}
			if !p.Healthy {
				t.LastError = "dial tcp 192.0.2.30:80: i/o timeout"
				t.LastChange = now.Add(-90 * time.Second)
				t.PenaltyMS = 250
			}
			st.Targets = append(st.Targets, t)
		}
		pr := Probe{ID: p.Probe, Kind: "http", Addr: p.Name + ".pop.example.net:80", Interval: "5s",
			Probed: true, Healthy: p.Healthy, RTTMS: 8.5 + 31.7*float64(i), BaselineMS: 7.9 + 30*float64(i), PenaltyMS: 0.6 + 1.7*float64(i),
			Checked: now.Add(-3 * time.Second), LastChange: now.Add(-26 * time.Hour)}
		if !p.Healthy {
			pr.LastError, pr.LastReason = "dial tcp 192.0.2.30:80: i/o timeout", "timeout"
			pr.LastChange, pr.PenaltyMS = now.Add(-90*time.Second), 250
		}
		st.Probes = append(st.Probes, pr)
	}
	return st
}

func renderTestStatusPage(t *testing.T, st Status) string {
	t.Helper()
	var b strings.Builder
	if err := renderStatusPage(&b, st, statusPageNow); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkMapSVG makes sure the map is well-formed XML: a browser forgives a
// broken SVG silently, by drawing less of it.
func checkMapSVG(t *testing.T, page string) {
	t.Helper()
	start, end := strings.Index(page, "<svg"), strings.Index(page, "</svg>")
	if start < 0 || end < start {
		t.Fatal("no <svg> in the page")
	}
	d := xml.NewDecoder(strings.NewReader(page[start : end+len("</svg>")]))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("map SVG: %v", err)
		}
	}
}

func TestStatusPageDots(t *testing.T) {
	// Positions are worked out by hand from the projection: x = (lon+180)·3,
	// y = (84−lat)·3, rounded to a tenth.
	tests := []struct {
		name     string
		lat, lon float64
		state    string
		healthy  bool
		class    string
		x, y     string
	}{
		{"zero", 0, 0, "active", true, "up", "540", "252"},
		{"fra", 50.11, 8.68, "active", true, "up", "566", "101.7"},
		{"syd", -33.94, 151.18, "down", true, "down", "993.5", "353.8"},
		{"gru", -23.43, -46.47, "drain", true, "draining", "400.6", "322.3"},
		{"sin", 1.3, 103.8, "active", false, "unhealthy", "851.4", "248.1"},
		{"drain-sick", 10, 20, "drain", false, "unhealthy", "600", "222"},
		{"down-sick", 10, 30, "down", false, "down", "630", "222"},
		{"north", 89, -180, "active", true, "up", "0", "0"},
		{"south", -80, 180, "active", true, "up", "1080", "426"},
		{"wrapped", 0, 190, "active", true, "up", "30", "252"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PoP{Name: tt.name, Lat: tt.lat, Lon: tt.lon, State: tt.state, Healthy: tt.healthy,
				Up: tt.healthy && tt.state == "active"}
			page := renderTestStatusPage(t, Status{PoPs: []PoP{p}})
			checkMapSVG(t, page)
			want := fmt.Sprintf(`<circle class="dot %s" cx="%s" cy="%s" r="8"/>`, tt.class, tt.x, tt.y)
			if !strings.Contains(page, want) {
				t.Errorf("no %s in\n%s", want, mapSVGOf(page))
			}
			if n := strings.Count(page, `<circle class="dot `); n != 1 {
				t.Errorf("%d dots, want 1", n)
			}
			label := tt.name
			if tt.class != "up" {
				label += " (" + tt.class + ")"
			}
			if !strings.Contains(page, ">"+label+"</text>") {
				t.Errorf("no label %q", label)
			}
			if !strings.Contains(page, `<span class="pill `+tt.class+`">`) {
				t.Errorf("PoP table does not say %s", tt.class)
			}
		})
	}
}

func mapSVGOf(page string) string {
	start, end := strings.Index(page, "<svg"), strings.Index(page, "</svg>")
	if start < 0 || end < start {
		return page
	}
	var keep []string
	for l := range strings.Lines(page[start:end]) {
		if !strings.Contains(l, "polygon") && !strings.Contains(l, "<line") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "")
}

// TestStatusPageLabels checks that the labels of PoPs close together,
// and of PoPs at the map's edges, cover no dot and no other label and
// stay on the map.
func TestStatusPageLabels(t *testing.T) {
	pops := []PoP{
		{Name: "fra", Lat: 50.11, Lon: 8.68, State: "active", Healthy: true},
		{Name: "ams", Lat: 52.31, Lon: 4.76, State: "active", Healthy: true},
		{Name: "cdg", Lat: 49.01, Lon: 2.55, State: "active", Healthy: false},
		{Name: "lhr", Lat: 51.47, Lon: -0.45, State: "active", Healthy: true},
		{Name: "muc", Lat: 48.35, Lon: 11.78, State: "drain", Healthy: true},
		// Three in one metro: someone's labels must move away.
		{Name: "fra-2", Lat: 50.05, Lon: 8.57, State: "active", Healthy: true},
		{Name: "fra-3", Lat: 50.2, Lon: 8.8, State: "active", Healthy: false},
		{Name: "dateline", Lat: 0, Lon: 179, State: "down", Healthy: true},
		{Name: "pole", Lat: 84, Lon: -180, State: "active", Healthy: true},
	}
	dots := placeDots(pops)
	if len(dots) != len(pops) {
		t.Fatalf("%d dots for %d PoPs", len(dots), len(pops))
	}
	num := func(s string) float64 {
		var v float64
		if _, err := fmt.Sscan(s, &v); err != nil {
			t.Fatalf("coordinate %q: %v", s, err)
		}
		return v
	}
	leaders := 0
	labels := map[string]labelBox{}
	var dotBoxes []labelBox
	for _, d := range dots {
		x, y, r := num(d.X), num(d.Y), num(d.R)
		dotBoxes = append(dotBoxes, labelBox{x - r, y - r, x + r, y + r})
		if d.LeaderX != "" {
			leaders++
		}
		lx, ly := num(d.LabelX), num(d.LabelY)
		w := float64(len(d.Label)) * labelCharWidth
		x0 := map[string]float64{"start": lx, "end": lx - w, "middle": lx - w/2}[d.Anchor]
		b := labelBox{x0, ly - labelSize*0.75, x0 + w, ly}
		labels[d.Label] = b
		if !b.inside(mapWidth, mapHeight) {
			t.Errorf("label %q runs off the map: %+v", d.Label, b)
		}
	}
	for a, ba := range labels {
		for b, bb := range labels {
			if a < b && ba.overlaps(bb) {
				t.Errorf("labels %q %+v and %q %+v overlap", a, ba, b, bb)
			}
		}
		for i, db := range dotBoxes {
			if ba.overlaps(db) {
				t.Errorf("label %q %+v covers the dot of %s", a, ba, dots[i].Name)
			}
		}
	}
	if leaders == 0 {
		t.Error("no label was moved away from its dot with a leader line")
	}
}

func TestStatusPageContent(t *testing.T) {
	hostile := `<script>alert(1)</script>`
	tests := []struct {
		name    string
		st      Status
		want    []string
		notWant []string
	}{{
		name: "zero value",
		st:   Status{},
		want: []string{"NOT READY", "nothing loaded yet", "No zones loaded.", "No PoPs configured.",
			"No geo targets.", "No probes.", "<b>0</b> of 0 PoPs up"},
		notWant: []string{`<circle class="dot`, "targets-left-out"},
	}, {
		name: "before the first load",
		st:   func() Status { s := Build(nil, nil, nil, time.Now); s.NotReady = "zones not loaded"; return s }(),
		want: []string{"NOT READY", `<span class="why">zones not loaded</span>`, "No zones loaded."},
	}, {
		name: "fixture",
		st:   statusPageFixture(statusPageNow),
		want: []string{
			`<span class="badge ready">READY</span>`,
			"<b>2</b> zones", "<b>3</b> of 6 PoPs up", "generation <b>42</b>",
			`loaded <span title="2026-11-22 11:55:00 UTC">5m ago</span>`,
			"120 latency entries",
			`<td class="num">2026112201</td>`,
			`cdn.test.yaml:12: unknown key &#34;ttl2&#34; <span class="note">(serving the last good version)</span>`,
			"Files not served", "new.test.yaml:3: origin: not a domain name",
			`<tr class="unhealthy"><td class="name">example.test.</td><td class="name">www.example.test.</td><td class="name">sin</td>`,
			`<tr class="draining"><td class="name">example.test.</td><td class="name">www.example.test.</td><td class="name">gru</td>`,
			`<tr class="down"><td class="name">example.test.</td><td class="name">www.example.test.</td><td class="name">syd</td>`,
			`<td class="num">71.9 ms</td>`,
			`<td class="when" title="2026-11-22 11:58:30 UTC">1m ago</td><td class="err">dial tcp 192.0.2.30:80: i/o timeout</td>`,
			`<td class="when" title="2026-11-22 11:23:00 UTC">37m ago</td>`,
			`<span class="reason">timeout</span> dial tcp`,
			`title="2026-11-21 10:00:00 UTC">26h 0m ago</td>`,
			"(set drain by an operator)",
			`<li><span class="key up"></span>up <b>3</b></li>`,
			`<li><span class="key down"></span>down <b>1</b></li>`,
		},
		notWant: []string{"targets-left-out", "NOT READY"},
	}, {
		name: "not ready",
		st:   Status{NotReady: "first probe round running: 1 of 6 probes answered"},
		want: []string{`<span class="why">first probe round running: 1 of 6 probes answered</span>`},
	}, {
		name: "targets left out",
		st:   Status{Targets: []Target{{Zone: "a.test.", Name: "www.a.test.", PoP: "fra", State: "active", Healthy: true}}, TargetsLeftOut: 7},
		want: []string{"7 more targets not listed", "1 listed, 7 more left out"},
	}, {
		name: "hostile strings",
		st: Status{
			NotReady: hostile,
			Zones:    []Zone{{Origin: hostile, File: hostile, Error: hostile}},
			Errors:   map[string]string{"x.yaml": hostile},
			PoPs:     []PoP{{Name: `"><img src=x onerror=alert(1)>`, State: hostile, Probe: hostile, Country: hostile}},
			Targets:  []Target{{Zone: hostile, Name: hostile, PoP: hostile, State: hostile, LastError: `</td>` + hostile}},
			Probes:   []Probe{{ID: hostile, Kind: hostile, Addr: hostile, Interval: hostile, LastError: hostile, LastReason: hostile}},
		},
		want:    []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"},
		notWant: []string{"<script", "<img", "</td><script"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := renderTestStatusPage(t, tt.st)
			checkMapSVG(t, page)
			for _, w := range tt.want {
				if !strings.Contains(page, w) {
					t.Errorf("page lacks %s", w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(page, w) {
					t.Errorf("page has %s", w)
				}
			}
			if t.Failed() {
				t.Logf("page:\n%s", page)
			}
		})
	}
}

func TestStatusPageRelTime(t *testing.T) {
	now := statusPageNow
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "never"},
		{now.Add(2 * time.Second), "just now"},
		{now, "0s ago"},
		{now.Add(-59 * time.Second), "59s ago"},
		{now.Add(-61 * time.Second), "1m ago"},
		{now.Add(-59 * time.Minute), "59m ago"},
		{now.Add(-3*time.Hour - 5*time.Minute), "3h 5m ago"},
		{now.Add(-47 * time.Hour), "47h 0m ago"},
		{now.Add(-72 * time.Hour), "3d ago"},
	}
	for _, tt := range tests {
		if got := relTime(now, tt.t); got != tt.want {
			t.Errorf("relTime(now-%v) = %q, want %q", now.Sub(tt.t), got, tt.want)
		}
	}
}

func TestWriteStatusPageHeaders(t *testing.T) {
	rec := httptest.NewRecorder()
	WritePage(rec, statusPageFixture(statusPageNow), statusPageNow)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	for k, v := range map[string]string{
		"Content-Security-Policy": PageCSP,
		"Content-Type":            "text/html; charset=utf-8",
		"X-Content-Type-Options":  "nosniff",
	} {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if !strings.Contains(PageCSP, "default-src 'none'") {
		t.Errorf("CSP %q does not block by default", PageCSP)
	}
}
