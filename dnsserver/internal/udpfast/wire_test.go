package udpfast

import (
	"bytes"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// packQuery packs a query for name and qtype, changed by each of mods.
func packQuery(t testing.TB, name string, qtype uint16, mods ...func(*dns.Msg)) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0x1234
	for _, mod := range mods {
		mod(m)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func edns(size uint16, do bool) func(*dns.Msg) {
	return func(m *dns.Msg) { m.SetEdns0(size, do) }
}

func option(o dns.EDNS0) func(*dns.Msg) {
	return func(m *dns.Msg) {
		if m.IsEdns0() == nil {
			m.SetEdns0(1232, false)
		}
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, o)
	}
}

func ecs(family uint16, source, scope uint8, addr ...byte) func(*dns.Msg) {
	data := append([]byte{byte(family >> 8), byte(family), source, scope}, addr...)
	return option(&dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: data})
}

// TestParseWire: parseWire takes exactly the plain shapes (the package
// doc's first invariant) and refuses everything that could change
// a reply's bytes beyond what the fast path patches.
func TestParseWire(t *testing.T) {
	tests := []struct {
		name   string
		packet []byte
		ok     bool
	}{
		{"plain A", packQuery(t, "www.example.test.", dns.TypeA), true},
		{"root", packQuery(t, ".", dns.TypeNS), true},
		{"EDNS with DO", packQuery(t, "www.example.test.", dns.TypeA, edns(4096, true)), true},
		{"ECS IPv4 /24", packQuery(t, "www.example.test.", dns.TypeA, ecs(1, 24, 0, 81, 2, 69)), true},
		{"ECS IPv6 /48", packQuery(t, "www.example.test.", dns.TypeA, ecs(2, 48, 0, 0x2a, 0, 0x14, 0x50, 0, 1)), true},
		{"NSID, COOKIE and PADDING", packQuery(t, "www.example.test.", dns.TypeA, option(&dns.EDNS0_NSID{Code: dns.EDNS0NSID}),
			option(&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}),
			option(&dns.EDNS0_PADDING{Padding: make([]byte, 8)})), true},
		{"response", packQuery(t, "www.example.test.", dns.TypeA, func(m *dns.Msg) { m.Response = true }), false},
		{"NOTIFY", packQuery(t, "www.example.test.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), false},
		{"class CH", packQuery(t, "version.bind.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), false},
		{"AXFR", packQuery(t, "example.test.", dns.TypeAXFR), false},
		{"two questions", packQuery(t, "www.example.test.", dns.TypeA, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), false},
		{"EDNS version 1", packQuery(t, "www.example.test.", dns.TypeA, edns(1232, false), func(m *dns.Msg) { m.IsEdns0().SetVersion(1) }), false},
		{"unknown option", packQuery(t, "www.example.test.", dns.TypeA, option(&dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1}})), false},
		{"two ECS", packQuery(t, "www.example.test.", dns.TypeA, ecs(1, 24, 0, 81, 2, 69), ecs(1, 24, 0, 81, 2, 70)), false},
		{"ECS with host bits", packQuery(t, "www.example.test.", dns.TypeA, ecs(1, 20, 0, 81, 2, 69)), false},
		{"ECS FAMILY 0", packQuery(t, "www.example.test.", dns.TypeA, ecs(0, 0, 0)), false},
		{"name needing an escape", packQuery(t, `w\.w.example.test.`, dns.TypeA), false},
		{"compression pointer", []byte{0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}, false},
		{"trailing byte", append(packQuery(t, "www.example.test.", dns.TypeA), 0), false},
		{"truncated", packQuery(t, "www.example.test.", dns.TypeA)[:20], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var q wireQuery
			if got := parseWire(tc.packet, &q); got != tc.ok {
				t.Fatalf("parseWire = %v, want %v", got, tc.ok)
			}
		})
	}
}

// TestParseWireKey: queries that differ only where the fast path patches
// (ID, case of the name, ECS ADDRESS) share a key, as long as as many of
// the name's last labels are in lower case (the compression of the reply
// depends on that); anything else that shapes the reply gives another
// key.
func TestParseWireKey(t *testing.T) {
	key := func(p []byte) string {
		t.Helper()
		var q wireQuery
		if !parseWire(p, &q) {
			t.Fatalf("parseWire refused %x", p)
		}
		return string(q.key[:q.keyLen])
	}
	base := packQuery(t, "Www.example.test.", dns.TypeA, ecs(1, 24, 0, 81, 2, 69))
	same := [][]byte{
		packQuery(t, "Www.example.test.", dns.TypeA, ecs(1, 24, 0, 81, 2, 69), func(m *dns.Msg) { m.Id = 7 }),
		packQuery(t, "WWW.example.test.", dns.TypeA, ecs(1, 24, 0, 81, 2, 69)),
		packQuery(t, "Www.example.test.", dns.TypeA, ecs(1, 24, 0, 24, 48, 1)),
	}
	other := [][]byte{
		packQuery(t, "www.example.test.", dns.TypeA, ecs(1, 24, 0, 81, 2, 69)), // more lower-case last labels
		packQuery(t, "www.example.TEST.", dns.TypeA, ecs(1, 24, 0, 81, 2, 69)), // fewer
		packQuery(t, "Www.example.test.", dns.TypeAAAA, ecs(1, 24, 0, 81, 2, 69)),
		packQuery(t, "Www.example.test.", dns.TypeA, ecs(1, 22, 0, 81, 2, 68)),
		packQuery(t, "Www.example.test.", dns.TypeA, ecs(2, 24, 0, 0x2a, 0, 0x14)),
		packQuery(t, "Www.example.test.", dns.TypeA, ecs(1, 24, 0, 81, 2, 69), func(m *dns.Msg) { m.RecursionDesired = false }),
		packQuery(t, "Www.example.test.", dns.TypeA, ecs(1, 24, 0, 81, 2, 69), func(m *dns.Msg) { m.CheckingDisabled = true }),
		packQuery(t, "Www.example.test.", dns.TypeA, ecs(1, 24, 0, 81, 2, 69), func(m *dns.Msg) { m.IsEdns0().SetDo() }),
		packQuery(t, "Www.example.test.", dns.TypeA, edns(1232, false)),
		packQuery(t, "Www.example.test.", dns.TypeA),
		packQuery(t, "Www2.example.test.", dns.TypeA, ecs(1, 24, 0, 81, 2, 69)),
	}
	want := key(base)
	for _, p := range same {
		if got := key(p); got != want {
			t.Errorf("%x: key %x, want the base query's %x", p, got, want)
		}
	}
	for _, p := range other {
		if got := key(p); got == want {
			t.Errorf("%x: the base query's key, want another", p)
		}
	}
}

// FuzzParseWire: parseWire never panics, accepts only what miekg/dns
// decodes to the same question, and reads the ECS ADDRESS where the packet
// holds it. dnsserver's FuzzFastPath compares whole replies with the
// general path.
func FuzzParseWire(f *testing.F) {
	f.Add(packQuery(f, "www.example.test.", dns.TypeA))                              // plain
	f.Add(packQuery(f, "WwW.example.test.", dns.TypeAAAA, edns(1232, true)))         // 0x20 case, DO
	f.Add(packQuery(f, "www.example.test.", dns.TypeA, ecs(1, 24, 0, 81, 2, 69)))    // ECS
	f.Add(packQuery(f, "www.example.test.", dns.TypeA, ecs(1, 24, 0, 81, 2, 69, 0))) // ECS ADDRESS too long
	f.Add([]byte{0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1})  // compression pointer
	f.Fuzz(func(t *testing.T, packet []byte) {
		var q wireQuery
		if !parseWire(packet, &q) {
			return
		}
		var m dns.Msg
		if err := m.Unpack(packet); err != nil {
			t.Fatalf("parseWire took what miekg/dns refuses: %v", err)
		}
		if len(m.Question) != 1 || m.Question[0].Qtype != q.qtype || m.Id != q.id {
			t.Fatalf("parseWire read %d/%d, miekg/dns %v", q.id, q.qtype, m.Question)
		}
		if !bytes.EqualFold([]byte(m.Question[0].Name), []byte(dns.Fqdn(string(nameOf(packet[12:q.nameEnd]))))) {
			t.Fatalf("name %q, miekg/dns %q", nameOf(packet[12:q.nameEnd]), m.Question[0].Name)
		}
		if q.ecs {
			var sub *dns.EDNS0_SUBNET
			for _, o := range m.IsEdns0().Option {
				if e, ok := o.(*dns.EDNS0_SUBNET); ok {
					sub = e
				}
			}
			if sub == nil || sub.SourceNetmask != q.ecsSource {
				t.Fatalf("ECS /%d, miekg/dns %v", q.ecsSource, sub)
			}
			raw := packet[q.ecsRaw : q.ecsRaw+q.ecsRawLen]
			if !net.IP(sub.Address).Equal(net.IP(q.ecsAddr.AsSlice())) || len(raw) != (int(q.ecsSource)+7)/8 {
				t.Fatalf("ECS address %v (%x), miekg/dns %v", q.ecsAddr, raw, sub.Address)
			}
		}
	})
}

// nameOf is a wire-form name without compression in presentation form.
func nameOf(b []byte) string {
	var s []byte
	for len(b) > 0 && b[0] != 0 {
		n := int(b[0])
		s = append(append(s, b[1:1+n]...), '.')
		b = b[1+n:]
	}
	if len(s) == 0 {
		return "."
	}
	return string(s)
}
