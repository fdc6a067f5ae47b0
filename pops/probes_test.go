package pops

import (
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/healthprobe"
	"go.yaml.in/yaml/v3"
)

// probeLine puts probe into a one-line inventory: fra's probe, on line 1.
func probeLine(probe string) string {
	return "fra: { lat: 50.11, lon: 8.68, probe: " + probe + " }\n"
}

func TestProbeErrors(t *testing.T) {
	d := healthprobe.Defaults{Interval: 10 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3}
	const f = "pops.fra.probe"
	tests := []struct {
		name  string
		probe string
		want  []wantErr
	}{
		{"not a mapping", `tcp`, []wantErr{{1, f, "a probe is a mapping"}}},
		{"a list", `[tcp]`, []wantErr{{1, f, "a probe is a mapping"}}},
		{"no kind", `{ path: /x }`, []wantErr{{1, f, "needs its kind and address"}}},
		{"two kinds", `{ tcp: "192.0.2.1:1", http: "192.0.2.1:80" }`, []wantErr{{1, f + ".http", "one kind"}}},
		{"tcp without port", `{ tcp: 192.0.2.1 }`, []wantErr{{1, f + ".tcp", "host:port"}}},
		{"tcp to nowhere", `{ tcp: nowhere }`, []wantErr{{1, f + ".tcp", "must be host:port"}}},
		{"bad port", `{ http: "192.0.2.1:99999" }`, []wantErr{{1, f + ".http", "bad port"}}},
		{"bad host", `{ http: "bad host:80" }`, []wantErr{{1, f + ".http", "IP address or host name"}}},
		{"unknown key", `{ tcp: "192.0.2.1:1", colour: red }`, []wantErr{{1, f + ".colour", "unknown key"}}},
		{"bad duration", `{ tcp: "192.0.2.1:1", interval: 10 }`, []wantErr{{1, f + ".interval", "positive duration"}}},
		{"bad rise", `{ tcp: "192.0.2.1:1", rise: 0 }`, []wantErr{{1, f + ".rise", "1 to 100"}}},
		{"bad status", `{ http: "192.0.2.1:80", expect: [200, 700] }`, []wantErr{{1, f + ".expect", `"700" is not an HTTP status`}}},
		{"bad method", `{ http: "192.0.2.1:80", method: get }`, []wantErr{{1, f + ".method", "capitals"}}},
		{"bad path", `{ http: "192.0.2.1:80", path: health }`, []wantErr{{1, f + ".path", "start with /"}}},
		{"path on tcp", `{ tcp: "192.0.2.1:1", path: /x }`, []wantErr{{1, f + ".path", "only http and https"}}},
		{"sni on http", `{ http: "192.0.2.1:80", server_name: x.test }`, []wantErr{{1, f, "only https"}}},
		{"qname on tcp", `{ tcp: "192.0.2.1:1", qname: x.test }`, []wantErr{{1, f, "only dns"}}},
		{"dns without qname", `{ dns: 192.0.2.53 }`, []wantErr{{1, f + ".qname", "needs the name"}}},
		{"bad qtype", `{ dns: 192.0.2.53, qname: x.test, qtype: BOGUS }`, []wantErr{{1, f + ".qtype", "unknown type"}}},
		{"timeout not below the default interval", `{ tcp: "192.0.2.1:1", timeout: 15s }`, []wantErr{{1, f, "below interval 10s"}}},
		{"jitter above interval", `{ tcp: "192.0.2.1:1", interval: 1s, jitter: 2s }`, []wantErr{{1, f, "jitter 2s must be between 0 and interval 1s"}}},
		{"given twice", `{ tcp: "192.0.2.1:1", rise: 1, rise: 2 }`, []wantErr{{1, f + ".rise", "repeated key (first at line 1)"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(t, probeLine(tc.probe), d)
			checkErrors(t, err, tc.want)
		})
	}
	// Without probe defaults, healthprobe's own apply.
	_, err := decode(t, probeLine(`{ tcp: "192.0.2.1:1", timeout: 1m }`), healthprobe.Defaults{})
	if err == nil || !strings.Contains(err.Error(), "popdns.yaml:1: pops.fra.probe: timeout 1m0s must be positive and below interval 10s") {
		t.Errorf("timeout 1m with no defaults: error %v", err)
	}
}

// TestProbeForms checks the documented ways of writing a probe (issue 12,
// defect 14): an http(s) probe takes a URL as well as host:port and path,
// and jitter may be 0s (no jitter).
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
			inv, err := decode(t, probeLine(tc.probe), d)
			if err != nil {
				t.Fatal(err)
			}
			probes := inv.Probes()
			if len(probes) != 1 || probes[0].ID != inv.Get("fra").Probe {
				t.Fatalf("probes %+v, want fra's one", probes)
			}
			got := probes[0]
			if got.Kind != tc.kind || got.Addr != tc.addr || got.Path != tc.path || got.Jitter != tc.jitter {
				t.Errorf("probe %+v; want kind %s, addr %s, path %q, jitter %v", got, tc.kind, tc.addr, tc.path, tc.jitter)
			}
		})
	}

	const f = "pops.fra.probe"
	for _, tc := range []struct {
		name, probe string
		want        []wantErr
	}{
		{"URL of the other scheme", `{ http: "https://192.0.2.1/x" }`, []wantErr{{1, f + ".http", `an http probe's URL starts with http://`}}},
		{"URL on a tcp probe", `{ tcp: "http://192.0.2.1:80/" }`, []wantErr{{1, f + ".tcp", "host:port"}}},
		{"URL and path", `{ http: "http://192.0.2.1/x", path: /y }`, []wantErr{{1, f + ".path", "the URL gives the path already"}}},
		{"URL with a user", `{ http: "http://u:p@192.0.2.1/x" }`, []wantErr{{1, f + ".http", "no user"}}},
		{"URL with a fragment", `{ http: "http://192.0.2.1/x#y" }`, []wantErr{{1, f + ".http", "no fragment"}}},
		{"URL with a bad port", `{ http: "http://192.0.2.1:0/x" }`, []wantErr{{1, f + ".http", "bad port"}}},
		{"negative jitter", `{ tcp: "192.0.2.1:1", jitter: -1s }`, []wantErr{{1, f + ".jitter", "0 or a positive duration"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(t, probeLine(tc.probe), d)
			checkErrors(t, err, tc.want)
		})
	}
}

// TestDecodeProbe checks the API zones uses for the probes of geo targets:
// a probe written in a zone file resolves to the same target, and the same
// ID, as the one written for a PoP, and errors are located where it was
// written.
func TestDecodeProbe(t *testing.T) {
	d := healthprobe.Defaults{Interval: 10 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3}
	node := func(text string) *yaml.Node {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte("\n\nprobe: "+text+"\n"), &doc); err != nil {
			t.Fatal(err)
		}
		return doc.Content[0].Content[1]
	}
	const probe = `{ http: "http://192.0.2.1:8080/health", rise: 3 }`
	inv, err := decode(t, probeLine(probe), d)
	if err != nil {
		t.Fatal(err)
	}
	ps, errs := DecodeProbe("z.yaml", "records.www[0].geo.targets.fra.probe", node(probe))
	if ps == nil || errs != nil {
		t.Fatalf("DecodeProbe = %v, %v", ps, errs)
	}
	target, rerr := ps.Resolve(d)
	if rerr != nil || target.ID != inv.Get("fra").Probe || target.Key() != inv.Probes()[0].Key() {
		t.Errorf("Resolve = %+v, %v; want the PoP's probe %q", target, rerr, inv.Get("fra").Probe)
	}
	set := ProbeSet{target.ID: target, "a": {ID: "a"}}
	if got := set.Sorted(); len(got) != 2 || got[0].ID != "a" || got[1].ID != target.ID {
		t.Errorf("Sorted = %+v, want by ID", got)
	}

	ps, errs = DecodeProbe("z.yaml", "f", node(`{ tcp: "192.0.2.1:1", rise: 0 }`))
	if ps != nil || len(errs) != 1 || errs[0].File != "z.yaml" || errs[0].Line != 3 {
		t.Errorf("DecodeProbe of a bad probe = %v, %v; want nil and an error at z.yaml:3", ps, errs)
	}
	ps, _ = DecodeProbe("z.yaml", "f", node(`{ tcp: "192.0.2.1:1", timeout: 15s }`))
	if _, rerr := ps.Resolve(d); rerr == nil || rerr.Error() != "z.yaml:3: f: timeout 15s must be positive and below interval 10s" {
		t.Errorf("Resolve error %v; want it located in z.yaml", rerr)
	}
}
