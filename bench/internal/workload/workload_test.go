package workload

import (
	"math"
	"strings"
	"testing"
)

// TestBenchWorkload loads the description run.sh uses.
func TestBenchWorkload(t *testing.T) {
	d, err := Load("../../workload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if d.Zone != "example.test." || d.GeoFQDN() != "www.example.test." || d.StaticFQDN() != "static.example.test." {
		t.Errorf("names: %s %s %s", d.Zone, d.GeoFQDN(), d.StaticFQDN())
	}
	if len(d.PoPs) != 6 || len(d.Clients.Continents) != 6 {
		t.Errorf("%d PoPs, %d continents", len(d.PoPs), len(d.Clients.Continents))
	}
	for _, p := range d.PoPs {
		if got, ok := d.PoPByA(p.A); !ok || got.Name != p.Name {
			t.Errorf("PoPByA(%s) = %v %v", p.A, got, ok)
		}
	}
	names := map[string]bool{}
	for _, w := range d.Workloads {
		names[w.Name] = true
	}
	for _, n := range []string{"static", "geo", "geo-ecs", "mix", "static-do", "geo-ecs-do"} {
		if !names[n] {
			t.Errorf("no workload %s", n)
		}
	}
	for _, w := range d.Workloads {
		if w.Name == "geo-ecs-do" && (!w.DNSSEC() || !w.Geo || w.Mix[KindGeoECS] != 1) {
			t.Errorf("geo-ecs-do: %+v", w)
		}
	}
}

func TestParseErrors(t *testing.T) {
	good := `zone: example.test
geo_name: www
static_name: static
static_a: 192.0.2.11
ns_a: 192.0.2.53
pops:
  - { name: fra, lat: 50.11, lon: 8.68, a: 192.0.2.10 }
  - { name: iad, lat: 38.95, lon: -77.45, a: 192.0.2.20 }
clients: { continents: [EU, NA], per_continent: 5, seed: 1 }
workloads:
  - { name: mix, mix: { geo_ecs: 0.9, nxdomain: 0.1 }, geo: true }
  - { name: mix-do, signed_of: mix }
`
	d, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if d.Zone != "example.test." || d.GeoTTL != 30 || d.ListSize != 20000 {
		t.Errorf("defaults: %+v", d)
	}
	if ks := d.Workloads[0].Kinds(); strings.Join(ks, ",") != "geo_ecs,nxdomain" {
		t.Errorf("kinds %v", ks)
	}
	if w := d.Workloads[1]; !w.DNSSEC() || !w.Geo || strings.Join(w.Kinds(), ",") != "geo_ecs,nxdomain" || d.Workloads[0].DNSSEC() {
		t.Errorf("signed_of: %+v", w)
	}
	cases := map[string]struct{ from, to, want string }{
		"unknown key":      {"ns_a:", "nsa:", "field nsa not found"},
		"bad address":      {"static_a: 192.0.2.11", "static_a: 2001:db8::1", "static_a"},
		"duplicate PoP":    {"name: iad", "name: fra", "fra twice"},
		"latitude":         {"lat: 50.11", "lat: 150.11", "lat/lon"},
		"continent":        {"[EU, NA]", "[EU, XX]", `"XX"`},
		"shares":           {"nxdomain: 0.1", "nxdomain: 0.2", "add up"},
		"kind":             {"nxdomain: 0.1", "nxdomian: 0.1", "unknown kind"},
		"geo name a label": {"geo_name: www", "geo_name: a.b", "geo_name"},
		"signed_of":        {"signed_of: mix", "signed_of: max", "not an earlier workload"},
		"signed_of a mix":  {"signed_of: mix }", "signed_of: mix, geo: true }", "come from signed_of"},
	}
	for name, c := range cases {
		_, err := Parse([]byte(strings.Replace(good, c.from, c.to, 1)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", name, err, c.want)
		}
	}
}

func TestDistanceAndNearest(t *testing.T) {
	d, err := Load("../../workload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Frankfurt to Ashburn, as popdns explain shows it: 6553 km.
	if km := DistanceKm(50.11, 8.68, 38.95, -77.45); math.Abs(km-6553) > 5 {
		t.Errorf("fra-iad %.0f km", km)
	}
	if km := DistanceKm(10, 20, 10, 20); km != 0 {
		t.Errorf("same point %v km", km)
	}
	cases := []struct {
		place    string
		lat, lon float64
		want     string
	}{
		{"Berlin", 52.52, 13.40, "fra"},
		{"New York", 40.71, -74.01, "iad"},
		{"Jakarta", -6.2, 106.8, "sin"},
		{"Buenos Aires", -34.6, -58.4, "gru"},
		{"Auckland", -36.85, 174.76, "syd"},
		{"Seoul", 37.57, 126.98, "nrt"},
		{"Nairobi", -1.29, 36.82, "fra"},
	}
	for _, c := range cases {
		i, margin := Nearest(d.PoPs, c.lat, c.lon)
		if d.PoPs[i].Name != c.want || margin <= 0 {
			t.Errorf("%s: %s (margin %.2f), want %s", c.place, d.PoPs[i].Name, margin, c.want)
		}
	}
	if _, margin := Nearest(d.PoPs, 50.11, 8.68); !math.IsInf(margin, 1) {
		t.Errorf("at a PoP: margin %v, want +Inf", margin)
	}
	// Halfway between two PoPs on the equator: a near-tie.
	two := []PoP{{Name: "a", Lat: 0, Lon: 0}, {Name: "b", Lat: 0, Lon: 20}}
	if _, margin := Nearest(two, 0, 10.01); margin > 0.01 {
		t.Errorf("near-tie margin %v", margin)
	}
}
