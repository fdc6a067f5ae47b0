package status

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
