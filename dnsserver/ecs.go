package dnsserver

import (
	"net"
	"net/netip"

	"github.com/miekg/dns"
)

// clientSubnet is the EDNS Client Subnet option of a query (RFC 7871) as
// far as answering needs it. miekg/dns rejects an unknown FAMILY or a
// SOURCE PREFIX-LENGTH beyond the address size while decoding, so the
// server answers those with FORMERR before ServeDNS runs.
type clientSubnet struct {
	present bool
	family  uint16
	source  uint8
	prefix  netip.Prefix // the client network; invalid for family 0
	raw     net.IP       // the address as received, echoed back
}

// parseECS finds the ECS option. It reports false when the option is
// malformed in a way RFC 7871 §7.2.1 answers with FORMERR: ADDRESS bits set
// beyond SOURCE PREFIX-LENGTH, or more than one ECS option.
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
	return publicAddr(cs.prefix.Addr())
}

// cgnat is the shared address space of RFC 6598, private in all but name.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func publicAddr(a netip.Addr) bool {
	return a.IsGlobalUnicast() && !a.IsPrivate() && !cgnat.Contains(a)
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
