package dnsserver

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
)

// clientSubnet is the EDNS Client Subnet option of a query (RFC 7871) as
// far as answering needs it. miekg/dns decodes the option without
// checking its ADDRESS length and refuses some malformed options with a
// FORMERR of its own, without OPT; screenECS rewrites every malformed one
// before miekg/dns decodes it, so that parseECS sees them all.
type clientSubnet struct {
	present bool
	family  uint16
	source  uint8
	prefix  netip.Prefix // the client network; invalid for family 0
	raw     net.IP       // the address as received, echoed back
}

// parseECS finds the ECS option. It reports false when the query must get
// FORMERR: more than one ECS option, a non-zero SCOPE PREFIX-LENGTH (which
// is also how screenECS marks the faults miekg/dns cannot see, see
// ecsMalformed), or ADDRESS bits set beyond SOURCE PREFIX-LENGTH in an
// option built in process.
func parseECS(req *dns.Msg) (clientSubnet, bool) {
	var cs clientSubnet
	opt := req.IsEdns0()
	if opt == nil {
		return cs, true
	}
	for _, o := range opt.Option {
		e, ok := o.(*dns.EDNS0_SUBNET)
		if !ok {
			continue
		}
		if cs.present {
			return cs, false
		}
		cs = clientSubnet{present: true, family: e.Family, source: e.SourceNetmask, raw: e.Address}
		if e.SourceScope != 0 {
			return cs, false // a query's SCOPE must be 0 (RFC 7871 §6)
		}
		var addr netip.Addr
		switch e.Family {
		case 1:
			a, ok := netip.AddrFromSlice(e.Address.To4())
			if !ok {
				return cs, false
			}
			addr = a
		case 2:
			a, ok := netip.AddrFromSlice(e.Address.To16())
			if !ok {
				return cs, false
			}
			addr = a
		default: // family 0 with source 0: "no information" (RFC 7871 §7.1.2)
			continue
		}
		p := netip.PrefixFrom(addr, int(e.SourceNetmask))
		if !p.IsValid() || p.Masked().Addr() != addr {
			return cs, false
		}
		cs.prefix = p
	}
	return cs, true
}

// usable reports whether the subnet can stand for the client: it says
// something (SOURCE PREFIX-LENGTH above 0) about a public network. For a
// private or special network the answer falls back to the query's source
// address (RFC 7871 §11.3), scoped to that subnet (see request.ecsScope).
func (cs clientSubnet) usable() bool {
	if !cs.present || !cs.prefix.IsValid() || cs.source == 0 {
		return false
	}
	return udpfast.PublicAddr(cs.prefix.Addr())
}

// reply is the option to echo with the given SCOPE PREFIX-LENGTH.
func (cs clientSubnet) reply(scope int) *dns.EDNS0_SUBNET {
	return &dns.EDNS0_SUBNET{
		Code:          dns.EDNS0SUBNET,
		Family:        cs.family,
		SourceNetmask: cs.source,
		SourceScope:   uint8(scope),
		Address:       cs.raw,
	}
}

// ecsMalformed replaces a malformed ECS option, OPTION-CODE and
// OPTION-LENGTH included: FAMILY 0, SOURCE 0, SCOPE 255. miekg/dns decodes
// it without error whatever the fault was, and parseECS answers it with
// FORMERR for its SCOPE, as it would any query's non-zero SCOPE: a
// malformed option stays malformed, so no well-formed query can be taken
// for one.
var ecsMalformed = [8]byte{0, dns.EDNS0SUBNET, 0, 4, 0, 0, 0, 255}

// screenECS returns the message m with every malformed ECS option of its
// first OPT record replaced by ecsMalformed, or m itself when there is
// none. It is the general path's view of the wire, which miekg/dns's
// decoder hides: that decoder pads or cuts an ADDRESS to its family's size,
// so that a wrong length would go unseen, and it refuses an unknown FAMILY
// or a SOURCE or SCOPE longer than the family's addresses with a FORMERR
// of its own, which has no OPT record (RFC 6891 §7 wants one). m is not
// modified: miekg/dns may verify a TSIG over it. A message it cannot walk
// is returned as it is, for miekg/dns to judge.
func screenECS(m []byte) []byte {
	rd, ok := firstOPT(m)
	if !ok {
		return m
	}
	end := rd + int(binary.BigEndian.Uint16(m[rd-2:]))
	var out []byte // nil until the first malformed option: m then goes back as it is
	for off := rd; off < end; {
		if off+4 > end {
			return m
		}
		code, n := binary.BigEndian.Uint16(m[off:]), int(binary.BigEndian.Uint16(m[off+2:]))
		if off+4+n > end {
			return m
		}
		opt := m[off : off+4+n]
		if code == dns.EDNS0SUBNET {
			if _, _, _, fault := udpfast.DecodeECS(opt[4:]); fault != udpfast.ECSWellFormed {
				if out == nil {
					out = append(make([]byte, 0, len(m)+len(ecsMalformed)), m[:off]...)
				}
				opt = ecsMalformed[:]
			}
		}
		if out != nil {
			out = append(out, opt...)
		}
		off += 4 + n
	}
	if out == nil {
		return m
	}
	rdlen := len(out) - rd
	if rdlen > 0xffff {
		return m
	}
	binary.BigEndian.PutUint16(out[rd-2:], uint16(rdlen))
	return append(out, m[end:]...)
}

// firstOPT finds the first OPT record of the additional section of m and
// returns the offset of its RDATA, which its RDLENGTH precedes.
func firstOPT(m []byte) (int, bool) {
	if len(m) < 12 {
		return 0, false
	}
	qd := int(binary.BigEndian.Uint16(m[4:]))
	an, ns := int(binary.BigEndian.Uint16(m[6:])), int(binary.BigEndian.Uint16(m[8:]))
	ar := int(binary.BigEndian.Uint16(m[10:]))
	off := 12
	var ok bool
	for range qd {
		if off, ok = skipName(m, off); !ok || off+4 > len(m) {
			return 0, false
		}
		off += 4
	}
	for i := range an + ns + ar {
		if off, ok = skipName(m, off); !ok || off+10 > len(m) {
			return 0, false
		}
		rd := off + 10
		end := rd + int(binary.BigEndian.Uint16(m[off+8:]))
		if end > len(m) {
			return 0, false
		}
		if i >= an+ns && binary.BigEndian.Uint16(m[off:]) == dns.TypeOPT {
			return rd, true
		}
		off = end
	}
	return 0, false
}

// skipName returns the offset after the name at off in m. A compression
// pointer ends a name; where it points does not matter here.
func skipName(m []byte, off int) (int, bool) {
	for off < len(m) {
		n := int(m[off])
		switch {
		case n == 0:
			return off + 1, true
		case n&0xc0 == 0xc0:
			return off + 2, off+2 <= len(m)
		case n&0xc0 != 0:
			return 0, false
		}
		off += 1 + n
	}
	return 0, false
}
