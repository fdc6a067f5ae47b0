package geo

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// The synthetic databases generated from ../testdata/geo/networks.yaml.
const (
	testCityPath = "../testdata/geo/city.mmdb"
	testASNPath  = "../testdata/geo/asn.mmdb"
)

// Places of ../testdata/geo/networks.yaml.
var (
	fra = Point{50.11, 8.68}
	lhr = Point{51.47, -0.45}
	iad = Point{38.95, -77.45}
	lax = Point{33.94, -118.41}
	hnl = Point{21.32, -157.92}
	gru = Point{-23.43, -46.47}
	scl = Point{-33.39, -70.79}
	jnb = Point{-26.14, 28.25}
	los = Point{6.58, 3.32}
	nbo = Point{-1.32, 36.93}
	sin = Point{1.35, 103.82}
	nrt = Point{35.77, 140.39}
	bom = Point{19.09, 72.87}
	syd = Point{-33.94, 151.18}
	akl = Point{-37.01, 174.79}
	suv = Point{-18.14, 178.44}
)

func openTestDB(tb testing.TB, asnPath string) *DB {
	tb.Helper()
	db, err := Open(testCityPath, asnPath)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestLookup(t *testing.T) {
	type place struct {
		pt        Point
		country   string
		continent string
	}
	// at builds the expected Location of a network at a place.
	at := func(pt Point, country, continent string) place { return place{pt, country, continent} }
	// networks.yaml gives every place a 50 km accuracy radius, and Suva,
	// placed as if at its country's centroid, 500 km.
	accuracy := func(p place) uint16 {
		switch {
		case p.country == "":
			return 0
		case p.pt == suv:
			return 500
		}
		return 50
	}
	tests := []struct {
		addr       string
		place      place  // zero: no point
		country    string // for networks without a place
		continent  string
		found      bool
		cityPrefix string // Prefix with the City database alone
		asn        uint32
		prefix     string // Prefix with the ASN database too
	}{
		// IPv4, every continent but Antarctica. ASN 192.0.2.0/24 is wider
		// than the City /26s, so the City network is the intersection.
		{addr: "192.0.2.1", place: at(fra, "DE", "EU"), found: true, cityPrefix: "192.0.2.0/26", asn: 64496, prefix: "192.0.2.0/26"},
		{addr: "192.0.2.70", place: at(iad, "US", "NA"), found: true, cityPrefix: "192.0.2.64/26", asn: 64496, prefix: "192.0.2.64/26"},
		{addr: "192.0.2.130", place: at(sin, "SG", "AS"), found: true, cityPrefix: "192.0.2.128/26", asn: 64496, prefix: "192.0.2.128/26"},
		{addr: "192.0.2.255", place: at(gru, "BR", "SA"), found: true, cityPrefix: "192.0.2.192/26", asn: 64496, prefix: "192.0.2.192/26"},
		{addr: "198.51.100.10", place: at(syd, "AU", "OC"), found: true, cityPrefix: "198.51.100.0/26", asn: 64497, prefix: "198.51.100.0/26"},
		{addr: "198.51.100.70", place: at(nrt, "JP", "AS"), found: true, cityPrefix: "198.51.100.64/26", asn: 64497, prefix: "198.51.100.64/26"},
		{addr: "198.51.100.200", place: at(lax, "US", "NA"), found: true, cityPrefix: "198.51.100.192/26", asn: 0, prefix: "198.51.100.192/26"},
		{addr: "203.0.113.10", place: at(los, "NG", "AF"), found: true, cityPrefix: "203.0.113.0/26", asn: 64499, prefix: "203.0.113.0/26"},
		{addr: "203.0.113.70", place: at(scl, "CL", "SA"), found: true, cityPrefix: "203.0.113.64/26", asn: 64499, prefix: "203.0.113.64/26"},
		{addr: "203.0.113.130", place: at(akl, "NZ", "OC"), found: true, cityPrefix: "203.0.113.128/26", asn: 64499, prefix: "203.0.113.128/26"},
		{addr: "198.19.241.1", place: at(suv, "FJ", "OC"), found: true, cityPrefix: "198.19.240.0/21", asn: 64500, prefix: "198.19.240.0/21"},
		{addr: "198.19.10.1", place: at(bom, "IN", "AS"), found: true, cityPrefix: "198.19.0.0/17", asn: 64500, prefix: "198.19.0.0/17"},
		{addr: "198.19.130.1", place: at(hnl, "US", "NA"), found: true, cityPrefix: "198.19.128.0/18", asn: 64500, prefix: "198.19.128.0/18"},
		// The ASN network is narrower than the City network: it wins.
		{addr: "198.51.100.130", place: at(jnb, "ZA", "AF"), found: true, cityPrefix: "198.51.100.128/26", asn: 64498, prefix: "198.51.100.128/27"},
		// ... and so does the empty ASN network next to it.
		{addr: "198.51.100.170", place: at(jnb, "ZA", "AF"), found: true, cityPrefix: "198.51.100.128/26", asn: 0, prefix: "198.51.100.160/27"},

		// A /24 nested in a /16 at another place gives the /24. The
		// database splits the /16 around it, so an address of the /16
		// matches one of its pieces.
		{addr: "198.18.42.7", place: at(nbo, "KE", "AF"), found: true, cityPrefix: "198.18.42.0/24", asn: 64500, prefix: "198.18.42.0/25"},
		{addr: "198.18.42.200", place: at(nbo, "KE", "AF"), found: true, cityPrefix: "198.18.42.0/24", asn: 64501, prefix: "198.18.42.128/25"},
		{addr: "198.18.43.1", place: at(lhr, "GB", "EU"), found: true, cityPrefix: "198.18.43.0/24", asn: 64500, prefix: "198.18.43.0/24"},
		{addr: "198.18.200.1", place: at(lhr, "GB", "EU"), found: true, cityPrefix: "198.18.128.0/17", asn: 64500, prefix: "198.18.128.0/17"},

		// Known only to a country: no point.
		{addr: "198.19.200.1", country: "CH", continent: "EU", found: true, cityPrefix: "198.19.192.0/19", asn: 64500, prefix: "198.19.192.0/19"},
		{addr: "2001:db8:200::1", country: "CH", continent: "EU", found: true, cityPrefix: "2001:db8:200::/48", asn: 64502, prefix: "2001:db8:200::/48"},
		// Known only by the registered country.
		{addr: "198.19.230.1", country: "NL", continent: "EU", found: true, cityPrefix: "198.19.224.0/20", asn: 64500, prefix: "198.19.224.0/20"},

		// In no City network: the empty network around the address.
		{addr: "203.0.113.200", found: false, cityPrefix: "203.0.113.192/26", asn: 64499, prefix: "203.0.113.192/26"},
		{addr: "198.19.250.1", found: false, cityPrefix: "198.19.248.0/21", asn: 64500, prefix: "198.19.248.0/21"},
		{addr: "8.8.8.8", found: false, cityPrefix: "0.0.0.0/1", asn: 0, prefix: "0.0.0.0/1"},
		{addr: "2001:db8:ffff::1", found: false, cityPrefix: "2001:db8:8000::/33", asn: 64502, prefix: "2001:db8:8000::/33"},
		{addr: "2001:db9::1", found: false, cityPrefix: "2001:db9::/32", asn: 0, prefix: "2001:db9::/32"},
		{addr: "fe80::1%eth0", found: false, cityPrefix: "8000::/1", asn: 0, prefix: "8000::/1"},

		// IPv6, every continent but Antarctica.
		{addr: "2001:db8:1:ff00::1", place: at(fra, "DE", "EU"), found: true, cityPrefix: "2001:db8:1::/48", asn: 64502, prefix: "2001:db8:1:8000::/49"},
		{addr: "2001:db8:1::1", place: at(fra, "DE", "EU"), found: true, cityPrefix: "2001:db8:1::/48", asn: 64503, prefix: "2001:db8:1::/56"},
		{addr: "2001:db8:c::1", place: at(lhr, "GB", "EU"), found: true, cityPrefix: "2001:db8:c::/48", asn: 64502, prefix: "2001:db8:c::/48"},
		{addr: "2001:db8:2::1", place: at(iad, "US", "NA"), found: true, cityPrefix: "2001:db8:2::/48", asn: 64502, prefix: "2001:db8:2::/48"},
		{addr: "2001:db8:8::1", place: at(lax, "US", "NA"), found: true, cityPrefix: "2001:db8:8::/48", asn: 64502, prefix: "2001:db8:8::/48"},
		{addr: "2001:db8:f::1", place: at(hnl, "US", "NA"), found: true, cityPrefix: "2001:db8:f::/48", asn: 64502, prefix: "2001:db8:f::/48"},
		{addr: "2001:db8:3::1", place: at(sin, "SG", "AS"), found: true, cityPrefix: "2001:db8:3::/48", asn: 65551, prefix: "2001:db8:3::/48"},
		{addr: "2001:db8:6::1", place: at(nrt, "JP", "AS"), found: true, cityPrefix: "2001:db8:6::/48", asn: 64502, prefix: "2001:db8:6::/48"},
		{addr: "2001:db8:e::1", place: at(bom, "IN", "AS"), found: true, cityPrefix: "2001:db8:e::/48", asn: 64502, prefix: "2001:db8:e::/48"},
		{addr: "2001:db8:4::1", place: at(gru, "BR", "SA"), found: true, cityPrefix: "2001:db8:4::/48", asn: 64502, prefix: "2001:db8:4::/48"},
		{addr: "2001:db8:a::1", place: at(scl, "CL", "SA"), found: true, cityPrefix: "2001:db8:a::/48", asn: 64502, prefix: "2001:db8:a::/48"},
		{addr: "2001:db8:5::1", place: at(syd, "AU", "OC"), found: true, cityPrefix: "2001:db8:5::/48", asn: 64502, prefix: "2001:db8:5::/48"},
		{addr: "2001:db8:b::1", place: at(akl, "NZ", "OC"), found: true, cityPrefix: "2001:db8:b::/48", asn: 64502, prefix: "2001:db8:b::/48"},
		{addr: "2001:db8:10::1", place: at(suv, "FJ", "OC"), found: true, cityPrefix: "2001:db8:10::/48", asn: 64502, prefix: "2001:db8:10::/48"},
		{addr: "2001:db8:7::1", place: at(jnb, "ZA", "AF"), found: true, cityPrefix: "2001:db8:7::/48", asn: 64502, prefix: "2001:db8:7::/48"},
		{addr: "2001:db8:9::1", place: at(los, "NG", "AF"), found: true, cityPrefix: "2001:db8:9::/48", asn: 64502, prefix: "2001:db8:9::/48"},
		{addr: "2001:db8:d::1", place: at(nbo, "KE", "AF"), found: true, cityPrefix: "2001:db8:d::/48", asn: 64502, prefix: "2001:db8:d::/48"},
		// A nested /48 in a /40, and a piece of the /40 around it.
		{addr: "2001:db8:142::1", place: at(jnb, "ZA", "AF"), found: true, cityPrefix: "2001:db8:142::/48", asn: 64502, prefix: "2001:db8:142::/48"},
		{addr: "2001:db8:143::1", place: at(lhr, "GB", "EU"), found: true, cityPrefix: "2001:db8:143::/48", asn: 64502, prefix: "2001:db8:143::/48"},

		// An IPv4-mapped IPv6 address is the IPv4 address, with an IPv4
		// prefix.
		{addr: "::ffff:192.0.2.1", place: at(fra, "DE", "EU"), found: true, cityPrefix: "192.0.2.0/26", asn: 64496, prefix: "192.0.2.0/26"},
		{addr: "::ffff:8.8.8.8", found: false, cityPrefix: "0.0.0.0/1", asn: 0, prefix: "0.0.0.0/1"},
		// A 6to4 address is an IPv6 address (the database aliases it to
		// the IPv4 data), so its prefix is IPv6.
		{addr: "2002:c000:201::1", place: at(fra, "DE", "EU"), found: true, cityPrefix: "2002:c000:200::/42", asn: 64496, prefix: "2002:c000:200::/42"},
	}
	cityOnly := openTestDB(t, "")
	both := openTestDB(t, testASNPath)
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			addr := netip.MustParseAddr(tt.addr)
			want := Location{
				Point:      tt.place.pt,
				HasPoint:   tt.place.country != "",
				AccuracyKm: accuracy(tt.place),
				Country:    tt.place.country + tt.country,
				Continent:  tt.place.continent + tt.continent,
				Prefix:     mustPrefix(tt.cityPrefix),
				Found:      tt.found,
			}
			got, err := cityOnly.Lookup(addr)
			if err != nil {
				t.Fatalf("city only: Lookup(%s): %v", addr, err)
			}
			if got != want {
				t.Errorf("city only: Lookup(%s)\n got %+v\nwant %+v", addr, got, want)
			}

			want.ASN = tt.asn
			want.Prefix = mustPrefix(tt.prefix)
			got, err = both.Lookup(addr)
			if err != nil {
				t.Fatalf("city and ASN: Lookup(%s): %v", addr, err)
			}
			if got != want {
				t.Errorf("city and ASN: Lookup(%s)\n got %+v\nwant %+v", addr, got, want)
			}
			if !got.Prefix.Contains(addr.Unmap().WithZone("")) {
				t.Errorf("prefix %s does not contain %s", got.Prefix, addr)
			}
		})
	}
}

func TestLookupInvalidAddr(t *testing.T) {
	db := openTestDB(t, testASNPath)
	if loc, err := db.Lookup(netip.Addr{}); !errors.Is(err, ErrInvalidAddr) || loc != (Location{}) {
		t.Errorf("Lookup(zero Addr) = %+v, %v; want zero Location, ErrInvalidAddr", loc, err)
	}
}

func TestLookupClosed(t *testing.T) {
	db, err := Open(testCityPath, testASNPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := db.Lookup(netip.MustParseAddr("192.0.2.1")); err == nil {
		t.Error("Lookup after Close: no error")
	}
}

// writeDB writes a database with the given options and records, for cases
// that the generator does not cover.
func writeDB(t *testing.T, opts mmdbwriter.Options, records map[string]mmdbtype.Map) []byte {
	t.Helper()
	opts.IncludeReservedNetworks = true
	tree, err := mmdbwriter.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for network, rec := range records {
		_, ipnet, err := net.ParseCIDR(network)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(ipnet, rec); err != nil {
			t.Fatal(err)
		}
	}
	var b strings.Builder
	if _, err := tree.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return []byte(b.String())
}

// Prefixes stay in the address family of the query whatever the shape of
// the database.
func TestLookupPrefixFamily(t *testing.T) {
	de := mmdbtype.Map{
		"country":   mmdbtype.Map{"iso_code": mmdbtype.String("DE")},
		"continent": mmdbtype.Map{"code": mmdbtype.String("EU")},
	}
	tests := []struct {
		name    string
		opts    mmdbwriter.Options
		records map[string]mmdbtype.Map
		addr    string
		want    Location
	}{
		{
			// The search for an IPv4 address stops at ::/1, above the
			// IPv4 subtree; maxminddb reports the prefix ::/1.
			name:    "IPv4 in an IPv6-only tree",
			opts:    mmdbwriter.Options{DatabaseType: "Test-City", IPVersion: 6, DisableIPv4Aliasing: true},
			records: map[string]mmdbtype.Map{"2001:db8::/32": de},
			addr:    "192.0.2.1",
			want:    Location{Prefix: mustPrefix("0.0.0.0/0")},
		},
		{
			name:    "IPv4 in an IPv4-only database",
			opts:    mmdbwriter.Options{DatabaseType: "Test-City", IPVersion: 4},
			records: map[string]mmdbtype.Map{"192.0.2.0/24": de},
			addr:    "192.0.2.1",
			want:    Location{Country: "DE", Continent: "EU", Prefix: mustPrefix("192.0.2.0/24"), Found: true},
		},
		{
			name:    "IPv4 outside the data of an IPv4-only database",
			opts:    mmdbwriter.Options{DatabaseType: "Test-City", IPVersion: 4},
			records: map[string]mmdbtype.Map{"192.0.2.0/24": de},
			addr:    "10.0.0.1",
			want:    Location{Prefix: mustPrefix("0.0.0.0/1")},
		},
		{
			// maxminddb refuses the lookup; the database knows nothing of
			// IPv6, so the answer depends on nothing narrower than ::/0.
			name:    "IPv6 in an IPv4-only database",
			opts:    mmdbwriter.Options{DatabaseType: "Test-City", IPVersion: 4},
			records: map[string]mmdbtype.Map{"192.0.2.0/24": de},
			addr:    "2001:db8::1",
			want:    Location{Prefix: mustPrefix("::/0")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := FromBytes(writeDB(t, tt.opts, tt.records), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			got, err := db.Lookup(netip.MustParseAddr(tt.addr))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Lookup(%s)\n got %+v\nwant %+v", tt.addr, got, tt.want)
			}
		})
	}
}

// TestOpenErrors: Open's error is an *OpenError that says which file
// failed, also when one path is a prefix of the other, and its text names
// the file and what is wrong.
func TestOpenErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.mmdb")
	garbage := filepath.Join(t.TempDir(), "garbage.mmdb")
	if err := os.WriteFile(garbage, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	// What a reload may find while a new database is written in place.
	city, err := os.ReadFile(testCityPath)
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty.mmdb")
	half := filepath.Join(t.TempDir(), "half.mmdb")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(half, city[:len(city)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	// A good City database whose path is a prefix of a bad ASN one's.
	prefixDir := t.TempDir()
	prefixCity := filepath.Join(prefixDir, "city.mmdb")
	prefixASN := prefixCity + ".asn"
	if err := os.WriteFile(prefixCity, city, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prefixASN, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		city, asn string
		path      string   // OpenError.Path
		kind      string   // OpenError.Kind
		want      []string // substrings of the error
	}{
		{"missing city", missing, "", missing, "City", []string{"geo: open city database " + missing + ": "}},
		{"garbage city", garbage, "", garbage, "City", []string{"geo: open city database " + garbage + ": "}},
		{"empty city", empty, "", empty, "City", []string{"city database", empty, "invalid MaxMind DB file"}},
		{"half-written city", half, "", half, "City", []string{"city database", half, "invalid MaxMind DB file"}},
		{"ASN as city", testASNPath, "", testASNPath, "City", []string{testASNPath, `"GeoLite2-ASN"`, "want a City database"}},
		{"city as ASN", testCityPath, testCityPath, testCityPath, "ASN", []string{testCityPath, `"GeoLite2-City"`, "want a ASN database"}},
		{"missing ASN", testCityPath, missing, missing, "ASN", []string{"geo: open ASN database " + missing + ": "}},
		{"bad ASN, city path a prefix of it", prefixCity, prefixASN, prefixASN, "ASN", []string{"geo: open ASN database " + prefixASN + ": "}},
		{"bad city, ASN path a prefix of it", prefixASN, prefixCity, prefixASN, "City", []string{"geo: open city database " + prefixASN + ": "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(tt.city, tt.asn)
			if err == nil {
				_ = db.Close()
				t.Fatalf("Open(%q, %q): no error", tt.city, tt.asn)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Open(%q, %q) error %q does not mention %q", tt.city, tt.asn, err, s)
				}
			}
			var oe *OpenError
			if !errors.As(err, &oe) {
				t.Fatalf("Open(%q, %q) error %v (%T) is not an *OpenError", tt.city, tt.asn, err, err)
			}
			if oe.Path != tt.path || oe.Kind != tt.kind {
				t.Errorf("OpenError{Path: %q, Kind: %q}, want {%q, %q}", oe.Path, oe.Kind, tt.path, tt.kind)
			}
			if oe.Err == nil || errors.Unwrap(oe) != oe.Err || oe.Error() != err.Error() {
				t.Errorf("OpenError %q wraps %v", oe, oe.Err)
			}
		})
	}
	// The file's own error stays in the chain.
	_, err = Open(missing, "")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing file: %v, want one wrapping os.ErrNotExist", err)
	}
}

func TestFromBytes(t *testing.T) {
	city, err := os.ReadFile(testCityPath)
	if err != nil {
		t.Fatal(err)
	}
	asn, err := os.ReadFile(testASNPath)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		city, asn []byte
		wantErr   string // "" for success
	}{
		{"city", city, nil, ""},
		{"city and ASN", city, asn, ""},
		{"ASN as city", asn, nil, `"GeoLite2-ASN" database, want a City database`},
		{"city as ASN", city, city, `"GeoLite2-City" database, want a ASN database`},
		{"garbage", []byte("garbage"), nil, "open city database"},
		{"garbage ASN", city, []byte("garbage"), "open ASN database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := FromBytes(tt.city, tt.asn)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FromBytes: error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			loc, err := db.Lookup(netip.MustParseAddr("192.0.2.1"))
			if err != nil || loc.Country != "DE" {
				t.Errorf("Lookup = %+v, %v; want DE", loc, err)
			}
		})
	}
}

// A lookup of an address in the database allocates nothing.
func TestLookupAllocs(t *testing.T) {
	db := openTestDB(t, testASNPath)
	for _, a := range []string{"192.0.2.1", "2001:db8:1::1", "198.19.200.1", "8.8.8.8", "::ffff:192.0.2.1"} {
		addr := netip.MustParseAddr(a)
		if n := testing.AllocsPerRun(100, func() { _, _ = db.Lookup(addr) }); n != 0 {
			t.Errorf("Lookup(%s) allocates %v times, want 0", a, n)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	addrs := []netip.Addr{
		netip.MustParseAddr("192.0.2.1"),
		netip.MustParseAddr("198.18.42.7"),
		netip.MustParseAddr("2001:db8:6::1"),
		netip.MustParseAddr("203.0.113.200"),
	}
	for _, tc := range []struct {
		name string
		asn  string
	}{{"city", ""}, {"city+asn", testASNPath}} {
		b.Run(tc.name, func(b *testing.B) {
			db := openTestDB(b, tc.asn)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := db.Lookup(addrs[i%len(addrs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// Any valid address looks up without error, and its prefix is a network of
// its own family (after unmapping) that contains it.
func FuzzLookup(f *testing.F) {
	for _, seed := range []string{
		"192.0.2.1",        // in a City network
		"203.0.113.200",    // in the ASN database only
		"8.8.8.8",          // in neither
		"2001:db8:1::1",    // IPv6, nested ASN network
		"::ffff:192.0.2.1", // IPv4-mapped
		"2002:c000:201::1", // 6to4, aliased to IPv4
		"::",               // the very first address
	} {
		f.Add(netip.MustParseAddr(seed).AsSlice())
	}
	db := openTestDB(f, testASNPath)
	f.Fuzz(func(t *testing.T, b []byte) {
		addr, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		loc, err := db.Lookup(addr)
		if err != nil {
			t.Fatalf("Lookup(%s): %v", addr, err)
		}
		a := addr.Unmap()
		if !loc.Prefix.Contains(a) || loc.Prefix.Addr().Is4() != a.Is4() || loc.Prefix != loc.Prefix.Masked() {
			t.Errorf("Lookup(%s).Prefix = %s, want a masked network of the address's family that contains it", addr, loc.Prefix)
		}
		if loc.HasPoint && !loc.Found {
			t.Errorf("Lookup(%s) = %+v: a point but not found", addr, loc)
		}
	})
}

// TestNetwork checks Network against Lookup over every /28 of the test
// databases' ranges, with and without the ASN database: the same prefix,
// and one Location (but for Prefix) per RecordID.
func TestNetwork(t *testing.T) {
	for _, asn := range []string{"", testASNPath} {
		db := openTestDB(t, asn)
		other := openTestDB(t, asn)
		byID := map[RecordID]Location{}
		for _, base := range []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "198.18.0.0/15", "10.0.0.0/24"} {
			p := mustPrefix(base)
			for a := p.Addr(); p.Contains(a); {
				loc, err := db.Lookup(a)
				if err != nil {
					t.Fatal(err)
				}
				np, id, err := db.Network(a)
				if err != nil {
					t.Fatal(err)
				}
				if np != loc.Prefix {
					t.Fatalf("asn %q: Network(%s) = %s, Lookup's prefix %s", asn, a, np, loc.Prefix)
				}
				loc.Prefix = netip.Prefix{}
				if prev, ok := byID[id]; ok && prev != loc {
					t.Fatalf("asn %q: %s has the RecordID of %v but is %v", asn, a, prev, loc)
				}
				byID[id] = loc
				if _, oid, _ := other.Network(a); oid == id {
					t.Fatalf("two databases gave %s one RecordID", a)
				}
				for range 16 {
					a = a.Next()
				}
			}
		}
		if len(byID) < 10 {
			t.Errorf("asn %q: only %d distinct records: the test tests little", asn, len(byID))
		}
	}
	db := openTestDB(t, "")
	if _, _, err := db.Network(netip.Addr{}); !errors.Is(err, ErrInvalidAddr) {
		t.Errorf("Network(zero Addr): %v, want ErrInvalidAddr", err)
	}
}
