package reload

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// TestGeoIPErrorFile: a GeoIP database that fails to reload is reported
// under its own path, also when the other database's path is a prefix of
// it or it is a prefix of the other's (the file was guessed from the
// error's text, which then names both).
func TestGeoIPErrorFile(t *testing.T) {
	good, err := os.ReadFile("../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	goodASN, err := os.ReadFile("../../testdata/geo/asn.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	garbage := []byte("not a database")
	tests := []struct {
		name          string
		city, asn     string // file names; the ASN one may extend the city one
		newCity       []byte // written before the reload; nil: unchanged
		newASN        []byte
		wantFileIsASN bool
	}{
		{"bad ASN, city path a prefix of it", "city.mmdb", "city.mmdb.asn", nil, garbage, true},
		{"bad city, ASN path a prefix of it", "asn.mmdb.city", "asn.mmdb", garbage, nil, false},
		{"bad city, its path a prefix of the ASN's", "city.mmdb", "city.mmdb.asn", garbage, nil, false},
		{"bad ASN, its path a prefix of the city's", "asn.mmdb.city", "asn.mmdb", nil, garbage, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTestReloader(t)
			city, asn := filepath.Join(tr.dir, tt.city), filepath.Join(tr.dir, tt.asn)
			if err := os.WriteFile(city, good, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(asn, goodASN, 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := tr.cfg
			cfg.GeoCity, cfg.GeoASN = city, asn
			r := New(cfg, Deps{Load: func() (Config, error) { return cfg, nil }, DNS: tr.dns, Prober: fakeProber{},
				Locator: fakeLocator{}, Log: zerolog.Nop(), Metrics: prometheus.NewRegistry()})
			for path, data := range map[string][]byte{city: tt.newCity, asn: tt.newASN} {
				if data == nil {
					continue
				}
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r.Reload("test")
			want := city
			if tt.wantFileIsASN {
				want = asn
			}
			var got []string
			for file := range r.FileErrors() {
				got = append(got, file)
			}
			if !slices.Equal(got, []string{want}) {
				t.Errorf("files in error: %q, want %q", got, want)
			}
		})
	}
}

// TestGeoIPErrorClearsOnRevert: a configuration that names a database
// that does not open is refused and shown; once the configuration names
// the serving database again, the error goes (it stayed until the serving
// file itself changed).
func TestGeoIPErrorClearsOnRevert(t *testing.T) {
	good, err := os.ReadFile("../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	tr := newTestReloader(t)
	city := filepath.Join(tr.dir, "city.mmdb")
	if err := os.WriteFile(city, good, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := tr.cfg
	cfg.GeoCity = city
	current := cfg
	r := New(cfg, Deps{Load: func() (Config, error) { return current, nil }, DNS: tr.dns, Prober: fakeProber{},
		Locator: fakeLocator{}, Log: zerolog.Nop(), Metrics: prometheus.NewRegistry()})
	current.GeoCity = filepath.Join(tr.dir, "nope.mmdb")
	r.Reload("test")
	if _, ok := r.FileErrors()[current.GeoCity]; !ok {
		t.Fatalf("file errors %v, want %s", r.FileErrors(), current.GeoCity)
	}
	current = cfg
	r.Reload("test")
	if errs := r.FileErrors(); len(errs) != 0 {
		t.Errorf("file errors %v after the configuration named the serving database again, want none", errs)
	}
}
