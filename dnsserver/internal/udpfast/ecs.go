package udpfast

import (
	"encoding/binary"
	"net/netip"
)

// The rules of EDNS Client Subnet (RFC 7871) that both paths apply to the
// wire: dnsserver's screen in front of miekg/dns's decoder and its
// answers, and this package's parser and patches. One copy, so that the
// two paths cannot judge an option or scope a reply differently.

// ECSFault is what makes a query's ECS option malformed. RFC 7871 §6 asks
// for FORMERR for each: a server that answered anyway would echo an
// option other than the one received, which §7.2.1 forbids.
type ECSFault uint8

const (
	ECSWellFormed ECSFault = iota
	ECSTruncated           // shorter than FAMILY, SOURCE and SCOPE
	ECSBadFamily           // FAMILY is neither 1 (IPv4) nor 2 (IPv6) nor 0
	ECSBadSource           // SOURCE PREFIX-LENGTH longer than the family's addresses (0 bits for FAMILY 0)
	ECSBadScope            // SCOPE PREFIX-LENGTH not 0, as a query's must be
	ECSBadLength           // ADDRESS not the ceil(SOURCE/8) octets SOURCE needs
	ECSHostBits            // ADDRESS bits set beyond SOURCE PREFIX-LENGTH
)

var ecsFaultNames = [...]string{"well formed", "truncated", "unknown FAMILY", "SOURCE PREFIX-LENGTH too long",
	"SCOPE PREFIX-LENGTH not 0", "ADDRESS length does not match SOURCE PREFIX-LENGTH",
	"ADDRESS bits set beyond SOURCE PREFIX-LENGTH"}

func (f ECSFault) String() string { return ecsFaultNames[f] }

// DecodeECS reads the data of an ECS option in wire form: what follows its
// OPTION-CODE and OPTION-LENGTH. addr is the network's address, the zero
// Addr for FAMILY 0, which dig sends with SOURCE 0 for "no tailoring" and
// which BIND accepts as such. It does not allocate: the fast path's
// parser uses it too.
func DecodeECS(b []byte) (family uint16, source uint8, addr netip.Addr, fault ECSFault) {
	if len(b) < 4 {
		return 0, 0, netip.Addr{}, ECSTruncated
	}
	family, source = binary.BigEndian.Uint16(b), b[2]
	bits := 0
	switch family {
	case 0:
	case 1:
		bits = 32
	case 2:
		bits = 128
	default:
		return family, source, netip.Addr{}, ECSBadFamily
	}
	raw := b[4:]
	switch {
	case int(source) > bits:
		return family, source, netip.Addr{}, ECSBadSource
	case b[3] != 0:
		return family, source, netip.Addr{}, ECSBadScope
	case len(raw) != (int(source)+7)/8:
		return family, source, netip.Addr{}, ECSBadLength
	}
	// With the length exact, only the last octet can hold bits beyond
	// the prefix.
	if rem := source % 8; rem != 0 && raw[len(raw)-1]&(0xff>>rem) != 0 {
		return family, source, netip.Addr{}, ECSHostBits
	}
	var a [16]byte
	copy(a[:], raw)
	switch family {
	case 1:
		addr = netip.AddrFrom4([4]byte(a[:4]))
	case 2:
		addr = netip.AddrFrom16(a)
	}
	return family, source, addr, ECSWellFormed
}

// cgnat is the shared address space of RFC 6598, private in all but name.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func PublicAddr(a netip.Addr) bool {
	return a.IsGlobalUnicast() && !a.IsPrivate() && !cgnat.Contains(a)
}

// replyScope is request.ecsScope from its parts, for the fast path too.
func ReplyScope(tailored bool, scope int, source uint8, usable bool) int {
	switch {
	case !tailored || source == 0:
		return 0
	case usable:
		return scope
	default:
		return int(source)
	}
}
