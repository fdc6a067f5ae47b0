package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/internal/geodbgen"
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

// syncBuffer is a log sink that tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runningApp is popdns started in-process from a config file, serving
// until the test ends, with its watcher and reloader running.
type runningApp struct {
	*app
	logs *syncBuffer
	addr string
}

func startApp(t testing.TB, configFile string) *runningApp {
	t.Helper()
	args := []string{"-config", configFile, "-listen", "127.0.0.1:0", "-http", "off"}
	cfg, err := parseServeFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := zerolog.New(logs)
	a, err := start(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	a.reloader = newReloader(args, cfg, a.built, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := dnstest.Receive(t, done, 10*time.Second, "serve to return"); err != nil {
			t.Error(err)
		}
	})
	r := &runningApp{app: a, logs: logs, addr: a.dns.Addrs()[0]}
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
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := r.answer(t, name, subnet)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: answer %s, want %s within 5 s; logs:\n%s", name, got, want, r.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
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
		r.waitLog(t, `reload failed; the last good version keeps serving`)
		if n := counterValue(t, r, "popdns_reload_total", map[string]string{"what": "zones", "result": "error"}); n < 1 {
			t.Errorf("popdns_reload_total{what=zones,result=error} = %v after a broken edit", n)
		}
		if got := r.answer(t, "www.example.test.", ""); got != "192.0.2.13" {
			t.Errorf("answer %s after a broken edit, want the last good 192.0.2.13", got)
		}
		st := buildStatus(r.dns.Zones(), nil, nil)
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
		r.waitLog(t, "field lisen not found")
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
		r.waitLog(t, `"setting":"dns settings`)
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
	newHTTPHandler(srv, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	var st statusJSON
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
	if _, err := os.Stat(filepath.Join(dir, "state", serialsFile)); err != nil {
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
