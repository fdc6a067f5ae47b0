package dnswire

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// TestAppendUnpacks builds queries and reads them back with miekg/dns.
func TestAppendUnpacks(t *testing.T) {
	cases := []struct {
		name string
		q    Query
	}{
		{"plain", Query{Name: "static.example.test.", Type: TypeA}},
		{"edns", Query{Name: "www.example.test.", Type: TypeA, EDNS: true}},
		{"ecs v4 /24", Query{Name: "www.example.test.", Type: TypeA, EDNS: true, ECS: netip.MustParsePrefix("203.0.113.0/24")}},
		{"ecs v4 /19", Query{Name: "www.example.test.", Type: TypeA, EDNS: true, ECS: netip.MustParsePrefix("198.18.32.0/19")}},
		{"ecs v4 host bits masked", Query{Name: "www.example.test", Type: TypeA, ECS: netip.MustParsePrefix("203.0.113.77/24")}},
		{"ecs v6 /56", Query{Name: "www.example.test.", Type: TypeAAAA, EDNS: true, ECS: netip.MustParsePrefix("2001:db8:1:200::/56")}},
		{"ecs /0", Query{Name: "x.example.test.", Type: TypeA, EDNS: true, ECS: netip.MustParsePrefix("0.0.0.0/0")}},
		{"root", Query{Name: ".", Type: TypeNS}},
		{"do", Query{Name: "www.example.test.", Type: TypeA, EDNS: true, DO: true}},
		{"do ecs", Query{Name: "www.example.test.", Type: TypeA, EDNS: true, DO: true, ECS: netip.MustParsePrefix("203.0.113.0/24")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pkt, err := Append(nil, 0xbeef, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			var m dns.Msg
			if err := m.Unpack(pkt); err != nil {
				t.Fatalf("miekg/dns cannot unpack %x: %v", pkt, err)
			}
			if m.Id != 0xbeef || m.Response || m.RecursionDesired || len(m.Question) != 1 {
				t.Fatalf("header: %+v", m.MsgHdr)
			}
			if got, want := m.Question[0].Name, dns.Fqdn(tc.q.Name); got != want {
				t.Errorf("qname %q, want %q", got, want)
			}
			if m.Question[0].Qtype != tc.q.Type || m.Question[0].Qclass != dns.ClassINET {
				t.Errorf("question %v", m.Question[0])
			}
			opt := m.IsEdns0()
			if (opt != nil) != (tc.q.EDNS || tc.q.ECS.IsValid()) {
				t.Fatalf("OPT %v, EDNS %v ECS %v", opt, tc.q.EDNS, tc.q.ECS)
			}
			if opt == nil {
				return
			}
			if opt.UDPSize() != UDPSize || opt.Version() != 0 || opt.Do() != tc.q.DO {
				t.Errorf("OPT %v, DO %v", opt, tc.q.DO)
			}
			var ecs *dns.EDNS0_SUBNET
			for _, o := range opt.Option {
				if e, ok := o.(*dns.EDNS0_SUBNET); ok {
					ecs = e
				}
			}
			if !tc.q.ECS.IsValid() {
				if ecs != nil {
					t.Errorf("unexpected ECS %v", ecs)
				}
				return
			}
			if ecs == nil {
				t.Fatal("no ECS option")
			}
			want := tc.q.ECS.Masked()
			got, _ := netip.AddrFromSlice(ecs.Address)
			if int(ecs.SourceNetmask) != want.Bits() || ecs.SourceScope != 0 || got.Unmap() != want.Addr() {
				t.Errorf("ECS %v, want %v", ecs, want)
			}
		})
	}
}

func TestAppendBadName(t *testing.T) {
	for _, name := range []string{"a..b.", string(make([]byte, 64)) + ".test.", ".x."} {
		if _, err := Append(nil, 1, Query{Name: name, Type: TypeA}); !errors.Is(err, ErrName) {
			t.Errorf("%q: err %v, want ErrName", name, err)
		}
	}
}

// reply packs a reply to q with miekg/dns.
func reply(t *testing.T, rcode int, answers []dns.RR, ecsScope int, ext bool) []byte {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion("www.example.test.", dns.TypeA)
	q.Id = 4242
	m := new(dns.Msg)
	m.SetRcode(q, rcode)
	m.Authoritative = true
	m.Compress = true
	m.Answer = answers
	m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns: "ns1.example.test.", Mbox: "hostmaster.example.test.", Serial: 1, Minttl: 60}}
	if ecsScope >= 0 || ext {
		m.SetEdns0(1232, false)
		if ecsScope >= 0 {
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
				SourceNetmask: 24, SourceScope: uint8(ecsScope), Address: net.IPv4(203, 0, 113, 0).To4()})
		}
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	a := func(s string) dns.RR { rr, _ := dns.NewRR("www.example.test. 30 IN A " + s); return rr }
	aaaa := func(s string) dns.RR { rr, _ := dns.NewRR("www.example.test. 30 IN AAAA " + s); return rr }
	cname := func(s string) dns.RR { rr, _ := dns.NewRR("www.example.test. 30 IN CNAME " + s); return rr }
	cases := []struct {
		name    string
		pkt     []byte
		rcode   int
		answers int
		addr    string
		opt     bool
		ecs     bool
		scope   int
	}{
		{"A with ECS scope 24", reply(t, dns.RcodeSuccess, []dns.RR{a("192.0.2.10")}, 24, false), 0, 1, "192.0.2.10", true, true, 24},
		{"two A, first wins", reply(t, dns.RcodeSuccess, []dns.RR{a("192.0.2.20"), a("192.0.2.10")}, -1, true), 0, 2, "192.0.2.20", true, false, 0},
		{"CNAME then A", reply(t, dns.RcodeSuccess, []dns.RR{cname("x.example.test."), a("192.0.2.30")}, 0, false), 0, 2, "192.0.2.30", true, true, 0},
		{"AAAA", reply(t, dns.RcodeSuccess, []dns.RR{aaaa("2001:db8::10")}, -1, false), 0, 1, "2001:db8::10", false, false, 0},
		{"NXDOMAIN", reply(t, dns.RcodeNameError, nil, 0, false), 3, 0, "", true, true, 0},
		{"REFUSED no OPT", reply(t, dns.RcodeRefused, nil, -1, false), 5, 0, "", false, false, 0},
		{"BADVERS (extended)", reply(t, dns.RcodeBadVers, nil, -1, true), 16, 0, "", true, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse(tc.pkt)
			if err != nil {
				t.Fatal(err)
			}
			if r.ID != 4242 || !r.QR || !r.AA || r.QDCount != 1 {
				t.Errorf("header %+v", r)
			}
			if r.Rcode != tc.rcode || r.ANCount != tc.answers || r.HasOPT != tc.opt || r.HasECS != tc.ecs || r.Scope != tc.scope {
				t.Errorf("got %+v", r)
			}
			want := netip.Addr{}
			if tc.addr != "" {
				want = netip.MustParseAddr(tc.addr)
			}
			if r.Addr != want {
				t.Errorf("addr %v, want %v", r.Addr, want)
			}
			id, qr, rcode, ok := Header(tc.pkt)
			if !ok || id != 4242 || !qr || rcode != tc.rcode&0xf {
				t.Errorf("Header: %d %v %d %v", id, qr, rcode, ok)
			}
			// Every truncation of a good reply is an error or a shorter
			// parse, never a panic.
			for i := range tc.pkt {
				_, _ = Parse(tc.pkt[:i])
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	good := reply(t, dns.RcodeSuccess, nil, 24, false)
	cases := map[string][]byte{
		"short header":      good[:11],
		"qdcount past end":  append([]byte{0, 1, 0x80, 0, 0, 9, 0, 0, 0, 0, 0, 0}, 0),
		"label type 0x40":   {0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 1, 0, 1},
		"rdlength past end": {0, 1, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 9, 1, 2},
	}
	for name, pkt := range cases {
		if _, err := Parse(pkt); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRcodeNames(t *testing.T) {
	for _, n := range []string{"NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"} {
		r, ok := RcodeByName(n)
		if !ok || RcodeName(r) != n {
			t.Errorf("%s: %d %v %s", n, r, ok, RcodeName(r))
		}
	}
	if RcodeName(12) != "RCODE12" {
		t.Error(RcodeName(12))
	}
}

func TestQueryLines(t *testing.T) {
	qs := []Query{
		{Name: "www.example.test.", Type: TypeA, EDNS: true, ECS: netip.MustParsePrefix("203.0.113.0/24")},
		{Name: "static.example.test.", Type: TypeA, EDNS: true},
		{Name: "nx-1.example.test.", Type: TypeAAAA, Rcode: 3},
		{Name: "www.example.test.", Type: TypeA, EDNS: true, DO: true, ECS: netip.MustParsePrefix("203.0.113.0/24")},
		{Name: "0123456789abcdef.example.test.", Type: TypeA, EDNS: true, DO: true, Random: true},
		{Name: "0123456789abcdef.example.test.", Type: TypeA, Random: true, Rcode: 3},
	}
	for _, q := range qs {
		line := FormatQuery(q)
		got, err := ParseQuery(line)
		if err != nil || got != q {
			t.Errorf("%q: %+v %v, want %+v", line, got, err, q)
		}
	}
	for _, bad := range []string{"", "www A - NOERROR extra", "www TXT - NOERROR", "www A 1.2.3.0/33 NOERROR",
		"www A - WHAT", "www A 1.2.3.0/24 NOERROR noedns", "a..b A - NOERROR",
		"www A - NOERROR noedns do", "www A - NOERROR do noedns", "www A - NOERROR do do", "www A - NOERROR random do",
		"0123456789abcdef.example.test. A - NOERROR random random", "0123456789abcde.example.test. A - NOERROR random"} {
		if _, err := ParseQuery(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestRandomLabel checks that every send of a random query asks for a new
// name of the same shape, which miekg/dns reads back.
func TestRandomLabel(t *testing.T) {
	q := Query{Name: "0123456789abcdefgh.example.test.", Type: TypeA, EDNS: true, DO: true, Random: true}
	pkt, err := Append(nil, 1, q)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range []struct {
		salt uint32
		n    uint64
		want string
	}{
		{0, 0, "000000000000000000.example.test."},
		{0xdeadbeef, 1, "deadbeef0000000001.example.test."},
		{0xdeadbeef, 0xfedcba9876, "deadbeeffedcba9876.example.test."},
		{1, 0xffffffffff, "00000001ffffffffff.example.test."},
	} {
		RandomLabel(pkt, c.salt, c.n)
		var m dns.Msg
		if err := m.Unpack(pkt); err != nil {
			t.Fatalf("salt %x n %x: %v", c.salt, c.n, err)
		}
		name := m.Question[0].Name
		if name != c.want || !m.IsEdns0().Do() {
			t.Errorf("salt %x n %x: %s, DO %v; want %s", c.salt, c.n, name, m.IsEdns0().Do(), c.want)
		}
		if seen[name] {
			t.Errorf("salt %x n %x: %s twice", c.salt, c.n, name)
		}
		seen[name] = true
	}
	if got := testing.AllocsPerRun(100, func() { RandomLabel(pkt, 7, 9) }); got != 0 {
		t.Errorf("RandomLabel allocates %v times", got)
	}
}
