package dnssec

import (
	"slices"

	"github.com/miekg/dns"
)

// TypeNXNAME is the NXNAME meta type (RFC 9824 §2): in a compact answer's
// NSEC type bitmap it says that the name does not exist.
const TypeNXNAME uint16 = 128

// NoDataNSEC is the compact NSEC of a name that exists with types (RFC
// 9824 §3.2): owned by the name, pointing to its immediate successor
// "\000.name", with types plus RRSIG and NSEC in its bitmap. An empty
// non-terminal has no types of its own: its bitmap is RRSIG and NSEC.
// types need not be sorted; the NSEC has ttl.
func NoDataNSEC(name string, types []uint16, ttl uint32) *dns.NSEC {
	bitmap := append(slices.Clone(types), dns.TypeRRSIG, dns.TypeNSEC)
	slices.Sort(bitmap)
	bitmap = slices.Compact(bitmap)
	return &dns.NSEC{
		Hdr:        dns.RR_Header{Name: name, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
		NextDomain: successor(name),
		TypeBitMap: bitmap,
	}
}

// NXNameNSEC is the compact NSEC of a name that does not exist (RFC 9824
// §3.1): shaped as a NODATA answer's, its bitmap RRSIG, NSEC and NXNAME.
func NXNameNSEC(name string, ttl uint32) *dns.NSEC {
	n := NoDataNSEC(name, []uint16{TypeNXNAME}, ttl)
	return n
}

// CoveringNSEC is a minimally covering NSEC (RFC 4470) of nextCloser, the
// name one label below the closest encloser of a query answered from a
// wildcard: it proves that nextCloser, and so the name asked for, does not
// exist (RFC 4035 §3.1.3.3), while covering no other name a zone could
// hold. Its owner is nextCloser's predecessor among its siblings: the
// first label with its last octet decremented and padded with \255 octets
// to the longest label the name allows; its next name the first label
// with \000 appended.
func CoveringNSEC(nextCloser string, ttl uint32) *dns.NSEC {
	return &dns.NSEC{
		Hdr:        dns.RR_Header{Name: siblingBefore(nextCloser), Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
		NextDomain: siblingAfter(nextCloser),
		TypeBitMap: []uint16{dns.TypeRRSIG, dns.TypeNSEC},
	}
}

// successor is the name that follows name in canonical order (RFC 4034
// §6.1): its first possible child, "\000.name". A name too long for a
// child gets its next sibling instead.
func successor(name string) string {
	if child := `\000.` + name; fitsWire(child) {
		return child
	}
	return siblingAfter(name)
}

// fitsWire reports whether name is a valid domain name within 255 octets.
func fitsWire(name string) bool {
	var buf [256]byte
	_, err := dns.PackDomainName(name, buf[:], 0, nil, false)
	return err == nil
}

// firstLabel splits name (presentation format, an FQDN) into the octets of
// its first label and the rest of the name, with the octets the name
// leaves for a longer first label. ok is false for the root or a name
// that does not pack.
func firstLabel(name string) (label []byte, parent string, room int, ok bool) {
	var buf [256]byte
	n, err := dns.PackDomainName(name, buf[:], 0, nil, false)
	if err != nil || n < 2 || buf[0] == 0 {
		return nil, "", 0, false
	}
	l := int(buf[0])
	label = slices.Clone(buf[1 : 1+l])
	parent, _, err = dns.UnpackDomainName(buf[:n], 1+l)
	if err != nil {
		return nil, "", 0, false
	}
	return label, parent, min(63-l, 255-n), true
}

// withFirstLabel is parent with label prepended, in presentation format.
func withFirstLabel(label []byte, parent string) string {
	var buf [256]byte
	buf[0] = byte(len(label))
	copy(buf[1:], label)
	n := 1 + len(label)
	m, err := dns.PackDomainName(parent, buf[:], n, nil, false)
	if err != nil {
		return parent
	}
	name, _, err := dns.UnpackDomainName(buf[:m], 0)
	if err != nil {
		return parent
	}
	return name
}

// siblingAfter is the first name after name and all its descendants in
// canonical order: the first label with \000 appended, or, for a label of
// the longest length, with its last octet incremented.
func siblingAfter(name string) string {
	label, parent, room, ok := firstLabel(name)
	if !ok {
		return name
	}
	if room > 0 {
		return withFirstLabel(append(label, 0), parent)
	}
	for i := len(label) - 1; i >= 0; i-- {
		if label[i] == 0xff {
			continue
		}
		label[i]++
		if 'A' <= label[i] && label[i] <= 'Z' {
			label[i] = 'Z' + 1 // canonical order compares lower case: skip upper
		}
		return withFirstLabel(label[:i+1], parent)
	}
	return name
}

// siblingBefore is the last name before name in canonical order that is
// not name's parent: the first label's last octet decremented, padded
// with \255 octets as far as the name allows. For a first label "\000"
// (no sibling can precede it) it is the parent.
func siblingBefore(name string) string {
	label, parent, room, ok := firstLabel(name)
	if !ok {
		return name
	}
	last := len(label) - 1
	if label[last] == 0 {
		if last == 0 {
			return parent
		}
		// Before "a\000" come "a" and everything below it: the last of
		// those is below "a", as deep as a name can go, all \255.
		return lastDescendant(withFirstLabel(label[:last], parent))
	}
	label[last]--
	if 'A' <= label[last] && label[last] <= 'Z' {
		label[last] = 'A' - 1 // canonical order compares lower case: skip upper
	}
	for range room {
		label = append(label, 0xff)
	}
	return withFirstLabel(label, parent)
}

// lastDescendant is the last name below name in canonical order: labels of
// \255 octets, as many and as long as a name allows.
func lastDescendant(name string) string {
	for {
		var buf [256]byte
		n, err := dns.PackDomainName(name, buf[:], 0, nil, false)
		if err != nil {
			return name
		}
		room := 255 - n // octets left for more labels, each with its length
		if room < 2 {
			return name
		}
		l := min(63, room-1)
		label := make([]byte, l)
		for i := range label {
			label[i] = 0xff
		}
		name = withFirstLabel(label, name)
	}
}
