package dnsserver

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
)

// FuzzServeDNS feeds arbitrary bytes through the same steps a packet takes
// in the server: the header screen, decoding, then ServeDNS. Property: no
// panic reaches the process, at most one reply is written, and a reply is a
// well-formed response to the query that fits the client's limit.
func FuzzServeDNS(f *testing.F) {
	seed := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(seed(query("www.example.test.", dns.TypeA)), false)                              // plain answer
	f.Add(seed(query("big.example.test.", dns.TypeTXT)), false)                            // truncation over UDP
	f.Add(seed(query("big.example.test.", dns.TypeTXT, withEDNS(4096, true))), true)       // EDNS + DO over TCP
	f.Add(seed(query("a.b.wild.example.test.", dns.TypeTXT)), false)                       // wildcard synthesis
	f.Add(seed(query("chain1.example.test.", dns.TypeA)), false)                           // CNAME chain across zones
	f.Add(seed(query("loop1.example.test.", dns.TypeA)), false)                            // CNAME loop
	f.Add(seed(query("host.sub.example.test.", dns.TypeA)), false)                         // referral with glue
	f.Add(seed(query("www.example.test.", dns.TypeA, withEDNSVersion(3))), false)          // BADVERS
	f.Add(seed(query("example.test.", dns.TypeANY)), false)                                // RFC 8482 ANY
	f.Add([]byte{0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}, false) // compression pointer loop
	f.Add([]byte{}, false)                                                                 // empty packet

	s := newTestServer(f, Config{NSID: "fuzz"})
	f.Fuzz(func(t *testing.T, packet []byte, tcp bool) { serveFuzzed(t, s, packet, tcp) })
}

// FuzzServeDNSGeo does the same against geo records, with client subnets:
// the ECS parser and the selection face the internet too.
func FuzzServeDNSGeo(f *testing.F) {
	seed := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(seed(query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24))), false)                         // ECS, a geo answer
	f.Add(seed(query("www.geo.test.", dns.TypeAAAA, withECS("2a00:1450::", 32))), true)                     // IPv6 ECS over TCP
	f.Add(seed(query("www.geo.test.", dns.TypeA, withECS("81.2.69.1", 24))), false)                         // host bits: FORMERR
	f.Add(seed(query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24), withECS("1.2.3.0", 24))), false) // two ECS: FORMERR
	f.Add(seed(query("www.geo.test.", dns.TypeA, withECS("0.0.0.0", 0))), false)                            // source 0
	f.Add(seed(query("ruled.geo.test.", dns.TypeA, withECS("203.0.113.0", 26))), false)                     // CIDR rule and scope
	f.Add(seed(query("cdn.geo.test.", dns.TypeANY, withECS("24.48.1.0", 24))), false)                       // CNAME target, ANY
	f.Add(seed(query("servfail.geo.test.", dns.TypeA)), false)                                              // all down: SERVFAIL
	f.Add(seed(query("www.geo.test.", dns.TypeA, rawECS(1, 24, 0, 81, 2, 69, 0))), false)                   // ADDRESS too long: FORMERR
	f.Add(seed(query("www.geo.test.", dns.TypeA, rawECS(2, 48, 0, 0x2a, 0, 0x14, 0x50))), true)             // ADDRESS too short: FORMERR
	f.Add(seed(query("www.geo.test.", dns.TypeA, rawECS(1, 24, 8, 81, 2, 69))), false)                      // SCOPE not 0: FORMERR
	f.Add(seed(query("www.geo.test.", dns.TypeA, rawECS(5, 24, 0, 81, 2, 69))), false)                      // unknown FAMILY: FORMERR
	f.Add(seed(query("www.geo.test.", dns.TypeA, rawECS(1, 40, 0, 81, 2, 69, 0, 0))), true)                 // SOURCE too long: FORMERR
	f.Add(seed(query("www.geo.test.", dns.TypeA, rawECS(0, 0, 0))), false)                                  // FAMILY 0, SOURCE 0
	s := newGeoServer(f)
	f.Fuzz(func(t *testing.T, packet []byte, tcp bool) { serveFuzzed(t, s, packet, tcp) })
}

// serveFuzzed is the property both fuzzers check.
func serveFuzzed(t *testing.T, s *Server, packet []byte, tcp bool) []byte {
	if len(packet) < 12 {
		return nil // the server drops these before decoding
	}
	h := dns.Header{
		Id:      binary.BigEndian.Uint16(packet[0:]),
		Bits:    binary.BigEndian.Uint16(packet[2:]),
		Qdcount: binary.BigEndian.Uint16(packet[4:]),
		Ancount: binary.BigEndian.Uint16(packet[6:]),
		Nscount: binary.BigEndian.Uint16(packet[8:]),
		Arcount: binary.BigEndian.Uint16(packet[10:]),
	}
	if acceptQuery(h) != dns.MsgAccept {
		return nil // miekg/dns answers these itself with FORMERR or NOTIMP
	}
	screened := screenECS(packet) // as the server's reader does
	req := new(dns.Msg)
	if err := req.Unpack(screened); err != nil {
		return nil // likewise
	}
	w := dnstest.NewUDP("192.0.2.1")
	if tcp {
		w = dnstest.NewTCP("192.0.2.1")
	}
	s.ServeDNS(w, req)
	if w.Writes > 1 {
		t.Fatalf("%d replies to one query", w.Writes)
	}
	if w.Writes == 0 {
		return nil
	}
	if w.PackErr != nil {
		t.Fatalf("reply does not pack: %v", w.PackErr)
	}
	if w.Msg == nil || !w.Msg.Response || w.Msg.Id != req.Id {
		t.Fatalf("reply is not a response to the query: %v", w.Msg)
	}
	if !bytes.Equal(screened, packet) && w.Msg.Rcode != dns.RcodeFormatError {
		t.Fatalf("malformed ECS answered %s", dns.RcodeToString[w.Msg.Rcode])
	}
	if limit := s.sizeLimit(parseEDNS(req), tcp); len(w.Wire) > limit {
		t.Fatalf("reply of %d bytes exceeds the client's limit %d", len(w.Wire), limit)
	}
	if got := testutilCounter(t, s.metrics.panics); got != 0 {
		t.Fatalf("a panic was contained for %v", req)
	}
	return w.Wire
}

// FuzzScreenECS checks screenECS on arbitrary bytes: it leaves what it
// reads as it was, a second pass changes nothing, and what it rewrote, when
// miekg/dns decodes it with a single OPT record, parseECS refuses. A message
// with more than one OPT is FORMERR whatever its options say (RFC 6891
// §6.1.1), and miekg/dns reads the last where screenECS screens the first.
func FuzzScreenECS(f *testing.F) {
	for _, nq := range malformedQueries("www.geo.test.") {
		b, err := nq.m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	b, _ := query("www.geo.test.", dns.TypeA, rawECS(1, 24, 0, 81, 2, 69)).Pack()
	f.Add(b)
	f.Fuzz(func(t *testing.T, packet []byte) {
		orig := append([]byte(nil), packet...)
		got := screenECS(packet)
		if !bytes.Equal(packet, orig) {
			t.Fatal("the message read was modified")
		}
		if again := screenECS(got); !bytes.Equal(again, got) {
			t.Fatalf("a second pass rewrote %x to %x", got, again)
		}
		if bytes.Equal(got, packet) {
			return
		}
		var m dns.Msg
		if m.Unpack(got) != nil || optRecords(&m) > 1 {
			return
		}
		if _, ok := parseECS(&m); ok {
			t.Fatalf("rewritten to %v, which parseECS accepts", m.IsEdns0())
		}
	})
}

func optRecords(m *dns.Msg) int {
	n := 0
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			n++
		}
	}
	return n
}
