package zones

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/pops"
	"go.yaml.in/yaml/v3"
)

// probePoPs is testPoPs with probe defaults and a probe on fra.
func probePoPs(t testing.TB, d healthprobe.Defaults) *pops.Inventory {
	t.Helper()
	var doc yaml.Node
	text := `fra: { lat: 50.11, lon: 8.68, probe: { tcp: "192.0.2.100:443" } }
iad: { lat: 38.95, lon: -77.45 }
`
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	p, err := pops.Decode("popdns.yaml", doc.Content[0], d)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGeoTargetProbes(t *testing.T) {
	d := healthprobe.Defaults{Interval: 5 * time.Second, Timeout: time.Second, Rise: 2, Fall: 2}
	inv := probePoPs(t, d)
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
`), inv)
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
`)}}, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Probes(); len(got) != 1 || got[0].ID != "tcp://192.0.2.100:443" {
		t.Errorf("snapshot probes %+v: the PoP's probe and the identical target probe are one", got)
	}
}

// TestGeoTargetProbeErrors checks that the errors of a geo target's probe,
// which pops decodes and resolves, name the zone file, its line and the
// target's field path. pops' own tests cover every probe error.
func TestGeoTargetProbeErrors(t *testing.T) {
	d := healthprobe.Defaults{Interval: 10 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3}
	const f = "records.www[0].geo.targets.fra.probe"
	tests := []struct {
		name  string
		probe string
		want  []wantErr
	}{
		{"not a mapping", `tcp`, []wantErr{{13, f, "a probe is a mapping"}}},
		{"bad port", `{ http: "192.0.2.1:99999" }`, []wantErr{{13, f + ".http", "bad port"}}},
		{"timeout not below the default interval", `{ tcp: "192.0.2.1:1", timeout: 15s }`, []wantErr{{13, f, "below interval 10s"}}},
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
