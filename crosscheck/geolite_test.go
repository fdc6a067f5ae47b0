package crosscheck

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// geoPoPs are six PoPs on six continents, at their airports.
var geoPoPs = []pops.PoP{
	{Name: "fra", Point: geo.Point{Lat: 50.11, Lon: 8.68}},
	{Name: "iad", Point: geo.Point{Lat: 38.95, Lon: -77.45}},
	{Name: "sin", Point: geo.Point{Lat: 1.35, Lon: 103.82}},
	{Name: "gru", Point: geo.Point{Lat: -23.43, Lon: -46.47}},
	{Name: "syd", Point: geo.Point{Lat: -33.94, Lon: 151.18}},
	{Name: "nrt", Point: geo.Point{Lat: 35.77, Lon: 140.39}},
}

const (
	geoOrigin = "geo.test."
	geoName   = "www." + geoOrigin
	// geoZoneYAML gives www one target per PoP, each with its own
	// addresses, so that an answer names the PoP chosen. fra is listed
	// first: it answers clients of unknown location.
	geoZoneYAML = `
origin: geo.test.
ttl: 300
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        ttl: 300
        targets:
          fra: { a: 192.0.2.1, aaaa: 2001:db8::1 }
          iad: { a: 192.0.2.2, aaaa: 2001:db8::2 }
          sin: { a: 192.0.2.3, aaaa: 2001:db8::3 }
          gru: { a: 192.0.2.4, aaaa: 2001:db8::4 }
          syd: { a: 192.0.2.5, aaaa: 2001:db8::5 }
          nrt: { a: 192.0.2.6, aaaa: 2001:db8::6 }
`
)

// popOf maps the addresses of geoZoneYAML's targets back to their PoPs.
var popOf = map[string]string{
	"192.0.2.1": "fra", "2001:db8::1": "fra",
	"192.0.2.2": "iad", "2001:db8::2": "iad",
	"192.0.2.3": "sin", "2001:db8::3": "sin",
	"192.0.2.4": "gru", "2001:db8::4": "gru",
	"192.0.2.5": "syd", "2001:db8::5": "syd",
	"192.0.2.6": "nrt", "2001:db8::6": "nrt",
}

// loadGeoZone compiles geoZoneYAML against geoPoPs.
func loadGeoZone(t *testing.T) *zones.Snapshot {
	t.Helper()
	inv, err := pops.New(geoPoPs...)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"geo.test.yaml": {Data: []byte(geoZoneYAML), ModTime: time.Unix(1e9, 0)}}
	snap, err := zones.Load(fsys, inv, nil)
	if err != nil {
		t.Fatalf("load geo zone: %v", err)
	}
	return snap
}

// startPopdns serves snap in-process on 127.0.0.1 (UDP and TCP, one port)
// until the test ends, locating clients with loc (nil: every client is of
// unknown location) and registering its metrics on reg. It returns the
// bound address.
func startPopdns(t *testing.T, snap *zones.Snapshot, loc dnsserver.Locator, reg prometheus.Registerer) string {
	t.Helper()
	srv, err := dnsserver.New(dnsserver.Config{Listen: []string{"127.0.0.1:0"}},
		dnsserver.Deps{Log: zerolog.Nop(), Metrics: reg, Locator: loc})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetZones(snap)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := dnstest.Receive(t, done, 10*time.Second, "popdns Serve to return"); err != nil {
			t.Errorf("popdns Serve: %v", err)
		}
	})
	return srv.Addrs()[0]
}

// ecsQuery asks for name/qtype with EDNS and, unless subnet is the zero
// Prefix, an ECS option for it (SCOPE 0, as RFC 7871 §6 requires).
func ecsQuery(name string, qtype uint16, subnet netip.Prefix) *dns.Msg {
	m := new(dns.Msg)
	m.Id = dns.Id()
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	if subnet.IsValid() {
		family := uint16(1)
		if subnet.Addr().Is6() {
			family = 2
		}
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_SUBNET{
			Code:          dns.EDNS0SUBNET,
			Family:        family,
			SourceNetmask: uint8(subnet.Bits()),
			Address:       net.IP(subnet.Masked().Addr().AsSlice()),
		})
	}
	return m
}

// ecsOf returns the ECS option of m, or nil.
func ecsOf(m *dns.Msg) *dns.EDNS0_SUBNET {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				return e
			}
		}
	}
	return nil
}

// answerPoPs lists the PoPs whose addresses m's answer section holds, in
// order; an address that is no target's shows as itself.
func answerPoPs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		var a string
		switch v := rr.(type) {
		case *dns.A:
			a = v.A.String()
		case *dns.AAAA:
			a = v.AAAA.String()
		default:
			a = rr.String()
		}
		if p, ok := popOf[a]; ok {
			a = p
		}
		out = append(out, a)
	}
	return out
}

// geoLitePath returns the GeoLite2 City database of $POPDNS_GEOLITE_DIR
// (default testdata/geo/real, which git ignores), or skips the test.
func geoLitePath(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("POPDNS_GEOLITE_DIR")
	if dir == "" {
		dir = "../testdata/geo/real"
	}
	path := filepath.Join(dir, "GeoLite2-City.mmdb")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no GeoLite2 City database at %s (README.md, \"Running the tests\", says how to fetch it into "+
			"testdata/geo/real; or set POPDNS_GEOLITE_DIR to a directory that has it): %v", path, err)
	}
	return path
}

// geoLiteRecord is the part of a GeoLite2 City record the test checks its
// own assumptions with.
type geoLiteRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
}

// TestGeoLiteNearestPoP serves a geo name from six PoPs with the real
// GeoLite2 City database and asks for it over UDP and TCP with the client
// subnets of universities on six continents: each must get its nearest
// PoP, with the ECS scope set to the prefix length of the database network
// the subnet's address falls in, as maxminddb reports it directly.
func TestGeoLiteNearestPoP(t *testing.T) {
	path := geoLitePath(t)
	db, err := geo.Open(path, "")
	if err != nil {
		t.Fatal(err)
	}
	locator := geo.NewLocator(db, zerolog.Nop())
	t.Cleanup(func() { _ = locator.Close() })
	ref, err := maxminddb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ref.Close() })

	addr := startPopdns(t, loadGeoZone(t), locator, prometheus.NewRegistry())

	// The addresses are those geo/geolite_test.go checked against this
	// database; the subnet is what a resolver would send for them.
	cases := []struct {
		name    string
		subnet  string
		country string // of the subnet's address in the database: the test's own assumption
		qtype   uint16
		want    string // PoP
	}{
		{"Goethe University Frankfurt", "141.2.22.0/24", "DE", dns.TypeA, "fra"},
		{"DFN, German research network (IPv6)", "2001:638::/56", "DE", dns.TypeAAAA, "fra"},
		{"DFN, IPv6 subnet, A query", "2001:638::/48", "DE", dns.TypeA, "fra"},
		{"University of Virginia", "128.143.22.0/24", "US", dns.TypeA, "iad"},
		{"Columbia University, New York", "128.59.1.0/24", "US", dns.TypeA, "iad"},
		{"National University of Singapore", "137.132.1.0/24", "SG", dns.TypeA, "sin"},
		{"University of São Paulo", "143.107.1.0/24", "BR", dns.TypeA, "gru"},
		{"University of Sydney", "129.78.5.0/24", "AU", dns.TypeA, "syd"},
		{"University of Sydney, /32 subnet", "129.78.5.11/32", "AU", dns.TypeA, "syd"},
		{"University of Tokyo", "133.11.1.0/24", "JP", dns.TypeA, "nrt"},
	}
	for _, c := range cases {
		subnet := netip.MustParsePrefix(c.subnet)
		// What popdns must look up: the subnet's address, bits beyond
		// the source prefix cleared.
		res := ref.Lookup(subnet.Masked().Addr())
		var rec geoLiteRecord
		if err := res.Decode(&rec); err != nil || !res.Found() {
			t.Fatalf("%s: maxminddb lookup of %s: found %t, %v", c.name, subnet.Masked().Addr(), res.Found(), err)
		}
		if rec.Country.ISOCode != c.country {
			t.Fatalf("%s: the database puts %s in %q, the test assumes %s: pick another address",
				c.name, subnet.Masked().Addr(), rec.Country.ISOCode, c.country)
		}
		wantScope := res.Prefix().Bits()
		for _, tcp := range []bool{false, true} {
			proto := "udp"
			if tcp {
				proto = "tcp"
			}
			t.Run(c.name+"/"+proto, func(t *testing.T) {
				req := ecsQuery(geoName, c.qtype, subnet)
				r, err := exchange(addr, tcp, req, queryTimeout)
				if err != nil {
					t.Fatal(err)
				}
				m := r.msg
				if m.Rcode != dns.RcodeSuccess || !m.Authoritative {
					t.Fatalf("rcode %s, aa %t; want NOERROR, aa:\n%s", dns.RcodeToString[m.Rcode], m.Authoritative, m)
				}
				if got := answerPoPs(m); !slices.Equal(got, []string{c.want}) {
					t.Errorf("%s %s from %s: answer %v, want [%s]", geoName, dns.TypeToString[c.qtype], subnet, got, c.want)
				}
				e := ecsOf(m)
				if e == nil {
					t.Fatalf("no ECS option in the reply:\n%s", m)
				}
				// The database network, or once the server widened it
				// in the background (ecs_widen) a wider prefix around it;
				// steer's brute-force tests prove the widening.
				if int(e.SourceScope) > wantScope {
					t.Errorf("ECS scope /%d, want /%d or wider: the database network %s of %s", e.SourceScope, wantScope, res.Prefix(), subnet.Masked().Addr())
				}
				if int(e.SourceNetmask) != subnet.Bits() || !net.IP(subnet.Masked().Addr().AsSlice()).Equal(e.Address) {
					t.Errorf("ECS echoed as %s/%d, sent %s", e.Address, e.SourceNetmask, subnet.Masked())
				}
				t.Logf("%s → %v, scope /%d (database network %s)", subnet, answerPoPs(m), e.SourceScope, res.Prefix())
			})
		}
	}

	// Without ECS the source address decides: 127.0.0.1 is in no network
	// of the database, so the record's first target answers, and a reply
	// without ECS in the query carries none.
	for _, tcp := range []bool{false, true} {
		for _, edns := range []bool{true, false} {
			name := "no ECS from 127.0.0.1/udp"
			if tcp {
				name = "no ECS from 127.0.0.1/tcp"
			}
			if !edns {
				name += "/no EDNS"
			}
			t.Run(name, func(t *testing.T) {
				req := ecsQuery(geoName, dns.TypeA, netip.Prefix{})
				if !edns {
					req.Extra = nil
				}
				r, err := exchange(addr, tcp, req, queryTimeout)
				if err != nil {
					t.Fatal(err)
				}
				if got := answerPoPs(r.msg); !slices.Equal(got, []string{"fra"}) {
					t.Errorf("answer %v, want [fra], the first listed target", got)
				}
				if e := ecsOf(r.msg); e != nil {
					t.Errorf("reply carries ECS %s though the query had none", e)
				}
				if (r.msg.IsEdns0() != nil) != edns {
					t.Errorf("reply has OPT: %t, query had: %t", r.msg.IsEdns0() != nil, edns)
				}
			})
		}
	}
}
