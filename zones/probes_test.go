package zones

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/popdns/popdns/healthprobe"
	"go.yaml.in/yaml/v3"
)

// probePoPs is testPoPs with probe defaults and a probe on fra.
func probePoPs(t testing.TB, d healthprobe.Defaults) *PoPs {
	t.Helper()
	var doc yaml.Node
	text := `fra: { lat: 50.11, lon: 8.68, probe: { tcp: "192.0.2.100:443" } }
iad: { lat: 38.95, lon: -77.45 }
`
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	p, err := DecodePoPs("popdns.yaml", doc.Content[0], d)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGeoTargetProbes(t *testing.T) {
	d := healthprobe.Defaults{Interval: 5 * time.Second, Timeout: time.Second, Rise: 2, Fall: 2}
	pops := probePoPs(t, d)
	z, err := ParseFile(parseTestFile, geoZone(`  www:
    - geo:
        targets:
          fra: { a: 192.0.2.1, probe: { http: "192.0.2.1:8080", path: /health, expect: [200, 204], body: ok, host: www.example.test } }
          iad: { a: 192.0.2.2, probe: { dns: 192.0.2.53, qname: example.test, qtype: soa, interval: 2s, fall: 5 } }
  api:
    - geo:
        targets:
          fra: { a: 192.0.2.1, probe: { http: "192.0.2.1:8080", path: /health, expect: [204, 200], body: ok, host: www.example.test } }
          iad: { a: 192.0.2.2, probe: { tcp: "192.0.2.2:443", timeout: 1s } }
`), pops)
	if err != nil {
		t.Fatal(err)
	}
	www := z.Node("www.example.test.").Geo()
	api := z.Node("api.example.test.").Geo()
	if www.Targets[0].Probe != "http://192.0.2.1:8080/health#"+www.Targets[0].Probe[len("http://192.0.2.1:8080/health#"):] ||
		!strings.Contains(www.Targets[0].Probe, "#") {
		t.Errorf("http probe with settings beyond the defaults: ID %q, want the URL and a hash", www.Targets[0].Probe)
	}
	if www.Targets[0].Probe != api.Targets[0].Probe {
		t.Errorf("identical probes got IDs %q and %q; they must share one", www.Targets[0].Probe, api.Targets[0].Probe)
	}
	// timeout: 1s equals the default, so the probe is plain.
	if got := api.Targets[1].Probe; got != "tcp://192.0.2.2:443" {
		t.Errorf("plain tcp probe ID %q", got)
	}
	if www.Targets[0].PoP.Probe != "tcp://192.0.2.100:443" {
		t.Errorf("PoP probe ID %q", www.Targets[0].PoP.Probe)
	}
	probes := z.Probes()
	if len(probes) != 3 {
		t.Fatalf("zone probes %+v, want 3 distinct", probes)
	}
	byID := map[string]healthprobe.Target{}
	for _, p := range probes {
		byID[p.ID] = p
	}
	dnsProbe := byID[www.Targets[1].Probe]
	if dnsProbe.Kind != healthprobe.KindDNS || dnsProbe.Addr != "192.0.2.53:53" || dnsProbe.QName != "example.test." ||
		dnsProbe.Interval != 2*time.Second || dnsProbe.Timeout != time.Second || dnsProbe.Fall != 5 || dnsProbe.Rise != 2 {
		t.Errorf("dns probe = %+v: want its own interval and fall, the rest from the defaults", dnsProbe)
	}
	web := byID[www.Targets[0].Probe]
	if web.Interval != 5*time.Second || web.Host != "www.example.test" || web.BodyContains != "ok" || len(web.ExpectStatus) != 2 {
		t.Errorf("http probe = %+v", web)
	}

	snap, err := Load(fstest.MapFS{"z.yaml": {Data: geoZone(`  www:
    - geo:
        targets:
          fra: { a: 192.0.2.1, probe: { tcp: "192.0.2.100:443" } }
`)}}, pops, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Probes(); len(got) != 1 || got[0].ID != "tcp://192.0.2.100:443" {
		t.Errorf("snapshot probes %+v: the PoP's probe and the identical target probe are one", got)
	}
}

func TestProbeErrors(t *testing.T) {
	d := healthprobe.Defaults{Interval: 10 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3}
	const f = "records.www[0].geo.targets.fra.probe"
	tests := []struct {
		name  string
		probe string
		want  []wantErr
	}{
		{"not a mapping", `tcp`, []wantErr{{13, f, "a probe is a mapping"}}},
		{"no kind", `{ path: /x }`, []wantErr{{13, f, "needs its kind and address"}}},
		{"two kinds", `{ tcp: "192.0.2.1:1", http: "192.0.2.1:80" }`, []wantErr{{13, f + ".http", "one kind"}}},
		{"tcp without port", `{ tcp: 192.0.2.1 }`, []wantErr{{13, f + ".tcp", "host:port"}}},
		{"bad port", `{ http: "192.0.2.1:99999" }`, []wantErr{{13, f + ".http", "bad port"}}},
		{"bad host", `{ http: "bad host:80" }`, []wantErr{{13, f + ".http", "IP address or host name"}}},
		{"unknown key", `{ tcp: "192.0.2.1:1", colour: red }`, []wantErr{{13, f + ".colour", "unknown key"}}},
		{"bad duration", `{ tcp: "192.0.2.1:1", interval: 10 }`, []wantErr{{13, f + ".interval", "positive duration"}}},
		{"bad rise", `{ tcp: "192.0.2.1:1", rise: 0 }`, []wantErr{{13, f + ".rise", "1 to 100"}}},
		{"bad status", `{ http: "192.0.2.1:80", expect: [200, 700] }`, []wantErr{{13, f + ".expect", `"700" is not an HTTP status`}}},
		{"bad method", `{ http: "192.0.2.1:80", method: get }`, []wantErr{{13, f + ".method", "capitals"}}},
		{"bad path", `{ http: "192.0.2.1:80", path: health }`, []wantErr{{13, f + ".path", "start with /"}}},
		{"path on tcp", `{ tcp: "192.0.2.1:1", path: /x }`, []wantErr{{13, f + ".path", "only http and https"}}},
		{"sni on http", `{ http: "192.0.2.1:80", server_name: x.test }`, []wantErr{{13, f, "only https"}}},
		{"qname on tcp", `{ tcp: "192.0.2.1:1", qname: x.test }`, []wantErr{{13, f, "only dns"}}},
		{"dns without qname", `{ dns: 192.0.2.53 }`, []wantErr{{13, f + ".qname", "needs the name"}}},
		{"bad qtype", `{ dns: 192.0.2.53, qname: x.test, qtype: BOGUS }`, []wantErr{{13, f + ".qtype", "unknown type"}}},
		{"timeout not below the default interval", `{ tcp: "192.0.2.1:1", timeout: 15s }`, []wantErr{{13, f, "below interval 10s"}}},
		{"jitter above interval", `{ tcp: "192.0.2.1:1", interval: 1s, jitter: 2s }`, []wantErr{{13, f, "jitter 2s must be between 0 and interval 1s"}}},
		{"given twice", `{ tcp: "192.0.2.1:1", rise: 1, rise: 2 }`, []wantErr{{13, f + ".rise", "repeated key (first at line 13)"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFile(parseTestFile, geoZone(`  www:
    - geo:
        targets:
          fra:
            a: 192.0.2.1
            probe: `+tc.probe+"\n"), probePoPs(t, d))
			checkErrors(t, err, tc.want)
		})
	}
}

func TestPoPProbeErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"fra: { lat: 50, lon: 8, probe: { tcp: nowhere } }\n", "popdns.yaml:1: pops.fra.probe.tcp: must be host:port"},
		{"fra: { lat: 50, lon: 8, probe: { tcp: \"192.0.2.1:1\", timeout: 1m } }\n", "popdns.yaml:1: pops.fra.probe: timeout 1m0s must be positive and below interval 10s"},
		{"fra: { lat: 50, lon: 8, probe: [tcp] }\n", "popdns.yaml:1: pops.fra.probe: a probe is a mapping"},
	} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tc.text), &doc); err != nil {
			t.Fatal(err)
		}
		_, err := DecodePoPs("popdns.yaml", doc.Content[0], healthprobe.Defaults{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestPoPsEqualComparesProbes(t *testing.T) {
	a := probePoPs(t, healthprobe.Defaults{Interval: 5 * time.Second})
	b := probePoPs(t, healthprobe.Defaults{Interval: 5 * time.Second})
	c := probePoPs(t, healthprobe.Defaults{Interval: 6 * time.Second})
	if !a.Equal(b) {
		t.Error("equal inventories differ")
	}
	if a.Equal(c) {
		t.Error("inventories with other probe defaults compare equal: zones would keep stale probes on reload")
	}
}

// TestProbeForms checks the documented ways of writing a probe (issue 12,
// defect 14): an http(s) probe takes a URL as well as host:port and path,
// jitter may be 0s (no jitter), and a probe may be an alias of one
// written before.
func TestProbeForms(t *testing.T) {
	d := healthprobe.Defaults{Interval: 10 * time.Second, Timeout: 2 * time.Second, Jitter: 4 * time.Second, Rise: 2, Fall: 3}
	for _, tc := range []struct {
		name   string
		probe  string
		kind   healthprobe.Kind
		addr   string
		path   string
		jitter time.Duration
	}{
		{"host:port and path", `{ http: "127.0.0.1:8080", path: /health }`, healthprobe.KindHTTP, "127.0.0.1:8080", "/health", 4 * time.Second},
		{"http URL", `{ http: "http://127.0.0.1:8080/health" }`, healthprobe.KindHTTP, "127.0.0.1:8080", "/health", 4 * time.Second},
		{"https URL with the default port and a query", `{ https: "https://www.example.test/healthz?full=1" }`, healthprobe.KindHTTPS, "www.example.test:443", "/healthz?full=1", 4 * time.Second},
		{"URL without a path", `{ http: "http://[2001:db8::1]" }`, healthprobe.KindHTTP, "[2001:db8::1]:80", "/", 4 * time.Second},
		{"jitter 0s", `{ tcp: "192.0.2.1:1", jitter: 0s }`, healthprobe.KindTCP, "192.0.2.1:1", "", healthprobe.NoJitter},
		{"own jitter", `{ tcp: "192.0.2.1:1", jitter: 1s }`, healthprobe.KindTCP, "192.0.2.1:1", "", time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z, err := ParseFile(parseTestFile, geoZone("  www:\n    - geo:\n        targets:\n          iad: { a: 192.0.2.1, probe: "+tc.probe+" }\n"), probePoPs(t, d))
			if err != nil {
				t.Fatal(err)
			}
			id := z.Geos()[0].Targets[0].Probe
			var got healthprobe.Target
			for _, p := range z.Probes() {
				if p.ID == id {
					got = p
				}
			}
			if got.Kind != tc.kind || got.Addr != tc.addr || got.Path != tc.path || got.Jitter != tc.jitter {
				t.Errorf("probe %+v; want kind %s, addr %s, path %q, jitter %v", got, tc.kind, tc.addr, tc.path, tc.jitter)
			}
		})
	}

	const f = "records.www[0].geo.targets.iad.probe"
	for _, tc := range []struct {
		name, probe string
		want        []wantErr
	}{
		{"URL of the other scheme", `{ http: "https://192.0.2.1/x" }`, []wantErr{{11, f + ".http", `an http probe's URL starts with http://`}}},
		{"URL on a tcp probe", `{ tcp: "http://192.0.2.1:80/" }`, []wantErr{{11, f + ".tcp", "host:port"}}},
		{"URL and path", `{ http: "http://192.0.2.1/x", path: /y }`, []wantErr{{11, f + ".path", "the URL gives the path already"}}},
		{"URL with a user", `{ http: "http://u:p@192.0.2.1/x" }`, []wantErr{{11, f + ".http", "no user"}}},
		{"URL with a fragment", `{ http: "http://192.0.2.1/x#y" }`, []wantErr{{11, f + ".http", "no fragment"}}},
		{"URL with a bad port", `{ http: "http://192.0.2.1:0/x" }`, []wantErr{{11, f + ".http", "bad port"}}},
		{"negative jitter", `{ tcp: "192.0.2.1:1", jitter: -1s }`, []wantErr{{11, f + ".jitter", "0 or a positive duration"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFile(parseTestFile, geoZone("  www:\n    - geo:\n        targets:\n          iad: { a: 192.0.2.1, probe: "+tc.probe+" }\n"), probePoPs(t, d))
			checkErrors(t, err, tc.want)
		})
	}
}

// TestProbeAnchor checks the documented form `probe: *fra-probe` (docs/zones.md):
// an alias stands for the probe it names, in the same zone file.
func TestProbeAnchor(t *testing.T) {
	z, err := ParseFile(parseTestFile, geoZone(`  www:
    - geo:
        targets:
          iad: { a: 192.0.2.1, probe: &fra-probe { https: "192.0.2.10", path: /healthz, expect: 200 } }
  api:
    - geo:
        targets:
          iad: { a: 192.0.2.1, probe: *fra-probe }
`), probePoPs(t, healthprobe.Defaults{}))
	if err != nil {
		t.Fatal(err)
	}
	geos := z.Geos()
	if len(geos) != 2 || geos[0].Targets[0].Probe == "" || geos[0].Targets[0].Probe != geos[1].Targets[0].Probe {
		t.Fatalf("geo records %+v: want two targets sharing one probe", geos)
	}
	if p := z.Probes(); len(p) != 1 || p[0].Kind != healthprobe.KindHTTPS || p[0].Addr != "192.0.2.10:443" || p[0].Path != "/healthz" {
		t.Errorf("probes %+v, want the one https probe", p)
	}
}
