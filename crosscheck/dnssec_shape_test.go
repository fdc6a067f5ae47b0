//go:build slow

package crosscheck

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnssec"
)

// TestDNSSECDenialShapeMatchesKnot holds popdns's compact denials to the
// wire shape of Knot DNS's mod-onlinesign, the other online signer with
// compact answers, on the same zone: the rcode, and the one NSEC's owner
// and next name, for a nonexistent name, NODATA at a name, at an empty
// non-terminal and at the apex. The type bitmaps are checked against RFC
// 9824 §3 instead: Knot 3.2 predates it and puts A and AAAA in every
// bitmap (the older "black lies"), where the RFC has the name's own types,
// RRSIG and NSEC alone for an empty non-terminal, and NXNAME for a name
// that does not exist.
func TestDNSSECDenialShapeMatchesKnot(t *testing.T) {
	knotd := findKnotd(t)
	yaml := parentZoneYAML(dsRdata(unrelatedDS(t, secureOrigin)))
	knot := knotSigner(knotd, true)(t, signedOrigin, yaml)
	pop := popdnsSigner(nil, nil, dnssec.AlgorithmEd25519)(t, signedOrigin, yaml)
	type shape struct {
		rcode             string
		owner, next, bits string
		nsecs             int
	}
	shapeOf := func(addr, name string, qtype uint16) shape {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion(name, qtype)
		q.SetEdns0(1232, true)
		r, err := exchange(addr, true, q, queryTimeout)
		if err != nil {
			t.Fatal(err)
		}
		s := shape{rcode: dns.RcodeToString[r.msg.Rcode]}
		for _, rr := range r.msg.Ns {
			n, ok := rr.(*dns.NSEC)
			if !ok {
				continue
			}
			s.nsecs++
			s.owner, s.next = strings.ToLower(n.Hdr.Name), strings.ToLower(n.NextDomain)
			var bits []string
			for _, b := range n.TypeBitMap {
				bits = append(bits, dns.Type(b).String())
			}
			slices.Sort(bits)
			s.bits = strings.Join(bits, " ")
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		qtype uint16
		rfc   string // the bitmap RFC 9824 wants
	}{
		{absName("nope"), dns.TypeA, "NSEC NXNAME RRSIG"},
		{absName("x.y.nope"), dns.TypeAAAA, "NSEC NXNAME RRSIG"},
		{absName("b.ent"), dns.TypeA, "NSEC RRSIG"},
		{absName("www"), dns.TypeMX, "A AAAA NSEC RRSIG TXT"},
		{signedOrigin, dns.TypeSRV, "CDNSKEY CDS DNSKEY MX NS NSEC RRSIG SOA TXT"},
		{absName("mail"), dns.TypeTXT, "A NSEC RRSIG"},
	} {
		k, p := shapeOf(knot.addr, tc.name, tc.qtype), shapeOf(pop.addr, tc.name, tc.qtype)
		what := tc.name + " " + dns.TypeToString[tc.qtype]
		if p.nsecs != 1 || k.nsecs != 1 {
			t.Errorf("%s: %d NSECs from popdns, %d from Knot; want 1", what, p.nsecs, k.nsecs)
		}
		if p.bits != tc.rfc {
			t.Errorf("%s: popdns's bitmap %q, RFC 9824 wants %q", what, p.bits, tc.rfc)
		}
		k.bits, p.bits = "", ""
		if k != p {
			t.Errorf("%s: Knot's mod-onlinesign %+v, popdns %+v", what, k, p)
		}
	}
}
