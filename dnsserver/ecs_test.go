package dnsserver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
)

// rawECS adds an ECS option built field by field, as it goes on the wire,
// so that a test can send what dns.EDNS0_SUBNET would not pack as given.
func rawECS(family uint16, source, scope uint8, addr ...byte) func(*dns.Msg) {
	data := append([]byte{byte(family >> 8), byte(family), source, scope}, addr...)
	return withOption(&dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: data})
}

// ecsCase is one ECS option and the fault udpfast.DecodeECS must find in
// it.
type ecsCase struct {
	name  string
	opt   func(*dns.Msg)
	fault udpfast.ECSFault
}

var (
	v6_2a00 = []byte{0x2a, 0, 0x14, 0x50}
	v6Full  = append(append([]byte{}, v6_2a00...), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)
)

// malformedECS are options that RFC 7871 §6 answers with FORMERR, each
// fault from every side.
var malformedECS = []ecsCase{
	{"IPv4 /24 in 4 octets", rawECS(1, 24, 0, 81, 2, 69, 0), udpfast.ECSBadLength},
	{"IPv4 /24 in 2 octets", rawECS(1, 24, 0, 81, 2), udpfast.ECSBadLength},
	{"IPv4 /24 without ADDRESS", rawECS(1, 24, 0), udpfast.ECSBadLength},
	{"IPv4 /0 in 4 octets", rawECS(1, 0, 0, 0, 0, 0, 0), udpfast.ECSBadLength},
	{"IPv4 /32 in 5 octets", rawECS(1, 32, 0, 81, 2, 69, 7, 0), udpfast.ECSBadLength},
	{"IPv6 /32 in 16 octets", rawECS(2, 32, 0, append(append([]byte{}, v6_2a00...), make([]byte, 12)...)...), udpfast.ECSBadLength},
	{"IPv6 /48 in 4 octets", rawECS(2, 48, 0, v6_2a00...), udpfast.ECSBadLength},
	{"IPv4 /20 with bits beyond it", rawECS(1, 20, 0, 81, 2, 69), udpfast.ECSHostBits},
	{"IPv4 /24 with bits beyond it, 4 octets", rawECS(1, 24, 0, 81, 2, 69, 1), udpfast.ECSBadLength},
	{"IPv6 /31 with bits beyond it", rawECS(2, 31, 0, 0x2a, 0, 0x14, 0x51), udpfast.ECSHostBits},
	{"SCOPE 16 in a query", rawECS(1, 24, 16, 81, 2, 69), udpfast.ECSBadScope},
	{"SCOPE 33 for IPv4", rawECS(1, 24, 33, 81, 2, 69), udpfast.ECSBadScope},
	{"IPv4 /33", rawECS(1, 33, 0, 81, 2, 69, 0, 0), udpfast.ECSBadSource},
	{"IPv6 /129", rawECS(2, 129, 0, append(append([]byte{}, v6Full...), 0)...), udpfast.ECSBadSource},
	{"FAMILY 3", rawECS(3, 24, 0, 81, 2, 69), udpfast.ECSBadFamily},
	{"FAMILY 0 with SOURCE 8", rawECS(0, 8, 0, 81), udpfast.ECSBadSource},
	{"FAMILY 0 with an ADDRESS", rawECS(0, 0, 0, 0, 0, 0, 0), udpfast.ECSBadLength},
	{"FAMILY 0 with SCOPE 8", rawECS(0, 0, 8), udpfast.ECSBadScope},
	{"3 octets", withOption(&dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 1, 24}}), udpfast.ECSTruncated},
	{"empty", withOption(&dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET}), udpfast.ECSTruncated},
}

// wellFormedECS are options that must be answered and echoed as sent.
var wellFormedECS = []ecsCase{
	{"IPv4 /24", rawECS(1, 24, 0, 81, 2, 69), udpfast.ECSWellFormed},
	{"IPv4 /22", rawECS(1, 22, 0, 81, 2, 68), udpfast.ECSWellFormed},
	{"IPv4 /32", rawECS(1, 32, 0, 81, 2, 69, 7), udpfast.ECSWellFormed},
	{"IPv4 /0", rawECS(1, 0, 0), udpfast.ECSWellFormed},
	{"private IPv4 /24", rawECS(1, 24, 0, 10, 1, 2), udpfast.ECSWellFormed},
	{"IPv6 /32", rawECS(2, 32, 0, v6_2a00...), udpfast.ECSWellFormed},
	{"IPv6 /31", rawECS(2, 31, 0, 0x2a, 0, 0x14, 0x50), udpfast.ECSWellFormed},
	{"IPv6 /128", rawECS(2, 128, 0, v6Full...), udpfast.ECSWellFormed},
	{"FAMILY 0, SOURCE 0", rawECS(0, 0, 0), udpfast.ECSWellFormed},
}

// ecsData is the data of the ECS option that c adds to a query.
func ecsData(c ecsCase) []byte {
	m := query("x.", dns.TypeA, c.opt)
	return m.IsEdns0().Option[0].(*dns.EDNS0_LOCAL).Data
}

// namedQuery is a query and what is wrong with it.
type namedQuery struct {
	name string
	m    *dns.Msg
}

// malformedQueries are the malformed options in queries for name, and
// queries with two ECS options, which are as malformed.
func malformedQueries(name string) []namedQuery {
	var out []namedQuery
	for _, c := range malformedECS {
		out = append(out, namedQuery{c.name, query(name, dns.TypeA, c.opt)})
	}
	return append(out,
		namedQuery{"DO, a well-formed and a malformed option", query(name, dns.TypeA, withEDNS(1232, true), c0(wellFormedECS), c0(malformedECS))},
		namedQuery{"two well-formed options", query(name, dns.TypeA, rawECS(1, 24, 0, 81, 2, 69), rawECS(1, 24, 0, 81, 2, 70))},
		namedQuery{"two malformed options", query(name, dns.TypeA, rawECS(3, 0, 0), rawECS(1, 24, 9, 81, 2, 70))})
}

func c0(cs []ecsCase) func(*dns.Msg) { return cs[0].opt }

func TestDecodeECS(t *testing.T) {
	for _, c := range append(append([]ecsCase{}, malformedECS...), wellFormedECS...) {
		if _, _, _, got := udpfast.DecodeECS(ecsData(c)); got != c.fault {
			t.Errorf("%s: %v, want %v", c.name, got, c.fault)
		}
	}
	family, source, addr, fault := udpfast.DecodeECS([]byte{0, 2, 31, 0, 0x2a, 0, 0x14, 0x50})
	if family != 2 || source != 31 || addr != netip.MustParseAddr("2a00:1450::") || fault != udpfast.ECSWellFormed {
		t.Errorf("IPv6 /31: %d %d %v %v", family, source, addr, fault)
	}
}

// TestScreenECS checks that screenECS rewrites exactly the malformed ECS
// options, into one miekg/dns decodes, and leaves the message it read as
// it was.
func TestScreenECS(t *testing.T) {
	for _, nq := range malformedQueries("www.geo.test.") {
		m := nq.m
		p, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		orig := append([]byte(nil), p...)
		got := screenECS(p)
		if !bytes.Equal(p, orig) {
			t.Fatalf("%v: the message read was modified", m.IsEdns0())
		}
		var r dns.Msg
		if err := r.Unpack(got); err != nil {
			t.Fatalf("%v: rewritten to what miekg/dns cannot decode: %v", m.IsEdns0(), err)
		}
		if _, ok := parseECS(&r); ok {
			t.Errorf("%v: rewritten to %v, which parseECS accepts", m.IsEdns0(), r.IsEdns0())
		}
		if r.Question[0] != m.Question[0] || r.IsEdns0().Do() != m.IsEdns0().Do() {
			t.Errorf("%v: rewritten to %v", m, &r)
		}
	}
	var packets [][]byte
	for _, c := range wellFormedECS {
		p, _ := query("www.geo.test.", dns.TypeA, c.opt, withOption(&dns.EDNS0_NSID{Code: dns.EDNS0NSID})).Pack()
		packets = append(packets, p)
	}
	valid, _ := query("www.geo.test.", dns.TypeA, rawECS(1, 24, 0, 81, 2, 69)).Pack()
	packets = append(packets, nil, valid[:len(valid)-1], valid[:12], append(append([]byte{}, valid[:12]...), 0xc0))
	for _, p := range packets {
		if got := screenECS(p); !bytes.Equal(got, p) || len(p) > 0 && &got[0] != &p[0] {
			t.Errorf("%x: rewritten to %x", p, got)
		}
	}
}

// checkFormErr checks that reply is the FORMERR a malformed ECS option
// gets: a response to the query, with its question, no records, and an OPT
// record (RFC 6891 §7) of ours without ECS.
func checkFormErr(t *testing.T, s *Server, nq namedQuery, reply []byte) {
	t.Helper()
	q := nq.m
	var r dns.Msg
	if err := r.Unpack(reply); err != nil {
		t.Fatalf("%s: reply %x: %v", nq.name, reply, err)
	}
	opt := r.IsEdns0()
	switch {
	case !r.Response || r.Id != q.Id || r.Opcode != dns.OpcodeQuery || r.Rcode != dns.RcodeFormatError:
		t.Errorf("%s: not a FORMERR response to the query: %s", nq.name, summary(&r))
	case len(r.Question) != 1 || r.Question[0] != q.Question[0]:
		t.Errorf("%s: question %v, want %v", nq.name, r.Question, q.Question)
	case len(r.Answer) != 0 || len(r.Ns) != 0 || len(r.Extra) != 1 || opt == nil:
		t.Errorf("%s: want only an OPT record: %s", nq.name, summary(&r))
	case opt.Version() != 0 || opt.UDPSize() != s.cfg.UDPSize || opt.Do() != q.IsEdns0().Do():
		t.Errorf("%s: OPT %v", nq.name, opt)
	default:
		for _, o := range opt.Option {
			if o.Option() == dns.EDNS0SUBNET {
				t.Errorf("%s: the FORMERR echoes ECS %v", nq.name, o)
			}
		}
	}
}

// summary is a reply in one line.
func summary(r *dns.Msg) string {
	opt := "no OPT"
	if o := r.IsEdns0(); o != nil {
		opt = "OPT"
		for _, e := range o.Option {
			opt += " " + e.String()
		}
	}
	return fmt.Sprintf("%s, %d questions, %d answers, %d authority, %d additional, %s",
		dns.RcodeToString[r.Rcode], len(r.Question), len(r.Answer), len(r.Ns), len(r.Extra), opt)
}

// checkEchoed checks that reply answers q, not with FORMERR, and ends with
// q's ECS option as sent, but for its SCOPE.
func checkEchoed(t *testing.T, q *dns.Msg, data, reply []byte) {
	t.Helper()
	var r dns.Msg
	if err := r.Unpack(reply); err != nil || r.Rcode == dns.RcodeFormatError || r.Id != q.Id {
		t.Fatalf("%v: reply %v (%v)", q.IsEdns0(), &r, err)
	}
	want := append([]byte{0, dns.EDNS0SUBNET, 0, byte(len(data))}, data...)
	if len(reply) < len(want) {
		t.Fatalf("%v: reply %x ends without it", q.IsEdns0(), reply)
	}
	got := append([]byte(nil), reply[len(reply)-len(want):]...)
	got[4+3] = 0 // SCOPE
	if !bytes.Equal(got, want) {
		t.Errorf("%v: reply ends with %x, want the option as sent, %x", q.IsEdns0(), got, want)
	}
}

// TestMalformedECSGetsFormErr sends each malformed option through the
// fast path and the general path, as a reader would: the fast path must
// not answer it, even after learning the well-formed shape of the same
// name, and the general path must answer FORMERR. Well-formed options are
// answered by both alike.
func TestMalformedECSGetsFormErr(t *testing.T) {
	s := newGeoServer(t)
	s.SetZones(loadMergedZones(t))
	f := newFastPath(s)
	for _, name := range []string{"www.geo.test.", "www.example.test.", "nope.example.test.", "elsewhere.invalid."} {
		for _, c := range wellFormedECS {
			m := query(name, dns.TypeA, c.opt)
			vs := variants(t, m)
			checkSame(t, s, f, vs, fastSrc)
			checkSame(t, s, f, vs, fastSrc)
			checkEchoed(t, m, ecsData(c), generalUDP(s, vs[0], fastSrc))
		}
		for _, nq := range malformedQueries(name) {
			p, err := nq.m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			checkFormErr(t, s, nq, generalUDP(s, p, fastSrc))
			for range 2 {
				reply, fast, handedOff := fastUDP(t, f, p, fastSrc)
				if fast {
					t.Errorf("%s: answered by the fast path", nq.name)
				}
				if !handedOff {
					checkFormErr(t, s, nq, reply)
				}
			}
		}
	}
}

// rawExchange sends packet to addr over proto and returns the reply's
// bytes as received.
func rawExchange(t *testing.T, proto, addr string, packet []byte) []byte {
	t.Helper()
	conn, err := net.DialTimeout(proto, addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if proto == "udp" {
		if _, err := conn.Write(packet); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, dns.MaxMsgSize)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("%s: no reply to %x: %v", proto, packet, err)
		}
		return buf[:n]
	}
	if _, err := conn.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(packet))), packet...)); err != nil {
		t.Fatal(err)
	}
	var n [2]byte
	if _, err := io.ReadFull(conn, n[:]); err != nil {
		t.Fatalf("%s: no reply to %x: %v", proto, packet, err)
	}
	buf := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		t.Fatal(err)
	}
	return buf
}

// TestMalformedECSOverUDPAndTCP runs a server and sends it every malformed
// option, and the well-formed ones, over UDP (the fast path's readers,
// where the platform has them, and miekg/dns) and TCP (miekg/dns).
func TestMalformedECSOverUDPAndTCP(t *testing.T) {
	s := newGeoServer(t)
	addr := startServer(t, s)[0]
	protos := []string{"udp", "tcp"}
	for _, proto := range protos {
		for _, nq := range malformedQueries("www.geo.test.") {
			p, err := nq.m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			checkFormErr(t, s, nq, rawExchange(t, proto, addr, p))
		}
	}
	// A malformed option neither placed the client nor was ignored.
	for _, label := range []string{"used", "ignored"} {
		if n := testutilCounter(t, s.metrics.ecs.WithLabelValues(label)); n != 0 {
			t.Errorf("ecs_requests_total{ecs=%q} = %v after malformed options only", label, n)
		}
	}
	for _, proto := range protos {
		for _, c := range wellFormedECS {
			m := query("www.geo.test.", dns.TypeA, c.opt)
			p, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			// Twice: the fast path answers the second itself.
			checkEchoed(t, m, ecsData(c), rawExchange(t, proto, addr, p))
			checkEchoed(t, m, ecsData(c), rawExchange(t, proto, addr, p))
		}
	}
}
