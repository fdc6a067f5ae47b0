package zones

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/popdns/popdns/internal/yamlx"
	"github.com/popdns/popdns/internal/zonegen"
)

// TestDecodeInPartsMatchesWhole checks that a big zone file decoded a
// part at a time gives what the whole file gives, errors included: a name
// repeated in another part, spellings of one name, bad records and geo
// records.
func TestDecodeInPartsMatchesWhole(t *testing.T) {
	var b strings.Builder
	b.WriteString("origin: big.test.\nttl: 60\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 300\n    - ns: ns1\n  ns1:\n    - a: 192.0.2.53\n")
	b.WriteString("  dup:\n    - a: 192.0.2.1\n  Spelled:\n    - a: 192.0.2.2\n  geo1:\n    - geo: { targets: { x: { a: 192.0.2.3 } } }\n")
	for i := range 40_000 {
		fmt.Fprintf(&b, "  n%d:\n    - a: 10.0.%d.%d\n", i, i>>8&0xff, i&0xff)
		if i%9999 == 0 {
			fmt.Fprintf(&b, "    - mx: not a number %d\n    - { txt: \"v=x %d\", ttl: 5 }\n  \"*.w%d\":\n  - cname: n%d\n", i, i, i, i)
		}
	}
	b.WriteString("  dup:\n    - a: 192.0.2.9\n  spelled.big.test.:\n    - a: 192.0.2.8\n  bad:\n    - aaaa: nope\n")
	data := []byte(b.String())
	if len(data) < splitMin {
		t.Fatalf("the file is %d bytes, below splitMin", len(data))
	}
	if _, parts, ok := yamlx.SplitBlock(data, "records", splitPart); !ok || len(parts) < 10 {
		t.Fatalf("SplitBlock: %v, %d parts", ok, len(parts))
	}
	whole, wholeErrs, _ := decodeParts("big.yaml", data, nil)
	inParts, partsErrs := decodeFile("big.yaml", data)
	if got, want := partsErrs.Error(), wholeErrs.Error(); got != want {
		t.Errorf("errors in parts:\n%s\nwhole:\n%s", got, want)
	}
	if len(wholeErrs) < 5 {
		t.Errorf("only %d errors: %v", len(wholeErrs), wholeErrs)
	}
	describe := func(s *fileSpec) []string {
		var out []string
		for i := range s.records.len() {
			r := s.records.at(i)
			out = append(out, fmt.Sprintf("%d %s %s", r.line, r.field(), r.rr))
		}
		for _, g := range s.geos {
			out = append(out, fmt.Sprintf("geo %d %s %s", g.line, g.field, g.owner))
		}
		return out
	}
	if !slices.Equal(describe(inParts), describe(whole)) || whole.records.len() < 40_000 {
		t.Errorf("records in parts differ from the whole's (%d and %d)", inParts.records.len(), whole.records.len())
	}
}

// TestDecodeMillionInParts: the million-record zone is split.
func TestDecodeMillionInParts(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a 40 MB zone")
	}
	data := zonegen.Million.Bytes()
	_, parts, ok := yamlx.SplitBlock(data, "records", splitPart)
	if !ok || len(parts) < 100 {
		t.Fatalf("SplitBlock: %v, %d parts", ok, len(parts))
	}
}

// TestCompileNameComesBack: compile does not count on a name's records
// coming one after another, though decodeFile always gives them so.
func TestCompileNameComesBack(t *testing.T) {
	spec, errs := decodeFile("x.yaml", []byte("origin: x.test.\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 300\n    - ns: ns1\n  ns1:\n    - a: 192.0.2.53\n  www:\n    - a: 192.0.2.1\n"))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	// Move www's record before ns1's, then add another A and a duplicate at www.
	recs := []recordSpec{*spec.records.at(0), *spec.records.at(1), *spec.records.at(3), *spec.records.at(2)}
	www := *spec.records.at(3)
	www.rr = dns.Copy(www.rr)
	www.rr.(*dns.A).A = net.ParseIP("192.0.2.2")
	recs = append(recs, www, *spec.records.at(3))
	spec.records = recordList{}
	for _, r := range recs {
		spec.records.add(r)
	}
	_, errs = compile("x.yaml", [32]byte{}, spec, nil)
	if len(errs) != 1 || !strings.Contains(errs[0].Msg, "duplicate record (same as line 9)") {
		t.Fatalf("errors %v, want the duplicate at www only", errs)
	}
	recs = recs[:5]
	spec.records = recordList{}
	for _, r := range recs {
		spec.records.add(r)
	}
	z, errs := compile("x.yaml", [32]byte{}, spec, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if set := z.Node("www.x.test.").RRset(dns.TypeA); set == nil || len(set.RRs) != 2 {
		t.Errorf("www.x.test. A: %v, want both records", set)
	}
}
