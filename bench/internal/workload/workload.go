// Package workload owns the benchmark's one workload description
// (bench/workload.yaml): the zone, the PoPs and their addresses, the client
// sample's size and the query mixes. It decodes and checks the file, and
// answers the one geographic question every other part of the harness
// asks: which PoP is nearest a point on the great circle.
package workload

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Description is bench/workload.yaml.
type Description struct {
	Zone       string     `yaml:"zone"`
	GeoName    string     `yaml:"geo_name"`
	GeoTTL     uint32     `yaml:"geo_ttl"`
	StaticName string     `yaml:"static_name"`
	StaticA    netip.Addr `yaml:"static_a"`
	NSA        netip.Addr `yaml:"ns_a"`
	PoPs       []PoP      `yaml:"pops"`
	Clients    Clients    `yaml:"clients"`
	Workloads  []Workload `yaml:"workloads"`
	ListSize   int        `yaml:"list_size"`
}

// PoP is one point of presence: where it is and the address it answers.
type PoP struct {
	Name string     `yaml:"name"`
	Lat  float64    `yaml:"lat"`
	Lon  float64    `yaml:"lon"`
	A    netip.Addr `yaml:"a"`
}

// Clients says how many ECS client networks to sample, and from where.
type Clients struct {
	Continents   []string `yaml:"continents"`
	PerContinent int      `yaml:"per_continent"`
	Seed         uint64   `yaml:"seed"`
}

// Workload is one query mix.
type Workload struct {
	Name  string             `yaml:"name"`
	About string             `yaml:"about"`
	Mix   map[string]float64 `yaml:"mix"`
	// Geo marks a workload that needs geo answers: servers without geo
	// (Knot, CoreDNS) skip it.
	Geo bool `yaml:"geo"`
	// SignedOf names an earlier workload whose queries this one asks
	// with the DO bit set, in the same order: its mix and geo are that
	// workload's. Such a workload runs on the servers that sign a copy of
	// the zone, and they run nothing else, so the two compare signed and
	// unsigned answers to the same questions.
	SignedOf string `yaml:"signed_of"`
}

// DNSSEC tells whether w's queries set the DO bit, for a signed zone.
func (w Workload) DNSSEC() bool { return w.SignedOf != "" }

// The kinds of query a mix can hold.
const (
	KindStatic      = "static"       // static name, EDNS, no ECS
	KindGeo         = "geo"          // geo name, EDNS, no ECS
	KindGeoECS      = "geo_ecs"      // geo name with a sampled client's ECS
	KindStaticECS   = "static_ecs"   // static name with a sampled client's ECS
	KindNXDomain    = "nxdomain"     // a name that does not exist, no ECS
	KindNXDomainECS = "nxdomain_ecs" // a name that does not exist, with ECS
)

var kinds = []string{KindStatic, KindGeo, KindGeoECS, KindStaticECS, KindNXDomain, KindNXDomainECS}

// continents are GeoLite2's continent codes.
var continents = []string{"AF", "AN", "AS", "EU", "NA", "OC", "SA"}

// Load reads and checks a description.
func Load(path string) (*Description, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	d, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("workload: %s: %w", path, err)
	}
	return d, nil
}

// Parse decodes a description strictly (unknown keys are errors) and checks
// it.
func Parse(b []byte) (*Description, error) {
	var d Description
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return nil, err
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	return &d, nil
}

func (d *Description) check() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if d.Zone == "" {
		bad("zone: missing")
	} else if !strings.HasSuffix(d.Zone, ".") {
		d.Zone += "."
	}
	d.Zone = strings.ToLower(d.Zone)
	if d.GeoName == "" || strings.Contains(d.GeoName, ".") {
		bad("geo_name: one label, e.g. www")
	}
	if d.StaticName == "" || strings.Contains(d.StaticName, ".") || d.StaticName == d.GeoName {
		bad("static_name: one label, not geo_name")
	}
	if !d.StaticA.Is4() {
		bad("static_a: an IPv4 address")
	}
	if !d.NSA.Is4() {
		bad("ns_a: an IPv4 address")
	}
	if d.GeoTTL == 0 {
		d.GeoTTL = 30
	}
	if len(d.PoPs) < 2 {
		bad("pops: at least two")
	}
	seen := map[string]bool{}
	for i, p := range d.PoPs {
		switch {
		case p.Name == "" || strings.ToLower(p.Name) != p.Name:
			bad("pops[%d].name: lowercase, not empty", i)
		case seen[p.Name]:
			bad("pops[%d].name: %s twice", i, p.Name)
		}
		seen[p.Name] = true
		if p.Lat < -90 || p.Lat > 90 || p.Lon < -180 || p.Lon > 180 {
			bad("pops[%d]: lat/lon out of range", i)
		}
		if !p.A.Is4() {
			bad("pops[%d].a: an IPv4 address", i)
		}
	}
	if d.Clients.PerContinent <= 0 {
		bad("clients.per_continent: at least 1")
	}
	if len(d.Clients.Continents) == 0 {
		bad("clients.continents: at least one")
	}
	for _, c := range d.Clients.Continents {
		if !slices.Contains(continents, c) {
			bad("clients.continents: %q is not one of %s", c, strings.Join(continents, ", "))
		}
	}
	if d.ListSize <= 0 {
		d.ListSize = 20000
	}
	names := map[string]bool{}
	for i := range d.Workloads {
		w := &d.Workloads[i]
		if w.Name == "" || names[w.Name] || strings.ContainsAny(w.Name, " /") {
			bad("workloads[%d].name: unique, no spaces or slashes", i)
		}
		names[w.Name] = true
		if w.SignedOf != "" {
			j := slices.IndexFunc(d.Workloads[:i], func(o Workload) bool { return o.Name == w.SignedOf })
			switch {
			case j < 0:
				bad("workloads[%d].signed_of: %q is not an earlier workload", i, w.SignedOf)
				continue
			case d.Workloads[j].SignedOf != "":
				bad("workloads[%d].signed_of: %q is itself signed_of another", i, w.SignedOf)
				continue
			case len(w.Mix) > 0 || w.Geo:
				bad("workloads[%d]: mix and geo come from signed_of %q, not given again", i, w.SignedOf)
				continue
			}
			w.Mix, w.Geo = d.Workloads[j].Mix, d.Workloads[j].Geo
			continue
		}
		sum := 0.0
		for k, v := range w.Mix {
			if !slices.Contains(kinds, k) {
				bad("workloads[%d].mix: unknown kind %q (known: %s)", i, k, strings.Join(kinds, ", "))
			}
			if v < 0 {
				bad("workloads[%d].mix.%s: negative", i, k)
			}
			sum += v
		}
		if math.Abs(sum-1) > 1e-9 {
			bad("workloads[%d].mix: shares add up to %g, not 1", i, sum)
		}
	}
	if len(d.Workloads) == 0 {
		bad("workloads: at least one")
	}
	return errors.Join(errs...)
}

// GeoFQDN is the geo name as a fully qualified domain name.
func (d *Description) GeoFQDN() string { return d.GeoName + "." + d.Zone }

// StaticFQDN is the static name as a fully qualified domain name.
func (d *Description) StaticFQDN() string { return d.StaticName + "." + d.Zone }

// PoPByA returns the PoP whose address is a, if any.
func (d *Description) PoPByA(a netip.Addr) (PoP, bool) {
	for _, p := range d.PoPs {
		if p.A == a {
			return p, true
		}
	}
	return PoP{}, false
}

// Kinds returns the mix's kinds in a fixed order, with their shares.
func (w Workload) Kinds() []string {
	ks := make([]string, 0, len(w.Mix))
	for k, v := range w.Mix {
		if v > 0 {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

// earthRadiusKm is the mean Earth radius.
const earthRadiusKm = 6371.0088

// DistanceKm is the great-circle distance between two points in decimal
// degrees (haversine).
func DistanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dlat := (lat2 - lat1) * rad
	dlon := (lon2 - lon1) * rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) +
		math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * earthRadiusKm * math.Asin(math.Min(1, math.Sqrt(a)))
}

// Nearest returns the index of the PoP nearest (lat, lon) and the margin by
// which it wins: how much farther the second nearest is, relative to the
// nearest (0.1 means 10 % farther; +Inf when the nearest is at distance 0).
// Near-ties (a small margin) are where servers with slightly different
// distance formulas may legitimately disagree.
func Nearest(pops []PoP, lat, lon float64) (int, float64) {
	best, second := -1, -1
	var bd, sd float64
	for i, p := range pops {
		dist := DistanceKm(lat, lon, p.Lat, p.Lon)
		switch {
		case best < 0 || dist < bd:
			second, sd = best, bd
			best, bd = i, dist
		case second < 0 || dist < sd:
			second, sd = i, dist
		}
	}
	if second < 0 {
		return best, math.Inf(1)
	}
	if bd == 0 {
		return best, math.Inf(1)
	}
	return best, (sd - bd) / bd
}
