package zones

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/pops"
)

func testPoPs(t testing.TB) *pops.Inventory {
	t.Helper()
	p, err := pops.New(
		pops.PoP{Name: "fra", Point: geo.Point{Lat: 50.11, Lon: 8.68}, Country: "DE", Continent: "EU"},
		pops.PoP{Name: "iad", Point: geo.Point{Lat: 38.95, Lon: -77.45}, Country: "US", Continent: "NA"},
		pops.PoP{Name: "sin", Point: geo.Point{Lat: 1.35, Lon: 103.82}, Country: "SG", Continent: "AS"},
		pops.PoP{Name: "hkg", Point: geo.Point{Lat: 22.31, Lon: 113.91}, Country: "HK", Continent: "AS"},
	)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// geoZone puts body (lines indented for the records mapping) after a
// minimal valid zone; body's first line is line 8.
func geoZone(body string) []byte {
	return []byte(zoneHead + body)
}

func TestGeoRecord(t *testing.T) {
	z, err := ParseFile(parseTestFile, geoZone(`  www:
    - geo:
        ttl: 20
        answers: 2
        targets:
          fra: { a: [192.0.2.1, 192.0.2.11], aaaa: 2001:db8::1, bias_ms: 5 }
          iad: { a: 192.0.2.2, state: drain }
          sin: { cname: sin.cdn.example.net. }
          hkg: { a: 192.0.2.4 }
        when_all_down: fallback
        fallback: [iad]
        spread_ms: 10
        rules:
          - { continent: EU, exclude: sin }
          - { country: [CN, HK], only: [hkg, sin] }
          - { cidr: [198.51.100.0/24, 2001:db8:ff::/48], only: fra }
          - { cidr: 198.51.0.0/16, only: iad }
          - { asn: AS64500, exclude: [fra, iad] }
    - txt: "a geo name may have other types"
`), testPoPs(t))
	if err != nil {
		t.Fatal(err)
	}
	node := z.Node("www.example.test.")
	g := node.Geo()
	if g == nil {
		t.Fatal("no geo record at www")
	}
	if g.TTL != 20 || g.Answers != 2 || g.SpreadMS != 10 || g.WhenAllDown != AllDownFallback || g.Line != 9 {
		t.Errorf("geo = %+v", g)
	}
	var names []string
	for _, tg := range g.Targets {
		names = append(names, tg.Name())
	}
	if strings.Join(names, ",") != "fra,iad,sin,hkg" {
		t.Errorf("targets in order %v, want the file's order", names)
	}
	fra := g.Targets[0]
	if len(fra.A) != 2 || len(fra.AAAA) != 1 || fra.BiasMS != 5 || fra.A[1].String() != "www.example.test.\t20\tIN\tA\t192.0.2.11" {
		t.Errorf("fra target = %+v", fra)
	}
	if g.Targets[1].State != pops.Drain || g.Targets[2].CNAME.String() != "www.example.test.\t20\tIN\tCNAME\tsin.cdn.example.net." {
		t.Errorf("iad state %v, sin cname %v", g.Targets[1].State, g.Targets[2].CNAME)
	}
	if g.Fallback != 1<<1 {
		t.Errorf("fallback set %b, want iad only", g.Fallback)
	}
	// Most specific first: the /24 rule, the /16, then ASN, country, continent.
	var order []RuleKind
	for _, r := range g.Rules {
		order = append(order, r.Kind)
	}
	want := []RuleKind{RuleCIDR, RuleCIDR, RuleASN, RuleCountry, RuleContinent}
	for i := range want {
		if i >= len(order) || order[i] != want[i] {
			t.Fatalf("rule kinds in order %v, want %v", order, want)
		}
	}
	if g.Rules[0].CIDRs[0] != netip.MustParsePrefix("198.51.100.0/24") || g.Rules[2].ASNs[0] != 64500 {
		t.Errorf("rules %+v", g.Rules)
	}
	if got := g.Rules[3].Describe(); got != "country CN,HK (line 22)" {
		t.Errorf("Describe = %q", got)
	}
	if node.RRset(1) != nil || node.RRset(16) == nil {
		t.Error("the geo name lost its TXT or grew an A RRset")
	}
}

func TestGeoRecordErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want []wantErr
	}{
		{"unknown PoP", "  www:\n    - geo:\n        targets:\n          ams: { a: 192.0.2.1 }\n",
			[]wantErr{{11, "records.www[0].geo.targets.ams", `unknown PoP "ams" (known: fra, hkg, iad, sin)`}}},
		{"no targets", "  www:\n    - geo: { ttl: 30 }\n",
			[]wantErr{{9, "records.www[0].geo.targets", "needs targets"}}},
		{"empty target", "  www:\n    - geo:\n        targets:\n          fra: {}\n",
			[]wantErr{{11, "records.www[0].geo.targets.fra", "empty target"}}},
		{"bad address", "  www:\n    - geo:\n        targets:\n          fra: { a: 192.0.2.300 }\n",
			[]wantErr{{11, "records.www[0].geo.targets.fra.a", `"192.0.2.300" is not an IPv4 address`}}},
		{"IPv6 under a", "  www:\n    - geo:\n        targets:\n          fra: { a: \"2001:db8::1\" }\n",
			[]wantErr{{11, "records.www[0].geo.targets.fra.a", "is not an IPv4 address"}}},
		{"IPv4 under aaaa", "  www:\n    - geo:\n        targets:\n          fra: { aaaa: 192.0.2.1 }\n",
			[]wantErr{{11, "records.www[0].geo.targets.fra.aaaa", "is not an IPv6 address"}}},
		{"cname and addresses", "  www:\n    - geo:\n        targets:\n          fra: { a: 192.0.2.1, cname: x }\n",
			[]wantErr{{11, "records.www[0].geo.targets.fra", "not both"}}},
		{"unknown target key", "  www:\n    - geo:\n        targets:\n          fra: { a: 192.0.2.1, weight: 2 }\n",
			[]wantErr{{11, "records.www[0].geo.targets.fra.weight", "unknown key"}}},
		{"unknown geo key", "  www:\n    - geo:\n        tll: 5\n        targets:\n          fra: { a: 192.0.2.1 }\n",
			[]wantErr{{10, "records.www[0].geo.tll", "unknown key"}}},
		{"target twice", "  www:\n    - geo:\n        targets:\n          fra: { a: 192.0.2.1 }\n          fra: { a: 192.0.2.2 }\n",
			[]wantErr{{12, "records.www[0].geo.targets.fra", "repeated key (first at line 11)"}}},
		{"answers zero", "  www:\n    - geo:\n        answers: 0\n        targets:\n          fra: { a: 192.0.2.1 }\n",
			[]wantErr{{10, "records.www[0].geo.answers", "at least 1"}}},
		{"bad policy", "  www:\n    - geo:\n        when_all_down: pray\n        targets:\n          fra: { a: 192.0.2.1 }\n",
			[]wantErr{{10, "records.www[0].geo.when_all_down", "nearest, all, fallback, servfail"}}},
		{"fallback policy without a list", "  www:\n    - geo:\n        when_all_down: fallback\n        targets:\n          fra: { a: 192.0.2.1 }\n",
			[]wantErr{{9, "records.www[0].geo.fallback", "needs a fallback list"}}},
		{"fallback names a stranger", "  www:\n    - geo:\n        fallback: [iad]\n        targets:\n          fra: { a: 192.0.2.1 }\n",
			[]wantErr{{10, "records.www[0].geo.fallback", `"iad" is not a target`}}},
		{"ttl beside geo", "  www:\n    - { geo: { targets: { fra: { a: 192.0.2.1 } } }, ttl: 5 }\n",
			[]wantErr{{9, "records.www[0]", "only the geo key"}}},
		{"geo beside A", "  www:\n    - a: 192.0.2.9\n    - geo:\n        targets:\n          fra: { a: 192.0.2.1 }\n",
			[]wantErr{{9, "records.www[0].a", "cannot sit beside the geo record at line 10"}}},
		{"two geo records", "  www:\n    - geo: { targets: { fra: { a: 192.0.2.1 } } }\n    - geo: { targets: { iad: { a: 192.0.2.2 } } }\n",
			[]wantErr{{10, "records.www[1].geo", "at most one geo record (first at line 9)"}}},
		{"geo below a delegation", "  sub:\n    - ns: ns.other.test.\n  www.sub:\n    - geo: { targets: { fra: { a: 192.0.2.1 } } }\n",
			[]wantErr{{11, "records.www.sub[0].geo", "below a delegation"}}},
		{"rule with two kinds", "  www:\n    - geo:\n        targets: { fra: { a: 192.0.2.1 }, iad: { a: 192.0.2.2 } }\n        rules:\n          - { country: DE, continent: EU, only: fra }\n",
			[]wantErr{{12, "records.www[0].geo.rules[0]", "exactly one of"}}},
		{"rule without effect", "  www:\n    - geo:\n        targets: { fra: { a: 192.0.2.1 } }\n        rules:\n          - { country: DE }\n",
			[]wantErr{{12, "records.www[0].geo.rules[0]", "needs only or exclude"}}},
		{"country in two rules", "  www:\n    - geo:\n        targets: { fra: { a: 192.0.2.1 }, iad: { a: 192.0.2.2 } }\n        rules:\n          - { country: DE, only: fra }\n          - { country: [FR, de], only: iad }\n",
			[]wantErr{{13, "records.www[0].geo.rules[1].country", "DE is already in the rule at line 12"}}},
		{"cidr with host bits", "  www:\n    - geo:\n        targets: { fra: { a: 192.0.2.1 } }\n        rules:\n          - { cidr: 198.51.100.1/24, only: fra }\n",
			[]wantErr{{12, "records.www[0].geo.rules[0].cidr", "has host bits set; the network is 198.51.100.0/24"}}},
		{"bad continent", "  www:\n    - geo:\n        targets: { fra: { a: 192.0.2.1 } }\n        rules:\n          - { continent: EA, only: fra }\n",
			[]wantErr{{12, "records.www[0].geo.rules[0].continent", `"EA" is not one of`}}},
		{"rule pins to a stranger", "  www:\n    - geo:\n        targets: { fra: { a: 192.0.2.1 } }\n        rules:\n          - { asn: 64500, only: sin }\n",
			[]wantErr{{12, "records.www[0].geo.rules[0].only", `"sin" is not a target`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFile(parseTestFile, geoZone(tc.body), testPoPs(t))
			checkErrors(t, err, tc.want)
		})
	}
}
