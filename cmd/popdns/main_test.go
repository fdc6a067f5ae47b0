package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/rs/zerolog"
)

// staticZone is the zone the tests serve: static records only, so that no
// PoPs are needed, and independent of the demo that ships.
const staticZone = `origin: example.test.
ttl: 300
records:
  "@":
    - soa: ns1 hostmaster 2026112201 7200 3600 1209600 300
    - ns: ns1
    - ns: ns2
  ns1:
    - a: 192.0.2.53
  ns2:
    - a: 192.0.2.54
  www:
    - a: 192.0.2.10
`

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeStaticZone(t *testing.T, dir string) {
	t.Helper()
	writeFile(t, dir, "zones/example.test.yaml", staticZone)
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         string // substring of the error
	}{
		{"unknown key names file and line", "zones: zones\nlisen: [127.0.0.1:53]\n", "popdns.yaml:2: lisen: unknown key (expected listen, zones, http,"},
		{"wrong type", "zones: zones\nlisten: 5\n", "popdns.yaml:2:"},
		{"bad listen address", "zones: zones\nlisten: [localhost]\n", `popdns.yaml:2: listen: "localhost"`},
		{"listen host not an IP", "zones: zones\nlisten: [\"example.com:53\"]\n", "host must be an IP address"},
		{"bad log level", "zones: zones\nlog: {level: loud}\n", "log.level"},
		{"bad log format", "zones: zones\nlog: {format: xml}\n", "log.format"},
		{"udp size too small", "zones: zones\nedns_udp_size: 100\n", "edns_udp_size"},
		{"missing zones", "listen: [127.0.0.1:53]\n", "zones: missing"},
		{"zones not a directory", "zones: nowhere\n", "zones: "},
		{"bad duration", "zones: zones\ntcp_idle_timeout: soon\n", "popdns.yaml:2:"},
		{"invalid YAML", "zones: [\n", "popdns.yaml:"},
		{"bad PoP", "zones: zones\npops:\n  fra: { lat: 91, lon: 8 }\n", "popdns.yaml:3: pops.fra.lat"},
		{"path inflation below 1", "zones: zones\npath_inflation: 0.5\n", "popdns.yaml:2: path_inflation: 0.5 is below 1"},
		{"ASN without City", "zones: zones\ngeoip: { asn: asn.mmdb }\n", "geoip.asn"},
		{"unknown geoip key", "zones: zones\ngeoip: { country: c.mmdb }\n", "popdns.yaml:2: geoip.country: unknown key (expected city or asn)"},
		{"probe timeout not below interval", "zones: zones\nprobes: { interval: 2s, timeout: 2s }\n", "probes.timeout: 2s must be positive and below the interval, 2s"},
		{"probe jitter above interval", "zones: zones\nprobes: { interval: 2s, jitter: 3s }\n", "probes.jitter"},
		{"probe rise 0", "zones: zones\nprobes: { rise: -1 }\n", "popdns.yaml:2: probes.rise: -1 must be from 1 to 100"},
		{"negative penalty weight", "zones: zones\nprobes: { penalty_weight: -1 }\n", "probes.penalty_weight"},
		{"unknown probes key", "zones: zones\nprobes: { intervl: 2s }\n", "popdns.yaml:2: probes.intervl: unknown key (expected interval,"},
		{"PoP probe completed from the defaults", "zones: zones\nprobes: { interval: 1s, timeout: 900ms }\npops:\n  fra: { lat: 50, lon: 8, probe: { tcp: \"192.0.2.1:1\", interval: 500ms, timeout: 600ms } }\n", "popdns.yaml:4: pops.fra.probe: timeout 600ms must be positive and below interval 500ms"},
		{"admin token file missing", "zones: zones\nadmin_token_file: nope.token\n", "admin_token_file:"},
		{"negative jitter", "zones: zones\nprobes: { jitter: -1s }\n", "popdns.yaml:2: probes.jitter: -1s must be between 0 and the interval"},
		{"not a mapping", "- zones\n", "popdns.yaml:1: a configuration file is a mapping"},
		{"sub-mapping not a mapping", "zones: zones\nlog: debug\n", "popdns.yaml:2: log: must be a mapping"},
		{"udp size out of range", "zones: zones\nedns_udp_size: 70000\n", `popdns.yaml:2: edns_udp_size: must be a size in bytes from 512 to 65535, got "70000"`},
		{"admin API needs http", "zones: zones\nhttp: off\nadmin_token_file: popdns.yaml\n", "admin API is served on the http endpoint"},
		{"zone size without a number", "zones: zones\nzone_max_file_size: big\n", `popdns.yaml:2: zone_max_file_size: "big" is not a size such as 256MiB`},
		{"zone size too small", "zones: zones\nzone_max_file_size: 100\n", `popdns.yaml:2: zone_max_file_size: "100" must be from 1KiB to 1024GiB`},
		{"negative min_active", "zones: zones\nmin_active: -1\n", "popdns.yaml:2: min_active: -1: must not be negative (0 turns the rule off)"},
		{"min_active not a number", "zones: zones\nmin_active: two\n", "popdns.yaml:2: min_active: must be a whole number, 0 or more"},
		{"zone size not a single value", "zones: zones\nzone_max_file_size: [1]\n", `popdns.yaml:2: zone_max_file_size: must be a size such as 256MiB, got "seq"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeStaticZone(t, dir)
			_, err := loadConfigFile(writeFile(t, dir, "popdns.yaml", tc.config))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestConfigRepeatedKeys checks that every mapping of the server
// configuration rejects a key given twice with file and line (issue 12,
// defect 4): gru was placed at latitude 52 while check said ok.
func TestConfigRepeatedKeys(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         string
	}{
		{"top level", "zones: zones\nlisten: [127.0.0.1:53]\nzones: zones\n", "popdns.yaml:3: zones: repeated key (first at line 1)"},
		{"log", "zones: zones\nlog:\n  level: info\n  level: debug\n", "popdns.yaml:4: log.level: repeated key (first at line 3)"},
		{"geoip", "zones: zones\ngeoip: { city: a.mmdb, city: b.mmdb }\n", "popdns.yaml:2: geoip.city: repeated key (first at line 2)"},
		{"probes", "zones: zones\nprobes: { rise: 1, rise: 3 }\n", "popdns.yaml:2: probes.rise: repeated key (first at line 2)"},
		{"PoP name", "zones: zones\npops:\n  fra: { lat: 50, lon: 8 }\n  fra: { lat: 51, lon: 9 }\n", "popdns.yaml:4: pops.fra: repeated key (first at line 3)"},
		{"PoP latitude", "zones: zones\npops:\n  gru: { lat: -23.43, lat: 52.0, lon: -46.47 }\n", "popdns.yaml:3: pops.gru.lat: repeated key (first at line 3)"},
		{"PoP probe", "zones: zones\npops:\n  gru:\n    lat: -23.43\n    lon: -46.47\n    probe: { tcp: \"192.0.2.1:1\", fall: 1, fall: 9 }\n", "popdns.yaml:6: pops.gru.probe.fall: repeated key (first at line 6)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeStaticZone(t, dir)
			_, err := loadConfigFile(writeFile(t, dir, "popdns.yaml", tc.config))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestConfigForms checks forms the configuration accepted when yaml.v3
// decoded it into structs, and jitter: 0s, which means no jitter (issue
// 12, defect 14).
func TestConfigForms(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		check        func(t *testing.T, cfg *config)
	}{
		{"null mappings are empty", "zones: zones\nlog:\nprobes:\ngeoip:\npops:\n", func(t *testing.T, cfg *config) {
			if !cfg.logJSON || len(cfg.pops.Names()) != 0 || cfg.probes.Interval != healthprobe.DefaultInterval {
				t.Errorf("config %+v", cfg)
			}
		}},
		{"YAML 1.1 booleans", "zones: zones\nquery_log: yes\n", func(t *testing.T, cfg *config) {
			if !cfg.dns.QueryLog {
				t.Error("query_log: yes is false")
			}
		}},
		{"anchors and merge keys", "zones: zones\npops:\n  fra: &eu { lat: 50.11, lon: 8.68, continent: EU }\n  ams: { <<: *eu, lat: 52.31, lon: 4.76 }\n", func(t *testing.T, cfg *config) {
			ams := cfg.pops.Get("ams")
			if ams == nil || ams.Point.Lat != 52.31 || ams.Continent != "EU" {
				t.Errorf("ams %+v", ams)
			}
		}},
		{"jitter 0s is none", "zones: zones\nprobes: { jitter: 0s }\npops:\n  fra: { lat: 50, lon: 8, probe: { tcp: \"192.0.2.1:1\" } }\n", func(t *testing.T, cfg *config) {
			if cfg.probes.Jitter != healthprobe.NoJitter {
				t.Errorf("default jitter %v, want NoJitter", cfg.probes.Jitter)
			}
			if p := cfg.pops.Probes(); len(p) != 1 || p[0].Jitter != healthprobe.NoJitter {
				t.Errorf("PoP probes %+v, want no jitter", p)
			}
		}},
		{"unset jitter is the default", "zones: zones\npops:\n  fra: { lat: 50, lon: 8, probe: { tcp: \"192.0.2.1:1\" } }\n", func(t *testing.T, cfg *config) {
			if p := cfg.pops.Probes(); len(p) != 1 || p[0].Jitter != healthprobe.DefaultInterval/2 {
				t.Errorf("PoP probes %+v, want half the interval", p)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeStaticZone(t, dir)
			cfg, err := loadConfigFile(writeFile(t, dir, "popdns.yaml", tc.config))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg)
		})
	}
}

// TestCheckRepeatedTopLevelKey checks that check gives a configuration
// with a repeated key the serve path's message instead of taking it for a
// zone file (issue 12, defect 5).
func TestCheckRepeatedTopLevelKey(t *testing.T) {
	dir := t.TempDir()
	writeStaticZone(t, dir)
	cfg := writeFile(t, dir, "popdns.yaml", "zones: zones\nlisten: [127.0.0.1:53]\nzones: zones\n")
	_, serveErr := parseServeFlags([]string{"-config", cfg})
	if serveErr == nil {
		t.Fatal("the serve path accepted a repeated key")
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"check", cfg}, &stdout, &stderr); err == nil {
		t.Fatalf("check accepted a repeated key: %s", stdout.String())
	}
	if stderr.String() != serveErr.Error()+"\n" {
		t.Errorf("check said %q, want the serve path's %q", stderr.String(), serveErr.Error())
	}
}

func TestProbeConfig(t *testing.T) {
	dir := t.TempDir()
	writeStaticZone(t, dir)
	writeFile(t, dir, "short.token", "abc\n")
	writeFile(t, dir, "admin.token", "0123456789abcdef0123\nignored second line\n")
	cfg, err := loadConfigFile(writeFile(t, dir, "popdns.yaml", `zones: zones
admin_token_file: admin.token
probes: { interval: 4s, rise: 1, fall: 5, penalty_weight: 0.5 }
pops:
  fra: { lat: 50.11, lon: 8.68, probe: { http: 192.0.2.10, path: /health } }
`))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.probes
	if d.Interval != 4*time.Second || d.Timeout != 2*time.Second || d.Rise != 1 || d.Fall != 5 || *cfg.dns.Steering.PenaltyWeight != 0.5 {
		t.Errorf("probe defaults %+v, weight %v", d, *cfg.dns.Steering.PenaltyWeight)
	}
	probes := cfg.pops.Probes()
	if len(probes) != 1 || probes[0].ID != "http://192.0.2.10:80/health" || probes[0].Interval != 4*time.Second || probes[0].Fall != 5 {
		t.Errorf("PoP probe %+v", probes)
	}
	if token, err := readAdminToken(cfg.adminTokenFile); err != nil || token != "0123456789abcdef0123" {
		t.Errorf("token %q, %v", token, err)
	}
	if _, err := readAdminToken(filepath.Join(dir, "short.token")); err == nil {
		t.Error("a 3-character token was accepted")
	}
	zero, err := loadConfigFile(writeFile(t, dir, "zero.yaml", "zones: zones\nprobes: { penalty_weight: 0 }\n"))
	if err != nil || zero.dns.Steering.PenaltyWeight == nil || *zero.dns.Steering.PenaltyWeight != 0 {
		t.Errorf("penalty_weight 0: %v, %v; want 0, which ignores penalties", zero.dns.Steering.PenaltyWeight, err)
	}
}

func TestConfigDefaultsAndOverrides(t *testing.T) {
	dir := t.TempDir()
	writeStaticZone(t, dir)
	other := filepath.Join(dir, "other")
	writeStaticZone(t, other)
	cfgFile := writeFile(t, dir, "popdns.yaml", "zones: zones\nnsid: fra-1\nlog: {level: debug, format: console}\n")

	cfg, err := parseServeFlags([]string{"-config", cfgFile})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.dns.Listen, ","); got != defaultListen || cfg.httpAddr != defaultHTTP {
		t.Errorf("defaults: listen %s http %s", got, cfg.httpAddr)
	}
	if cfg.zonesDir != filepath.Join(dir, "zones") || cfg.dns.NSID != "fra-1" || cfg.logJSON || cfg.logLevel != zerolog.DebugLevel {
		t.Errorf("config not applied: %+v", cfg)
	}

	cfg, err = parseServeFlags([]string{"-config", cfgFile, "-listen", "127.0.0.1:0,[::1]:0", "-http", "off", "-zones", filepath.Join(other, "zones")})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.dns.Listen, ","); got != "127.0.0.1:0,[::1]:0" || cfg.httpAddr != "" || cfg.zonesDir != filepath.Join(other, "zones") {
		t.Errorf("flags did not override: listen %s http %q zones %s", got, cfg.httpAddr, cfg.zonesDir)
	}

	for _, args := range [][]string{
		{"-listen", "nonsense"}, {"-http", "x"}, {"-zones", filepath.Join(dir, "missing")}, {"-config", filepath.Join(dir, "missing.yaml")}, {"stray"},
	} {
		if _, err := parseServeFlags(args); err == nil {
			t.Errorf("parseServeFlags(%q) accepted", args)
		}
	}
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	writeStaticZone(t, dir)
	good := filepath.Join(dir, "zones/example.test.yaml")
	bad := writeFile(t, dir, "bad/broken.yaml", "origin: broken.test.\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1 2 3 4 5\n    - ns: ns1\n  www:\n    - a: 192.0.2.300\n")
	cfg := writeFile(t, dir, "popdns.yaml", "zones: zones\n")
	badCfg := writeFile(t, dir, "bad.yaml", "zones: zones\nlisten: [\"1.2.3.4\"]\n")
	for _, tc := range []struct {
		name       string
		args       []string
		wantErr    bool
		wantStdout string
		wantStderr string
	}{
		{"good zone file", []string{good}, false, "zone example.test. serial 2026112201", ""},
		{"zone directory", []string{filepath.Join(dir, "zones")}, false, "zone example.test.", ""},
		{"config with its zones", []string{cfg}, false, "configuration", ""},
		{"bad zone names file line and field", []string{good, bad}, true, "example.test.", bad + ":7: records.www[0].a: bad A data"},
		{"bad config", []string{badCfg}, true, "", "bad.yaml:2: listen"},
		{"missing file", []string{filepath.Join(dir, "nope.yaml")}, true, "", "no such file"},
		{"no arguments", nil, true, "", "usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"check"}, tc.args...), &stdout, &stderr)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v; stderr %s", err, tc.wantErr, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.wantStdout) || !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stdout %q (want %q)\nstderr %q (want %q)", stdout.String(), tc.wantStdout, stderr.String(), tc.wantStderr)
			}
		})
	}
}

const geoZone = `origin: geo.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.1 }
          iad: { a: 192.0.2.2 }
`

func TestCheckGeoZoneNeedsPoPs(t *testing.T) {
	dir := t.TempDir()
	zone := writeFile(t, dir, "zones/geo.test.yaml", geoZone)
	cfg := writeFile(t, dir, "popdns.yaml", "zones: zones\npops:\n  fra: { lat: 50.11, lon: 8.68 }\n  iad: { lat: 38.95, lon: -77.45 }\n")
	for _, tc := range []struct {
		name       string
		args       []string
		wantErr    bool
		wantOutput string
	}{
		{"alone, the PoPs are unknown", []string{zone}, true, `unknown PoP "fra" (none are configured)`},
		{"with -config", []string{"-config", cfg, zone}, false, "zone geo.test."},
		{"the config checks its own zones", []string{cfg}, false, "configuration, 2 PoPs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), append([]string{"check"}, tc.args...), &out, &out)
			if (err != nil) != tc.wantErr || !strings.Contains(out.String(), tc.wantOutput) {
				t.Errorf("error %v, output %q; want error %v and %q", err, out.String(), tc.wantErr, tc.wantOutput)
			}
		})
	}
}

func TestMissingGeoIPFailsStart(t *testing.T) {
	t.Run("missing database fails the start", func(t *testing.T) {
		dir := t.TempDir()
		writeStaticZone(t, dir)
		cfg, err := loadConfigFile(writeFile(t, dir, "popdns.yaml", "zones: zones\nlisten: [127.0.0.1:0]\nhttp: off\ngeoip: { city: nowhere.mmdb }\n"))
		if err != nil {
			t.Fatal(err)
		}
		// The error names the configuration's file, line and key, and the
		// database once.
		want := "popdns.yaml:4: geoip.city: geo: open city database " + filepath.Join(dir, "nowhere.mmdb") + ": no such file or directory"
		if _, err := start(cfg, nil, zerolog.Nop(), nil); err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("start: %v, want an error ending %q", err, want)
		}
	})
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "popdns ") {
		t.Errorf("version printed %q", out.String())
	}
}

func TestStartFailsOnBadZone(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "zones/bad.yaml", "origin: bad.test.\nrecords: {}\n")
	cfg, err := parseServeFlags([]string{"-zones", filepath.Join(dir, "zones"), "-listen", "127.0.0.1:0", "-http", "off"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = start(cfg, nil, zerolog.Nop(), nil)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("start with a broken zone: %v", err)
	}
}

// TestServeConfigFile starts popdns from a configuration file with an IPv4
// and an IPv6 listener and queries both over UDP and TCP.
func TestServeConfigFile(t *testing.T) {
	listen := `["127.0.0.1:0", "[::1]:0"]`
	if l, err := net.Listen("tcp", "[::1]:0"); err != nil {
		listen = `["127.0.0.1:0"]` // no IPv6 loopback on this machine
	} else {
		l.Close()
	}
	dir := t.TempDir()
	writeStaticZone(t, dir)
	cfgFile := writeFile(t, dir, "popdns.yaml", "listen: "+listen+"\nhttp: off\nzones: zones\nnsid: test-1\n")
	cfg, err := parseServeFlags([]string{"-config", cfgFile})
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(cfg, []string{"-config", cfgFile}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx) }()
	defer func() {
		cancel()
		if err := dnstest.Receive(t, done, 10*time.Second, "serve to return"); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	for _, addr := range a.dns.Addrs() {
		for _, proto := range []string{"udp", "tcp"} {
			q := new(dns.Msg)
			q.SetQuestion("example.test.", dns.TypeNS)
			q.SetEdns0(1232, false)
			q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
			r, _, err := (&dns.Client{Net: proto, Timeout: 2 * time.Second}).Exchange(q, addr)
			if err != nil {
				t.Fatalf("%s %s: %v", proto, addr, err)
			}
			if len(r.Answer) != 2 || len(r.Extra) < 2 {
				t.Errorf("%s %s: reply %v", proto, addr, r)
			}
			if opt := r.IsEdns0(); opt == nil || len(opt.Option) != 1 {
				t.Errorf("%s %s: NSID missing: %v", proto, addr, r.IsEdns0())
			}
		}
	}
}

func TestExplainCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"explain", "-ecs", "198.51.100.0/26", "www.example.test", "A"}, &out, &errOut); err != nil {
		t.Fatalf("explain: %v (%s)", err, errOut.String())
	}
	for _, want := range []string{
		"client    198.51.100.0 (ecs)",
		"network 198.51.100.0/26, country AU, continent OC",
		// 0 km away, estimated from the far edge of the database's 50 km.
		"at -33.94, 151.18 ± 50 km",
		"syd      0 km    0.8 ms  distance",
		"answer    www.example.test. 30 IN A 192.0.2.50",
		"ecs scope /26",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"explain", "-json", "-client", "192.0.2.130", "www.example.test"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	var ex dnsserver.Explanation
	if err := json.Unmarshal(out.Bytes(), &ex); err != nil || ex.Via != "source address" || len(ex.Answer) != 1 || !strings.HasSuffix(ex.Answer[0], "192.0.2.30") {
		t.Errorf("JSON %s (%v)", out.String(), err)
	}
	for _, args := range [][]string{{"explain"}, {"explain", "-ecs", "nope", "www.example.test"}, {"explain", "www.example.test", "BOGUS"}} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%v succeeded", args)
		}
	}
}

// newDemoServer builds the built-in demo's server without binding or
// serving anything; it is closed when the test ends.
func newDemoServer(t *testing.T) *server {
	t.Helper()
	cfg, err := demoConfig()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newServer(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.close)
	return srv
}

func TestExplainHTTP(t *testing.T) {
	h := serverHandler(newDemoServer(t))
	for _, tc := range []struct {
		query  string
		status int
		want   string
	}{
		{"name=www.example.test&type=A&client=192.0.2.0/26", 200, `"via":"ecs"`},
		{"name=www.example.test&client=192.0.2.64", 200, `"via":"source address"`},
		{"name=www.example.test&type=NOPE", 400, "unknown type"},
		{"name=&client=1.2.3.4", 400, "not a domain name"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/explain?"+tc.query, nil))
		if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s: %d %s, want %d with %q", tc.query, rec.Code, rec.Body.String(), tc.status, tc.want)
		}
	}
}

func TestProcsFor(t *testing.T) {
	for _, c := range []struct {
		current int
		set     bool
		want    int
	}{{1, false, 2}, {2, false, 2}, {8, false, 8}, {1, true, 1}, {4, true, 4}} {
		if got := procsFor(c.current, c.set); got != c.want {
			t.Errorf("procsFor(%d, operator set: %v) = %d, want %d", c.current, c.set, got, c.want)
		}
	}
}

// TestListenFlagChecked: an address given with -listen is checked as one
// in the file is, by dnsserver.
func TestListenFlagChecked(t *testing.T) {
	for _, addr := range []string{"localhost:53", "127.0.0.1", "127.0.0.1:70000"} {
		if _, err := parseServeFlags([]string{"-listen", addr}); err == nil || !strings.Contains(err.Error(), "-listen") {
			t.Errorf("-listen %s: error %v, want one naming -listen", addr, err)
		}
	}
}

// TestConfigReportsEveryProblem: every bad value is reported at once, at
// its line, in line order, also when several belong to one package's
// configuration (each package's Provision stopped at its first).
func TestConfigReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	writeStaticZone(t, dir)
	_, err := loadConfigFile(writeFile(t, dir, "popdns.yaml", `zones: zones
probes:
  rise: -1
  fall: 200
edns_udp_size: 100
tcp_idle_timeout: -1s
tcp_max_queries: -1
path_inflation: 0.5
latency_max_age: -1h
`))
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{"popdns.yaml:3: probes.rise", "popdns.yaml:4: probes.fall", "popdns.yaml:5: edns_udp_size",
		"popdns.yaml:6: tcp_idle_timeout", "popdns.yaml:7: tcp_max_queries", "popdns.yaml:8: path_inflation",
		"popdns.yaml:9: latency_max_age"}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("problem %d is %q, want it to name %s", i+1, lines[i], w)
		}
	}
}
