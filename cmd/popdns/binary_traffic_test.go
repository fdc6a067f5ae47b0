//go:build slow

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/geodbgen"
	"github.com/popdns/popdns/internal/traffic"
)

// trafficNetworks places documentation networks in countries near the
// PoPs of trafficConfig; 203.0.113.0/24 is in none.
const trafficNetworks = `
build_epoch: 1735689600
places:
  ber: {city: Berlin, lat: 52.52, lon: 13.40, country: DE, continent: EU}
  par: {city: Paris, lat: 48.86, lon: 2.35, country: FR, continent: EU}
  lon: {city: London, lat: 51.51, lon: -0.13, country: GB, continent: EU}
  rtm: {city: Rotterdam, lat: 51.92, lon: 4.48, country: NL, continent: EU}
  nyc: {city: New York, lat: 40.71, lon: -74.01, country: US, continent: NA}
  tyo: {city: Tokyo, lat: 35.68, lon: 139.69, country: JP, continent: AS}
city:
  - {network: 192.0.2.0/26, place: ber}
  - {network: 192.0.2.64/26, place: par}
  - {network: 192.0.2.128/26, place: lon}
  - {network: 192.0.2.192/26, place: rtm}
  - {network: 198.51.100.0/26, place: nyc}
  - {network: 198.51.100.64/26, place: tyo}
`

const trafficZone = `
origin: traffic.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          ams: { a: 192.0.2.1 }
          fra: { a: 192.0.2.2 }
          lhr: { a: 192.0.2.3 }
          cdg: { a: 192.0.2.4 }
          iad: { a: 192.0.2.5 }
          nrt: { a: 192.0.2.6 }
  static:
    - a: 192.0.2.9
`

const trafficConfig = `listen: ["127.0.0.1:0"]
http: 127.0.0.1:0
zones: zones
log: { format: json }
geoip: { city: city.mmdb }
pops:
  ams: { lat: 52.31, lon: 4.76, country: NL, continent: EU }
  fra: { lat: 50.11, lon: 8.68, country: DE, continent: EU }
  lhr: { lat: 51.47, lon: -0.45, country: GB, continent: EU }
  cdg: { lat: 49.01, lon: 2.55, country: FR, continent: EU }
  iad: { lat: 38.95, lon: -77.45, country: US, continent: NA }
  nrt: { lat: 35.77, lon: 140.39, country: JP, continent: AS }
`

// TestBinaryTraffic runs the real binary, asks it with ECS from six
// countries and a network the GeoIP database does not know, over UDP (the
// fast path answers all but each client's first) and TCP (the general
// path), and reads the traffic back from /status and /metrics: every
// answer counted once, at the PoP it was sent to, for its country.
func TestBinaryTraffic(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "popdns")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	city, _, err := geodbgen.Generate("networks.yaml", []byte(trafficNetworks))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "zones"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"city.mmdb": city, "popdns.yaml": []byte(trafficConfig), "zones/traffic.test.yaml": []byte(trafficZone),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-config", filepath.Join(dir, "popdns.yaml"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil && ctx.Err() == nil {
			t.Errorf("after SIGTERM: %v", err)
		}
	}()
	var serving struct {
		DNS  []string `json:"dns"`
		HTTP string   `json:"http"`
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "popdns serving") {
			if err := json.Unmarshal(sc.Bytes(), &serving); err != nil {
				t.Fatalf("serving line %q: %v", sc.Text(), err)
			}
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	if len(serving.DNS) == 0 || serving.HTTP == "" {
		t.Fatal("no serving line with DNS and HTTP addresses")
	}

	// Each client network asks n times over UDP and once over TCP.
	const n = 20
	clients := []struct {
		subnet, country, continent, pop, addr string
	}{
		{"192.0.2.0/26", "DE", "EU", "fra", "192.0.2.2"},
		{"192.0.2.64/26", "FR", "EU", "cdg", "192.0.2.4"},
		{"192.0.2.128/26", "GB", "EU", "lhr", "192.0.2.3"},
		{"192.0.2.192/26", "NL", "EU", "ams", "192.0.2.1"},
		{"198.51.100.0/26", "US", "NA", "iad", "192.0.2.5"},
		{"198.51.100.64/26", "JP", "AS", "nrt", "192.0.2.6"},
	}
	ask := func(proto, name, subnet string) *dns.Msg {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		q.SetEdns0(1232, false)
		p := netip.MustParsePrefix(subnet)
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
			SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
		r, _, err := (&dns.Client{Net: proto, Timeout: 2 * time.Second}).Exchange(q, serving.DNS[0])
		if err != nil {
			t.Fatalf("%s %s from %s: %v", proto, name, subnet, err)
		}
		return r
	}
	for _, c := range clients {
		for i := range n + 1 {
			proto := "udp"
			if i == n {
				proto = "tcp"
			}
			r := ask(proto, "www.traffic.test.", c.subnet)
			if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != c.addr {
				t.Fatalf("%s from %s: %v, want %s (%s)", proto, c.subnet, r.Answer, c.addr, c.pop)
			}
		}
	}
	for range 5 {
		ask("udp", "www.traffic.test.", "203.0.113.0/26")  // nowhere: the targets in file order, ams first
		ask("udp", "static.traffic.test.", "192.0.2.0/26") // a query of the zone, no geo answer
	}

	web := &http.Client{Timeout: 5 * time.Second}
	resp, err := web.Get("http://" + serving.HTTP + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Traffic *traffic.Report `json:"traffic"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.Traffic == nil {
		t.Fatalf("/status: %v, traffic %v", err, st.Traffic)
	}
	tr := st.Traffic
	countries := map[string]traffic.Catchment{}
	for _, c := range tr.Countries {
		countries[c.Code] = c
	}
	pops := map[string]traffic.PoPRate{}
	for _, p := range tr.PoPs {
		pops[p.Name] = p
	}
	for _, c := range clients {
		got := countries[c.country]
		if got.Top != c.pop || got.Total != n+1 || got.LastHour != n+1 || got.Continent != c.continent ||
			len(got.PoPs) != 1 || got.PoPs[0].PoP != c.pop {
			t.Errorf("catchment of %s: %+v, want %d answers, all from %s", c.country, got, n+1, c.pop)
		}
		want := uint64(n + 1)
		if c.pop == "ams" {
			want += 5 // the unknown network's
		}
		if p := pops[c.pop]; p.Total != want || p.LastHour != want || p.PerSecM <= 0 || p.ShareH <= 0 {
			t.Errorf("PoP %s: %+v, want %d answers", c.pop, p, want)
		}
	}
	if got := countries["--"]; got.Total != 5 || got.Top != "ams" || got.Continent != "--" {
		t.Errorf("clients in no country: %+v, want 5 answers from ams", got)
	}
	eu := traffic.Catchment{}
	for _, k := range tr.Continents {
		if k.Code == "EU" {
			eu = k
		}
	}
	if eu.Total != 4*(n+1) {
		t.Errorf("Europe: %+v, want %d answers", eu, 4*(n+1))
	}
	if len(tr.Zones) != 1 || tr.Zones[0].Name != "traffic.test." || tr.Zones[0].Total != 6*(n+1)+10 {
		t.Errorf("zones: %+v, want traffic.test. with %d queries", tr.Zones, 6*(n+1)+10)
	}

	resp, err = web.Get("http://" + serving.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`popdns_geo_answers_total{pop="ams",record="www.traffic.test.",zone="traffic.test."} 26`,
		`popdns_geo_answers_total{pop="nrt",record="www.traffic.test.",zone="traffic.test."} 21`,
		`popdns_geo_catchment_answers_total{continent="EU",pop="cdg"} 21`,
		`popdns_geo_catchment_answers_total{continent="EU",pop="ams"} 21`,
		`popdns_geo_catchment_answers_total{continent="--",pop="ams"} 5`,
		`popdns_geo_catchment_answers_total{continent="AS",pop="nrt"} 21`,
		`popdns_geo_catchment_answers_total{continent="SA",pop="iad"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// And the page draws it.
	resp, err = web.Get("http://" + serving.HTTP + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`<section class="traffic"`, `data-country="JP"`, `<svg class="inset"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the page lacks %s", want)
		}
	}
}
