package dnswire

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// FuzzParse feeds arbitrary bytes to Parse, the parser of replies from the
// servers under test. It must never panic, and on a message that both it
// and miekg/dns accept, the header fields must agree.
func FuzzParse(f *testing.F) {
	// A query for www with ECS, as the load generator sends it.
	q, _ := Append(nil, 7, Query{Name: "www.example.test.", Type: TypeA, EDNS: true, ECS: netip.MustParsePrefix("203.0.113.0/24")})
	f.Add(q)
	// A compressed reply: one A answer, an SOA, an OPT with ECS scope 24.
	f.Add([]byte("\x10\x92\x84\x00\x00\x01\x00\x01\x00\x01\x00\x01\x03www\x07example\x04test\x00\x00\x01\x00\x01" +
		"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x1e\x00\x04\xc0\x00\x02\x0a" +
		"\xc0\x10\x00\x06\x00\x01\x00\x00\x00\x3c\x00\x16\x03ns1\xc0\x10\x0ahostmaster\xc0\x10\x00\x00\x00\x01" +
		"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x0b\x00\x08\x00\x07\x00\x01\x18\x18\xcb\x00\x71"))
	// NXDOMAIN with an extended rcode byte in the OPT TTL.
	f.Add([]byte("\x00\x01\x84\x03\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x29\x04\xd0\x01\x00\x00\x00\x00\x00"))
	// A pointer loop in the question name.
	f.Add([]byte("\x00\x01\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"))
	// An OPT option whose length runs past the RDATA.
	f.Add([]byte("\x00\x01\x80\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x04\x00\x08\x00\x09"))
	// Empty input.
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		r, err := Parse(msg)
		id, qr, rcode, ok := Header(msg)
		if ok != (len(msg) >= 12) {
			t.Fatalf("Header ok=%v for %d bytes", ok, len(msg))
		}
		if err != nil {
			return
		}
		if r.ID != id || r.QR != qr || r.Rcode&0xf != rcode {
			t.Fatalf("Parse %+v disagrees with Header %d %v %d", r, id, qr, rcode)
		}
		if r.HasECS && !r.HasOPT {
			t.Fatal("ECS without OPT")
		}
		var m dns.Msg
		if m.Unpack(msg) != nil {
			return
		}
		if m.Id != r.ID || m.Response != r.QR || m.Truncated != r.TC || len(m.Answer) != r.ANCount {
			t.Fatalf("miekg/dns reads %+v, Parse %+v", m.MsgHdr, r)
		}
	})
}
