package reload

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/internal/events"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// What cmd/popdns wires in.
var (
	_ DNS     = (*dnsserver.Server)(nil)
	_ Prober  = (*healthprobe.Prober)(nil)
	_ Locator = (*geo.Locator)(nil)
)

type fakeDNS struct {
	snap atomic.Pointer[zones.Snapshot]
}

func (f *fakeDNS) Zones() *zones.Snapshot     { return f.snap.Load() }
func (f *fakeDNS) SetZones(s *zones.Snapshot) { f.snap.Store(s) }

type fakeProber struct{ refuse error }

func (p fakeProber) SetTargets([]healthprobe.Target) error { return p.refuse }

type fakeLocator struct{}

func (fakeLocator) Swap(*geo.DB) {}

const testZone = `origin: example.test.
records:
  "@":
    - soa: ns1 hostmaster 2026112201 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: 192.0.2.53
`

type testReloader struct {
	*Reloader
	dir     string // the zones directory
	metrics *prometheus.Registry
	logs    *dnstest.LogBuffer
	events  *events.Log
}

// newTestReloader loads the zones in a fresh directory holding testZone
// and returns their reloader. Nothing runs until the test calls Run or
// Reload, so every reload is the test's own.
func newTestReloader(t *testing.T) *testReloader {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "example.test.yaml", testZone)
	inv, err := pops.New()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Source: filepath.Join(dir, "popdns.yaml"), ZonesDir: dir, ZonesFS: os.DirFS(dir), ZonesOnDisk: true,
		PoPs: inv, LogLevel: zerolog.GlobalLevel()}
	snap, err := zones.Load(cfg.ZonesFS, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	dns := &fakeDNS{}
	dns.SetZones(snap)
	tr := &testReloader{dir: dir, metrics: prometheus.NewRegistry(), logs: &dnstest.LogBuffer{}, events: events.New(0, nil)}
	tr.Reloader = New(cfg, Deps{Load: func() (Config, error) { return cfg, nil }, DNS: dns, Prober: fakeProber{},
		Locator: fakeLocator{}, Log: zerolog.New(tr.logs), Metrics: tr.metrics, Events: tr.events})
	return tr
}

func writeFile(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// counter reads the series of popdns_reload_total with labels.
func (tr *testReloader) counter(t *testing.T, labels map[string]string) float64 {
	t.Helper()
	families, err := tr.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "popdns_reload_total" {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// seriesOf counts the series of popdns_reload_total{what,result}.
func seriesOf(t *testing.T, tr *testReloader, what, result string) int {
	t.Helper()
	families, err := tr.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		if f.GetName() != "popdns_reload_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["what"] == what && got["result"] == result {
				n++
			}
		}
	}
	return n
}

// TestReloadCountsAttempts: popdns_reload_total counts reload attempts,
// one per reload for zones however many files failed (it counted one
// per bad file plus one).
func TestReloadCountsAttempts(t *testing.T) {
	tr := newTestReloader(t)
	zonesErr := map[string]string{"what": "zones", "result": "error"}
	zonesOK := map[string]string{"what": "zones", "result": "ok"}
	for _, tc := range []struct {
		name     string
		bad      []string // zone files to break
		labels   map[string]string
		other    map[string]string // must not move
		fixFirst bool
	}{
		{"one bad file", []string{"a.yaml"}, zonesErr, zonesOK, false},
		{"three bad files", []string{"a.yaml", "b.yaml", "c.yaml"}, zonesErr, zonesOK, false},
		{"every file good", nil, zonesOK, zonesErr, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range tc.bad {
				writeFile(t, tr.dir, f, "origin: "+f+".test.\n")
			}
			if tc.fixFirst {
				for _, f := range []string{"a.yaml", "b.yaml", "c.yaml"} {
					os.Remove(filepath.Join(tr.dir, f))
				}
			}
			if tc.name == "one bad file" {
				// Every kind and result exists before anything counted.
				for _, what := range reloadKinds {
					for _, result := range []string{"ok", "error"} {
						if got := seriesOf(t, tr, what, result); got != 1 {
							t.Errorf("popdns_reload_total{what=%s,result=%s}: %d series, want 1", what, result, got)
						}
					}
				}
			}
			n0, other0 := tr.counter(t, tc.labels), tr.counter(t, tc.other)
			tr.Reload("test")
			n1, other1 := tr.counter(t, tc.labels), tr.counter(t, tc.other)
			if n1-n0 != 1 || other1 != other0 {
				t.Errorf("popdns_reload_total%v went up by %v and %v by %v in one reload, want 1 and 0",
					tc.labels, n1-n0, tc.other, other1-other0)
			}
			if got := len(tr.dns.Zones().FileErrors()); got != len(tc.bad) {
				t.Errorf("%d files failed, want %d", got, len(tc.bad))
			}
		})
	}
}

// TestRunStops: Run is ready once it watches the zones directory and has
// reloaded once, reloads on SIGHUP, and returns when its context ends.
func TestRunStops(t *testing.T) {
	tr := newTestReloader(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hup := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx, hup) }()
	dnstest.Receive(t, tr.Ready(), 10*time.Second, "the reloader to be ready")
	if !strings.Contains(tr.logs.String(), `"why":"watching"`) {
		t.Errorf("no reload once the watches were in place:\n%s", tr.logs.String())
	}
	hup <- os.Interrupt
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(tr.logs.String(), `"why":"SIGHUP"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no reload after SIGHUP:\n%s", tr.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := dnstest.Receive(t, done, 10*time.Second, "Run to return"); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestRestartSettingsWarn: a reread configuration that changes a setting
// of Config.Restart applies, and the log names each changed setting once;
// an unchanged one is not named.
func TestRestartSettingsWarn(t *testing.T) {
	base := []Setting{{"listen", `["127.0.0.1:53"]`}, {"http", "127.0.0.1:8053"}}
	for _, tc := range []struct {
		name string
		next []Setting
		want []string // settings warned about
	}{
		{"unchanged", base, nil},
		{"listen changed", []Setting{{"listen", `["127.0.0.1:5353"]`}, {"http", "127.0.0.1:8053"}}, []string{"listen"}},
		{"both changed", []Setting{{"listen", `[]`}, {"http", ""}}, []string{"listen", "http"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestReloader(t)
			tr.cfg.Restart = base
			next := tr.cfg
			next.Restart = tc.next
			tr.load = func() (Config, error) { return next, nil }
			tr.Reload("test")
			logs := tr.logs.String()
			for _, s := range base {
				n := strings.Count(logs, `"setting":"`+s.Name+`"`)
				want := 0
				if slices.Contains(tc.want, s.Name) {
					want = 1
				}
				if n != want {
					t.Errorf("%s warned about %d times, want %d:\n%s", s.Name, n, want, logs)
				}
			}
			if got := tr.counter(t, map[string]string{"what": "config", "result": "ok"}); got != 1 {
				t.Errorf("config reloads ok: %v, want 1", got)
			}
		})
	}
}

// TestGraceTimer: a zone file gone from the directory arms one timer for
// the end of its grace period; when it fires, Run reloads and the zone
// goes. A timer still pending when Run's context ends is stopped.
func TestGraceTimer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		expire bool // let the grace period end before stopping Run
	}{
		{"grace period ends", true},
		{"Run stops first", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestReloader(t)
			clock := dnstest.NewClock(time.Unix(1_800_000_000, 0))
			tr.clock = clock
			tr.cfg.ZoneMissingGrace = 30 * time.Second
			tr.load = func() (Config, error) { return tr.cfg, nil }
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			done := make(chan error, 1)
			go func() { done <- tr.Run(ctx, nil) }()
			dnstest.Receive(t, tr.Ready(), 10*time.Second, "the reloader to be ready")

			if err := os.Remove(filepath.Join(tr.dir, "example.test.yaml")); err != nil {
				t.Fatal(err)
			}
			tr.Reload("test")
			if n := len(tr.dns.Zones().Zones()); n != 1 {
				t.Fatalf("%d zones right after the file went, want the last good one", n)
			}
			if n := len(clock.Pending()); n != 1 {
				t.Fatalf("%d timers pending, want one for the end of the grace period", n)
			}
			if tc.expire {
				clock.Advance(30 * time.Second)
				deadline := time.Now().Add(10 * time.Second)
				for len(tr.dns.Zones().Zones()) != 0 {
					if time.Now().After(deadline) {
						t.Fatalf("the zone still serves after its grace period:\n%s", tr.logs.String())
					}
					time.Sleep(5 * time.Millisecond)
				}
				if !strings.Contains(tr.logs.String(), `"why":"a missing file's grace period ended"`) {
					t.Errorf("the reload does not say why:\n%s", tr.logs.String())
				}
			}
			cancel()
			if err := dnstest.Receive(t, done, 10*time.Second, "Run to return"); err != nil {
				t.Errorf("Run: %v", err)
			}
			if n := len(clock.Pending()); n != 0 {
				t.Errorf("%d timers pending after Run returned, want none", n)
			}
		})
	}
}

// TestProberRefusalKeepsZones: when the prober refuses the new probes, the
// new zones are not served (their targets would count as healthy with no
// probe running): the last good snapshot stays, and /status and the
// metric say why.
func TestProberRefusalKeepsZones(t *testing.T) {
	tr := newTestReloader(t)
	dns := tr.dns
	before := dns.Zones()
	tr.prober = fakeProber{refuse: errors.New("target www: bad probe")}
	writeFile(t, tr.dir, "example.test.yaml", strings.Replace(testZone, "192.0.2.1", "192.0.2.99", 1))
	tr.Reload("test")
	if dns.Zones() != before {
		t.Errorf("the zones were swapped although the prober refused their probes")
	}
	if got := tr.counter(t, map[string]string{"what": "probes", "result": "error"}); got != 1 {
		t.Errorf("popdns_reload_total{what=probes,result=error} = %v, want 1", got)
	}
	if errs := tr.FileErrors(); !strings.Contains(errs[tr.cfg.Source], "bad probe") {
		t.Errorf("file errors %v, want the prober's refusal under the configuration", errs)
	}
	tr.prober = fakeProber{}
	tr.Reload("test")
	if dns.Zones() == before {
		t.Errorf("the zones were not swapped once the prober took their probes")
	}
}
