package geodbgen

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestGenerateDeterministic(t *testing.T) {
	data, err := os.ReadFile("../../testdata/geo/networks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	city1, asn1, err := Generate("networks.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	city2, asn2, err := Generate("networks.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(city1, city2) || !bytes.Equal(asn1, asn2) {
		t.Error("two runs over the same source give different bytes")
	}
}

func TestParseErrors(t *testing.T) {
	const places = "build_epoch: 1\nplaces:\n  fra: {city: Frankfurt, lat: 50.11, lon: 8.68, country: DE, continent: EU}\n"
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"unknown key", places + "citys: []\n", "field citys not found"},
		{"no build epoch", "city: []\n", "build_epoch must be set"},
		{"bad network", places + "city:\n  - {network: 192.0.2.0/33, place: fra}\n", "192.0.2.0/33"},
		{"host bits", places + "city:\n  - {network: 192.0.2.1/24, place: fra}\n", "write 192.0.2.0/24"},
		{"mapped network", places + "city:\n  - {network: \"::ffff:192.0.2.0/120\", place: fra}\n", "dotted form"},
		{"duplicate", places + "city:\n  - {network: 192.0.2.0/24, place: fra}\n  - {network: 192.0.2.0/24, place: fra}\n", "listed twice"},
		{"unknown place", places + "city:\n  - {network: 192.0.2.0/24, place: xyz}\n", `unknown place "xyz"`},
		{"place and country", places + "city:\n  - {network: 192.0.2.0/24, place: fra, country: DE}\n", "not both"},
		{"both countries", places + "city:\n  - {network: 192.0.2.0/24, country: DE, registered_country: DE, continent: EU}\n", "either country or registered_country"},
		{"bad country", places + "city:\n  - {network: 192.0.2.0/24, country: de, continent: EU}\n", `country "de"`},
		{"bad continent", places + "city:\n  - {network: 192.0.2.0/24, country: DE, continent: XX}\n", `continent "XX"`},
		{"bad latitude", "build_epoch: 1\nplaces:\n  x: {city: X, lat: 91, lon: 0, country: DE, continent: EU}\n", "lat 91"},
		{"bad longitude", "build_epoch: 1\nplaces:\n  x: {city: X, lat: 0, lon: -181, country: DE, continent: EU}\n", "lon -181"},
		{"no city name", "build_epoch: 1\nplaces:\n  x: {lat: 0, lon: 0, country: DE, continent: EU}\n", "city is required"},
		{"asn without org", places + "asn:\n  - {network: 192.0.2.0/24, asn: 64496}\n", "asn and org are required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("src.yaml", []byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "src.yaml") {
				t.Errorf("Parse: error %v, want one naming src.yaml and containing %q", err, tt.want)
			}
		})
	}
}
