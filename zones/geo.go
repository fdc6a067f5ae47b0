package zones

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/internal/yamlx"
	"github.com/popdns/popdns/pops"
	"go.yaml.in/yaml/v3"
)

// DefaultGeoTTL is a geo record's TTL when it names none: short, so that a
// change of PoP health reaches clients quickly.
const DefaultGeoTTL = 30

// MaxGeoTargets bounds the targets of one geo record, so that a set of
// targets fits in one machine word on the query path.
const MaxGeoTargets = 64

// AllDownPolicy says what a geo record answers when no target is eligible.
type AllDownPolicy uint8

const (
	// AllDownNearest ranks every target that is not admin-down, ignoring
	// health: a probe outage must not blackhole a name.
	AllDownNearest AllDownPolicy = iota
	// AllDownAll answers every target that is not admin-down.
	AllDownAll
	// AllDownFallback answers the record's fallback targets.
	AllDownFallback
	// AllDownServfail answers SERVFAIL.
	AllDownServfail
)

var allDownNames = map[string]AllDownPolicy{
	"nearest": AllDownNearest, "all": AllDownAll, "fallback": AllDownFallback, "servfail": AllDownServfail,
}

func (p AllDownPolicy) String() string {
	switch p {
	case AllDownAll:
		return "all"
	case AllDownFallback:
		return "fallback"
	case AllDownServfail:
		return "servfail"
	}
	return "nearest"
}

// Geo is a compiled geo record: the candidate targets of one name and how
// to choose among them. It is shared by every query of a snapshot: it and
// everything it points to (targets, RRs, rules, PoPs) must never be
// modified after Load returns it; it is safe for concurrent use.
type Geo struct {
	Owner       string
	TTL         uint32
	Answers     int         // how many targets one answer carries
	Targets     []GeoTarget // file order: the default order for clients nobody can place
	WhenAllDown AllDownPolicy
	Fallback    TargetSet
	SpreadMS    float64
	Rules       []GeoRule // most specific first: the first that matches applies
	Line        int
}

// TargetSet is a set of indexes into Geo.Targets.
type TargetSet uint64

// Has reports whether target i is in the set.
func (s TargetSet) Has(i int) bool { return s&(1<<uint(i)) != 0 }

// GeoTarget is one PoP a geo record may answer with, and what it answers.
// Like all snapshot data it must not be modified.
type GeoTarget struct {
	// Owner is the geo record's owner name (a lowercase FQDN): an
	// operator's override may name the target as TargetKey(PoP, Owner).
	Owner  string
	key    string // TargetKey(PoP.Name, Owner), made once
	PoP    *pops.PoP
	State  pops.AdminState // the target's own override; the PoP's state applies too
	BiasMS float64         // added to the estimated RTT: > 0 pushes the target back
	A      []dns.RR        // owner and TTL already set
	AAAA   []dns.RR
	CNAME  dns.RR // nil unless the target answers with a CNAME
	// Probe is the ID of the target's own health probe, "" for none. The
	// target is healthy only when this probe and its PoP's say so.
	Probe string
	Line  int
}

// TargetKey names one geo record's target at one PoP for operators'
// overrides: "fra@www.example.com.", beside a PoP's own "fra".
func TargetKey(pop, owner string) string { return pop + "@" + owner }

// Key is t's TargetKey, made when the zone was compiled: the query path
// looks overrides up by it without allocating.
func (t *GeoTarget) Key() string {
	if t.key == "" {
		return TargetKey(t.PoP.Name, t.Owner)
	}
	return t.key
}

// Name is the target's PoP name.
func (t *GeoTarget) Name() string { return t.PoP.Name }

// RuleKind is what a rule matches on, in increasing specificity.
type RuleKind uint8

const (
	RuleContinent RuleKind = iota // the client's continent code
	RuleCountry                   // the client's ISO 3166-1 country code
	RuleASN                       // the client network's autonomous system
	RuleCIDR                      // the client address itself: the longest matching network wins
)

// GeoRule pins clients to some targets (Only) or keeps them away from some
// (Exclude). It matches on exactly one kind of client property. Like all
// snapshot data it must not be modified.
type GeoRule struct {
	Kind       RuleKind
	Continents []string
	Countries  []string
	ASNs       []uint32
	CIDRs      []netip.Prefix // masked
	Only       TargetSet      // 0: no restriction
	Exclude    TargetSet
	Line       int
}

// Describe names the rule for explanations: "country CN (line 12)".
func (r *GeoRule) Describe() string {
	var what string
	switch r.Kind {
	case RuleContinent:
		what = "continent " + strings.Join(r.Continents, ",")
	case RuleCountry:
		what = "country " + strings.Join(r.Countries, ",")
	case RuleASN:
		parts := make([]string, len(r.ASNs))
		for i, a := range r.ASNs {
			parts[i] = "AS" + strconv.FormatUint(uint64(a), 10)
		}
		what = "asn " + strings.Join(parts, ",")
	case RuleCIDR:
		parts := make([]string, len(r.CIDRs))
		for i, p := range r.CIDRs {
			parts[i] = p.String()
		}
		what = "cidr " + strings.Join(parts, ",")
	}
	return what + " (line " + strconv.Itoa(r.Line) + ")"
}

// specificity orders rules: longer CIDRs first, then ASN, country, continent.
func (r *GeoRule) specificity() int {
	if r.Kind == RuleCIDR {
		bits := 0
		for _, p := range r.CIDRs {
			bits = max(bits, p.Bits())
		}
		return 1000 + bits
	}
	return int(r.Kind) * 100
}

// The keys of a geo record, of one of its targets and of a rule.
var (
	geoKeys    = yamlx.Keys{Names: []string{"ttl", "answers", "targets", "when_all_down", "fallback", "spread_ms", "rules"}}
	targetKeys = yamlx.Keys{Names: []string{"a", "aaaa", "cname", "bias_ms", "state", "probe"}, Fold: true}
	ruleKeys   = yamlx.Keys{Names: []string{"continent", "country", "asn", "cidr", "only", "exclude"},
		Expect: "one of continent, country, asn, cidr, and only and/or exclude"}
)

// geoSpec is a decoded geo entry, before its PoPs are resolved.
type geoSpec struct {
	owner  string
	line   int
	field  string
	geo    Geo
	names  []string // target PoP names, file order
	lines  []int
	probes []*pops.ProbeSpec // per target; nil entries for none
	// fallback and rules name targets; resolved to indexes once names are known
	fallback     []string
	fallbackLine int
}

// decodeGeo decodes
//
//	geo:
//	  ttl: 30
//	  answers: 1
//	  targets:
//	    fra: { a: [192.0.2.1], aaaa: [2001:db8::1], bias_ms: 5 }
//	    cdn: { cname: fra.cdn.example.net. }
//	  when_all_down: fallback
//	  fallback: [fra]
//	  spread_ms: 10
//	  rules:
//	    - { country: CN, only: [hkg, sin] }
func decodeGeo(file, owner, field string, line int, n *yaml.Node, origin string, errs *ErrorList) (*geoSpec, bool) {
	if n.Kind != yaml.MappingNode {
		errs.Addf(file, n.Line, field, "a geo record is a mapping with targets")
		return nil, false
	}
	gs := &geoSpec{owner: owner, line: line, field: field}
	g := &gs.geo
	g.Owner, g.TTL, g.Answers, g.Line = owner, DefaultGeoTTL, 1, line
	nerr := len(*errs)
	var targetsNode, rulesNode *yaml.Node
	errs.Add(yamlx.Walk(file, field, n, geoKeys, func(e yamlx.Entry) {
		f, val := e.Field(), e.Value
		switch e.Key {
		case "ttl":
			ttl, msg := parseTTL(val)
			if msg != "" {
				errs.Addf(file, val.Line, f, "%s", msg)
			}
			g.TTL = ttl
		case "answers":
			v, err := strconv.Atoi(val.Value)
			if err != nil || v < 1 || val.Kind != yaml.ScalarNode {
				errs.Addf(file, val.Line, f, "must be a whole number of at least 1")
			}
			g.Answers = v
		case "spread_ms":
			v, err := strconv.ParseFloat(val.Value, 64)
			if err != nil || v < 0 || val.Kind != yaml.ScalarNode {
				errs.Addf(file, val.Line, f, "must be a number of milliseconds, 0 or more")
			}
			g.SpreadMS = v
		case "when_all_down":
			p, ok := allDownNames[strings.ToLower(val.Value)]
			if !ok || val.Kind != yaml.ScalarNode {
				errs.Addf(file, val.Line, f, "must be one of nearest, all, fallback, servfail")
			}
			g.WhenAllDown = p
		case "fallback":
			names, ok := yamlx.ScalarList(val)
			if !ok || len(names) == 0 {
				errs.Addf(file, val.Line, f, "must be a list of target names")
			}
			gs.fallback, gs.fallbackLine = names, val.Line
		case "targets":
			targetsNode = val
		case "rules":
			rulesNode = val
		}
	}))
	if targetsNode == nil || targetsNode.Kind != yaml.MappingNode || len(targetsNode.Content) == 0 {
		if targetsNode != nil {
			line = targetsNode.Line
		}
		errs.Addf(file, line, field+".targets", "a geo record needs targets: a mapping of PoP names to addresses")
		return nil, false
	}
	errs.Add(yamlx.Walk(file, field+".targets", targetsNode, yamlx.Keys{}, func(e yamlx.Entry) {
		t, probe, ok := decodeGeoTarget(file, owner, e.Field(), e.Value, g.TTL, origin, errs)
		if ok {
			t.Line = e.Line
			g.Targets = append(g.Targets, t)
			gs.names = append(gs.names, e.Key)
			gs.lines = append(gs.lines, e.Line)
			gs.probes = append(gs.probes, probe)
		}
	}))
	if len(gs.names) > MaxGeoTargets {
		errs.Addf(file, targetsNode.Line, field+".targets", "at most %d targets", MaxGeoTargets)
	}
	if len(*errs) > nerr {
		return nil, false
	}
	if gs.fallback != nil {
		set, ok := gs.targetSet(file, gs.fallbackLine, field+".fallback", gs.fallback, errs)
		if ok {
			g.Fallback = set
		}
	}
	if g.WhenAllDown == AllDownFallback && gs.fallback == nil {
		errs.Addf(file, line, field+".fallback", "when_all_down: fallback needs a fallback list")
	}
	if rulesNode != nil {
		g.Rules = decodeRules(file, field+".rules", rulesNode, gs, errs)
	}
	return gs, len(*errs) == nerr
}

func (gs *geoSpec) targetSet(file string, line int, field string, names []string, errs *ErrorList) (TargetSet, bool) {
	var set TargetSet
	ok := true
	for _, name := range names {
		i := slices.Index(gs.names, name)
		if i < 0 {
			errs.Addf(file, line, field, "%q is not a target of this record", name)
			ok = false
			continue
		}
		set |= 1 << uint(i)
	}
	return set, ok
}

func decodeGeoTarget(file, owner, field string, n *yaml.Node, ttl uint32, origin string, errs *ErrorList) (GeoTarget, *pops.ProbeSpec, bool) {
	t := GeoTarget{Owner: owner}
	var probe *pops.ProbeSpec
	if n.Kind != yaml.MappingNode {
		errs.Addf(file, n.Line, field, "a target is a mapping such as { a: [192.0.2.1] }")
		return t, nil, false
	}
	nerr := len(*errs)
	errs.Add(yamlx.Walk(file, field, n, targetKeys, func(e yamlx.Entry) {
		f, val := e.Field(), e.Value
		switch strings.ToLower(e.Key) {
		case "a", "aaaa":
			values, ok := yamlx.ScalarList(val)
			if !ok || len(values) == 0 {
				errs.Addf(file, val.Line, f, "must be an address or a list of addresses")
				return
			}
			for _, v := range values {
				addr, err := netip.ParseAddr(v)
				want4 := strings.EqualFold(e.Key, "a")
				if err != nil || addr.Zone() != "" || addr.Is4() != want4 || addr.Is4In6() {
					kind := "IPv6"
					if want4 {
						kind = "IPv4"
					}
					errs.Addf(file, val.Line, f, "%q is not an %s address", v, kind)
					continue
				}
				hdr := dns.RR_Header{Name: owner, Class: dns.ClassINET, Ttl: ttl}
				if want4 {
					hdr.Rrtype = dns.TypeA
					t.A = append(t.A, &dns.A{Hdr: hdr, A: addr.AsSlice()})
				} else {
					hdr.Rrtype = dns.TypeAAAA
					t.AAAA = append(t.AAAA, &dns.AAAA{Hdr: hdr, AAAA: addr.AsSlice()})
				}
			}
		case "cname":
			s, ok := yamlx.Scalar(val)
			if !ok || s == "" {
				errs.Addf(file, val.Line, f, "must be a host name")
				return
			}
			rr, msg := parseRR(owner, ttl, "CNAME", s, origin, nil)
			if msg != "" {
				errs.Addf(file, val.Line, f, "%s", msg)
				return
			}
			t.CNAME = rr
		case "bias_ms":
			v, err := strconv.ParseFloat(val.Value, 64)
			if err != nil || val.Kind != yaml.ScalarNode {
				errs.Addf(file, val.Line, f, "must be a number of milliseconds")
				return
			}
			t.BiasMS = v
		case "state":
			st, ok := pops.ParseAdminState(val.Value)
			if !ok || val.Kind != yaml.ScalarNode {
				errs.Addf(file, val.Line, f, "must be one of active, drain, down")
				return
			}
			t.State = st
		case "probe":
			var perrs ErrorList
			probe, perrs = pops.DecodeProbe(file, f, val)
			errs.Add(perrs)
		}
	}))
	if len(*errs) > nerr {
		return t, nil, false
	}
	switch {
	case t.CNAME != nil && (t.A != nil || t.AAAA != nil):
		errs.Addf(file, n.Line, field, "a target answers with addresses or with a cname, not both")
		return t, nil, false
	case t.CNAME == nil && t.A == nil && t.AAAA == nil:
		errs.Addf(file, n.Line, field, "empty target: give a, aaaa or cname")
		return t, nil, false
	}
	return t, probe, true
}

// decodeRules decodes rules such as
//
//   - { country: [CN, HK], only: [hkg, sin] }
//   - { cidr: 198.51.100.0/24, exclude: [fra] }
//
// Each rule matches on exactly one of continent, country, asn or cidr. A
// value may appear in only one rule of its kind, so that the most specific
// matching rule is always unique.
func decodeRules(file, field string, n *yaml.Node, gs *geoSpec, errs *ErrorList) []GeoRule {
	if n.Kind != yaml.SequenceNode {
		errs.Addf(file, n.Line, field, "must be a list of rules")
		return nil
	}
	var rules []GeoRule
	claimed := map[string]int{} // "country:CN" → line of the rule that has it
	for i, rn := range n.Content {
		f := field + "[" + strconv.Itoa(i) + "]"
		rn = yamlx.Resolve(rn)
		if rn.Kind != yaml.MappingNode {
			errs.Addf(file, rn.Line, f, "a rule is a mapping such as { country: CN, only: [sin] }")
			continue
		}
		r := GeoRule{Line: rn.Line}
		kinds, effects := 0, 0
		errs.Add(yamlx.Walk(file, f, rn, ruleKeys, func(e yamlx.Entry) {
			kf, val := e.Field(), e.Value
			values, ok := yamlx.ScalarList(val)
			if !ok || len(values) == 0 {
				errs.Addf(file, val.Line, kf, "must be a value or a list of values")
				return
			}
			claim := func(v string) {
				k := e.Key + ":" + v
				if first, dup := claimed[k]; dup {
					errs.Addf(file, val.Line, kf, "%s %s is already in the rule at line %d", e.Key, v, first)
				}
				claimed[k] = rn.Line
			}
			switch e.Key {
			case "continent":
				kinds++
				r.Kind = RuleContinent
				for _, v := range values {
					v = strings.ToUpper(v)
					if !geo.IsContinent(v) {
						errs.Addf(file, val.Line, kf, "%q is not one of AF, AN, AS, EU, NA, OC, SA", v)
					}
					claim(v)
					r.Continents = append(r.Continents, v)
				}
			case "country":
				kinds++
				r.Kind = RuleCountry
				for _, v := range values {
					v = strings.ToUpper(v)
					if len(v) != 2 {
						errs.Addf(file, val.Line, kf, "%q is not a two-letter ISO 3166-1 code", v)
					}
					claim(v)
					r.Countries = append(r.Countries, v)
				}
			case "asn":
				kinds++
				r.Kind = RuleASN
				for _, v := range values {
					a, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(v), "AS"), 10, 32)
					if err != nil {
						errs.Addf(file, val.Line, kf, "%q is not an AS number", v)
					}
					claim(strconv.FormatUint(a, 10))
					r.ASNs = append(r.ASNs, uint32(a))
				}
			case "cidr":
				kinds++
				r.Kind = RuleCIDR
				for _, v := range values {
					p, err := netip.ParsePrefix(v)
					if err != nil || p.Addr().Zone() != "" {
						errs.Addf(file, val.Line, kf, "%q is not a network such as 198.51.100.0/24", v)
						continue
					}
					if p.Masked() != p {
						errs.Addf(file, val.Line, kf, "%s has host bits set; the network is %s", v, p.Masked())
					}
					p = p.Masked()
					claim(p.String())
					r.CIDRs = append(r.CIDRs, p)
				}
			case "only":
				effects++
				r.Only, _ = gs.targetSet(file, val.Line, kf, values, errs)
			case "exclude":
				effects++
				r.Exclude, _ = gs.targetSet(file, val.Line, kf, values, errs)
			}
		}))
		switch {
		case kinds != 1:
			errs.Addf(file, rn.Line, f, "a rule matches on exactly one of continent, country, asn or cidr")
		case effects == 0:
			errs.Addf(file, rn.Line, f, "a rule needs only or exclude")
		case r.Only != 0 && r.Only&^r.Exclude == 0:
			errs.Addf(file, rn.Line, f, "the rule excludes every target it pins to")
		}
		rules = append(rules, r)
	}
	slices.SortStableFunc(rules, func(a, b GeoRule) int { return b.specificity() - a.specificity() })
	return rules
}
