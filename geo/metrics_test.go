package geo

import (
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

// TestLocatorCollector: the build time of each database serving, by its
// type, as its metadata says; swapped databases show at the next scrape.
func TestLocatorCollector(t *testing.T) {
	db := newTestDB(t)
	infos := db.Info()
	if len(infos) != 2 {
		t.Fatalf("Info() = %+v, want the City and the ASN database", infos)
	}
	if infos[0].Type == infos[1].Type || infos[0].Built.IsZero() {
		t.Fatalf("Info() = %+v, want two types and build times", infos)
	}
	l := NewLocator(db, zerolog.Nop())
	defer l.Close()
	c := l.Collector()
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	want := "# HELP popdns_geoip_build_timestamp_seconds When each GeoIP database serving was built (its metadata's build epoch), by database type.\n" +
		"# TYPE popdns_geoip_build_timestamp_seconds gauge\n"
	for _, d := range infos {
		want += "popdns_geoip_build_timestamp_seconds{database=\"" + d.Type + "\"} " + strconv.FormatInt(d.Built.Unix(), 10) + "\n"
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	city, err := Open(testCityPath, "")
	if err != nil {
		t.Fatal(err)
	}
	l.Swap(city)
	if n := testutil.CollectAndCount(c); n != 1 {
		t.Errorf("%d series with the City database alone, want 1", n)
	}
	l.Swap(nil)
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("%d series without a database, want 0", n)
	}
}
