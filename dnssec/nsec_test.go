package dnssec

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// canonicalLess reports whether a sorts before b in canonical order (RFC
// 4034 §6.1), by the definition: label by label from the right, octets
// compared with upper case as lower case, a shorter label first.
func canonicalLess(t *testing.T, a, b string) bool {
	t.Helper()
	labels := func(n string) [][]byte {
		var buf [256]byte
		end, err := dns.PackDomainName(n, buf[:], 0, nil, false)
		if err != nil {
			t.Fatalf("pack %q: %v", n, err)
		}
		var ls [][]byte
		for off := 0; buf[off] != 0 && off < end; off += 1 + int(buf[off]) {
			l := []byte(string(buf[off+1 : off+1+int(buf[off])]))
			for i, c := range l {
				if 'A' <= c && c <= 'Z' {
					l[i] = c + 'a' - 'A'
				}
			}
			ls = append(ls, l)
		}
		return ls
	}
	la, lb := labels(a), labels(b)
	for i := 1; i <= min(len(la), len(lb)); i++ {
		x, y := la[len(la)-i], lb[len(lb)-i]
		if c := strings.Compare(string(x), string(y)); c != 0 {
			return c < 0
		}
	}
	return len(la) < len(lb)
}

func TestCompactNSEC(t *testing.T) {
	for _, tc := range []struct {
		name  string
		types []uint16
		want  string
	}{
		{"www.example.test.", []uint16{dns.TypeAAAA, dns.TypeA}, "www.example.test.\t300\tIN\tNSEC\t\\000.www.example.test. A AAAA RRSIG NSEC"},
		{"ent.example.test.", nil, "ent.example.test.\t300\tIN\tNSEC\t\\000.ent.example.test. RRSIG NSEC"},
		{"x.example.test.", []uint16{dns.TypeNSEC, dns.TypeA}, "x.example.test.\t300\tIN\tNSEC\t\\000.x.example.test. A RRSIG NSEC"},
	} {
		if got := NoDataNSEC(tc.name, tc.types, 300).String(); got != tc.want {
			t.Errorf("NoDataNSEC(%s) = %q, want %q", tc.name, got, tc.want)
		}
	}
	nx := NXNameNSEC("nope.example.test.", 60)
	if got, want := nx.String(), "nope.example.test.\t60\tIN\tNSEC\t\\000.nope.example.test. RRSIG NSEC NXNAME"; got != want {
		t.Errorf("NXNameNSEC = %q, want %q", got, want)
	}
}

func TestCoveringNSEC(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, name := range []string{
		"foo.example.test.",
		"a.example.test.",
		"[.example.test.",      // decremented to 'Z': must skip upper case
		"b\\000.example.test.", // last octet 0: the last name below b.example.test. comes before
		"\\000.example.test.",  // no sibling before: the parent
		"\\255.example.test.",
		long + ".example.test.",
		long + "." + long + "." + long + ".abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghi.",
	} {
		n := CoveringNSEC(name, 60)
		if !fitsWire(n.Hdr.Name) || !fitsWire(n.NextDomain) {
			t.Errorf("%s: covering NSEC %s has a name that does not pack", name, n)
			continue
		}
		if !canonicalLess(t, n.Hdr.Name, name) {
			t.Errorf("%s: owner %s does not sort before it", name, n.Hdr.Name)
		}
		if !canonicalLess(t, name, n.NextDomain) {
			t.Errorf("%s: next %s does not sort after it", name, n.NextDomain)
		}
		child := "x." + name
		if fitsWire(child) && !canonicalLess(t, child, n.NextDomain) {
			t.Errorf("%s: next %s does not sort after its descendants", name, n.NextDomain)
		}
		if name == "b\\000.example.test." && (n.Hdr.Name == "b.example.test." || !dns.IsSubDomain("b.example.test.", n.Hdr.Name)) {
			t.Errorf("%s: owner %s is not the last name below b.example.test., which a zone could hold", name, n.Hdr.Name)
		}
		if dns.IsSubDomain(name, n.NextDomain) && n.NextDomain != name {
			t.Errorf("%s: next %s is below it: that would say it exists", name, n.NextDomain)
		}
	}
}
