// Package geodbgen builds small synthetic MaxMind-format databases (a
// GeoLite2-City and a GeoLite2-ASN lookalike) from a readable YAML source,
// for tests and the embedded demo. The output is deterministic: the same
// source gives the same bytes, so generated files can be committed and
// checked for drift. The command internal/tools/mkgeodb wraps it.
//
// The source format (see testdata/geo/networks.yaml):
//
//	build_epoch: 1735689600      # database build time, Unix seconds
//	places:                      # named places, referred to by networks
//	  fra: {city: Frankfurt am Main, lat: 50.11, lon: 8.68, country: DE, continent: EU}
//	city:                        # networks of the City database
//	  - {network: 192.0.2.0/26, place: fra}
//	  - {network: 198.19.192.0/19, country: CH, continent: EU}        # no coordinates
//	  - {network: 198.19.224.0/20, registered_country: NL, continent: EU}
//	asn:                         # networks of the ASN database
//	  - {network: 192.0.2.0/24, asn: 64496, org: Example Transit}
//
// Unknown keys are errors. Networks may nest; a more specific network wins
// over the one containing it, whatever their order in the file.
//
// Everything here is safe for concurrent use; nothing is shared.
package geodbgen

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"go.yaml.in/yaml/v3"
)

// Database types written into the metadata, as in MaxMind's free databases.
const (
	CityType = "GeoLite2-City"
	ASNType  = "GeoLite2-ASN"
)

// Source is a parsed and validated source file.
type Source struct {
	BuildEpoch int64            `yaml:"build_epoch"`
	Places     map[string]Place `yaml:"places"`
	City       []CityNetwork    `yaml:"city"`
	ASN        []ASNNetwork     `yaml:"asn"`
}

// Place is a named location.
type Place struct {
	City      string  `yaml:"city"`
	Lat       float64 `yaml:"lat"`
	Lon       float64 `yaml:"lon"`
	Country   string  `yaml:"country"`
	Continent string  `yaml:"continent"`
	// AccuracyKm is the record's accuracy radius; 0 writes 50 km.
	AccuracyKm uint16 `yaml:"accuracy_km"`
}

// CityNetwork is one network of the City database: either at a Place, or
// known only by Country (or only by RegisteredCountry) and Continent.
type CityNetwork struct {
	Network           netip.Prefix `yaml:"network"`
	Place             string       `yaml:"place"`
	Country           string       `yaml:"country"`
	RegisteredCountry string       `yaml:"registered_country"`
	Continent         string       `yaml:"continent"`
}

// ASNNetwork is one network of the ASN database.
type ASNNetwork struct {
	Network netip.Prefix `yaml:"network"`
	ASN     uint32       `yaml:"asn"`
	Org     string       `yaml:"org"`
}

// continentNames are the English names that GeoLite2 gives the continent
// codes.
var continentNames = map[string]string{
	"AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe",
	"NA": "North America", "OC": "Oceania", "SA": "South America",
}

// Parse decodes and validates a source file; name is used in errors.
func Parse(name string, data []byte) (*Source, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Source
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("geodbgen: %s: %w", name, err)
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("geodbgen: %s: %w", name, err)
	}
	return &s, nil
}

func (s *Source) validate() error {
	if s.BuildEpoch <= 0 {
		return errors.New("build_epoch must be set (Unix seconds), so that output is reproducible")
	}
	for name, p := range s.Places {
		switch {
		case p.City == "":
			return fmt.Errorf("place %s: city is required", name)
		case math.IsNaN(p.Lat) || p.Lat < -90 || p.Lat > 90:
			return fmt.Errorf("place %s: lat %v is not in [-90, 90]", name, p.Lat)
		case math.IsNaN(p.Lon) || p.Lon < -180 || p.Lon > 180:
			return fmt.Errorf("place %s: lon %v is not in [-180, 180]", name, p.Lon)
		}
		if err := checkCodes(p.Country, p.Continent); err != nil {
			return fmt.Errorf("place %s: %w", name, err)
		}
	}
	seen := map[netip.Prefix]bool{}
	for _, n := range s.City {
		if err := checkNetwork(n.Network, seen); err != nil {
			return fmt.Errorf("city: %w", err)
		}
		switch {
		case n.Place != "":
			if _, ok := s.Places[n.Place]; !ok {
				return fmt.Errorf("city: %s: unknown place %q", n.Network, n.Place)
			}
			if n.Country != "" || n.RegisteredCountry != "" || n.Continent != "" {
				return fmt.Errorf("city: %s: give either a place or country and continent, not both", n.Network)
			}
		case n.Country != "" && n.RegisteredCountry != "":
			return fmt.Errorf("city: %s: give either country or registered_country", n.Network)
		default:
			if err := checkCodes(n.Country+n.RegisteredCountry, n.Continent); err != nil {
				return fmt.Errorf("city: %s: %w", n.Network, err)
			}
		}
	}
	seen = map[netip.Prefix]bool{}
	for _, n := range s.ASN {
		if err := checkNetwork(n.Network, seen); err != nil {
			return fmt.Errorf("asn: %w", err)
		}
		if n.ASN == 0 || n.Org == "" {
			return fmt.Errorf("asn: %s: asn and org are required", n.Network)
		}
	}
	return nil
}

func checkNetwork(p netip.Prefix, seen map[netip.Prefix]bool) error {
	switch {
	case !p.IsValid():
		return errors.New("a network is missing or invalid")
	case p != p.Masked():
		return fmt.Errorf("network %s has host bits set; write %s", p, p.Masked())
	case p.Addr().Is4In6():
		return fmt.Errorf("network %s: write IPv4 networks in dotted form", p)
	case seen[p]:
		return fmt.Errorf("network %s is listed twice", p)
	}
	seen[p] = true
	return nil
}

func checkCodes(country, continent string) error {
	if len(country) != 2 || country[0] < 'A' || country[0] > 'Z' || country[1] < 'A' || country[1] > 'Z' {
		return fmt.Errorf("country %q is not an ISO 3166-1 alpha-2 code", country)
	}
	if _, ok := continentNames[continent]; !ok {
		return fmt.Errorf("continent %q is not one of AF AN AS EU NA OC SA", continent)
	}
	return nil
}

// Generate parses the source file data (name is used in errors) and returns
// the City and ASN databases built from it.
func Generate(name string, data []byte) (city, asn []byte, err error) {
	s, err := Parse(name, data)
	if err != nil {
		return nil, nil, err
	}
	if city, err = s.CityDB(); err != nil {
		return nil, nil, err
	}
	if asn, err = s.ASNDB(); err != nil {
		return nil, nil, err
	}
	return city, asn, nil
}

// CityDB returns the City database: an IPv6 tree in which IPv4 networks are
// also reachable as IPv4 (IPv4 aliasing), with records shaped like
// GeoLite2-City's.
func (s *Source) CityDB() ([]byte, error) {
	entries := make([]entry, 0, len(s.City))
	for _, n := range s.City {
		rec := mmdbtype.Map{}
		country := n.Country
		continent := n.Continent
		if n.Place != "" {
			p := s.Places[n.Place]
			country, continent = p.Country, p.Continent
			rec["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(p.City)}}
			rec["location"] = mmdbtype.Map{
				"latitude":        mmdbtype.Float64(p.Lat),
				"longitude":       mmdbtype.Float64(p.Lon),
				"accuracy_radius": mmdbtype.Uint16(cmp.Or(p.AccuracyKm, 50)),
			}
		}
		rec["continent"] = mmdbtype.Map{
			"code":  mmdbtype.String(continent),
			"names": mmdbtype.Map{"en": mmdbtype.String(continentNames[continent])},
		}
		if country != "" {
			rec["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(country)}
			rec["registered_country"] = mmdbtype.Map{"iso_code": mmdbtype.String(country)}
		} else {
			rec["registered_country"] = mmdbtype.Map{"iso_code": mmdbtype.String(n.RegisteredCountry)}
		}
		entries = append(entries, entry{n.Network, rec})
	}
	return s.write(CityType, "popdns synthetic City test database", entries)
}

// ASNDB returns the ASN database, with records shaped like GeoLite2-ASN's.
func (s *Source) ASNDB() ([]byte, error) {
	entries := make([]entry, 0, len(s.ASN))
	for _, n := range s.ASN {
		entries = append(entries, entry{n.Network, mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(n.ASN),
			"autonomous_system_organization": mmdbtype.String(n.Org),
		}})
	}
	return s.write(ASNType, "popdns synthetic ASN test database", entries)
}

type entry struct {
	network netip.Prefix
	record  mmdbtype.Map
}

// write builds a database from entries, inserting wider networks first so
// that a nested network replaces its part of the network containing it.
func (s *Source) write(dbType, description string, entries []entry) ([]byte, error) {
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		BuildEpoch:   s.BuildEpoch,
		DatabaseType: dbType,
		Description:  map[string]string{"en": description},
		Languages:    []string{"en"},
		IPVersion:    6,
		RecordSize:   24,
		// The documentation and benchmarking ranges that the test data
		// uses are reserved; the writer leaves them out by default.
		IncludeReservedNetworks: true,
	})
	if err != nil {
		return nil, fmt.Errorf("geodbgen: %s: %w", dbType, err)
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.network.Bits(), b.network.Bits()), a.network.Addr().Compare(b.network.Addr()))
	})
	for _, e := range entries {
		ipnet := &net.IPNet{
			IP:   net.IP(e.network.Addr().AsSlice()),
			Mask: net.CIDRMask(e.network.Bits(), e.network.Addr().BitLen()),
		}
		if err := tree.Insert(ipnet, e.record); err != nil {
			return nil, fmt.Errorf("geodbgen: %s: insert %s: %w", dbType, e.network, err)
		}
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("geodbgen: %s: write: %w", dbType, err)
	}
	return buf.Bytes(), nil
}
