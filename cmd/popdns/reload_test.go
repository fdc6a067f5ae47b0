package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/internal/geodbgen"
	"github.com/popdns/popdns/internal/reload"
	"github.com/popdns/popdns/internal/status"
	"github.com/rs/zerolog"
)

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runningApp is popdns started in-process from a config file, serving
// until the test ends, with its watcher and reloader running.
type runningApp struct {
	*app
	logs *dnstest.LogBuffer
	addr string
	stop func() // stops it and waits, once; the test's cleanup calls it too
}

func startApp(t testing.TB, configFile string) *runningApp {
	t.Helper()
	return startAppWith(t, configFile, nil, nil)
}

// startAppWith is startApp with the reloader's clock (nil: the system's)
// and a change to the configuration it starts with (nil: none).
func startAppWith(t testing.TB, configFile string, clock reload.Clock, change func(*config)) *runningApp {
	t.Helper()
	args := []string{"-config", configFile, "-listen", "127.0.0.1:0", "-http", "off"}
	cfg, err := parseServeFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(cfg)
	}
	logs := &dnstest.LogBuffer{}
	log := zerolog.New(logs)
	a, err := start(cfg, args, log, clock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx) }()
	r := &runningApp{app: a, logs: logs, addr: a.dns.Addrs()[0]}
	r.stop = sync.OnceFunc(func() {
		cancel()
		if err := dnstest.Receive(t, done, 10*time.Second, "serve to return"); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(r.stop)
	// Changes made before the watcher is ready would go unseen. A first
	// load of a million records takes seconds, hence the long wait.
	r.waitLogFor(t, "popdns serving", time.Minute)
	return r
}

// answer asks for name A (with an ECS subnet when given) and returns the
// first address, or the rcode's name when there is none.
func (r *runningApp) answer(t *testing.T, name, subnet string) string {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	if subnet != "" {
		q.SetEdns0(1232, false)
		p := mustPrefix(t, subnet)
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
			SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
	}
	resp, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, r.addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return dns.RcodeToString[resp.Rcode]
}

// eventually polls until the answer is want, for at most 5 s: the watcher
// debounces for 200 ms, so a change shows up well within that.
func (r *runningApp) eventually(t *testing.T, name, subnet, want string) {
	t.Helper()
	r.eventuallyWithin(t, 5*time.Second, name, subnet, want)
}

// eventuallyWithin is eventually with a wait of its own, for changes that
// wait on something slower than a reload (a NATS leader election).
func (r *runningApp) eventuallyWithin(t *testing.T, wait time.Duration, name, subnet, want string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got := r.answer(t, name, subnet)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: answer %s, want %s within %s; logs:\n%s", name, got, want, wait, r.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// handler is the app's HTTP endpoint, served or not, with the admin API
// when admin is not nil.
func (a *app) handler(admin *status.Admin) http.Handler {
	return httpHandler(a.built, a.status, admin, a.overrides, status.Access{}, status.HTTPConfig{}, zerolog.Nop())
}

// serverHandler is the HTTP endpoint of a server that is not started, as
// a fresh start would serve it before its first probe round.
func serverHandler(srv *server) http.Handler {
	return httpHandler(srv, status.New(status.Deps{Server: srv.dns, Health: srv.prober}), nil, nil, status.Access{},
		status.HTTPConfig{}, zerolog.Nop())
}

// counterValue reads one series of a counter from the app's registry.
func counterValue(t *testing.T, r *runningApp, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := r.built.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
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

// waitLog polls the log until it contains s (5 s at most).
func (r *runningApp) waitLog(t testing.TB, s string) { r.waitLogFor(t, s, 5*time.Second) }

func (r *runningApp) waitLogFor(t testing.TB, s string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(r.logs.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", s, r.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func zoneWithAddr(addr string) string {
	return strings.Replace(staticZone, "    - a: 192.0.2.10\n", "    - a: "+addr+"\n", 1)
}

func TestReloadFollowsZoneFiles(t *testing.T) {
	dir := t.TempDir()
	zone := writeFile(t, dir, "zones/example.test.yaml", zoneWithAddr("192.0.2.10"))
	r := startApp(t, writeFile(t, dir, "popdns.yaml", "zones: zones\nzone_missing_grace: 1s\n"))
	r.eventually(t, "www.example.test.", "", "192.0.2.10")

	for _, tc := range []struct {
		name   string
		addr   string
		change func(data string) error
	}{
		{"truncate and write", "192.0.2.11", func(d string) error { return os.WriteFile(zone, []byte(d), 0o644) }},
		{"write in place", "192.0.2.12", func(d string) error {
			f, err := os.OpenFile(zone, os.O_WRONLY, 0) // same length: overwrite the bytes
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte(d), 0)
			return err
		}},
		{"temporary file renamed over", "192.0.2.13", func(d string) error {
			tmp := filepath.Join(filepath.Dir(zone), ".tmp-zone")
			if err := os.WriteFile(tmp, []byte(d), 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, zone)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.change(zoneWithAddr(tc.addr)); err != nil {
				t.Fatal(err)
			}
			r.eventually(t, "www.example.test.", "", tc.addr)
		})
	}

	t.Run("a broken version keeps the last good one serving", func(t *testing.T) {
		if err := os.WriteFile(zone, []byte(strings.Replace(zoneWithAddr("192.0.2.14"), "192.0.2.14", "192.0.2.999", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		r.waitLog(t, `reload failed; what was serving keeps serving`)
		if n := counterValue(t, r, "popdns_reload_total", map[string]string{"what": "zones", "result": "error"}); n < 1 {
			t.Errorf("popdns_reload_total{what=zones,result=error} = %v after a broken edit", n)
		}
		if got := r.answer(t, "www.example.test.", ""); got != "192.0.2.13" {
			t.Errorf("answer %s after a broken edit, want the last good 192.0.2.13", got)
		}
		st := status.Build(r.dns.Zones(), nil, nil, time.Now)
		if !strings.Contains(st.Errors["example.test.yaml"], `example.test.yaml:13: records.www[0].a: bad A data: "192.0.2.999"`) ||
			len(st.Zones) != 1 || st.Zones[0].Error == "" {
			t.Errorf("status %+v", st)
		}
		if err := os.WriteFile(zone, []byte(zoneWithAddr("192.0.2.15")), 0o644); err != nil {
			t.Fatal(err)
		}
		r.eventually(t, "www.example.test.", "", "192.0.2.15")
		r.waitLog(t, "file loads again")
	})

	t.Run("a new file serves its zone, a removed one stops after the grace period", func(t *testing.T) {
		other := writeFile(t, dir, "zones/other.test.yaml", strings.ReplaceAll(zoneWithAddr("198.51.100.7"), "example.test.", "other.test."))
		r.eventually(t, "www.other.test.", "", "198.51.100.7")
		if err := os.Remove(other); err != nil {
			t.Fatal(err)
		}
		r.eventually(t, "www.other.test.", "", "REFUSED")
		r.waitLog(t, "zone removed")
	})
}

const geoConfig = `zones: zones
geoip: { city: city.mmdb }
pops:
  fra: { lat: 50.11, lon: 8.68 }
  iad: { lat: 38.95, lon: -77.45 }
`

func TestReloadConfigAndGeoIP(t *testing.T) {
	dir := t.TempDir()
	city, err := os.ReadFile("../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "city.mmdb", string(city))
	writeFile(t, dir, "zones/geo.test.yaml", geoZone)
	cfgFile := writeFile(t, dir, "popdns.yaml", geoConfig)
	r := startApp(t, cfgFile)
	// 192.0.2.64/26 is Ashburn in the test database: iad.
	r.eventually(t, "www.geo.test.", "192.0.2.64/26", "192.0.2.2")

	t.Run("PoP state from the configuration applies live", func(t *testing.T) {
		writeFile(t, dir, "popdns.yaml", strings.Replace(geoConfig, "lon: -77.45 }", "lon: -77.45, state: drain }", 1))
		r.eventually(t, "www.geo.test.", "192.0.2.64/26", "192.0.2.1")
		writeFile(t, dir, "popdns.yaml", geoConfig)
		r.eventually(t, "www.geo.test.", "192.0.2.64/26", "192.0.2.2")
	})
	t.Run("a broken configuration keeps the running one", func(t *testing.T) {
		writeFile(t, dir, "popdns.yaml", geoConfig+"lisen: nope\n")
		r.waitLog(t, "lisen: unknown key")
		if got := r.answer(t, "www.geo.test.", "192.0.2.64/26"); got != "192.0.2.2" {
			t.Errorf("answer %s with a broken configuration", got)
		}
		writeFile(t, dir, "popdns.yaml", geoConfig)
	})
	t.Run("the log level applies live", func(t *testing.T) {
		writeFile(t, dir, "popdns.yaml", geoConfig+"log: { level: debug }\n")
		deadline := time.Now().Add(5 * time.Second)
		for zerolog.GlobalLevel() != zerolog.DebugLevel {
			if time.Now().After(deadline) {
				t.Fatalf("log level %v, want debug", zerolog.GlobalLevel())
			}
			time.Sleep(20 * time.Millisecond)
		}
		writeFile(t, dir, "popdns.yaml", geoConfig)
		r.waitLog(t, `"generation":`) // settle before the next step
	})
	t.Run("settings that need a restart say so", func(t *testing.T) {
		// listen comes from -listen here, which the file cannot change;
		// nsid is one of the DNS settings that apply after a restart.
		writeFile(t, dir, "popdns.yaml", geoConfig+"nsid: fra-2\n")
		r.waitLog(t, `"setting":"nsid"`)
		writeFile(t, dir, "popdns.yaml", geoConfig)
	})
	t.Run("a corrupt database is refused, the old one keeps serving", func(t *testing.T) {
		tmp := filepath.Join(dir, "city.mmdb.tmp")
		writeFile(t, dir, "city.mmdb.tmp", "not a database")
		if err := os.Rename(tmp, filepath.Join(dir, "city.mmdb")); err != nil {
			t.Fatal(err)
		}
		r.waitLog(t, `"what":"geoip"`)
		if got := r.answer(t, "www.geo.test.", "192.0.2.64/26"); got != "192.0.2.2" {
			t.Errorf("answer %s after a corrupt database", got)
		}
	})
	t.Run("a new database replaces the old one", func(t *testing.T) {
		// Move 192.0.2.64/26 from Ashburn to Frankfurt.
		src, err := os.ReadFile("../../testdata/geo/networks.yaml")
		if err != nil {
			t.Fatal(err)
		}
		moved := strings.Replace(string(src), "{network: 192.0.2.64/26, place: iad}", "{network: 192.0.2.64/26, place: fra}", 1)
		newCity, _, err := geodbgen.Generate("networks.yaml", []byte(moved))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, "city.mmdb.tmp", string(newCity))
		if err := os.Rename(filepath.Join(dir, "city.mmdb.tmp"), filepath.Join(dir, "city.mmdb")); err != nil {
			t.Fatal(err)
		}
		r.eventually(t, "www.geo.test.", "192.0.2.64/26", "192.0.2.1")
		r.waitLog(t, "GeoIP databases replaced")
	})
}

// TestStatusEndpoint checks /status through the HTTP handler.
func TestStatusEndpoint(t *testing.T) {
	dir := t.TempDir()
	writeStaticZone(t, dir)
	writeFile(t, dir, "zones/bad.yaml", "origin: bad.test.\n")
	cfg, err := loadConfigFile(writeFile(t, dir, "popdns.yaml", "zones: zones\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newServer(cfg, zerolog.Nop()); err == nil {
		t.Fatal("a broken zone at startup must fail the start")
	}
	os.Remove(filepath.Join(dir, "zones/bad.yaml"))
	srv, err := newServer(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	rec := httptest.NewRecorder()
	serverHandler(srv).ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	var st status.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || len(st.Zones) != 1 || st.Zones[0].Serial != 2026112201 || st.Generation != 1 {
		t.Errorf("status %s (%v)", rec.Body.String(), err)
	}
}

// TestReloadConfigMapLayout serves zones from a directory laid out as
// Kubernetes mounts a ConfigMap (name -> ..data/name, ..data -> a
// timestamped directory) and swaps ..data the way the kubelet does.
func TestReloadConfigMapLayout(t *testing.T) {
	dir := t.TempDir()
	zonesDir := filepath.Join(dir, "zones")
	version := func(name, addr string) {
		writeFile(t, zonesDir, filepath.Join(name, "example.test.yaml"), zoneWithAddr(addr))
	}
	version("..2026_11_22_01", "192.0.2.31")
	if err := os.Symlink("..2026_11_22_01", filepath.Join(zonesDir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "example.test.yaml"), filepath.Join(zonesDir, "example.test.yaml")); err != nil {
		t.Fatal(err)
	}
	r := startApp(t, writeFile(t, dir, "popdns.yaml", "zones: zones\n"))
	r.eventually(t, "www.example.test.", "", "192.0.2.31")

	version("..2026_11_22_02", "192.0.2.32")
	if err := os.Symlink("..2026_11_22_02", filepath.Join(zonesDir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(zonesDir, "..data_tmp"), filepath.Join(zonesDir, "..data")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(zonesDir, "..2026_11_22_01"))
	r.eventually(t, "www.example.test.", "", "192.0.2.32")
}

// TestAutoSerialsSurviveRestart: with a state directory, a zone with
// `serial: auto` never gets a lower serial after a restart, even when its
// file changed twice in one second or its modification time went back.
func TestAutoSerialsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	cfgFile := writeFile(t, dir, "popdns.yaml", "zones: zones\nstate_dir: state\n")
	past := time.Unix(1_800_000_000, 0)
	write := func(addr string) {
		t.Helper()
		zone := writeFile(t, dir, "zones/example.test.yaml",
			strings.Replace(zoneWithAddr(addr), "soa: ns1 hostmaster 2026112201 7200 3600 1209600 300", "soa: ns1 hostmaster auto 7200 3600 1209600 300", 1))
		if err := os.Chtimes(zone, past, past); err != nil { // the same second every time
			t.Fatal(err)
		}
	}
	serial := func(r *runningApp) uint32 {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion("example.test.", dns.TypeSOA)
		resp, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, r.addr)
		if err != nil || len(resp.Answer) != 1 {
			t.Fatalf("SOA: %v %v", resp, err)
		}
		return resp.Answer[0].(*dns.SOA).Serial
	}
	write("192.0.2.41")
	var before uint32
	t.Run("first run", func(t *testing.T) {
		r := startApp(t, cfgFile)
		first := serial(r)
		write("192.0.2.42")
		r.eventually(t, "www.example.test.", "", "192.0.2.42")
		before = serial(r)
		if before != first+1 {
			t.Fatalf("serial %d after a change in the same second, want %d", before, first+1)
		}
	})
	if _, err := os.Stat(filepath.Join(dir, "state", reload.SerialsFile)); err != nil {
		t.Fatalf("no remembered serials: %v", err)
	}
	t.Run("after a restart", func(t *testing.T) {
		r := startApp(t, cfgFile)
		if got := serial(r); got != before {
			t.Errorf("unchanged zone has serial %d after a restart, want %d", got, before)
		}
		write("192.0.2.43")
		r.eventually(t, "www.example.test.", "", "192.0.2.43")
		if got := serial(r); got <= before {
			t.Errorf("changed zone has serial %d after a restart, want above %d", got, before)
		}
	})
}

// TestMissingZoneFileGraceClock removes a zone file under a fake clock:
// the zone serves on, the reloader sets a timer for the end of the grace
// period, and when the clock gets there the zone goes without any file
// event.
func TestMissingZoneFileGraceClock(t *testing.T) {
	dir := t.TempDir()
	zone := writeFile(t, dir, "zones/example.test.yaml", zoneWithAddr("192.0.2.10"))
	clock := dnstest.NewClock(time.Unix(1_800_000_000, 0))
	r := startAppWith(t, writeFile(t, dir, "popdns.yaml", "zones: zones\nzone_missing_grace: 30s\n"), clock, nil)
	if err := os.Remove(zone); err != nil {
		t.Fatal(err)
	}
	r.reloader.Reload("test")
	if got := r.answer(t, "www.example.test.", ""); got != "192.0.2.10" {
		t.Fatalf("answer %s right after the file went, want the last good 192.0.2.10", got)
	}
	want := clock.Now().Add(30 * time.Second)
	if p := clock.Pending(); len(p) != 1 || !p[0].Equal(want) {
		t.Fatalf("timers %v, want one at the end of the grace period, %s", p, want)
	}
	st := r.getStatus(t)
	if len(st.Zones) != 1 || !strings.Contains(st.Errors["example.test.yaml"], "missing from the directory") {
		t.Errorf("/status while the file is missing: zones %+v, errors %v", st.Zones, st.Errors)
	}
	clock.Advance(30*time.Second - time.Nanosecond)
	if got := r.answer(t, "www.example.test.", ""); got != "192.0.2.10" {
		t.Fatalf("answer %s just before the grace period ends", got)
	}
	clock.Advance(time.Nanosecond)
	r.eventually(t, "www.example.test.", "", "REFUSED")
	r.waitLog(t, `"why":"a missing file's grace period ended"`)
	r.waitLog(t, "zone removed")
	if p := clock.Pending(); len(p) != 0 {
		t.Errorf("timers left after the zone went: %v", p)
	}
}

// TestMissingZoneFileUnderLoad removes a zone file and puts it back, the
// way `rm x.yaml; sleep 0.3; cp good.yaml x.yaml` does, while a client
// queries it without pause: not one REFUSED. Removed for longer than the
// grace period, the zone goes, no sooner.
func TestMissingZoneFileUnderLoad(t *testing.T) {
	const grace = 2 * time.Second
	dir := t.TempDir()
	good := zoneWithAddr("192.0.2.10")
	zone := writeFile(t, dir, "zones/example.test.yaml", good)
	r := startApp(t, writeFile(t, dir, "popdns.yaml", fmt.Sprintf("zones: zones\nzone_missing_grace: %s\n", grace)))

	// load queries until stop is closed and counts the answers.
	load := func(stop <-chan struct{}) <-chan map[string]int {
		out := make(chan map[string]int, 1)
		go func() {
			counts := map[string]int{}
			c := &dns.Client{Timeout: 2 * time.Second}
			q := new(dns.Msg)
			q.SetQuestion("www.example.test.", dns.TypeA)
			for {
				select {
				case <-stop:
					out <- counts
					return
				default:
				}
				resp, _, err := c.Exchange(q, r.addr)
				switch {
				case err != nil:
					counts["error"]++
				default:
					counts[dns.RcodeToString[resp.Rcode]]++
				}
			}
		}()
		return out
	}
	result := func(stop chan struct{}, counts <-chan map[string]int) map[string]int {
		close(stop)
		select {
		case c := <-counts:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("the query loop did not stop")
		}
		return nil
	}

	stop := make(chan struct{})
	counts := load(stop)
	if err := os.Remove(zone); err != nil {
		t.Fatal(err)
	}
	// A reload while the file is gone, as the 0.3 s gap gives one.
	r.waitLog(t, "zone file missing")
	writeFile(t, dir, "zones/example.test.yaml", good)
	r.waitLog(t, "file loads again")
	c := result(stop, counts)
	t.Logf("rm, reload, put back: %v", c)
	if c["REFUSED"] != 0 || c["error"] != 0 || c["NOERROR"] == 0 {
		t.Errorf("answers while the file was briefly missing: %v; want NOERROR only", c)
	}

	removed := time.Now()
	if err := os.Remove(zone); err != nil {
		t.Fatal(err)
	}
	r.eventually(t, "www.example.test.", "", "REFUSED")
	if took := time.Since(removed); took < grace {
		t.Errorf("the zone went %s after its file, before the grace period of %s", took, grace)
	}
}

// reloads counts the reloads the log reports so far.
func (r *runningApp) reloads() int { return strings.Count(r.logs.String(), `"message":"reloaded"`) }

// waitReloads waits until the log reports more than n reloads.
func (r *runningApp) waitReloads(t *testing.T, n int) {
	t.Helper()
	waitFor(t, 5*time.Second, func() bool { return r.reloads() > n }, "a reload")
}

// TestConfigRemovingPoPInUseRefused removes fra from the configuration
// while geo.test still names it and fra's health server is down. Applied,
// the zone would fail to reload and keep serving its last good version,
// fra's probe would stop and fra would count as healthy again: the
// Frankfurt client would go back to a dead PoP. The configuration is
// refused whole instead, with the zone file and line that use fra.
func TestConfigRemovingPoPInUseRefused(t *testing.T) {
	r, servers := startProbedApp(t, "")
	dnstest.Receive(t, r.status.ProbesSettled(), 10*time.Second, "the first probe round to settle")
	servers["fra"].stop()
	r.waitAnswer(t, "192.0.2.15", 10*time.Second) // lhr, fra's probe down
	cfgFile := r.cfg.source
	data, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	withoutFra := regexp.MustCompile(`(?m)^  fra: .*\n`).ReplaceAllString(string(data), "")
	if withoutFra == string(data) {
		t.Fatal("config edit did not apply")
	}
	fraProbe := r.dns.Zones().PoPs().Get("fra").Probe
	n := r.reloads()
	writeFile(t, filepath.Dir(cfgFile), filepath.Base(cfgFile), withoutFra)
	r.waitReloads(t, n)
	// Long enough for the old behaviour's probe removal to show.
	for range 5 {
		if got := r.answer(t, "www.geo.test.", "192.0.2.0/26"); got != "192.0.2.15" {
			t.Fatalf("Frankfurt client answered %s after fra left the configuration, want lhr (fra is down)", got)
		}
		time.Sleep(e2eInterval)
	}
	if res, ok := r.built.prober.Status().Result(fraProbe); !ok || res.Healthy {
		t.Errorf("fra's probe %s: %+v (running %t), want it running and unhealthy", fraProbe, res, ok)
	}
	st := r.getStatus(t)
	var fra *status.PoP
	for i := range st.PoPs {
		if st.PoPs[i].Name == "fra" {
			fra = &st.PoPs[i]
		}
	}
	if fra == nil || fra.Healthy || fra.Up {
		t.Errorf("fra in /status: %+v, want listed and unhealthy", fra)
	}
	wantErr := filepath.Join(r.cfg.zonesDir, "geo.test.yaml") + `:11: geo.targets.fra: the geo record of www.geo.test. answers with PoP "fra"`
	if e := st.Errors[cfgFile]; !strings.Contains(e, "refused") || !strings.Contains(e, wantErr) {
		t.Errorf("/status error of %s: %q, want the refusal naming %s", cfgFile, e, wantErr)
	}
	r.waitLog(t, `"failed":["config"]`)

	// The zone stops naming fra, then the configuration applies.
	zoneFile := filepath.Join(r.cfg.zonesDir, "geo.test.yaml")
	zone, err := os.ReadFile(zoneFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, r.cfg.zonesDir, "geo.test.yaml", strings.Replace(string(zone), "          fra: { a: 192.0.2.10 }\n", "", 1))
	waitFor(t, 5*time.Second, func() bool { return r.dns.Zones().PoPs().Get("fra") == nil }, "the configuration without fra to apply")
	waitFor(t, 5*time.Second, func() bool {
		_, ok := r.built.prober.Status().Result(fraProbe)
		return !ok && r.getStatus(t).Errors[cfgFile] == ""
	}, "fra's probe to stop and the error to clear")
}

// gateFS is a zones directory whose permissions a test takes away: as
// root, chmod alone does not stop popdns reading. deny is "" (nothing
// denied), "." (the directory and all in it) or a file name.
type gateFS struct {
	fs.FS
	deny *atomic.Pointer[string]
}

func (g gateFS) Open(name string) (fs.File, error) {
	if d := g.deny.Load(); d != nil && (*d == "." || *d == name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return g.FS.Open(name)
}

// TestStatusShowsFileErrors breaks each kind of file popdns reads, then
// fixes it: until the fix loads, /status lists the file with its error
// and the status page shows it. A permission fix, which makes no event
// but a chmod, is noticed too.
func TestStatusShowsFileErrors(t *testing.T) {
	dir := t.TempDir()
	city, err := os.ReadFile("../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	cityFile := writeFile(t, dir, "city.mmdb", string(city))
	asn, err := os.ReadFile("../../testdata/geo/asn.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	asnFile := writeFile(t, dir, "asn.mmdb", string(asn))
	// The zones directory is read through gateFS, from the start: a
	// reload keeps the running configuration's.
	var deny atomic.Pointer[string]
	var zonesDir string
	gate := func(c *config) { c.zonesFS = gateFS{FS: os.DirFS(zonesDir), deny: &deny} }
	config := strings.Replace(geoConfig, "geoip: { city: city.mmdb }", "geoip: { city: city.mmdb, asn: asn.mmdb }", 1)
	zonesDir = filepath.Join(dir, "zones")
	writeFile(t, zonesDir, "geo.test.yaml", geoZone)
	writeFile(t, zonesDir, "rtt.csv", "192.0.2.0/24,fra,10\n")
	cfgFile := writeFile(t, dir, "popdns.yaml", config)
	r := startAppWith(t, cfgFile, nil, gate)
	setDeny := func(name string) { deny.Store(&name) }
	replace := func(name, data string) { // atomically, as geoipupdate does
		writeFile(t, dir, name+".tmp", data)
		if err := os.Rename(filepath.Join(dir, name+".tmp"), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	chmod := func(path string, mode os.FileMode) {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name       string
		file       string // the key in /status's errors
		wantErr    string
		breakIt    func()
		fix        func()
		wantFailed string // in the reload log line
	}{
		{"configuration", cfgFile, "lisen: unknown key",
			func() { writeFile(t, dir, "popdns.yaml", config+"lisen: nope\n") },
			func() { writeFile(t, dir, "popdns.yaml", config) }, "config"},
		{"zone file", "geo.test.yaml", "geo.test.yaml:10: records.www[0].geo.targetz",
			func() { writeFile(t, zonesDir, "geo.test.yaml", strings.Replace(geoZone, "targets:", "targetz:", 1)) },
			func() { writeFile(t, zonesDir, "geo.test.yaml", geoZone) }, "zones"},
		{"latency table", "rtt.csv", `unknown PoP`,
			func() { writeFile(t, zonesDir, "rtt.csv", "192.0.2.0/24,ams,10\n") },
			func() { writeFile(t, zonesDir, "rtt.csv", "192.0.2.0/24,fra,10\n") }, "zones"},
		{"GeoIP city database", cityFile, "city.mmdb",
			func() { replace("city.mmdb", "not a database") },
			func() { replace("city.mmdb", string(city)) }, "geoip"},
		{"GeoIP ASN database", asnFile, "asn.mmdb",
			func() { replace("asn.mmdb", "not a database either") },
			func() { replace("asn.mmdb", string(asn)) }, "geoip"},
		{"zones directory made unreadable", zonesDir, "permission denied",
			func() { setDeny("."); chmod(zonesDir, 0o000) },
			func() { setDeny(""); chmod(zonesDir, 0o755) }, "zones"},
		{"zone file made unreadable", "geo.test.yaml", "permission denied",
			func() {
				setDeny("geo.test.yaml")
				chmod(filepath.Join(zonesDir, "geo.test.yaml"), 0o000)
				// A file's chmod counts only once something failed: the
				// next reload finds it.
				r.reloader.Reload("test")
			},
			func() { setDeny(""); chmod(filepath.Join(zonesDir, "geo.test.yaml"), 0o644) }, "zones"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.breakIt()
			waitFor(t, 5*time.Second, func() bool { return strings.Contains(r.getStatus(t).Errors[tc.file], tc.wantErr) },
				fmt.Sprintf("/status to list %s with %q", tc.file, tc.wantErr))
			rec := httptest.NewRecorder()
			r.handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			if page := rec.Body.String(); !strings.Contains(page, tc.file) || !strings.Contains(page, tc.wantErr) {
				t.Errorf("the status page does not show %s with %q", tc.file, tc.wantErr)
			}
			r.waitLog(t, `"failed":["`+tc.wantFailed+`"]`)
			if got := r.answer(t, "www.geo.test.", "192.0.2.64/26"); got != "192.0.2.2" {
				t.Errorf("answer %s while %s is broken, want the last good 192.0.2.2", got, tc.file)
			}
			tc.fix()
			waitFor(t, 5*time.Second, func() bool { return len(r.getStatus(t).Errors) == 0 },
				fmt.Sprintf("the error of %s to clear", tc.file))
		})
	}
	r.waitLog(t, "file loads again")
}
