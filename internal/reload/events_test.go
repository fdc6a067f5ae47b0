package reload

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/internal/events"
	"github.com/popdns/popdns/internal/geodbgen"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// eventLine is how the tests compare events: kind, level, subject and
// message, without the time.
func eventLine(e events.Event) string {
	return fmt.Sprintf("%s %s %s: %s", e.Kind, e.Level, e.Subject, e.Message)
}

// TestReloadEvents: a zone file broken then fixed puts two events on the
// timeline, the failure with the error's first line and the file loading
// again; a reload that changes nothing puts none, and the same failure
// twice only one.
func TestReloadEvents(t *testing.T) {
	tr := newTestReloader(t)
	const file = "example.test.yaml"
	steps := []struct {
		name  string
		write string // the zone file's new text; "" leaves it
		want  []string
	}{
		{"nothing changed", "", nil},
		{"broken", "origin: example.test.\nrecords: [\n", []string{"reload error " + file + ": failed, the last good version keeps serving: "}},
		{"still broken, same error", "", nil},
		{"fixed", strings.Replace(testZone, "2026112201", "2026112202", 1), []string{"reload info " + file + ": zone example.test. loads again, serial 2026112202"}},
		{"edited", strings.Replace(testZone, "2026112201", "2026112203", 1), []string{"reload info " + file + ": zone example.test. reloaded, serial 2026112203"}},
	}
	seen := 0
	for _, st := range steps {
		if st.write != "" {
			writeFile(t, tr.dir, file, st.write)
			// A rewrite within the file system's time granularity must
			// still count as a change.
			bump := time.Now().Add(time.Duration(seen+1) * time.Second)
			if err := os.Chtimes(filepath.Join(tr.dir, file), bump, bump); err != nil {
				t.Fatal(err)
			}
		}
		tr.Reload("test")
		all := tr.events.List()
		got := all[:len(all)-seen]
		seen = len(all)
		if len(got) != len(st.want) {
			t.Fatalf("%s: new events %q, want %d like %q", st.name, lines(got), len(st.want), st.want)
		}
		for i, w := range st.want {
			if l := eventLine(got[i]); !strings.HasPrefix(l, w) {
				t.Errorf("%s: event %q, want it to start with %q", st.name, l, w)
			}
			if strings.Contains(got[i].Message, "\n") {
				t.Errorf("%s: event message has more than one line: %q", st.name, got[i].Message)
			}
		}
	}
}

func lines(evs []events.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, eventLine(e))
	}
	return out
}

// TestGeoIPReloadEvents: a database that fails records an error, a good
// one replacing it records its type and build date, and a warning, also
// in the log, when it is older than geo.StaleAge.
func TestGeoIPReloadEvents(t *testing.T) {
	tr := newTestReloader(t)
	city := filepath.Join(tr.dir, "GeoLite2-City.mmdb")
	old := time.Date(2019, 12, 24, 0, 0, 0, 0, time.UTC)
	writeGeoCity(t, city, old)
	cfg := tr.cfg
	cfg.GeoCity = city
	ev := events.New(0, nil)
	logs := &strings.Builder{}
	r := New(cfg, Deps{Load: func() (Config, error) { return cfg, nil }, DNS: tr.dns, Prober: fakeProber{},
		Locator: fakeLocator{}, Log: zerolog.New(logs), Metrics: prometheus.NewRegistry(), Events: ev})

	if err := os.WriteFile(city, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Reload("test")
	writeGeoCity(t, city, old)
	r.Reload("test")
	got := lines(ev.List())
	want := []string{
		"geoip warn " + city + ": GeoLite2-City built 2019-12-24 (",
		"geoip info " + city + ": replaced: GeoLite2-City built 2019-12-24",
		"reload info " + city + ": loads again",
		"geoip error " + city + ": failed, the last good version keeps serving: geo: ",
	}
	if len(got) != len(want) {
		t.Fatalf("events %q, want %d like %q", got, len(want), want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("event %d = %q, want it to start with %q", i, got[i], want[i])
		}
	}
	if !strings.Contains(got[0], "days ago): locations are out of date") {
		t.Errorf("stale event %q does not say how old", got[0])
	}
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "GeoIP database is older than 60 days") {
		t.Errorf("no warning in the log:\n%s", logs)
	}
}

func TestWarnOldGeoIP(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	infos := []geo.DBInfo{
		{File: "/geo/city.mmdb", Type: "GeoLite2-City", Built: now.Add(-geo.StaleAge - time.Hour)},
		{File: "/geo/asn.mmdb", Type: "GeoLite2-ASN", Built: now.Add(-geo.StaleAge)},
		{Type: "GeoLite2-City", Built: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	ev := events.New(0, nil)
	logs := &strings.Builder{}
	WarnOldGeoIP(infos, now, zerolog.New(logs), ev)
	got := lines(ev.List())
	want := []string{
		"geoip warn GeoLite2-City (built in): GeoLite2-City built 2025-01-01 (700 days ago): locations are out of date",
		"geoip warn /geo/city.mmdb: GeoLite2-City built 2026-10-02 (60 days ago): locations are out of date",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := strings.Count(logs.String(), "older than 60 days"); n != 2 {
		t.Errorf("%d warnings logged, want 2:\n%s", n, logs)
	}
}

// writeGeoCity writes the test City database, built at built, to path.
func writeGeoCity(t *testing.T, path string, built time.Time) {
	t.Helper()
	data, err := os.ReadFile("../../testdata/geo/networks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src, err := geodbgen.Parse("networks.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	src.BuildEpoch = built.Unix()
	db, err := src.CityDB()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, db, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestKeyEventOnTimeline: the reload a DNSSEC key's timing event asks for
// says so on the timeline; another reload does not.
func TestKeyEventOnTimeline(t *testing.T) {
	tr := newTestReloader(t)
	tr.Reload("SIGHUP")
	if got := lines(tr.events.List()); len(got) != 0 {
		t.Fatalf("a reload that changed nothing recorded %q", got)
	}
	tr.Reload(keyEventWhy)
	got := lines(tr.events.List())
	if len(got) != 1 || !strings.HasPrefix(got[0], "keys info : "+keyEventWhy) {
		t.Errorf("events %q, want one keys event", got)
	}
}
