package pops

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/yamlx"
	"go.yaml.in/yaml/v3"
)

// AdminState is an operator's say over a PoP or a geo target, on top of
// what health probes find.
type AdminState uint8

const (
	// Active: answered whenever it is healthy.
	Active AdminState = iota
	// Drain: gets no clients while anything else is eligible, but may
	// still be answered when no target is eligible (when_all_down nearest,
	// all, or fallback naming it), since it works: it is only being
	// emptied.
	Drain
	// Down: never answered.
	Down
)

func (s AdminState) String() string {
	switch s {
	case Drain:
		return "drain"
	case Down:
		return "down"
	}
	return "active"
}

// ParseAdminState reads a state as written in the configuration and in
// zone files: active (or nothing), drain or down, in any case.
func ParseAdminState(s string) (AdminState, bool) {
	switch strings.ToLower(s) {
	case "", "active":
		return Active, true
	case "drain":
		return Drain, true
	case "down":
		return Down, true
	}
	return Active, false
}

// PoP is one point of presence: where it is and how the operator wants it
// used. A PoP in an inventory is shared by every snapshot that uses it and
// must not be modified; a new inventory replaces it.
type PoP struct {
	Name      string
	Point     geo.Point
	Country   string // ISO 3166-1 alpha-2, optional
	Continent string // two-letter code, optional
	State     AdminState
	Weight    float64 // capacity share under spread_ms; default 1
	// Probe is the ID of the PoP's health probe, "" for none. Every target
	// at the PoP is healthy only when this probe says so.
	Probe string
}

// Inventory is the PoPs of a server configuration and their probes. It is
// immutable and safe for concurrent use; a nil *Inventory is empty.
type Inventory struct {
	byName map[string]*PoP
	names  []string // sorted
	// probeDefaults complete every probe, the PoPs' and the zones'.
	probeDefaults healthprobe.Defaults
	probes        []healthprobe.Target // the PoPs' own, sorted by ID
}

// ProbeDefaults are the schedule settings of probes that do not set their
// own.
func (p *Inventory) ProbeDefaults() healthprobe.Defaults {
	if p == nil {
		return healthprobe.Defaults{}
	}
	return p.probeDefaults
}

// Probes lists the PoPs' health probes, one per ID, sorted by ID. Do not
// modify it.
func (p *Inventory) Probes() []healthprobe.Target {
	if p == nil {
		return nil
	}
	return p.probes
}

// Get returns the PoP called name, or nil.
func (p *Inventory) Get(name string) *PoP {
	if p == nil {
		return nil
	}
	return p.byName[name]
}

// Names lists the PoP names, sorted.
func (p *Inventory) Names() []string {
	if p == nil {
		return nil
	}
	return p.names
}

// Equal reports whether two inventories list the same PoPs with the same
// settings and probe defaults.
func (p *Inventory) Equal(q *Inventory) bool {
	if len(p.Names()) != len(q.Names()) || p.ProbeDefaults() != q.ProbeDefaults() {
		return false
	}
	for _, name := range p.Names() {
		a, b := p.Get(name), q.Get(name)
		if b == nil || *a != *b {
			return false
		}
	}
	return true
}

// New builds an inventory from PoPs already validated by the caller
// (tests, mostly). Names must be unique.
func New(list ...PoP) (*Inventory, error) {
	p := &Inventory{byName: make(map[string]*PoP, len(list))}
	for i := range list {
		pop := list[i]
		if pop.Weight == 0 {
			pop.Weight = 1
		}
		if _, dup := p.byName[pop.Name]; dup {
			return nil, fmt.Errorf("pops: PoP %q listed twice", pop.Name)
		}
		p.byName[pop.Name] = &pop
		p.names = append(p.names, pop.Name)
	}
	slices.Sort(p.names)
	return p, nil
}

var popNameOK = func(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

// ValidName reports whether name is a well-formed PoP name: lowercase
// letters, digits, - and _, not empty. Decode holds the configuration's
// names to it, and parsers of outside data that name PoPs (measurements)
// check their syntax with it before asking whether the PoP exists.
func ValidName(name string) bool {
	return name != "" && strings.IndexFunc(name, func(r rune) bool { return !popNameOK(r) }) < 0
}

// Decode decodes the `pops` mapping of a server configuration file:
//
//	pops:
//	  fra: { lat: 50.11, lon: 8.68, country: DE, continent: EU }
//	  iad: { lat: 38.95, lon: -77.45, state: drain, weight: 2,
//	         probe: { http: 192.0.2.20:8080, path: /health } }
//
// Probes, the PoPs' and those of the zones loaded with the inventory, are
// completed from probeDefaults. Errors name file, line and field. A nil or
// null node is an empty inventory.
func Decode(file string, n *yaml.Node, probeDefaults healthprobe.Defaults) (*Inventory, error) {
	var errs yamlx.ErrorList
	p := &Inventory{byName: map[string]*PoP{}, probeDefaults: probeDefaults}
	if yamlx.IsNull(n) {
		return p, nil
	}
	n = yamlx.Resolve(n)
	probes := ProbeSet{}
	if n.Kind != yaml.MappingNode {
		errs.Addf(file, n.Line, "pops", "must map PoP names to their place, e.g. fra: { lat: 50.11, lon: 8.68 }")
		return nil, errs
	}
	errs.Add(yamlx.Walk(file, "pops", n, yamlx.Keys{}, func(e yamlx.Entry) {
		name, field := e.Key, e.Field()
		if !ValidName(name) {
			errs.Addf(file, e.Line, field, "a PoP name is lowercase letters, digits, - and _")
			return
		}
		pop, probe, ok := decodePoP(file, field, name, e.Value, &errs)
		if ok && probe != nil {
			t, valid := probe.resolve(probeDefaults, &errs)
			pop.Probe, ok = t.ID, valid
			probes[t.ID] = t
		}
		if ok {
			p.byName[name] = pop
			p.names = append(p.names, name)
		}
	}))
	if len(errs) > 0 {
		errs.SortByLine()
		return nil, errs
	}
	slices.Sort(p.names)
	p.probes = probes.Sorted()
	return p, nil
}

// popKeys are the keys of one PoP.
var popKeys = yamlx.Keys{Names: []string{"lat", "lon", "country", "continent", "state", "weight", "probe"}}

func decodePoP(file, field, name string, n *yaml.Node, errs *yamlx.ErrorList) (*PoP, *ProbeSpec, bool) {
	if n.Kind != yaml.MappingNode {
		errs.Addf(file, n.Line, field, "must be a mapping with lat and lon")
		return nil, nil, false
	}
	pop := &PoP{Name: name, Weight: 1}
	var probe *ProbeSpec
	ok := true
	var hasLat, hasLon bool
	werrs := yamlx.Walk(file, field, n, popKeys, func(e yamlx.Entry) {
		f, val := e.Field(), e.Value
		if e.Key == "probe" {
			var valid bool
			probe, valid = decodeProbe(file, f, val, errs)
			ok = ok && valid
			return
		}
		s, isScalar := yamlx.Scalar(val)
		if !isScalar {
			errs.Addf(file, val.Line, f, "must be a single value")
			ok = false
			return
		}
		bad := func(format string, args ...any) {
			errs.Addf(file, val.Line, f, format, args...)
			ok = false
		}
		switch e.Key {
		case "lat":
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || v < -90 || v > 90 {
				bad("latitude must be a number from -90 to 90, got %q", s)
			}
			pop.Point.Lat, hasLat = v, true
		case "lon":
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || v < -180 || v > 180 {
				bad("longitude must be a number from -180 to 180, got %q", s)
			}
			pop.Point.Lon, hasLon = v, true
		case "country":
			if len(s) != 2 {
				bad("a two-letter ISO 3166-1 code such as DE, got %q", s)
			}
			pop.Country = strings.ToUpper(s)
		case "continent":
			if !geo.IsContinent(strings.ToUpper(s)) {
				bad("one of AF, AN, AS, EU, NA, OC, SA, got %q", s)
			}
			pop.Continent = strings.ToUpper(s)
		case "state":
			st, valid := ParseAdminState(s)
			if !valid {
				bad("one of active, drain, down, got %q", s)
			}
			pop.State = st
		case "weight":
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || v <= 0 {
				bad("a positive number (the PoP's capacity share), got %q", s)
			}
			pop.Weight = v
		}
	})
	if len(werrs) > 0 {
		errs.Add(werrs)
		ok = false
	}
	if !hasLat || !hasLon {
		errs.Addf(file, n.Line, field, "lat and lon are required")
		ok = false
	}
	return pop, probe, ok
}
