package geo

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/popdns/popdns/internal/geodbgen"
)

var update = flag.Bool("update", false, "rewrite the generated test databases from ../testdata/geo/networks.yaml")

// The committed databases are what the generator makes of the committed
// source, so they cannot drift from it (or from the README that describes
// it). After changing the source, regenerate with
//
//	go run ./internal/tools/mkgeodb -in testdata/geo/networks.yaml -out testdata/geo -out cmd/popdns/demo/geo
//
// or run this test with -update.
func TestGeneratedDatabasesUpToDate(t *testing.T) {
	const source = "../testdata/geo/networks.yaml"
	data, err := os.ReadFile(source)
	if err != nil {
		t.Fatal(err)
	}
	city, asn, err := geodbgen.Generate(source, data)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"../testdata/geo", "../cmd/popdns/demo/geo"} {
		for name, want := range map[string][]byte{"city.mmdb": city, "asn.mmdb": asn} {
			path := filepath.Join(dir, name)
			if *update {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from what %s generates; regenerate it (go test ./geo -run %s -update)", path, source, t.Name())
			}
		}
	}
}
