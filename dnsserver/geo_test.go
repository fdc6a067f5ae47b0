package dnsserver

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// The six PoPs of the benchmark issue.
var sixPoPs = []pops.PoP{
	{Name: "fra", Point: geo.Point{Lat: 50.11, Lon: 8.68}, Country: "DE", Continent: "EU"},
	{Name: "iad", Point: geo.Point{Lat: 38.95, Lon: -77.45}, Country: "US", Continent: "NA"},
	{Name: "sin", Point: geo.Point{Lat: 1.35, Lon: 103.82}, Country: "SG", Continent: "AS"},
	{Name: "gru", Point: geo.Point{Lat: -23.43, Lon: -46.47}, Country: "BR", Continent: "SA"},
	{Name: "syd", Point: geo.Point{Lat: -33.94, Lon: 151.18}, Country: "AU", Continent: "OC"},
	{Name: "nrt", Point: geo.Point{Lat: 35.77, Lon: 140.39}, Country: "JP", Continent: "AS", Weight: 3},
}

const geoZone = `
origin: geo.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.1, aaaa: 2001:db8::1 }
          iad: { a: 192.0.2.2, aaaa: 2001:db8::2 }
          sin: { a: 192.0.2.3 }
          gru: { a: 192.0.2.4 }
          syd: { a: 192.0.2.5 }
          nrt: { a: 192.0.2.6 }
    - txt: "geo names keep their other types"
  two:
    - geo:
        answers: 2
        ttl: 10
        targets:
          fra: { a: 192.0.2.1 }
          iad: { a: 192.0.2.2 }
          sin: { a: 192.0.2.3 }
  ruled:
    - geo:
        targets:
          fra: { a: 192.0.2.1, aaaa: 2001:db8::1 }
          iad: { a: 192.0.2.2 }
          sin: { a: 192.0.2.3 }
          nrt: { a: 192.0.2.6 }
        rules:
          - { country: CN, only: [sin] }
          - { continent: EU, exclude: fra }
          - { cidr: 203.0.113.0/26, only: iad }
          - { asn: 64500, only: nrt }
  states:
    - geo:
        targets:
          fra: { a: 192.0.2.1, state: drain }
          iad: { a: 192.0.2.2, state: down }
          sin: { a: 192.0.2.3 }
  nearest:
    - geo:
        targets:
          fra: { a: 192.0.2.1, state: drain }
          iad: { a: 192.0.2.2, state: drain }
          sin: { a: 192.0.2.3, state: down }
  all:
    - geo:
        when_all_down: all
        targets:
          fra: { a: 192.0.2.1, state: drain }
          iad: { a: 192.0.2.2, state: drain }
          sin: { a: 192.0.2.3, state: down }
  fallback:
    - geo:
        when_all_down: fallback
        fallback: [sin]
        targets:
          fra: { a: 192.0.2.1, state: drain }
          sin: { a: 192.0.2.3, state: drain }
  servfail:
    - geo:
        when_all_down: servfail
        targets:
          fra: { a: 192.0.2.1, state: drain }
  alldown:
    - geo:
        targets:
          fra: { a: 192.0.2.1, state: down }
  cdn:
    - geo:
        targets:
          fra: { cname: www.fra.cdn.example.net. }
          iad: { cname: iad.geo.test. }
  iad:
    - a: 192.0.2.22
  alias:
    - cname: www
  biased:
    - geo:
        targets:
          fra: { a: 192.0.2.1, bias_ms: 500 }
          iad: { a: 192.0.2.2 }
  spread:
    - geo:
        spread_ms: 100000
        targets:
          fra: { a: 192.0.2.1 }
          nrt: { a: 192.0.2.6 }
  "*.wild":
    - geo:
        targets:
          fra: { a: 192.0.2.1 }
          iad: { a: 192.0.2.2 }
`

// fakeLocator places clients from a fixed table, longest prefix first.
type fakeLocator []geo.Location

func (f fakeLocator) Locate(a netip.Addr) geo.Location {
	var best geo.Location
	for _, l := range f {
		if l.Prefix.Contains(a) && l.Prefix.Bits() >= best.Prefix.Bits() {
			best = l
		}
	}
	if !best.Prefix.IsValid() {
		best.Prefix = netip.PrefixFrom(a, 8).Masked() // an empty region of the database
	}
	return best
}

func place(prefix string, lat, lon float64, country, continent string, asn uint32) geo.Location {
	return geo.Location{Prefix: netip.MustParsePrefix(prefix), Point: geo.Point{Lat: lat, Lon: lon}, HasPoint: true,
		Country: country, Continent: continent, ASN: asn, Found: true}
}

var testPlaces = fakeLocator{
	place("81.2.69.0/24", 52.52, 13.40, "DE", "EU", 0),                                         // Berlin
	place("81.2.0.0/16", 48.86, 2.35, "FR", "EU", 0),                                           // Paris
	place("24.48.0.0/16", 40.71, -74.01, "US", "NA", 0),                                        // New York
	place("66.249.0.0/16", 21.31, -157.86, "US", "NA", 0),                                      // Honolulu
	place("201.10.0.0/16", -23.55, -46.63, "BR", "SA", 0),                                      // São Paulo
	place("1.120.0.0/13", -33.87, 151.21, "AU", "OC", 0),                                       // Sydney
	place("27.111.0.0/16", -41.29, 174.78, "NZ", "OC", 0),                                      // Wellington
	place("126.0.0.0/8", 35.68, 139.69, "JP", "AS", 0),                                         // Tokyo
	place("1.2.0.0/16", 39.90, 116.40, "CN", "AS", 0),                                          // Beijing
	place("203.0.113.0/24", 40.71, -74.01, "US", "NA", 0),                                      // New York, with a CIDR rule inside
	place("64.0.0.0/16", 52.52, 13.40, "DE", "EU", 64500),                                      // Berlin, AS64500
	place("2a00:1450::/32", 53.55, 9.99, "DE", "EU", 0),                                        // Hamburg
	place("2001:db8:aa::/48", 1.29, 103.85, "SG", "AS", 0),                                     // Singapore
	{Prefix: netip.MustParsePrefix("5.5.0.0/16"), Country: "BR", Continent: "SA", Found: true}, // country only
	{Prefix: netip.MustParsePrefix("5.6.0.0/16"), Country: "MY", Continent: "AS", Found: true}, // Malaysia, country only
}

func newGeoServer(t testing.TB) *Server {
	t.Helper()
	pops, err := pops.New(sixPoPs...)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(fstest.MapFS{"geo.test.yaml": {Data: []byte(geoZone), ModTime: time.Unix(1e9, 0)}}, pops, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(testConfig(Config{Listen: []string{"127.0.0.1:0"}}), Deps{Log: zerolog.Nop(), Metrics: prometheus.NewRegistry(), Locator: testPlaces})
	if err != nil {
		t.Fatal(err)
	}
	s.SetZones(snap)
	return s
}

// withECS adds a client subnet option; addr must have no bits beyond bits.
func withECS(addr string, bits uint8) func(*dns.Msg) {
	return func(m *dns.Msg) {
		a := net.ParseIP(addr)
		family := uint16(1)
		if a.To4() == nil {
			family = 2
		}
		withOption(&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: family, SourceNetmask: bits, Address: a})(m)
	}
}

func replyECS(t *testing.T, m *dns.Msg) *dns.EDNS0_SUBNET {
	t.Helper()
	opt := m.IsEdns0()
	if opt == nil {
		return nil
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			return e
		}
	}
	return nil
}

func addrs(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		case *dns.CNAME:
			out = append(out, "CNAME "+v.Target)
		}
	}
	return out
}

func TestGeoAnswers(t *testing.T) {
	s := newGeoServer(t)
	cases := []struct {
		name   string
		req    *dns.Msg
		source string // the query's source address
		rcode  int
		want   []string // addresses (or "CNAME target") in the answer, in order
		scope  int      // ECS scope in the reply; -1: no ECS option expected
	}{
		{"Germany gets fra", query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)), "192.0.2.200", 0, []string{"192.0.2.1"}, 24},
		{"France (wider network) gets fra", query("www.geo.test.", dns.TypeA, withECS("81.2.70.0", 24)), "192.0.2.200", 0, []string{"192.0.2.1"}, 16},
		{"US East gets iad", query("www.geo.test.", dns.TypeA, withECS("24.48.1.0", 24)), "192.0.2.200", 0, []string{"192.0.2.2"}, 16},
		{"Hawaii is nearer Tokyo than Virginia", query("www.geo.test.", dns.TypeA, withECS("66.249.1.0", 24)), "192.0.2.200", 0, []string{"192.0.2.6"}, 16},
		{"Brazil gets gru", query("www.geo.test.", dns.TypeA, withECS("201.10.5.0", 24)), "192.0.2.200", 0, []string{"192.0.2.4"}, 16},
		{"Sydney gets syd", query("www.geo.test.", dns.TypeA, withECS("1.120.0.0", 24)), "192.0.2.200", 0, []string{"192.0.2.5"}, 13},
		{"New Zealand gets syd", query("www.geo.test.", dns.TypeA, withECS("27.111.7.0", 24)), "192.0.2.200", 0, []string{"192.0.2.5"}, 16},
		{"Japan gets nrt", query("www.geo.test.", dns.TypeA, withECS("126.1.2.0", 24)), "192.0.2.200", 0, []string{"192.0.2.6"}, 8},
		{"IPv6 client in Germany gets fra", query("www.geo.test.", dns.TypeAAAA, withECS("2a00:1450:4001::", 48)), "192.0.2.200", 0, []string{"2001:db8::1"}, 32},
		{"AAAA only among targets that have it", query("www.geo.test.", dns.TypeAAAA, withECS("2001:db8:aa::", 48)), "192.0.2.200", 0, []string{"2001:db8::1"}, 48},
		{"no ECS: the source address decides", query("www.geo.test.", dns.TypeA), "126.5.5.5", 0, []string{"192.0.2.6"}, -1},
		{"no ECS over EDNS: no option echoed", query("www.geo.test.", dns.TypeA, withEDNS(1232, false)), "126.5.5.5", 0, []string{"192.0.2.6"}, -1},
		{"ECS source 0: the source address decides, scope 0", query("www.geo.test.", dns.TypeA, withECS("0.0.0.0", 0)), "126.5.5.5", 0, []string{"192.0.2.6"}, 0},
		{"private ECS: the source address decides, for that subnet only", query("www.geo.test.", dns.TypeA, withECS("10.1.2.0", 24)), "126.5.5.5", 0, []string{"192.0.2.6"}, 24},
		{"loopback ECS /32: the source address decides, for that /32 only", query("www.geo.test.", dns.TypeA, withECS("127.0.0.1", 32)), "126.5.5.5", 0, []string{"192.0.2.6"}, 32},
		{"private ECS, static answer: scope 0", query("www.geo.test.", dns.TypeTXT, withECS("10.1.2.0", 24)), "126.5.5.5", 0, nil, 0},
		{"unknown location: listed order", query("www.geo.test.", dns.TypeA, withECS("198.51.100.0", 24)), "192.0.2.200", 0, []string{"192.0.2.1"}, 8},
		{"country without coordinates: a PoP in that country", query("www.geo.test.", dns.TypeA, withECS("5.5.5.0", 24)), "192.0.2.200", 0, []string{"192.0.2.4"}, 16},
		{"continent without coordinates: a PoP on that continent", query("www.geo.test.", dns.TypeA, withECS("5.6.5.0", 24)), "192.0.2.200", 0, []string{"192.0.2.3"}, 16},
		{"unknown location with spread: still the listed order", query("spread.geo.test.", dns.TypeA, withECS("198.51.100.0", 24)), "192.0.2.200", 0, []string{"192.0.2.1"}, 8},
		{"two answers, nearest first", query("two.geo.test.", dns.TypeA, withECS("1.120.0.0", 24)), "192.0.2.200", 0, []string{"192.0.2.3", "192.0.2.2"}, 13},
		{"static data at a geo name: scope 0", query("www.geo.test.", dns.TypeTXT, withECS("81.2.69.0", 24)), "192.0.2.200", 0, nil, 0},
		{"NXDOMAIN: scope 0", query("nope.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)), "192.0.2.200", dns.RcodeNameError, nil, 0},
		{"NODATA for a type no target has: scope 0", query("two.geo.test.", dns.TypeAAAA, withECS("81.2.69.0", 24)), "192.0.2.200", 0, nil, 0},
		{"NODATA because the rule leaves no target of the type: scoped", query("ruled.geo.test.", dns.TypeAAAA, withECS("1.2.3.0", 24)), "192.0.2.200", 0, nil, 16},
		{"outside that rule the AAAA exists", query("ruled.geo.test.", dns.TypeAAAA, withECS("24.48.1.0", 24)), "192.0.2.200", 0, []string{"2001:db8::1"}, 16},
		{"rule by country pins", query("ruled.geo.test.", dns.TypeA, withECS("1.2.3.0", 24)), "192.0.2.200", 0, []string{"192.0.2.3"}, 16},
		{"rule by continent excludes", query("ruled.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)), "192.0.2.200", 0, []string{"192.0.2.2"}, 24},
		{"rule by ASN pins", query("ruled.geo.test.", dns.TypeA, withECS("64.0.1.0", 24)), "192.0.2.200", 0, []string{"192.0.2.6"}, 16},
		{"CIDR rule inside the database network narrows the scope", query("ruled.geo.test.", dns.TypeA, withECS("203.0.113.0", 24)), "192.0.2.200", 0, []string{"192.0.2.2"}, 26},
		{"outside the CIDR rule, scope excludes it", query("ruled.geo.test.", dns.TypeA, withECS("203.0.113.128", 25)), "192.0.2.200", 0, []string{"192.0.2.2"}, 25},
		{"outside the CIDR rule, other quarter", query("ruled.geo.test.", dns.TypeA, withECS("203.0.113.64", 26)), "192.0.2.200", 0, []string{"192.0.2.2"}, 26},
		{"drain and down are skipped", query("states.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)), "192.0.2.200", 0, []string{"192.0.2.3"}, 24},
		{"all down: nearest of those not admin-down", query("nearest.geo.test.", dns.TypeA, withECS("126.1.2.0", 24)), "192.0.2.200", 0, []string{"192.0.2.1"}, 8},
		{"all down: all not admin-down", query("all.geo.test.", dns.TypeA, withECS("24.48.1.0", 24)), "192.0.2.200", 0, []string{"192.0.2.2", "192.0.2.1"}, 16},
		{"all down: fallback", query("fallback.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)), "192.0.2.200", 0, []string{"192.0.2.3"}, 24},
		{"all down: servfail", query("servfail.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)), "192.0.2.200", dns.RcodeServerFailure, nil, 24},
		{"every target admin-down: servfail", query("alldown.geo.test.", dns.TypeA), "192.0.2.200", dns.RcodeServerFailure, nil, -1},
		{"CNAME target out of zone", query("cdn.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)), "192.0.2.200", 0, []string{"CNAME www.fra.cdn.example.net."}, 24},
		{"CNAME target followed in zone", query("cdn.geo.test.", dns.TypeA, withECS("24.48.1.0", 24)), "192.0.2.200", 0, []string{"CNAME iad.geo.test.", "192.0.2.22"}, 16},
		{"CNAME query gets the chosen CNAME, not followed", query("cdn.geo.test.", dns.TypeCNAME, withECS("24.48.1.0", 24)), "192.0.2.200", 0, []string{"CNAME iad.geo.test."}, 16},
		{"ANY gets the chosen CNAME, not followed", query("cdn.geo.test.", dns.TypeANY, withECS("24.48.1.0", 24)), "192.0.2.200", 0, []string{"CNAME iad.geo.test."}, 16},
		{"CNAME query where addresses were chosen: NODATA", query("www.geo.test.", dns.TypeCNAME, withECS("81.2.69.0", 24)), "192.0.2.200", 0, nil, 24},
		{"static CNAME into a geo name carries the scope", query("alias.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)), "192.0.2.200", 0, []string{"CNAME www.geo.test.", "192.0.2.1"}, 24},
		{"bias pushes a target back", query("biased.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)), "192.0.2.200", 0, []string{"192.0.2.2"}, 24},
		{"wildcard geo answers with the query name", query("x.wild.geo.test.", dns.TypeA, withECS("24.48.1.0", 24)), "192.0.2.200", 0, []string{"192.0.2.2"}, 16},
		{"ANY at a geo name answers its addresses", query("www.geo.test.", dns.TypeANY, withECS("81.2.69.0", 24)), "192.0.2.200", 0, []string{"192.0.2.1"}, 24},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := dnstest.NewUDP(tc.source)
			s.ServeDNS(w, tc.req)
			if w.Msg == nil {
				t.Fatal("no reply")
			}
			if w.Msg.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[w.Msg.Rcode], dns.RcodeToString[tc.rcode])
			}
			if got := addrs(w.Msg.Answer); !slices.Equal(got, tc.want) {
				t.Errorf("answer %v, want %v", got, tc.want)
			}
			if len(w.Msg.Answer) > 0 && w.Msg.Answer[0].Header().Name != dns.CanonicalName(tc.req.Question[0].Name) {
				t.Errorf("answer owner %s, want the query name", w.Msg.Answer[0].Header().Name)
			}
			e := replyECS(t, w.Msg)
			switch {
			case tc.scope < 0 && e != nil:
				t.Errorf("ECS in reply %v, want none", e)
			case tc.scope >= 0 && e == nil:
				t.Errorf("no ECS in reply, want scope %d", tc.scope)
			case e != nil:
				if int(e.SourceScope) != tc.scope {
					t.Errorf("ECS scope %d, want %d", e.SourceScope, tc.scope)
				}
				sent := replyECS(t, tc.req)
				if e.Family != sent.Family || e.SourceNetmask != sent.SourceNetmask || !e.Address.Equal(sent.Address) {
					t.Errorf("ECS echoed as %v, sent %v", e, sent)
				}
			}
		})
	}
}

func TestGeoTTLAndAllDownMetric(t *testing.T) {
	s := newGeoServer(t)
	w := dnstest.NewUDP("192.0.2.200")
	s.ServeDNS(w, query("two.geo.test.", dns.TypeA))
	if len(w.Msg.Answer) == 0 || w.Msg.Answer[0].Header().Ttl != 10 {
		t.Errorf("geo answer %v, want TTL 10", w.Msg.Answer)
	}
	for range 2 { // decided, then from the decision cache: each answer counts
		s.ServeDNS(dnstest.NewUDP("192.0.2.200"), query("fallback.geo.test.", dns.TypeA))
	}
	if got := testutilCounter(t, s.metrics.allDown.WithLabelValues("fallback")); got != 2 {
		t.Errorf("all_down_total{policy=fallback} = %v, want 2", got)
	}
}

// TestConcurrentReloads serves geo and static queries from several
// goroutines while snapshots are swapped, so that the race detector sees
// any write to shared zone data or to the decision cache.
func TestConcurrentReloads(t *testing.T) {
	s := newGeoServer(t)
	pops, err := pops.New(sixPoPs...)
	if err != nil {
		t.Fatal(err)
	}
	reqs := []*dns.Msg{
		query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)),
		query("x.wild.geo.test.", dns.TypeA, withECS("24.48.1.0", 24)),
		query("alias.geo.test.", dns.TypeA, withECS("126.1.0.0", 24)),
		query("two.geo.test.", dns.TypeA),
		query("www.geo.test.", dns.TypeTXT),
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				w := dnstest.NewUDP("192.0.2.200")
				s.ServeDNS(w, reqs[i%len(reqs)].Copy())
				if w.Msg == nil || w.Msg.Rcode != dns.RcodeSuccess {
					t.Errorf("reply %v", w.Msg)
					return
				}
			}
		}()
	}
	for range 50 {
		snap, err := zones.Load(fstest.MapFS{"geo.test.yaml": {Data: []byte(geoZone)}}, pops, s.Zones())
		if err != nil {
			t.Error(err)
			break
		}
		s.SetZones(snap)
	}
	close(done)
	wg.Wait()
}

func TestMalformedECS(t *testing.T) {
	s := newGeoServer(t)
	for _, tc := range []struct {
		name string
		req  *dns.Msg
	}{
		{"address bits beyond the source prefix", query("www.geo.test.", dns.TypeA, withECS("81.2.69.1", 24))},
		{"two ECS options", query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24), withECS("81.2.70.0", 24))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := dnstest.NewUDP("192.0.2.200")
			s.ServeDNS(w, tc.req)
			if w.Msg.Rcode != dns.RcodeFormatError || len(w.Msg.Answer) != 0 {
				t.Errorf("rcode %s with %d answers, want FORMERR", dns.RcodeToString[w.Msg.Rcode], len(w.Msg.Answer))
			}
		})
	}
}

type everyNetworkInTokyo struct{}

func (everyNetworkInTokyo) Locate(a netip.Addr) geo.Location {
	return geo.Location{Prefix: netip.PrefixFrom(a, 24).Masked(), Point: geo.Point{Lat: 35.68, Lon: 139.69}, HasPoint: true, Found: true}
}

// TestSpreadIsStablePerNetwork: with a spread wide enough to include both
// targets, each network always gets the same one, and across many
// networks both get clients roughly in proportion to their weights (nrt 3,
// fra 1).
func TestSpreadIsStablePerNetwork(t *testing.T) {
	s := newGeoServer(t)
	count := map[string]int{}
	for i := range 400 {
		ecs := netip.AddrFrom4([4]byte{126, byte(i >> 8), byte(i), 0}).String()
		var first string
		for range 3 {
			w := dnstest.NewUDP("192.0.2.200")
			s.ServeDNS(w, query("spread.geo.test.", dns.TypeA, withECS(ecs, 24)))
			got := addrs(w.Msg.Answer)[0]
			if first != "" && got != first {
				t.Fatalf("network %s got %s then %s", ecs, first, got)
			}
			first = got
		}
		count[first]++
	}
	// The locator puts all of 126/8 in one network: a single choice.
	if len(count) != 1 {
		t.Errorf("one database network spread over %v", count)
	}
	// Every /24 its own network, all in Tokyo: the spread decides alone.
	s.locator = everyNetworkInTokyo{}
	count = map[string]int{}
	for i := range 400 {
		ecs := netip.AddrFrom4([4]byte{byte(130 + i%100), byte(i), 7, 0}).String()
		w := dnstest.NewUDP("192.0.2.200")
		s.ServeDNS(w, query("spread.geo.test.", dns.TypeA, withECS(ecs, 24)))
		count[addrs(w.Msg.Answer)[0]]++
	}
	nrt, fra := count["192.0.2.6"], count["192.0.2.1"]
	if nrt+fra != 400 || nrt < 2*fra || fra < 40 {
		t.Errorf("spread nrt %d fra %d, want about 3:1", nrt, fra)
	}
}

func TestLatencyTableOverridesDistance(t *testing.T) {
	pops, err := pops.New(sixPoPs...)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339)
	fsys := fstest.MapFS{
		"geo.test.yaml": {Data: []byte(geoZone)},
		"rum.csv": {Data: []byte("prefix,pop,rtt_ms,timestamp\n" +
			"81.2.69.0/24,iad,5\n" + // Berlin measured nearer Virginia than Frankfurt
			"24.48.1.0/24,fra,1\n" + // one New York /24 inside a /16 network
			"126.0.0.0/8,sin,1," + old + "\n")}, // Tokyo to Singapore, but stale
	}
	snap, err := zones.Load(fsys, pops, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(testConfig(Config{Listen: []string{"127.0.0.1:0"}, Steering: steer.Options{LatencyMaxAge: 24 * time.Hour}}),
		Deps{Log: zerolog.Nop(), Metrics: prometheus.NewRegistry(), Locator: testPlaces})
	if err != nil {
		t.Fatal(err)
	}
	s.SetZones(snap)
	for _, tc := range []struct {
		name   string
		subnet string
		bits   uint8
		want   string
		scope  uint8
	}{
		{"measured RTT beats distance", "81.2.69.0", 24, "192.0.2.2", 24},
		{"a measured /24 inside a /16 network", "24.48.1.0", 24, "192.0.2.1", 24},
		{"next to the measured /24: distance, scope stops short of it", "24.48.2.0", 24, "192.0.2.2", 23},
		{"far from the measured /24: the widest network that avoids it", "24.48.200.0", 24, "192.0.2.2", 17},
		{"a stale measurement is ignored", "126.1.2.0", 24, "192.0.2.6", 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := dnstest.NewUDP("192.0.2.200")
			s.ServeDNS(w, query("www.geo.test.", dns.TypeA, withECS(tc.subnet, tc.bits)))
			if got := addrs(w.Msg.Answer); len(got) != 1 || got[0] != tc.want {
				t.Errorf("answer %v, want %s", got, tc.want)
			}
			if e := replyECS(t, w.Msg); e == nil || e.SourceScope != tc.scope {
				t.Errorf("ECS %v, want scope %d", e, tc.scope)
			}
		})
	}
}

// TestPartialTableCalibratesDistance: a Honolulu network measured only to
// nrt, at 150 ms where distance says 93, has its other estimates scaled by
// the same factor (1.6), so iad (118 ms by distance, 190 calibrated) does
// not win just because it was never measured.
func TestPartialTableCalibratesDistance(t *testing.T) {
	pops, err := pops.New(sixPoPs...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, table, want string
	}{
		{"without a measurement: nrt by distance", "prefix,pop,rtt_ms\n", "192.0.2.6"},
		{"nrt measured slower than distance says: so is iad", "prefix,pop,rtt_ms\n66.249.0.0/16,nrt,150\n", "192.0.2.6"},
		{"iad measured faster than distance says: nrt's estimate stays", "prefix,pop,rtt_ms\n66.249.0.0/16,iad,100\n", "192.0.2.6"},
		{"iad measured fast enough to win", "prefix,pop,rtt_ms\n66.249.0.0/16,iad,80\n", "192.0.2.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap, err := zones.Load(fstest.MapFS{"geo.test.yaml": {Data: []byte(geoZone)}, "rum.csv": {Data: []byte(tc.table)}}, pops, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(testConfig(Config{Listen: []string{"127.0.0.1:0"}}), Deps{Log: zerolog.Nop(), Metrics: prometheus.NewRegistry(), Locator: testPlaces})
			if err != nil {
				t.Fatal(err)
			}
			s.SetZones(snap)
			w := dnstest.NewUDP("192.0.2.200")
			s.ServeDNS(w, query("www.geo.test.", dns.TypeA, withECS("66.249.1.0", 24)))
			if got := addrs(w.Msg.Answer); len(got) != 1 || got[0] != tc.want {
				t.Errorf("answer %v, want %s", got, tc.want)
			}
		})
	}
}
