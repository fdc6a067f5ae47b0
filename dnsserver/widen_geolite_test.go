//go:build slow

package dnsserver

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

// demoZone is the embedded demo's www over its six PoPs (sixPoPs).
const demoZone = `
origin: example.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.10 }
          iad: { a: 192.0.2.20 }
          sin: { a: 192.0.2.30 }
          gru: { a: 192.0.2.40 }
          syd: { a: 192.0.2.50 }
          nrt: { a: 192.0.2.60 }
`

// TestWidenGeoLiteServer sends 10,000 located /24s drawn at random from
// the real GeoLite2 City through the server, widening on and off, with
// the widener's queue drained after each query (a server whose widener
// keeps up): it reports the scopes answered (the first answer, which a
// prefix widened for an earlier client may already make wide, and the
// answer once widened), how many scope-sized blocks cover the sample (the
// upstream queries of a resolver with an ECS cache that saw each client
// once), and checks that every answer is the one widening off gives. It
// skips without the database (testdata/geo/README.md).
func TestWidenGeoLiteServer(t *testing.T) {
	dir := os.Getenv("POPDNS_GEOLITE_DIR")
	if dir == "" {
		dir = "../testdata/geo/real"
	}
	path := filepath.Join(dir, "GeoLite2-City.mmdb")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no GeoLite2 City at %s: %v", path, err)
	}
	newServer := func(wc WidenConfig) (*Server, *geo.Locator) {
		db, err := geo.Open(path, "")
		if err != nil {
			t.Fatal(err)
		}
		loc := geo.NewLocator(db, zerolog.Nop())
		t.Cleanup(func() { loc.Close() })
		demo := slices.Clone(sixPoPs)
		demo[5].Weight = 0 // as the demo's
		inv, err := pops.New(demo...)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := zones.Load(fstest.MapFS{"example.test.yaml": {Data: []byte(demoZone)}}, inv, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(testConfig(Config{Listen: []string{"127.0.0.1:0"}, Widen: wc}),
			Deps{Log: zerolog.Nop(), Metrics: prometheus.NewRegistry(), Locator: loc})
		if err != nil {
			t.Fatal(err)
		}
		s.SetZones(snap)
		return s, loc
	}
	off, loc := newServer(WidenConfig{Off: true})
	on, _ := newServer(WidenConfig{})
	on.widen.running.Store(true) // the test drains the queue itself

	rng := rand.New(rand.NewPCG(17, 24))
	seen := map[netip.Prefix]bool{}
	var clients []netip.Addr
	for len(clients) < 10000 {
		var b [4]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		p, _ := netip.AddrFrom4(b).Prefix(24)
		if seen[p] {
			continue
		}
		if l := loc.Locate(p.Addr()); !l.Found || !l.HasPoint {
			continue
		}
		seen[p] = true
		clients = append(clients, p.Addr())
	}
	ask := func(s *Server, c netip.Addr) (string, int) {
		r := serve(t, s, query("www.example.test.", dns.TypeA, withECS(c.String(), 24)), "192.0.2.1")
		if len(r.Answer) != 1 {
			t.Fatalf("%s: %v", c, r)
		}
		return addrs(r.Answer)[0], int(replyECS(t, r).SourceScope)
	}
	var cands steer.Candidates
	drain := func() {
		for {
			select {
			case j := <-on.widen.jobs:
				on.widen.widen(&j, &cands)
				on.widen.done.Add(1)
			default:
				return
			}
		}
	}
	rank, first, after := make([]int, len(clients)), make([]int, len(clients)), make([]int, len(clients))
	want := make([]string, len(clients))
	wrong := 0
	for i, c := range clients {
		want[i], rank[i] = ask(off, c)
		var got string
		got, first[i] = ask(on, c)
		drain()
		if got != want[i] {
			wrong++
		}
	}
	for i, c := range clients {
		var got string
		if got, after[i] = ask(on, c); got != want[i] {
			wrong++
			t.Errorf("%s: %s widened, %s without", c, got, want[i])
		}
	}
	pct := func(v []int, q float64) int {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[int(q*float64(len(s)-1))]
	}
	blocks := func(scopes []int) int {
		set := map[netip.Prefix]bool{}
		for i, c := range clients {
			p, _ := c.Prefix(scopes[i])
			set[p] = true
		}
		return len(set)
	}
	for _, r := range []struct {
		name   string
		scopes []int
	}{{"Rank's scope (widening off)", rank}, {"first answer, widening on", first}, {"once widened", after}} {
		t.Logf("%-28s p10 /%d, median /%d, p90 /%d; %d blocks cover the %d /24s", r.name,
			pct(r.scopes, .1), pct(r.scopes, .5), pct(r.scopes, .9), blocks(r.scopes), len(clients))
	}
	m := on.widen.m
	t.Logf("widener: %v widened, %v out of budget, %v covered, %v stale, %v dropped; %d prefixes stored",
		testutil.ToFloat64(m.done), testutil.ToFloat64(m.budget), testutil.ToFloat64(m.covered), testutil.ToFloat64(m.stale), testutil.ToFloat64(m.dropped), on.widen.store.len())
	if wrong > 0 {
		t.Errorf("%d answers differ from those without widening", wrong)
	}
	for i := range clients {
		if after[i] > rank[i] {
			t.Fatalf("%s: widened scope /%d narrower than Rank's /%d", clients[i], after[i], rank[i])
		}
	}
}
