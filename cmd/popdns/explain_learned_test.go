package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/latency/learn"
)

// TestExplainLearned: `popdns explain` decides with the learned table
// the configuration's state_dir holds, as the running server would, and
// says which cell and how many samples decided.
func TestExplainLearned(t *testing.T) {
	dir := t.TempDir()
	city, err := os.ReadFile("../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "city.mmdb", string(city))
	writeFile(t, dir, "zones/geo.test.yaml", `origin: geo.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.10 }
          iad: { a: 192.0.2.20 }
`)
	conf := writeFile(t, dir, "popdns.yaml", `listen: ["127.0.0.1:0"]
zones: zones
geoip: { city: city.mmdb }
state_dir: state
pops:
  fra: { lat: 50.11, lon: 8.68 }
  iad: { lat: 38.95, lon: -77.45 }
learned_latency:
  enabled: true
`)
	// The Frankfurt /24 measured fra slow and iad fast.
	now := time.Now()
	agg := learn.NewAggregator(learn.Config{})
	p := netip.MustParsePrefix("192.0.2.0/24")
	var ms []learn.Measurement
	for i := range 15 {
		m := learn.Measurement{Prefix: p, PoP: "fra", RTTMS: 40, Weight: 1, Time: now}
		if i%3 == 0 {
			m.PoP, m.RTTMS = "iad", 8
		}
		ms = append(ms, m)
	}
	if _, err := agg.Ingest(ms, now, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := agg.Save(filepath.Join(dir, "state"), now); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"explain", "-config", conf, "-ecs", "192.0.2.0/26", "www.geo.test"}, &out, &errOut); err != nil {
		t.Fatalf("explain: %v (%s)", err, errOut.String())
	}
	for _, want := range []string{
		"learned   compared in its prefix cell; current PoP iad", // a loaded table's first leader is its best PoP
		"learned in 192.0.2.0/24: 8.0 ms, 5.0 samples",
		"answer    www.geo.test. 30 IN A 192.0.2.20",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
