package dnsserver

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnssec"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/internal/rrl"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

const signedZone = `
origin: signed.test.
dnssec:
  keys: keys/
  algorithm: %s
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
    - mx: 10 mail
  ns1:
    - a: 192.0.2.53
  mail:
    - a: 192.0.2.25
  www:
    - a: 192.0.2.80
    - a: 192.0.2.81
    - aaaa: 2001:db8::80
    - txt: hello
  alias:
    - cname: www
  "*.wild":
    - a: 192.0.2.99
    - txt: wildcard
  a.b.ent:
    - a: 192.0.2.7
  secure:
    - ns: ns.secure
    - ds: 12345 15 2 2BB183AF5F22588179A53B0A98631FAD1A292118B5B4A1E34B9D0A0F70F8B7E6
  ns.secure:
    - a: 192.0.2.54
  insecure:
    - ns: ns.elsewhere.test.
  child:
    - ns: ns1
  geo:
    - geo:
        targets:
          fra: { a: 192.0.2.1, aaaa: 2001:db8::1 }
          iad: { a: 192.0.2.2 }
          sin: { a: 192.0.2.3 }
  two:
    - geo:
        answers: 2
        targets:
          fra: { a: 192.0.2.1 }
          iad: { a: 192.0.2.2 }
          sin: { a: 192.0.2.3 }
  cdn:
    - geo:
        targets:
          fra: { cname: fra.cdn.example. }
          iad: { cname: iad.cdn.example. }
  ruled:
    - geo:
        targets:
          fra: { a: 192.0.2.1, aaaa: 2001:db8::1 }
          sin: { a: 192.0.2.3 }
        rules:
          - { country: CN, only: [sin] }
`

// childZone is a zone below signed.test. that the same server holds: its
// DS is the parent's to answer.
const childZone = `
origin: child.signed.test.
records:
  "@":
    - soa: ns1.signed.test. hostmaster 1 7200 3600 1209600 60
    - ns: ns1.signed.test.
    - a: 192.0.2.77
`

// testKeyFiles makes a key pair for zone as BIND writes it, into fsys
// under dir, and returns its DNSKEY.
func testKeyFiles(t testing.TB, fsys fstest.MapFS, dir, zone string, alg uint8, flags uint16) *dns.DNSKEY {
	t.Helper()
	k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: flags, Protocol: 3, Algorithm: alg}
	priv, err := k.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("%s/K%s+%03d+%05d", dir, zone, alg, k.KeyTag())
	fsys[base+".key"] = &fstest.MapFile{Data: []byte(k.String() + "\n")}
	fsys[base+".private"] = &fstest.MapFile{Data: []byte(k.PrivateKeyString(priv))}
	return k
}

// newSignedServer serves signed.test. signed with a KSK and a ZSK of alg,
// and returns the keys by tag.
func newSignedServer(t testing.TB, alg uint8) (*Server, map[uint16]*dns.DNSKEY) {
	t.Helper()
	fsys, keys := signedFiles(t, alg)
	return serveFiles(t, fsys, Config{}), keys
}

// signedFiles is signed.test.'s zone file and keys, a KSK and a ZSK.
func signedFiles(t testing.TB, alg uint8) (fstest.MapFS, map[uint16]*dns.DNSKEY) {
	t.Helper()
	fsys := fstest.MapFS{"signed.test.yaml": {Data: []byte(fmt.Sprintf(signedZone, dnssec.AlgorithmName(alg))), ModTime: time.Unix(1e9, 0)},
		"child.signed.test.yaml": {Data: []byte(childZone), ModTime: time.Unix(1e9, 0)}}
	keys := map[uint16]*dns.DNSKEY{}
	for _, flags := range []uint16{257, 256} {
		k := testKeyFiles(t, fsys, "keys", "signed.test.", alg, flags)
		keys[k.KeyTag()] = k
	}
	return fsys, keys
}

// serveFiles is a server of the zones in fsys, with the six PoPs.
func serveFiles(t testing.TB, fsys fstest.MapFS, cfg Config) *Server {
	t.Helper()
	inv, err := pops.New(sixPoPs...)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(fsys, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = []string{"127.0.0.1:0"}
	s, err := New(testConfig(cfg), Deps{Log: zerolog.Nop(), Metrics: prometheus.NewRegistry(), Locator: testPlaces})
	if err != nil {
		t.Fatal(err)
	}
	s.SetZones(snap)
	return s
}

// verifySigned checks that every RRset of resp's answer and authority
// sections is signed by a key of keys, valid now, except the NS RRset of
// a referral, and returns how many RRsets it verified.
func verifySigned(t *testing.T, resp *dns.Msg, keys map[uint16]*dns.DNSKEY) int {
	t.Helper()
	verified := 0
	for _, sec := range [][]dns.RR{resp.Answer, resp.Ns} {
		type setKey struct {
			name  string
			rtype uint16
		}
		sets := map[setKey][]dns.RR{}
		var order []setKey
		sigs := map[setKey][]*dns.RRSIG{}
		for _, rr := range sec {
			h := rr.Header()
			if sig, ok := rr.(*dns.RRSIG); ok {
				k := setKey{strings.ToLower(h.Name), sig.TypeCovered}
				sigs[k] = append(sigs[k], sig)
				continue
			}
			k := setKey{strings.ToLower(h.Name), h.Rrtype}
			if sets[k] == nil {
				order = append(order, k)
			}
			sets[k] = append(sets[k], rr)
		}
		for _, k := range order {
			if k.rtype == dns.TypeNS && !resp.Authoritative {
				if len(sigs[k]) > 0 {
					t.Errorf("referral NS RRset %s is signed", k.name)
				}
				continue
			}
			if len(sigs[k]) == 0 {
				t.Errorf("RRset %s %s has no RRSIG", k.name, dns.TypeToString[k.rtype])
				continue
			}
			for _, sig := range sigs[k] {
				key := keys[sig.KeyTag]
				if key == nil {
					t.Errorf("RRSIG of %s %s by unknown key %d", k.name, dns.TypeToString[k.rtype], sig.KeyTag)
					continue
				}
				if err := sig.Verify(key, sets[k]); err != nil {
					t.Errorf("RRSIG of %s %s does not verify: %v\n%s", k.name, dns.TypeToString[k.rtype], err, sig)
				}
				if !sig.ValidityPeriod(time.Now()) {
					t.Errorf("RRSIG of %s %s not valid now: %s", k.name, dns.TypeToString[k.rtype], sig)
				}
				verified++
			}
		}
	}
	return verified
}

// withDO sets DNSSEC OK, and Compact Answers OK when co is set.
func withDO(co bool) func(*dns.Msg) {
	return func(m *dns.Msg) {
		m.SetEdns0(1232, true)
		if co {
			m.IsEdns0().Hdr.Ttl |= ednsCO
		}
	}
}

func rrOf(sec []dns.RR, t uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range sec {
		if rr.Header().Rrtype == t {
			out = append(out, rr)
		}
	}
	return out
}

func TestSignedAnswers(t *testing.T) {
	for _, alg := range []uint8{dnssec.AlgorithmEd25519, dnssec.AlgorithmECDSAP256} {
		s, keys := newSignedServer(t, alg)
		for _, tc := range []struct {
			name   string
			qname  string
			qtype  uint16
			co     bool
			client string
			rcode  int
			// answer and ns list the types each section holds, RRSIGs aside.
			answer, ns []uint16
			// nsec is the bitmap of the authority section's NSEC, if any.
			nsec string
			aa   bool
		}{
			{name: "static", qname: "www.signed.test.", qtype: dns.TypeA, answer: []uint16{dns.TypeA}, aa: true},
			{name: "DNSKEY", qname: "signed.test.", qtype: dns.TypeDNSKEY, answer: []uint16{dns.TypeDNSKEY}, aa: true},
			{name: "CDS", qname: "signed.test.", qtype: dns.TypeCDS, answer: []uint16{dns.TypeCDS}, aa: true},
			{name: "NODATA", qname: "www.signed.test.", qtype: dns.TypeMX, ns: []uint16{dns.TypeSOA, dns.TypeNSEC}, nsec: "A TXT AAAA RRSIG NSEC", aa: true},
			{name: "apex NODATA", qname: "signed.test.", qtype: dns.TypeTXT, ns: []uint16{dns.TypeSOA, dns.TypeNSEC}, nsec: "NS SOA MX RRSIG NSEC DNSKEY CDS CDNSKEY", aa: true},
			{name: "nonexistent", qname: "nope.signed.test.", qtype: dns.TypeA, ns: []uint16{dns.TypeSOA, dns.TypeNSEC}, nsec: "RRSIG NSEC NXNAME", aa: true},
			{name: "nonexistent CO", qname: "nope.signed.test.", qtype: dns.TypeA, co: true, rcode: dns.RcodeNameError, ns: []uint16{dns.TypeSOA, dns.TypeNSEC}, nsec: "RRSIG NSEC NXNAME", aa: true},
			{name: "CNAME", qname: "alias.signed.test.", qtype: dns.TypeA, answer: []uint16{dns.TypeCNAME, dns.TypeA}, aa: true},
			{name: "wildcard", qname: "x.wild.signed.test.", qtype: dns.TypeA, answer: []uint16{dns.TypeA}, ns: []uint16{dns.TypeNSEC}, nsec: "RRSIG NSEC", aa: true},
			{name: "deep wildcard", qname: "y.x.wild.signed.test.", qtype: dns.TypeTXT, answer: []uint16{dns.TypeTXT}, ns: []uint16{dns.TypeNSEC}, nsec: "RRSIG NSEC", aa: true},
			{name: "wildcard NODATA", qname: "x.wild.signed.test.", qtype: dns.TypeMX, ns: []uint16{dns.TypeSOA, dns.TypeNSEC}, nsec: "A TXT RRSIG NSEC", aa: true},
			{name: "ENT", qname: "b.ent.signed.test.", qtype: dns.TypeA, ns: []uint16{dns.TypeSOA, dns.TypeNSEC}, nsec: "RRSIG NSEC", aa: true},
			{name: "secure referral", qname: "host.secure.signed.test.", qtype: dns.TypeA, ns: []uint16{dns.TypeNS, dns.TypeDS}},
			{name: "insecure referral", qname: "host.insecure.signed.test.", qtype: dns.TypeA, ns: []uint16{dns.TypeNS, dns.TypeNSEC}, nsec: "NS RRSIG NSEC"},
			{name: "DS", qname: "secure.signed.test.", qtype: dns.TypeDS, answer: []uint16{dns.TypeDS}, aa: true},
			{name: "no DS", qname: "insecure.signed.test.", qtype: dns.TypeDS, ns: []uint16{dns.TypeSOA, dns.TypeNSEC}, nsec: "NS RRSIG NSEC", aa: true},
			{name: "NSEC", qname: "www.signed.test.", qtype: dns.TypeNSEC, answer: []uint16{dns.TypeNSEC}, aa: true},
			{name: "geo EU", qname: "geo.signed.test.", qtype: dns.TypeA, client: "85.214.0.0", answer: []uint16{dns.TypeA}, aa: true},
			{name: "geo US", qname: "geo.signed.test.", qtype: dns.TypeA, client: "8.8.8.0", answer: []uint16{dns.TypeA}, aa: true},
			{name: "geo AAAA", qname: "geo.signed.test.", qtype: dns.TypeAAAA, client: "8.8.8.0", answer: []uint16{dns.TypeAAAA}, aa: true},
			{name: "geo NODATA", qname: "geo.signed.test.", qtype: dns.TypeMX, client: "8.8.8.0", ns: []uint16{dns.TypeSOA, dns.TypeNSEC}, nsec: "A AAAA RRSIG NSEC", aa: true},
			{name: "geo two", qname: "two.signed.test.", qtype: dns.TypeA, client: "85.214.0.0", answer: []uint16{dns.TypeA}, aa: true},
			// A geo name with CNAME targets answers every type with the CNAME, never a NODATA that denies it.
			{name: "geo CNAME HTTPS", qname: "cdn.signed.test.", qtype: dns.TypeHTTPS, client: "81.2.69.0", answer: []uint16{dns.TypeCNAME}, aa: true},
			{name: "geo CNAME A", qname: "cdn.signed.test.", qtype: dns.TypeA, client: "81.2.69.0", answer: []uint16{dns.TypeCNAME}, aa: true},
			// A rule leaves a CN client no AAAA: the proof must not list AAAA.
			{name: "geo ruled NODATA", qname: "ruled.signed.test.", qtype: dns.TypeAAAA, client: "1.2.3.0", ns: []uint16{dns.TypeSOA, dns.TypeNSEC}, nsec: "A RRSIG NSEC", aa: true},
			{name: "geo ruled AAAA", qname: "ruled.signed.test.", qtype: dns.TypeAAAA, client: "81.2.69.0", answer: []uint16{dns.TypeAAAA}, aa: true},
			// The DS of a child zone we also serve comes from the parent side, signed.
			{name: "DS of a hosted child", qname: "child.signed.test.", qtype: dns.TypeDS, ns: []uint16{dns.TypeSOA, dns.TypeNSEC}, nsec: "NS RRSIG NSEC", aa: true},
			{name: "wildcard NSEC", qname: "x.wild.signed.test.", qtype: dns.TypeNSEC, answer: []uint16{dns.TypeNSEC}, aa: true},
			{name: "NSEC at a CNAME", qname: "alias.signed.test.", qtype: dns.TypeNSEC, answer: []uint16{dns.TypeNSEC}, aa: true},
			{name: "additional", qname: "signed.test.", qtype: dns.TypeMX, answer: []uint16{dns.TypeMX}, aa: true},
		} {
			t.Run(fmt.Sprintf("%s/%s", dnssec.AlgorithmName(alg), tc.name), func(t *testing.T) {
				opts := []func(*dns.Msg){withDO(tc.co)}
				if tc.client != "" {
					opts = append(opts, withECS(tc.client, 24))
				}
				resp := ask(t, s, tc.qname, tc.qtype, opts...)
				if resp.Rcode != tc.rcode || resp.Authoritative != tc.aa {
					t.Fatalf("rcode %s AA %v, want %s AA %v\n%s", dns.RcodeToString[resp.Rcode], resp.Authoritative,
						dns.RcodeToString[tc.rcode], tc.aa, resp)
				}
				types := func(sec []dns.RR) []uint16 {
					var ts []uint16
					for _, rr := range sec {
						if rt := rr.Header().Rrtype; rt != dns.TypeRRSIG && !slices.Contains(ts, rt) {
							ts = append(ts, rt)
						}
					}
					return ts
				}
				if got := types(resp.Answer); !slices.Equal(got, tc.answer) {
					t.Errorf("answer types %v, want %v\n%s", got, tc.answer, resp)
				}
				if got := types(resp.Ns); !slices.Equal(got, tc.ns) {
					t.Errorf("authority types %v, want %v\n%s", got, tc.ns, resp)
				}
				if tc.nsec != "" {
					nsecs := rrOf(resp.Ns, dns.TypeNSEC)
					if len(nsecs) != 1 {
						t.Fatalf("%d NSEC records, want 1\n%s", len(nsecs), resp)
					}
					n := nsecs[0].(*dns.NSEC)
					var bits []string
					for _, b := range n.TypeBitMap {
						bits = append(bits, dns.Type(b).String())
					}
					if got := strings.Join(bits, " "); got != tc.nsec {
						t.Errorf("NSEC bitmap %q, want %q\n%s", got, tc.nsec, n)
					}
				}
				if testing.Verbose() {
					t.Log(resp)
				}
				if n := verifySigned(t, resp, keys); n == 0 {
					t.Errorf("no signature verified\n%s", resp)
				}
				if opt := resp.IsEdns0(); opt == nil || !opt.Do() || (opt.Hdr.Ttl&ednsCO != 0) != tc.co {
					t.Errorf("reply OPT %v: DO must be echoed, CO when asked", opt)
				}
				// Without DO, no DNSSEC records at all, but for the ones asked for.
				plain := ask(t, s, tc.qname, tc.qtype, func(m *dns.Msg) {
					m.SetEdns0(1232, false)
					if tc.client != "" {
						withECS(tc.client, 24)(m)
					}
				})
				for _, sec := range [][]dns.RR{plain.Answer, plain.Ns} {
					for _, rr := range sec {
						switch rr.Header().Rrtype {
						case dns.TypeRRSIG, dns.TypeNSEC:
							if rr.Header().Rrtype != tc.qtype {
								t.Errorf("a query without DO got %s", rr)
							}
						}
					}
				}
			})
		}
	}
}

// ask sends one query for qname through ServeDNS, from 192.0.2.200.
func ask(t *testing.T, s *Server, qname string, qtype uint16, opts ...func(*dns.Msg)) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	for _, o := range opts {
		o(m)
	}
	w := dnstest.NewUDP("192.0.2.200")
	s.ServeDNS(w, m)
	if w.Msg == nil {
		t.Fatalf("no reply to %s %s", qname, dns.TypeToString[qtype])
	}
	return w.Msg
}

// TestFastPathMatchesGeneralPathSigned holds the fast path to the general
// path's signed replies, and checks that it answers them itself once
// learnt, and learns them again after a presigning pass.
func TestFastPathMatchesGeneralPathSigned(t *testing.T) {
	s, _ := newSignedServer(t, dnssec.AlgorithmEd25519)
	f := newFastPath(s)
	src := netip.MustParseAddrPort("126.5.5.5:5353")
	names := []string{"signed.test.", "www.signed.test.", "nope.signed.test.", "alias.signed.test.", "x.wild.signed.test.",
		"b.ent.signed.test.", "host.secure.signed.test.", "insecure.signed.test.", "geo.signed.test.", "two.signed.test."}
	for _, name := range names {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeDNSKEY, dns.TypeDS, dns.TypeNSEC, dns.TypeANY} {
			for _, m := range []*dns.Msg{query(name, qt, withEDNS(1232, true)), query(name, qt, withEDNS(1232, false)),
				query(name, qt, withEDNS(1232, true), withECS("81.2.69.0", 24)), query(name, qt, withDO(true))} {
				checkSame(t, s, f, variants(t, m), src)
			}
		}
	}
	signedWWW := query("www.signed.test.", dns.TypeA, withEDNS(1232, true))
	vs := variants(t, signedWWW)
	if got := checkSame(t, s, f, vs, src); got < len(vs)-2 {
		t.Errorf("signed www: fast path answered %d of %d", got, len(vs))
	}
	geo := variants(t, query("geo.signed.test.", dns.TypeA, withEDNS(1232, true), withECS("81.2.69.0", 24)))
	if got := checkSame(t, s, f, geo, src); got < len(geo)-2 {
		t.Errorf("signed geo: fast path answered %d of %d", got, len(geo))
	}
	before := s.signer.generation()
	s.signer.pass(context.Background())
	if s.signer.generation() == before {
		t.Fatalf("a presigning pass left the generation at %d", before)
	}
	if _, isFast, _ := fastUDP(t, f, vs[0], src); isFast {
		t.Errorf("the fast path answered from a reply learnt under the signatures before the pass")
	}
	if got := checkSame(t, s, f, vs, src); got < len(vs)-2 {
		t.Errorf("after the pass: fast path answered %d of %d", got, len(vs))
	}
}

// TestPresignCoversAnswers checks that after a presigning pass the
// answers a zone enumerates need no signing on the query path: only names
// that do not exist (and combined geo answers) do.
func TestPresignCoversAnswers(t *testing.T) {
	s, _ := newSignedServer(t, dnssec.AlgorithmEd25519)
	s.signer.pass(context.Background())
	misses := func() float64 { return counterValue(s.signer.metrics.misses) }
	for _, tc := range []struct {
		qname string
		qtype uint16
		ecs   string
		signs bool
	}{
		{"www.signed.test.", dns.TypeA, "", false},
		{"www.signed.test.", dns.TypeMX, "", false},
		{"signed.test.", dns.TypeDNSKEY, "", false},
		{"alias.signed.test.", dns.TypeA, "", false},
		{"b.ent.signed.test.", dns.TypeA, "", false},
		{"host.insecure.signed.test.", dns.TypeA, "", false},
		{"host.secure.signed.test.", dns.TypeA, "", false},
		{"geo.signed.test.", dns.TypeA, "85.214.0.0", false},
		{"geo.signed.test.", dns.TypeA, "8.8.8.0", false},
		{"nope.signed.test.", dns.TypeA, "", true},
		{"x.wild.signed.test.", dns.TypeA, "", true}, // the proof of the next closer name
	} {
		before := misses()
		opts := []func(*dns.Msg){withDO(false)}
		if tc.ecs != "" {
			opts = append(opts, withECS(tc.ecs, 24))
		}
		ask(t, s, tc.qname, tc.qtype, opts...)
		if signed := misses() > before; signed != tc.signs {
			t.Errorf("%s %s: signed on the query path: %v, want %v", tc.qname, dns.TypeToString[tc.qtype], signed, tc.signs)
		}
		before = misses()
		ask(t, s, tc.qname, tc.qtype, opts...)
		if misses() > before {
			t.Errorf("%s %s: signed again on the second query", tc.qname, dns.TypeToString[tc.qtype])
		}
	}
}

// TestUnsignedWithoutDO: without DO, a signed zone answers every question
// but for its keys exactly as the same zone unsigned does, byte for byte.
func TestUnsignedWithoutDO(t *testing.T) {
	fsys, _ := signedFiles(t, dnssec.AlgorithmEd25519)
	signed := serveFiles(t, fsys, Config{})
	plainFS := fstest.MapFS{"signed.test.yaml": {Data: []byte(strings.Replace(fmt.Sprintf(signedZone, "ed25519"),
		"dnssec:\n  keys: keys/\n  algorithm: ed25519\n", "", 1)), ModTime: time.Unix(1e9, 0)}}
	plain := serveFiles(t, plainFS, Config{})
	src := netip.MustParseAddrPort("192.0.2.200:5300")
	names := []string{"signed.test.", "www.signed.test.", "nope.signed.test.", "alias.signed.test.", "x.wild.signed.test.",
		"b.ent.signed.test.", "host.secure.signed.test.", "secure.signed.test.", "insecure.signed.test.", "geo.signed.test.", "two.signed.test."}
	compared := 0
	for _, name := range names {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeDS, dns.TypeNSEC, dns.TypeANY, dns.TypeSOA, dns.TypeNS} {
			for _, m := range []*dns.Msg{query(name, qt), query(name, qt, withEDNS(1232, false)), query(name, qt, withECS("81.2.69.0", 24))} {
				p, err := m.Pack()
				if err != nil {
					t.Fatal(err)
				}
				got, want := generalUDP(signed, p, src), generalUDP(plain, p, src)
				if !bytes.Equal(got, want) {
					var g, w dns.Msg
					g.Unpack(got)
					w.Unpack(want)
					t.Errorf("%s %s without DO: signed zone answers\n%v\nunsigned zone answers\n%v", name, dns.TypeToString[qt], &g, &w)
				}
				compared++
			}
		}
	}
	if compared == 0 {
		t.Fatal("nothing compared")
	}
}

// TestSignaturesAgreeAcrossInstances: two servers with the same keys
// (a fleet, or one server before and after a restart) send the same
// signed replies, byte for byte, with Ed25519.
func TestSignaturesAgreeAcrossInstances(t *testing.T) {
	fsys, _ := signedFiles(t, dnssec.AlgorithmEd25519)
	a, b := serveFiles(t, fsys, Config{}), serveFiles(t, fsys, Config{})
	b.signer.pass(context.Background()) // one presigned, the other signing as asked
	src := netip.MustParseAddrPort("192.0.2.200:5300")
	for _, name := range []string{"www.signed.test.", "nope.signed.test.", "x.wild.signed.test.", "geo.signed.test.", "two.signed.test."} {
		p, err := query(name, dns.TypeA, withEDNS(1232, true), withECS("81.2.69.0", 24)).Pack()
		if err != nil {
			t.Fatal(err)
		}
		ra, rb := generalUDP(a, p, src), generalUDP(b, p, src)
		if !bytes.Equal(ra, rb) {
			var x, y dns.Msg
			x.Unpack(ra)
			y.Unpack(rb)
			t.Errorf("%s: two instances differ:\n%v\n%v", name, &x, &y)
		}
	}
}

// TestSignerNewPeriod: a pass in the next period re-signs with the next
// window, and a new generation tells the fast path.
func TestSignerNewPeriod(t *testing.T) {
	s, keys := newSignedServer(t, dnssec.AlgorithmEd25519)
	now := time.Now()
	s.signer.now = func() time.Time { return now }
	s.signer.pass(context.Background())
	gen, w := s.signer.generation(), dnssec.WindowAt(now)
	s.signer.pass(context.Background())
	if s.signer.generation() != gen {
		t.Errorf("a pass with nothing new made generation %d of %d", s.signer.generation(), gen)
	}
	now = dnssec.NextPeriod(now).Add(time.Minute)
	s.signer.pass(context.Background())
	if s.signer.generation() == gen {
		t.Fatal("a pass in a new period kept the generation")
	}
	next := dnssec.WindowAt(now)
	if next == w {
		t.Fatal("the next period has the same window")
	}
	resp := ask(t, s, "www.signed.test.", dns.TypeA, withDO(false))
	for _, rr := range resp.Answer {
		if sig, ok := rr.(*dns.RRSIG); ok && (sig.Inception != next.Inception || sig.Expiration != next.Expiration) {
			t.Errorf("after the period changed: %s, want the window %+v", sig, next)
		}
	}
	if verifySigned(t, resp, keys) == 0 {
		t.Error("nothing verified")
	}
}

// TestSignedNXDomainFloodBoundedByRRL: a flood of nonexistent names with
// DO from one network costs no more signatures than rate limiting lets
// replies through: a dropped or slipped reply is not signed for.
func TestSignedNXDomainFloodBoundedByRRL(t *testing.T) {
	fsys, keys := signedFiles(t, dnssec.AlgorithmEd25519)
	s := serveFiles(t, fsys, Config{RateLimit: rrl.Config{ResponsesPerSecond: 5, Burst: 5, Slip: intp(2), Exempt: []netip.Prefix{}}})
	src := netip.MustParseAddrPort("198.51.100.7:5300")
	full, slipped := 0, 0
	const n = 300
	for i := range n {
		p, err := query(fmt.Sprintf("r%d.signed.test.", i), dns.TypeA, withEDNS(1232, true)).Pack()
		if err != nil {
			t.Fatal(err)
		}
		reply := generalUDP(s, p, src)
		if reply == nil {
			continue
		}
		var m dns.Msg
		if err := m.Unpack(reply); err != nil {
			t.Fatal(err)
		}
		if m.Truncated {
			slipped++
			continue
		}
		full++
		if len(rrOf(m.Ns, dns.TypeNSEC)) != 1 {
			t.Errorf("a full reply without its NSEC: %v", &m)
		}
		verifySigned(t, &m, keys)
	}
	made := counterValue(s.signer.metrics.signed.WithLabelValues("query"))
	// Each full reply signs its NSEC (one ZSK); the SOA's RRSIG is made
	// once; the loop takes well under a second, so the rate adds at most
	// a few replies beyond the burst.
	if full < 5 || full > 15 || slipped == 0 {
		t.Errorf("%d full and %d slipped replies of %d: the limiter did not limit", full, slipped, n)
	}
	if made > float64(full+1) {
		t.Errorf("%v signatures made on the query path for %d full replies", made, full)
	}
}

// FuzzServeDNSSigned sends arbitrary queries to a signed zone: names that
// do not exist are signed for as they come, and the NSECs made from them
// face the internet.
func FuzzServeDNSSigned(f *testing.F) {
	seed := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(seed(query("www.signed.test.", dns.TypeA, withDO(false))), false)                           // signed answer
	f.Add(seed(query("nope.signed.test.", dns.TypeA, withDO(false))), false)                          // compact denial
	f.Add(seed(query("nope.signed.test.", dns.TypeA, withDO(true))), true)                            // CO: NXDOMAIN
	f.Add(seed(query("\\000.x.wild.signed.test.", dns.TypeTXT, withDO(false))), false)                // wildcard, odd label
	f.Add(seed(query("\\255\\255.wild.signed.test.", dns.TypeA, withDO(false))), false)               // covering NSEC edges
	f.Add(seed(query("host.insecure.signed.test.", dns.TypeA, withDO(false))), false)                 // referral, no DS
	f.Add(seed(query("geo.signed.test.", dns.TypeA, withDO(false), withECS("81.2.69.0", 24))), false) // signed geo
	f.Add(seed(query("signed.test.", dns.TypeDNSKEY, withDO(false))), true)                           // keys
	f.Add(seed(query(strings.Repeat("a.", 60)+"signed.test.", dns.TypeA, withDO(false))), false)      // long name
	s, keys := newSignedServer(f, dnssec.AlgorithmEd25519)
	f.Fuzz(func(t *testing.T, packet []byte, tcp bool) {
		reply := serveFuzzed(t, s, packet, tcp)
		if reply == nil {
			return
		}
		var m dns.Msg
		if m.Unpack(reply) != nil || m.Truncated {
			return
		}
		for _, rr := range m.Ns {
			if n, ok := rr.(*dns.NSEC); ok && len(m.Question) == 1 {
				q := strings.ToLower(m.Question[0].Name)
				if !dns.IsSubDomain("signed.test.", n.Hdr.Name) || !dns.IsSubDomain("signed.test.", n.NextDomain) {
					t.Errorf("NSEC %s leaves the zone, for %s", n, q)
				}
			}
		}
		if opt := m.IsEdns0(); opt != nil && opt.Do() && m.Rcode == dns.RcodeSuccess {
			verifySigned(t, &m, keys)
		}
	})
}

// TestSignedAdditionalAndMeta: in-zone addresses in the additional
// section carry their RRSIGs (RFC 4035 §3.1.1), referral glue does not,
// and NXNAME cannot be asked for (RFC 9824 §3.5).
func TestSignedAdditionalAndMeta(t *testing.T) {
	s, keys := newSignedServer(t, dnssec.AlgorithmEd25519)
	mx := ask(t, s, "signed.test.", dns.TypeMX, withDO(false))
	var a *dns.A
	var sig *dns.RRSIG
	for _, rr := range mx.Extra {
		switch rr := rr.(type) {
		case *dns.A:
			a = rr
		case *dns.RRSIG:
			sig = rr
		}
	}
	if a == nil || sig == nil || sig.TypeCovered != dns.TypeA {
		t.Fatalf("MX's additional address without its RRSIG:\n%s", mx)
	}
	if err := sig.Verify(keys[sig.KeyTag], []dns.RR{a}); err != nil {
		t.Errorf("additional RRSIG does not verify: %v", err)
	}
	ref := ask(t, s, "host.secure.signed.test.", dns.TypeA, withDO(false))
	for _, rr := range ref.Extra {
		if rr.Header().Rrtype == dns.TypeRRSIG {
			t.Errorf("referral glue signed: %s", rr)
		}
	}
	if r := ask(t, s, "www.signed.test.", dnssec.TypeNXNAME, withDO(false)); r.Rcode != dns.RcodeFormatError {
		t.Errorf("a query for NXNAME: %s, want FORMERR", dns.RcodeToString[r.Rcode])
	}
}

// TestSignedWildcardFloodBoundedByRRL: random names under a wildcard
// share the wildcard's rate-limit account, and each reply's proof is
// signed only for replies rate limiting sends.
func TestSignedWildcardFloodBoundedByRRL(t *testing.T) {
	fsys, _ := signedFiles(t, dnssec.AlgorithmEd25519)
	s := serveFiles(t, fsys, Config{RateLimit: rrl.Config{ResponsesPerSecond: 5, Burst: 5, Slip: intp(2), Exempt: []netip.Prefix{}}})
	src := netip.MustParseAddrPort("198.51.100.7:5300")
	for _, qt := range []uint16{dns.TypeA, dns.TypeMX} { // an answer, and NODATA
		before := counterValue(s.signer.metrics.signed.WithLabelValues("query"))
		full := 0
		for i := range 300 {
			p, err := query(fmt.Sprintf("r%d.wild.signed.test.", i), qt, withEDNS(1232, true)).Pack()
			if err != nil {
				t.Fatal(err)
			}
			if reply := generalUDP(s, p, src); reply != nil {
				var m dns.Msg
				if m.Unpack(reply) == nil && !m.Truncated {
					full++
				}
			}
		}
		made := counterValue(s.signer.metrics.signed.WithLabelValues("query")) - before
		if full > 15 || made > float64(full+2) {
			t.Errorf("%s: %d full replies and %v signatures made for 300 random names under a wildcard", dns.TypeToString[qt], full, made)
		}
	}
}

// TestFastPathSignedAllocations: once learnt, the fast path answers
// signed replies (a static answer, a compact denial, a geo answer for a
// client subnet) without allocating, as it answers unsigned ones.
func TestFastPathSignedAllocations(t *testing.T) {
	s, _ := newSignedServer(t, dnssec.AlgorithmEd25519)
	s.signer.pass(context.Background())
	f := newFastPath(s)
	out := make([]byte, 0, maxUDPSize)
	for _, m := range []*dns.Msg{
		query("www.signed.test.", dns.TypeA, withEDNS(1232, true)),
		query("nope.signed.test.", dns.TypeA, withEDNS(1232, true)),
		query("geo.signed.test.", dns.TypeA, withEDNS(1232, true), withECS("81.2.69.0", 24)),
	} {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		fastUDP(t, f, b, fastSrc) // learn
		if _, res := f.Answer(b, fastSrc.Addr(), out); res != udpfast.Answered {
			t.Fatalf("%v: not answered by the fast path once learnt", m.Question[0])
		}
		now := time.Now()
		if n := testing.AllocsPerRun(200, func() { f.Answer(b, fastSrc.Addr(), out); f.Flush(now) }); n != 0 {
			t.Errorf("%v: %.0f allocations per query, budget 0", m.Question[0], n)
		}
	}
}
