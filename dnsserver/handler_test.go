package dnsserver

import (
	"slices"
	"testing"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
)

const (
	negSOA      = "example.test. 60 IN SOA ns1.example.test. hostmaster.example.test. 2026112201 7200 3600 1209600 60"
	otherNegSOA = "other.test. 120 IN SOA ns1.example.test. hostmaster.example.test. 1 7200 3600 1209600 120"
	subNS       = "sub.example.test. 300 IN NS ns.sub.example.test."
	subGlue     = "ns.sub.example.test. 300 IN A 192.0.2.99"
)

// query builds a request the way a stub or resolver would.
func query(name string, qtype uint16, opts ...func(*dns.Msg)) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	for _, o := range opts {
		o(m)
	}
	return m
}

func withEDNS(size uint16, do bool) func(*dns.Msg) {
	return func(m *dns.Msg) { m.SetEdns0(size, do) }
}

func withEDNSVersion(v uint8) func(*dns.Msg) {
	return func(m *dns.Msg) {
		m.SetEdns0(1232, false)
		m.IsEdns0().SetVersion(v)
	}
}

func withOption(o dns.EDNS0) func(*dns.Msg) {
	return func(m *dns.Msg) {
		if m.IsEdns0() == nil {
			m.SetEdns0(1232, false)
		}
		m.IsEdns0().Option = append(m.IsEdns0().Option, o)
	}
}

type handlerCase struct {
	name   string
	req    *dns.Msg
	tcp    bool
	rcode  int
	aa     bool
	tc     bool
	answer []string
	ns     []string
	extra  []string // without OPT
	opt    bool     // an OPT record is expected in the reply
}

func TestServeDNS(t *testing.T) {
	s := newTestServer(t, Config{})
	cases := []handlerCase{
		{name: "A at a name", req: query("www.example.test.", dns.TypeA), aa: true,
			answer: []string{"www.example.test. 300 IN A 192.0.2.10"}},
		{name: "AAAA at a name", req: query("www.example.test.", dns.TypeAAAA), aa: true,
			answer: []string{"www.example.test. 300 IN AAAA 2001:db8::10"}},
		{name: "per-record TTL", req: query("short.example.test.", dns.TypeA), aa: true,
			answer: []string{"short.example.test. 60 IN A 192.0.2.11"}},
		{name: "mixed case question matches", req: query("wWw.ExAmPlE.tEsT.", dns.TypeA), aa: true,
			answer: []string{"www.example.test. 300 IN A 192.0.2.10"}},
		{name: "NODATA carries the SOA with the negative TTL", req: query("www.example.test.", dns.TypeMX), aa: true,
			ns: []string{negSOA}},
		{name: "NXDOMAIN carries the SOA with the negative TTL", req: query("nope.example.test.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{negSOA}},
		{name: "empty non-terminal is NODATA", req: query("b.c.example.test.", dns.TypeA), aa: true, ns: []string{negSOA}},
		{name: "empty non-terminal at the top is NODATA", req: query("c.example.test.", dns.TypeTXT), aa: true, ns: []string{negSOA}},
		{name: "below an existing name is NXDOMAIN", req: query("x.www.example.test.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{negSOA}},
		{name: "SOA at apex", req: query("example.test.", dns.TypeSOA), aa: true,
			answer: []string{"example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2026112201 7200 3600 1209600 60"}},
		{name: "NS at apex with addresses", req: query("example.test.", dns.TypeNS), aa: true,
			answer: []string{"example.test. 300 IN NS ns1.example.test.", "example.test. 300 IN NS ns2.example.test."},
			extra:  []string{"ns1.example.test. 300 IN A 192.0.2.53", "ns2.example.test. 300 IN A 192.0.2.54", "ns2.example.test. 300 IN AAAA 2001:db8::54"}},
		{name: "MX with in-zone target address", req: query("example.test.", dns.TypeMX), aa: true,
			answer: []string{"example.test. 300 IN MX 10 mail.example.test."},
			extra:  []string{"mail.example.test. 300 IN A 192.0.2.25"}},
		{name: "SRV with in-zone target address", req: query("_sip._udp.example.test.", dns.TypeSRV), aa: true,
			answer: []string{"_sip._udp.example.test. 300 IN SRV 10 60 5060 sip.example.test."},
			extra:  []string{"sip.example.test. 300 IN A 192.0.2.60"}},
		{name: "HTTPS with in-zone target addresses (RFC 9460 §4.1)", req: query("svc.example.test.", dns.TypeHTTPS), aa: true,
			answer: []string{"svc.example.test. 300 IN HTTPS 1 www.example.test. alpn=h2"},
			extra:  []string{"www.example.test. 300 IN A 192.0.2.10", "www.example.test. 300 IN AAAA 2001:db8::10"}},
		{name: "HTTPS with target . uses the owner's addresses", req: query("self.example.test.", dns.TypeHTTPS), aa: true,
			answer: []string{"self.example.test. 300 IN HTTPS 1 . alpn=h2"},
			extra:  []string{"self.example.test. 300 IN A 192.0.2.90"}},
		{name: "TXT", req: query("example.test.", dns.TypeTXT), aa: true,
			answer: []string{`example.test. 300 IN TXT "v=spf1 -all"`}},
		{name: "CNAME followed in zone", req: query("alias.example.test.", dns.TypeA), aa: true,
			answer: []string{"alias.example.test. 300 IN CNAME www.example.test.", "www.example.test. 300 IN A 192.0.2.10"}},
		{name: "CNAME asked for itself", req: query("alias.example.test.", dns.TypeCNAME), aa: true,
			answer: []string{"alias.example.test. 300 IN CNAME www.example.test."}},
		{name: "CNAME chain into another zone we serve", req: query("chain1.example.test.", dns.TypeA), aa: true,
			answer: []string{"chain1.example.test. 300 IN CNAME chain2.example.test.",
				"chain2.example.test. 300 IN CNAME www.other.test.", "www.other.test. 3600 IN A 198.51.100.1"}},
		{name: "CNAME loop stops", req: query("loop1.example.test.", dns.TypeA), aa: true,
			answer: []string{"loop1.example.test. 300 IN CNAME loop2.example.test.", "loop2.example.test. 300 IN CNAME loop1.example.test."}},
		{name: "CNAME out of our zones is left to the resolver", req: query("away.example.test.", dns.TypeA), aa: true,
			answer: []string{"away.example.test. 300 IN CNAME www.elsewhere.invalid."}},
		{name: "CNAME to a missing name in another zone is NXDOMAIN (RFC 6604)", req: query("dangling.example.test.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, answer: []string{"dangling.example.test. 300 IN CNAME missing.other.test."}, ns: []string{otherNegSOA}},
		{name: "CNAME into a delegation adds the referral", req: query("intodeleg.example.test.", dns.TypeA), aa: true,
			answer: []string{"intodeleg.example.test. 300 IN CNAME host.sub.example.test."}, ns: []string{subNS}, extra: []string{subGlue}},
		{name: "wildcard synthesises the name", req: query("x.wild.example.test.", dns.TypeTXT), aa: true,
			answer: []string{`x.wild.example.test. 300 IN TXT "wildcard answer"`}},
		{name: "wildcard covers several labels", req: query("a.b.wild.example.test.", dns.TypeTXT), aa: true,
			answer: []string{`a.b.wild.example.test. 300 IN TXT "wildcard answer"`}},
		{name: "wildcard without the type is NODATA", req: query("x.wild.example.test.", dns.TypeA), aa: true, ns: []string{negSOA}},
		{name: "existing name is not synthesised", req: query("exists.wild.example.test.", dns.TypeTXT), aa: true, ns: []string{negSOA}},
		{name: "below an existing name under a wildcard is NXDOMAIN", req: query("y.exists.wild.example.test.", dns.TypeTXT), aa: true,
			rcode: dns.RcodeNameError, ns: []string{negSOA}},
		{name: "asking for the wildcard itself", req: query("*.wild.example.test.", dns.TypeTXT), aa: true,
			answer: []string{`*.wild.example.test. 300 IN TXT "wildcard answer"`}},
		{name: "wildcard MX with additional", req: query("x.wildmx.example.test.", dns.TypeMX), aa: true,
			answer: []string{"x.wildmx.example.test. 300 IN MX 10 mail.example.test."},
			extra:  []string{"mail.example.test. 300 IN A 192.0.2.25"}},
		{name: "wildcard CNAME is followed", req: query("q.wildcname.example.test.", dns.TypeA), aa: true,
			answer: []string{"q.wildcname.example.test. 300 IN CNAME www.example.test.", "www.example.test. 300 IN A 192.0.2.10"}},
		{name: "referral below a cut", req: query("host.sub.example.test.", dns.TypeA),
			ns: []string{subNS}, extra: []string{subGlue}},
		{name: "referral at the cut", req: query("sub.example.test.", dns.TypeA),
			ns: []string{subNS}, extra: []string{subGlue}},
		{name: "NS at the cut is a referral", req: query("sub.example.test.", dns.TypeNS),
			ns: []string{subNS}, extra: []string{subGlue}},
		{name: "DS at the cut is answered by the parent", req: query("sub.example.test.", dns.TypeDS), aa: true,
			answer: []string{"sub.example.test. 300 IN DS 12345 13 2 6B5F0F3C2A4C2D8D7A2B6E1E0A3F1C9D8E7B6A5F4E3D2C1B0A9F8E7D6C5B4A39"}},
		{name: "DS below the cut is a referral", req: query("x.sub.example.test.", dns.TypeDS),
			ns: []string{subNS}, extra: []string{subGlue}},
		{name: "name in no zone is REFUSED", req: query("www.example.org.", dns.TypeA), rcode: dns.RcodeRefused},
		{name: "parent of a zone is REFUSED", req: query("test.", dns.TypeSOA), rcode: dns.RcodeRefused},
		{name: "ANY gets one RRset (RFC 8482)", req: query("www.example.test.", dns.TypeANY), aa: true,
			answer: []string{"www.example.test. 300 IN A 192.0.2.10"}},
		{name: "ANY at a CNAME is the CNAME", req: query("alias.example.test.", dns.TypeANY), aa: true,
			answer: []string{"alias.example.test. 300 IN CNAME www.example.test."}},
		{name: "AXFR is refused", req: query("example.test.", dns.TypeAXFR), tcp: true, rcode: dns.RcodeRefused},
		{name: "IXFR is refused", req: query("example.test.", dns.TypeIXFR), rcode: dns.RcodeRefused},
		{name: "class CH is refused", req: query("example.test.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }),
			rcode: dns.RcodeRefused},
		{name: "qtype OPT is FORMERR", req: query("example.test.", dns.TypeOPT), rcode: dns.RcodeFormatError},
		{name: "opcode NOTIFY is NOTIMP", req: query("example.test.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }),
			rcode: dns.RcodeNotImplemented},
		{name: "NOTIMP keeps the client's EDNS", req: query("example.test.", dns.TypeSOA, withEDNS(1232, false), func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }),
			rcode: dns.RcodeNotImplemented, opt: true},
		{name: "FORMERR keeps the client's EDNS", req: query("example.test.", dns.TypeA, withEDNS(1232, false), func(m *dns.Msg) { m.Question = nil }),
			rcode: dns.RcodeFormatError, opt: true},
		{name: "no question is FORMERR", req: query("example.test.", dns.TypeA, func(m *dns.Msg) { m.Question = nil }),
			rcode: dns.RcodeFormatError},
		{name: "two questions is FORMERR", req: query("example.test.", dns.TypeA, func(m *dns.Msg) {
			m.Question = append(m.Question, m.Question[0])
		}), rcode: dns.RcodeFormatError},
		{name: "EDNS is echoed", req: query("www.example.test.", dns.TypeA, withEDNS(4096, false)), aa: true, opt: true,
			answer: []string{"www.example.test. 300 IN A 192.0.2.10"}},
		{name: "EDNS version 1 is BADVERS", req: query("www.example.test.", dns.TypeA, withEDNSVersion(1)),
			rcode: dns.RcodeBadVers, opt: true},
		{name: "two OPT records is FORMERR", req: query("www.example.test.", dns.TypeA, withEDNS(1232, false), func(m *dns.Msg) {
			m.Extra = append(m.Extra, m.Extra[0])
		}), rcode: dns.RcodeFormatError},
		{name: "unknown EDNS option is ignored", req: query("www.example.test.", dns.TypeA,
			withOption(&dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1, 2, 3}})), aa: true, opt: true,
			answer: []string{"www.example.test. 300 IN A 192.0.2.10"}},
		{name: "large answer truncated without EDNS", req: query("big.example.test.", dns.TypeTXT), aa: true, tc: true},
		{name: "large answer truncated at our EDNS size", req: query("big.example.test.", dns.TypeTXT, withEDNS(4096, false)),
			aa: true, tc: true, opt: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := dnstest.NewUDP("192.0.2.200")
			if tc.tcp {
				w = dnstest.NewTCP("192.0.2.200")
			}
			s.ServeDNS(w, tc.req)
			if w.Writes != 1 || w.Msg == nil {
				t.Fatalf("got %d replies (pack error %v), want 1", w.Writes, w.PackErr)
			}
			checkReply(t, tc, w.Msg)
		})
	}
}

func checkReply(t *testing.T, tc handlerCase, got *dns.Msg) {
	t.Helper()
	if got.Id != tc.req.Id || !got.Response {
		t.Errorf("id %d response %v, want id %d and QR set", got.Id, got.Response, tc.req.Id)
	}
	if got.Rcode != tc.rcode {
		t.Errorf("rcode %s, want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[tc.rcode])
	}
	if got.Authoritative != tc.aa {
		t.Errorf("AA %v, want %v", got.Authoritative, tc.aa)
	}
	if got.Truncated != tc.tc {
		t.Errorf("TC %v, want %v", got.Truncated, tc.tc)
	}
	if got.RecursionAvailable {
		t.Error("RA set by an authoritative-only server")
	}
	if len(tc.req.Question) == 1 && (len(got.Question) != 1 || got.Question[0] != tc.req.Question[0]) {
		t.Errorf("question %v, want it echoed exactly as %v", got.Question, tc.req.Question)
	}
	if tc.tc && (len(got.Answer) > 0 || len(got.Ns) > 0) {
		t.Errorf("truncated reply kept %d answer and %d authority records", len(got.Answer), len(got.Ns))
	}
	if !tc.tc {
		sameRRs(t, "answer", got.Answer, tc.answer)
		sameRRs(t, "authority", got.Ns, tc.ns)
	}
	sameRRs(t, "additional", got.Extra, tc.extra)
	opt := got.IsEdns0()
	if (opt != nil) != tc.opt {
		t.Fatalf("OPT in reply: %v, want %v", opt != nil, tc.opt)
	}
	if opt != nil {
		if opt.Version() != 0 || opt.UDPSize() != DefaultUDPSize {
			t.Errorf("OPT version %d size %d, want 0 and %d", opt.Version(), opt.UDPSize(), DefaultUDPSize)
		}
		if len(opt.Option) != 0 {
			t.Errorf("OPT options %v, want none", opt.Option)
		}
		if got.Extra[len(got.Extra)-1] != dns.RR(opt) {
			t.Error("OPT is not the last additional record")
		}
	}
}

func sameRRs(t *testing.T, section string, got []dns.RR, want []string) {
	t.Helper()
	g := dnstest.Strings(got)
	w := dnstest.Strings(dnstest.RRs(t, want...))
	if !slices.Equal(g, w) {
		t.Errorf("%s section:\n got  %q\n want %q", section, g, w)
	}
}
