package status

import (
	"encoding/json"
	"fmt"
	"github.com/popdns/popdns/dnssec"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
)

const statusZone = `
origin: status.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.1, probe: { tcp: "192.0.2.1:443" } }
          iad: { a: 192.0.2.2 }
  api:
    - geo:
        targets:
          fra: { a: 192.0.2.11, probe: { tcp: "192.0.2.11:443" } }
          iad: { a: 192.0.2.12, state: drain }
`

// TestStatusFollowsSelection: the status says what selection does. A PoP
// whose own probe is up but all of whose targets are down gets no clients,
// so it is not up (it was shown up); a down probe's RTT is from its last
// success and is not shown as current.
func TestStatusFollowsSelection(t *testing.T) {
	inv, err := pops.New(
		pops.PoP{Name: "fra", Point: geo.Point{Lat: 50.11, Lon: 8.68}, Probe: "pop-fra"},
		pops.PoP{Name: "iad", Point: geo.Point{Lat: 38.95, Lon: -77.45}},
	)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(fstest.MapFS{"status.test.yaml": {Data: []byte(statusZone)}}, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	checked := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	down := healthprobe.Result{RTT: 12 * time.Millisecond, Baseline: 10 * time.Millisecond, Penalty: 2 * time.Millisecond,
		Checked: checked, LastError: "connection refused"}
	health := healthprobe.NewStatus(1, 1, map[string]healthprobe.Result{
		"pop-fra":              {Healthy: true, RTT: time.Millisecond, Checked: checked},
		"tcp://192.0.2.1:443":  down,
		"tcp://192.0.2.11:443": down,
	})

	tests := []struct {
		name      string
		overrides map[string]pops.AdminState
		pop       string
		up        bool
		class     string
		targetsUp int
	}{
		{"fra's targets all down", nil, "fra", false, "unhealthy", 0},
		{"iad's other target drained", nil, "iad", true, "up", 1},
		{"iad drained by an operator", map[string]pops.AdminState{"iad": pops.Drain}, "iad", false, "draining", 0},
		// Every target at fra drained one by one (their probes are down
		// too): a choice, not a failure, so draining as the PoP drained.
		{"fra's targets drained one by one", map[string]pops.AdminState{
			zones.TargetKey("fra", "www.status.test."): pops.Drain, zones.TargetKey("fra", "api.status.test."): pops.Drain,
		}, "fra", false, "draining", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ov *steer.Overrides
			if tc.overrides != nil {
				ov = ov.Next(tc.overrides)
			}
			st := Build(snap, health, ov, time.Now)
			var p *PoP
			for i := range st.PoPs {
				if st.PoPs[i].Name == tc.pop {
					p = &st.PoPs[i]
				}
			}
			if p == nil {
				t.Fatalf("no PoP %s in %+v", tc.pop, st.PoPs)
			}
			if p.Up != tc.up || popClass(*p) != tc.class || p.TargetsUp != tc.targetsUp {
				t.Errorf("%s: up %v class %s targets up %d; want %v %s %d", tc.pop, p.Up, popClass(*p), p.TargetsUp, tc.up, tc.class, tc.targetsUp)
			}
		})
	}

	st := Build(snap, health, nil, time.Now)
	for _, ts := range st.Targets {
		if ts.PoP != "fra" {
			continue
		}
		if ts.Healthy || ts.Eligible || ts.RTTMS != 0 || ts.PenaltyMS != 0 || ts.LastRTTMS != 12 || ts.LastError != "connection refused" {
			t.Errorf("down target %s at fra: %+v; want no current RTT or penalty, last RTT 12 ms", ts.Name, ts)
		}
	}
	for _, ps := range st.Probes {
		if ps.ID == "tcp://192.0.2.1:443" && (ps.RTTMS != 0 || ps.LastRTTMS != 12) {
			t.Errorf("down probe %+v; want no current RTT, last RTT 12 ms", ps)
		}
	}
}

// TestStatusPages: /status and the page list one page of zones, or one
// zone with its targets, while the summary and the PoPs' counts cover
// every zone.
func TestStatusPages(t *testing.T) {
	snap := manyZones(t, 250)
	srv := &fakeServer{snap: snap}
	srv.serving.Store(true)
	rep := New(Deps{Server: srv, Health: fakeHealth{firstDone: make(chan struct{})}})
	h := rep.Handler(Endpoints{Metrics: prometheus.NewRegistry()})
	get := func(path string) (*httptest.ResponseRecorder, Status) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		var st Status
		if rec.Code == 200 {
			if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		}
		return rec, st
	}
	tests := []struct {
		path        string
		code        int
		zones       int
		first       string
		page, pages int
	}{
		{"/status", 200, 100, "z00000.test.", 1, 3},
		{"/status?page=2", 200, 100, "z00100.test.", 2, 3},
		{"/status?page=3", 200, 50, "z00200.test.", 3, 3},
		{"/status?page=4", 200, 0, "", 4, 3},
		{"/status?zone=Z00123.test", 200, 1, "z00123.test.", 0, 3},
		{"/status?zone=z00123.test.", 200, 1, "z00123.test.", 0, 3},
		{"/status?zone=www.z00123.test", 404, 0, "", 0, 0},
		{"/status?zone=nowhere.example", 404, 0, "", 0, 0},
		{"/status?page=0", 400, 0, "", 0, 0},
		{"/status?page=x", 400, 0, "", 0, 0},
		{"/status?page=1&zone=z00001.test", 400, 0, "", 0, 0},
	}
	for _, tc := range tests {
		rec, st := get(tc.path)
		if rec.Code != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.path, rec.Code, rec.Body, tc.code)
			continue
		}
		if tc.code != 200 {
			continue
		}
		if len(st.Zones) != tc.zones || st.Page != tc.page || st.Pages != tc.pages || st.ZoneCount != 250 {
			t.Errorf("%s: %d zones, page %d of %d, %d in all; want %d, page %d of %d, 250", tc.path,
				len(st.Zones), st.Page, st.Pages, st.ZoneCount, tc.zones, tc.page, tc.pages)
		}
		if tc.first != "" && st.Zones[0].Origin != tc.first {
			t.Errorf("%s: first zone %s, want %s", tc.path, st.Zones[0].Origin, tc.first)
		}
		if len(st.Targets) != 2*len(st.Zones) {
			t.Errorf("%s: %d targets for %d zones, want theirs only", tc.path, len(st.Targets), len(st.Zones))
		}
		for _, p := range st.PoPs {
			if p.Targets != 250 {
				t.Errorf("%s: PoP %s counts %d targets, want 250 (every zone)", tc.path, p.Name, p.Targets)
			}
		}
	}

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/?page=2", nil))
	page := rec.Body.String()
	for _, want := range []string{"<b>250</b> zones", "page 2 of 3", `<a href="/?page=1">1</a>`, "<b>2</b>",
		`<a href="/?page=3">3</a>`, `<a href="/?zone=z00100.test.">z00100.test.</a>`} {
		if !strings.Contains(page, want) {
			t.Errorf("page 2 lacks %q", want)
		}
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/?zone=z00007.test", nil))
	if page := rec.Body.String(); !strings.Contains(page, "showing z00007.test.") || strings.Contains(page, "z00008.test.") {
		t.Errorf("the page of one zone shows others, or not it")
	}
}

// TestPageLinks: the first, the last and three either side of the page.
func TestPageLinks(t *testing.T) {
	var got []int
	for _, l := range pageLinks(50, 100) {
		got = append(got, l.Page)
	}
	if fmt.Sprint(got) != "[1 47 48 49 50 51 52 53 100]" {
		t.Errorf("links %v", got)
	}
	if pageLinks(1, 1) != nil {
		t.Error("links for a single page")
	}
}

// FuzzParseQuery: any query of / or /status either is refused or selects
// a zone as a lowercase FQDN, or a page from 1, never both.
func FuzzParseQuery(f *testing.F) {
	for _, seed := range []string{
		"",                          // the first page
		"page=2",                    // a page
		"zone=Example.COM",          // a zone, any case, no final dot
		"zone=a.&page=1",            // both: refused
		"page=-1",                   // refused
		"page=99999999999999999999", // out of int range
		"zone=%00%ff",               // bytes that are no name
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		req := httptest.NewRequest("GET", "/status", nil)
		req.URL.RawQuery = raw
		q, err := parseQuery(req)
		if err != nil {
			return
		}
		if q.Zone != "" && q.Page != 0 || q.Page < 0 || q.Page > maxPage {
			t.Fatalf("%q: %+v", raw, q)
		}
		if q.Zone != "" && (q.Zone != strings.ToLower(q.Zone) || !strings.HasSuffix(q.Zone, ".")) {
			t.Fatalf("%q: zone %q", raw, q.Zone)
		}
	})
}

// TestStatusSignedZone: a signed zone lists its keys with their tags,
// roles and states; an unsigned one none.
func TestStatusSignedZone(t *testing.T) {
	fsys := fstest.MapFS{
		"signed.test.yaml": {Data: []byte("origin: signed.test.\ndnssec:\n  keys: keys\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 60\n    - ns: ns1\n")},
		"plain.test.yaml":  {Data: []byte("origin: plain.test.\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 60\n    - ns: ns1\n")},
	}
	var tags []uint16
	for _, flags := range []uint16{257, 256} {
		k, err := dnssec.GenerateKey("signed.test.", dnssec.AlgorithmEd25519, flags, 3600, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		keyFile, privFile, err := dnssec.WriteKeyFiles(dir, k, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{keyFile, privFile} {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			fsys["keys/"+filepath.Base(f)] = &fstest.MapFile{Data: data}
		}
		tags = append(tags, k.Tag)
	}
	snap, err := zones.Load(fsys, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := Build(snap, nil, nil, time.Now)
	for _, z := range st.Zones {
		switch z.Origin {
		case "plain.test.":
			if z.DNSSEC != nil {
				t.Errorf("unsigned zone lists keys %+v", z.DNSSEC)
			}
		case "signed.test.":
			if len(z.DNSSEC) != 2 {
				t.Fatalf("signed zone lists keys %+v, want 2", z.DNSSEC)
			}
			for _, k := range z.DNSSEC {
				want := map[uint16]string{tags[0]: "KSK", tags[1]: "ZSK"}[k.Tag]
				if k.Role != want || k.State != "active" || !k.Signs || k.Algorithm != "ed25519" || (k.Role == "KSK") != (k.DS != "") {
					t.Errorf("key %+v, want role %s, active, signing, a DS for the KSK", k, want)
				}
			}
		}
	}
}
