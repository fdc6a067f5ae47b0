package zones

import (
	"bytes"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

const exportZone = `origin: export.test.
ttl: 300
records:
  "@":
    - soa: ns1 hostmaster 2026010101 7200 3600 1209600 300
    - ns: ns1
    - mx: 10 mail
    - txt: 'quoted "words" and a \ backslash'
    - caa: 0 issue "letsencrypt.org"
  ns1:
    - a: 192.0.2.1
  mail:
    - { a: 192.0.2.25, ttl: 60 }
    - aaaa: 2001:db8::25
  Z:
    - a: 192.0.2.26
  "*.wild":
    - txt: wildcard
  a.b.c:
    - a: 192.0.2.90
  svc:
    - https: 1 . alpn=h2,h3 ipv4hint=192.0.2.10
  sub:
    - ns: ns.sub
    - ds: 12345 13 2 6B5F0F3C2A4C2D8D7A2B6E1E0A3F1C9D8E7B6A5F4E3D2C1B0A9F8E7D6C5B4A39
  ns.sub:
    - a: 192.0.2.99
  '\001':
    - a: 192.0.2.100
`

func exportTestZone(t *testing.T) *Zone {
	t.Helper()
	z, err := ParseFile("export.test.yaml", []byte(exportZone), nil)
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	return z
}

func rrStrings(rrs []dns.RR) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = rr.String()
	}
	sort.Strings(out)
	return out
}

// TestWriteMasterFileRoundTrip parses the exported file back with miekg/dns
// and expects exactly the zone's records.
func TestWriteMasterFileRoundTrip(t *testing.T) {
	z := exportTestZone(t)
	var buf bytes.Buffer
	if err := z.WriteMasterFile(&buf); err != nil {
		t.Fatalf("WriteMasterFile: %v", err)
	}
	var want []dns.RR
	for _, node := range z.nodes {
		for _, set := range node.rrsets {
			want = append(want, set.RRs...)
		}
	}
	zp := dns.NewZoneParser(bytes.NewReader(buf.Bytes()), "", "export")
	var got []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		got = append(got, rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("parse exported file: %v\n%s", err, buf.String())
	}
	if g, w := rrStrings(got), rrStrings(want); !slices.Equal(g, w) {
		t.Errorf("round trip changed the records:\ngot:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
	if len(got) != z.Records() {
		t.Errorf("exported %d records, zone has %d", len(got), z.Records())
	}
}

// TestWriteMasterFileOrder checks the layout: $ORIGIN, SOA first, names in
// canonical order, and byte-identical output on every call.
func TestWriteMasterFileOrder(t *testing.T) {
	z := exportTestZone(t)
	var a, b bytes.Buffer
	if err := z.WriteMasterFile(&a); err != nil {
		t.Fatal(err)
	}
	if err := z.WriteMasterFile(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two exports of one zone differ")
	}
	lines := strings.Split(strings.TrimSuffix(a.String(), "\n"), "\n")
	if lines[0] != "$ORIGIN export.test." {
		t.Errorf("first line = %q, want $ORIGIN export.test.", lines[0])
	}
	if !strings.Contains(lines[1], "\tSOA\t") {
		t.Errorf("second line = %q, want the SOA", lines[1])
	}
	var owners []string
	for _, l := range lines[2:] {
		owner, _, _ := strings.Cut(l, "\t")
		if len(owners) == 0 || owners[len(owners)-1] != owner {
			owners = append(owners, owner)
		}
	}
	want := []string{
		"export.test.", `\001.export.test.`, "a.b.c.export.test.", "mail.export.test.",
		"ns1.export.test.", "sub.export.test.", "ns.sub.export.test.", "svc.export.test.",
		"*.wild.export.test.", "z.export.test.",
	}
	if !slices.Equal(owners, want) {
		t.Errorf("owner order:\ngot  %q\nwant %q", owners, want)
	}
}

// TestCompareCanonical uses the example of RFC 4034 §6.1.
func TestCompareCanonical(t *testing.T) {
	ordered := []string{
		"example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.", "zABC.a.EXAMPLE.",
		"z.example.", `\001.z.example.`, "*.z.example.", `\200.z.example.`,
	}
	for i := range ordered {
		for j := range ordered {
			a, err := canonicalKey(ordered[i])
			if err != nil {
				t.Fatal(err)
			}
			b, err := canonicalKey(ordered[j])
			if err != nil {
				t.Fatal(err)
			}
			c := compareCanonical(a, b)
			if (i < j && c >= 0) || (i > j && c <= 0) || (i == j && c != 0) {
				t.Errorf("compare(%s, %s) = %d, want sign of %d", ordered[i], ordered[j], c, i-j)
			}
		}
	}
}
