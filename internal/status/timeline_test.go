package status

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/internal/events"
	"github.com/prometheus/client_golang/prometheus"
)

// What cmd/popdns wires in.
var _ GeoIP = (*geo.Locator)(nil)

type fakeGeoIP []geo.DBInfo

func (f fakeGeoIP) Info() []geo.DBInfo { return f }

// TestStatusTimelineJSON: /status carries the build, each GeoIP database
// with its age (one from 2019 stale, one a week old not) and the events,
// newest first; without them, empty lists rather than nulls.
func TestStatusTimelineJSON(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	started := now.Add(-time.Hour)
	ev := events.New(0, func() time.Time { now = now.Add(time.Second); return now })
	ev.Add(events.Reload, events.Error, "example.test.yaml", "failed, the last good version keeps serving: line 3: bad")
	ev.Add(events.Health, events.Error, "ams-web", "down: refused")
	ev.Add(events.Reload, events.Info, "example.test.yaml", "zone example.test. loads again, serial 2")
	build := BuildInfo{Version: "v1.2.3", Revision: "abc123", GoVersion: "go1.26", StartedAt: started}
	geoip := fakeGeoIP{
		{File: "/var/lib/geoip/GeoLite2-City.mmdb", Kind: "City", Type: "GeoLite2-City", Built: time.Date(2019, 12, 24, 0, 0, 0, 0, time.UTC)},
		{File: "/var/lib/geoip/GeoLite2-ASN.mmdb", Kind: "ASN", Type: "GeoLite2-ASN", Built: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)},
	}
	srv := &fakeServer{snap: testSnapshot(t)}
	tests := []struct {
		name string
		deps Deps
		want string // the JSON of build, geoip and events
	}{
		{"wired", Deps{Events: ev, GeoIP: geoip, Build: build},
			`{"build":{"version":"v1.2.3","revision":"abc123","go_version":"go1.26","started_at":"2026-12-02T11:00:00Z"},` +
				`"geoip":[{"file":"/var/lib/geoip/GeoLite2-City.mmdb","kind":"City","type":"GeoLite2-City","built_at":"2019-12-24T00:00:00Z","age_days":2535,"stale":true},` +
				`{"file":"/var/lib/geoip/GeoLite2-ASN.mmdb","kind":"ASN","type":"GeoLite2-ASN","built_at":"2026-11-25T12:00:00Z","age_days":7,"stale":false}],` +
				`"events":[{"at":"2026-12-02T12:00:03Z","kind":"reload","subject":"example.test.yaml","message":"zone example.test. loads again, serial 2","level":"info"},` +
				`{"at":"2026-12-02T12:00:02Z","kind":"health","subject":"ams-web","message":"down: refused","level":"error"},` +
				`{"at":"2026-12-02T12:00:01Z","kind":"reload","subject":"example.test.yaml","message":"failed, the last good version keeps serving: line 3: bad","level":"error"}]}`},
		{"nothing wired", Deps{},
			`{"build":{"version":"","go_version":"","started_at":"0001-01-01T00:00:00Z"},"geoip":[],"events":[]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			deps := tc.deps
			deps.Server, deps.Health, deps.Now = srv, fakeHealth{firstDone: make(chan struct{})}, clock
			h := New(deps).Handler(Endpoints{Metrics: prometheus.NewRegistry()})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("GET /status: %d %s", rec.Code, rec.Body)
			}
			var got struct {
				Build  json.RawMessage `json:"build"`
				GeoIP  json.RawMessage `json:"geoip"`
				Events json.RawMessage `json:"events"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("/status has\n%s\nwant\n%s", b, tc.want)
			}
		})
	}
}

func TestGeoIPDBName(t *testing.T) {
	for _, tc := range []struct {
		db   GeoIPDB
		want string
	}{
		{GeoIPDB{File: "/var/lib/geoip/GeoLite2-City.mmdb", Type: "GeoLite2-City"}, "GeoLite2-City.mmdb"},
		{GeoIPDB{Type: "GeoLite2-City"}, "GeoLite2-City (built in)"},
	} {
		if got := tc.db.Name(); got != tc.want {
			t.Errorf("%+v: Name = %q, want %q", tc.db, got, tc.want)
		}
	}
}

// withTimeline adds to st, at now, a build, a GeoIP City database from
// 2019 (stale) and a fresh ASN one, and a timeline with every level.
func withTimeline(st Status, now time.Time) Status {
	st.Build = BuildInfo{Version: "v1.4.0", Revision: "4654d1b", GoVersion: "go1.26.0", StartedAt: now.Add(-26 * time.Hour)}
	st.GeoIP = geoIPStatus([]geo.DBInfo{
		{File: "/var/lib/popdns/GeoLite2-City.mmdb", Kind: "City", Type: "GeoLite2-City", Built: time.Date(2019, 12, 24, 0, 0, 0, 0, time.UTC)},
		{File: "/var/lib/popdns/GeoLite2-ASN.mmdb", Kind: "ASN", Type: "GeoLite2-ASN", Built: now.Add(-3 * 24 * time.Hour)},
	}, now)
	st.Events = []events.Event{
		{At: now.Add(-2 * time.Minute), Kind: events.Reload, Level: events.Info, Subject: "example.com.yaml", Message: "zone example.com. loads again, serial 2026112202"},
		{At: now.Add(-5 * time.Minute), Kind: events.Override, Level: events.Warn, Subject: "gru", Message: "drain set by alice: maintenance <b>now</b>"},
		{At: now.Add(-9 * time.Minute), Kind: events.Health, Level: events.Error, Subject: "syd-web", Message: "down: refused: connection refused",
			Repeats: 2, Last: now.Add(-8 * time.Minute)},
		{At: now.Add(-12 * time.Minute), Kind: events.Reload, Level: events.Error, Subject: "example.com.yaml", Message: "failed, the last good version keeps serving: line 3: bad"},
	}
	return st
}

// TestStatusPageTimeline: the page names the build, warns loudly of a
// stale GeoIP database above everything else, lists the databases with
// their ages and the events newest first, coloured by level, with their
// text escaped.
func TestStatusPageTimeline(t *testing.T) {
	now := statusPageNow
	st := withTimeline(statusPageFixture(now), now)
	page := renderTestStatusPage(t, st)
	checkMapSVG(t, page)
	banner := `<p class="banner geoip-stale" role="alert">GeoIP database GeoLite2-City.mmdb was built 2019-12-24 (2,525 days ago): locations are out of date</p>`
	for _, want := range []string{
		banner,
		`popdns <b>v1.4.0</b></span><span class="fact">revision 4654d1b</span><span class="fact">go1.26.0</span><span class="fact">started <span title="2026-11-21 10:00:00 UTC">26h 0m ago</span>`,
		`<h2 id="timeline-title">Timeline <small>4 events, newest first</small></h2>`,
		`<tr class="ev-error"><td class="when" title="2026-11-22 11:51:00 UTC">9m ago</td><td><span class="lvl error">error</span></td><td>health</td><td class="name long">syd-web</td><td class="long">down: refused: connection refused <small class="repeats" title="last 2026-11-22 11:52:00 UTC">×3, last 8m ago</small></td></tr>`,
		`drain set by alice: maintenance &lt;b&gt;now&lt;/b&gt;`,
		`<td class="name long" title="/var/lib/popdns/GeoLite2-ASN.mmdb">GeoLite2-ASN.mmdb</td><td>ASN</td><td>GeoLite2-ASN</td><td class="when">2026-11-19</td><td class="num">3 days</td>`,
		`<span class="no">NO: older than 60 days, locations are out of date</span>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// The banner comes first in main, the events in their order.
	if i, j := strings.Index(page, banner), strings.Index(page, `id="map-title"`); i < 0 || j < i {
		t.Errorf("the stale banner (at %d) is not above the map (at %d)", i, j)
	}
	if n := strings.Count(page, "geoip-stale"); n != 1 {
		t.Errorf("%d stale banners, want 1 (the ASN database is fresh)", n)
	}
	last := -1
	timeline := page[strings.Index(page, `id="timeline-title"`):]
	for _, e := range st.Events {
		i := strings.Index(timeline, `<td class="name long">`+e.Subject+`</td><td class="long">`+e.Message[:10])
		if i < 0 || i < last {
			t.Errorf("event on %s at %d, after the one before it at %d", e.Subject, i, last)
		}
		last = max(i, last)
	}
	if strings.Contains(page, "<b>now</b>") {
		t.Error("an event's message is not escaped")
	}

	fresh := statusPageFixture(now)
	page = renderTestStatusPage(t, fresh)
	for _, bad := range []string{"geoip-stale", `class="build"`} {
		if strings.Contains(page, bad) {
			t.Errorf("a status without build, databases or events has %s", bad)
		}
	}
	for _, want := range []string{"No events yet.", "No GeoIP database"} {
		if !strings.Contains(page, want) {
			t.Errorf("a status without build, databases or events lacks %q", want)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 2535: "2,535", 1234567: "1,234,567", -2535: "-2,535"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
