package udpfast

import (
	"encoding/binary"
	"net/netip"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnscookie"
)

// wireQuery is a query read straight from the wire by parseWire, for the
// UDP fast path. It holds only the common, plain shape of a query; anything
// else is left to the general path, which decodes with miekg/dns.
type wireQuery struct {
	id      uint16
	nameEnd int    // the question name is packet[12:nameEnd]
	qtype   uint16 // the question's class is IN
	labels  int    // labels of the name, the root not counted
	// lowerLabels counts the name's last labels that have no upper-case
	// letter. Names from zone data are lower case, so the general path's
	// name compression, which compares names byte for byte, depends on
	// the asked case only through this count (see fastKey).
	lowerLabels int
	// key is the lower-case name in wire form followed by what else shapes
	// the reply (fastKey); keyLen bytes of it are used.
	key    [maxKeyLen]byte
	keyLen int

	edns    bool   // one OPT record, version 0
	udpSize uint16 // from the OPT record
	do      bool
	nsid    bool

	// cookiesOn: the server answers COOKIE options (Config.Cookies);
	// the reader sets it once. cookie: the query has one, well formed,
	// its data packet[cookieOff:cookieOff+cookieLen]. What it was and
	// the server cookie the reply carries are judged in Answer.
	cookiesOn     bool
	cookie        bool
	cookieOff     int
	cookieLen     int
	cookieOutcome dnscookie.Outcome
	replyCookie   [dnscookie.ServerLen]byte

	ecs       bool // one ECS option (RFC 7871), well formed
	ecsFamily uint16
	ecsSource uint8
	ecsAddr   netip.Addr // the ECS network address, masked
	ecsRaw    int        // offset of the ECS ADDRESS bytes in the packet
	ecsRawLen int

	// validCookie: the query carries a valid server cookie (RFC 7873
	// §5.4), which proves its source, so rate limiting skips it.
	// Path.judgeCookie sets it.
	validCookie bool
}

// Shape bits of the fast-path key: everything besides the name and type
// that changes the reply's bytes other than where the fast path patches.
const (
	shapeRD = 1 << iota
	shapeCD
	shapeEDNS
	shapeDO
	shapeNSID
	shapeECS
	shapeECS6
	shapeCookie // a well-formed COOKIE option, when cookies are on
)

// maxKeyLen: a 255-byte name, the type, the shape, the ECS source
// prefix length and lowerLabels.
const maxKeyLen = 255 + 2 + 1 + 1 + 1

// parseWire reads a query of the plain shape the fast path answers: a QUERY
// with one IN question, no answer or authority records, and at most one
// additional record, an OPT of version 0 whose options are at most one
// well-formed ECS, NSID, COOKIE and PADDING. Its name has only characters
// that need no escaping in presentation form and no compression pointer.
// Anything else, or a query that the general path would answer with
// FORMERR, NOTIMP, REFUSED for its class or type, or BADVERS, reports
// false: with cookies on, that includes a COOKIE option of a length
// other than 8 or 16 to 40 and a second COOKIE option (RFC 7873 §5.2.2).
// It does not allocate.
func parseWire(p []byte, q *wireQuery) bool {
	if len(p) < 12+5 {
		return false
	}
	flags := binary.BigEndian.Uint16(p[2:])
	const qr, opcode = 1 << 15, 0xf << 11
	if flags&(qr|opcode) != 0 {
		return false
	}
	qd, an, ns, ar := binary.BigEndian.Uint16(p[4:]), binary.BigEndian.Uint16(p[6:]),
		binary.BigEndian.Uint16(p[8:]), binary.BigEndian.Uint16(p[10:])
	if qd != 1 || an != 0 || ns != 0 || ar > 1 {
		return false
	}
	q.id = binary.BigEndian.Uint16(p)

	// The name, lower-cased into the key as it goes.
	off, k := 12, 0
	q.labels, q.lowerLabels = 0, 0
	for {
		if off >= len(p) {
			return false
		}
		n := int(p[off])
		if n == 0 {
			q.key[k] = 0
			k++
			off++
			break
		}
		if n > 63 || off+1+n > len(p) || k+1+n+1 > 255 {
			return false // also a compression pointer (0xc0 and up)
		}
		q.key[k] = byte(n)
		k++
		upper := false
		for _, c := range p[off+1 : off+1+n] {
			if !plainNameByte(c) {
				return false
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
				upper = true
			}
			q.key[k] = c
			k++
		}
		q.labels++
		if upper {
			q.lowerLabels = 0
		} else {
			q.lowerLabels++
		}
		off += 1 + n
	}
	q.nameEnd = off
	if off+4 > len(p) {
		return false
	}
	q.qtype = binary.BigEndian.Uint16(p[off:])
	if binary.BigEndian.Uint16(p[off+2:]) != dns.ClassINET {
		return false
	}
	switch q.qtype {
	case dns.TypeAXFR, dns.TypeIXFR, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		return false
	}
	off += 4

	q.edns, q.do, q.nsid, q.ecs, q.ecsFamily, q.ecsSource = false, false, false, false, 0, 0
	q.cookie, q.cookieOutcome, q.validCookie = false, dnscookie.None, false
	if ar == 1 {
		var ok bool
		if off, ok = q.parseOPT(p, off); !ok {
			return false
		}
	}
	if off != len(p) {
		return false // trailing bytes: let miekg/dns judge them
	}

	// The rest of the key.
	binary.BigEndian.PutUint16(q.key[k:], q.qtype)
	shape := byte(0)
	if flags&(1<<8) != 0 {
		shape |= shapeRD
	}
	if flags&(1<<4) != 0 {
		shape |= shapeCD
	}
	if q.edns {
		shape |= shapeEDNS
	}
	if q.do {
		shape |= shapeDO
	}
	if q.nsid {
		shape |= shapeNSID
	}
	if q.ecs {
		shape |= shapeECS
		if q.ecsFamily == 2 {
			shape |= shapeECS6
		}
	}
	if q.cookie {
		shape |= shapeCookie
	}
	q.key[k+2] = shape
	q.key[k+3] = q.ecsSource
	q.key[k+4] = byte(q.lowerLabels)
	q.keyLen = k + 5
	return true
}

// parseOPT reads the OPT record at off and returns the offset after it.
func (q *wireQuery) parseOPT(p []byte, off int) (int, bool) {
	// Root owner, type, class (payload size), TTL (extended rcode,
	// version, flags), RDLENGTH.
	if off+11 > len(p) || p[off] != 0 || binary.BigEndian.Uint16(p[off+1:]) != dns.TypeOPT {
		return 0, false
	}
	q.udpSize = binary.BigEndian.Uint16(p[off+3:])
	if p[off+5] != 0 || p[off+6] != 0 { // extended rcode, version
		return 0, false
	}
	q.do = p[off+7]&0x80 != 0
	if p[off+7]&0x40 != 0 {
		// Compact Answers OK (RFC 9824 §4) changes a signed denial's
		// rcode: rare enough to leave to the general path than to key.
		return 0, false
	}
	rdlen := int(binary.BigEndian.Uint16(p[off+9:]))
	off += 11
	end := off + rdlen
	if end > len(p) {
		return 0, false
	}
	q.edns = true
	for off < end {
		if off+4 > end {
			return 0, false
		}
		code, n := binary.BigEndian.Uint16(p[off:]), int(binary.BigEndian.Uint16(p[off+2:]))
		off += 4
		if off+n > end {
			return 0, false
		}
		switch code {
		case dns.EDNS0NSID:
			q.nsid = true
		case dns.EDNS0COOKIE:
			if !q.cookiesOn {
				break // ignored, as the general path does with cookies off
			}
			if _, _, ok := dnscookie.Split(p[off : off+n]); q.cookie || !ok {
				return 0, false // FORMERR, from the general path
			}
			q.cookie, q.cookieOff, q.cookieLen = true, off, n
		case dns.EDNS0PADDING:
			// Decoded without error by miekg/dns and ignored.
		case dns.EDNS0SUBNET:
			if q.ecs || !q.parseECS(p[off:off+n], off) {
				return 0, false
			}
		default:
			return 0, false
		}
		off += n
	}
	return off, true
}

// parseECS reads a well-formed ECS option of family 1 or 2 (DecodeECS):
// the reply echoes its ADDRESS bytes as they are. A malformed one gets
// FORMERR from the general path (screenECS); FAMILY 0 is rare enough to
// leave to it as well.
func (q *wireQuery) parseECS(b []byte, off int) bool {
	family, source, addr, fault := DecodeECS(b)
	if fault != ECSWellFormed || family == 0 {
		return false
	}
	q.ecs, q.ecsFamily, q.ecsSource, q.ecsAddr = true, family, source, addr
	q.ecsRaw, q.ecsRawLen = off+4, len(b)-4
	return true
}

// plainNameByte reports whether c stands for itself in a name's
// presentation form, which is what the zone data and the general path's
// lower-casing see. miekg/dns escapes the others.
func plainNameByte(c byte) bool {
	if c <= ' ' || c > '~' {
		return false
	}
	switch c {
	case '.', '\'', '@', ';', '(', ')', '"', '\\':
		return false
	}
	return true
}

// usableECS is clientSubnet.usable for a parsed query.
func (q *wireQuery) usableECS() bool {
	return q.ecs && q.ecsSource != 0 && PublicAddr(q.ecsAddr)
}

// unroutableECS reports whether the query's ECS option names a network
// nobody routes (a private one, say): it is decided for its source, a
// resolver, while the entry its key finds also serves usable networks,
// so the memo, keyed by address, must not hold its decision.
func (q *wireQuery) unroutableECS() bool {
	return q.ecs && q.ecsSource != 0 && !PublicAddr(q.ecsAddr)
}

// sizeLimit is Server.sizeLimit for a parsed query over UDP.
func (q *wireQuery) sizeLimit(ours uint16) int {
	if !q.edns {
		return dns.MinMsgSize
	}
	return max(dns.MinMsgSize, int(min(q.udpSize, ours)))
}

// Shape is what parseWire reads of a query where the fast path patches
// its replies, for those who vary a query there: dnsserver's tests that
// hold the fast path to the general path's bytes.
type Shape struct {
	ID        uint16
	NameEnd   int // the question name is packet[12:NameEnd]
	ECS       bool
	ECSSource uint8
	ECSRaw    int // offset of the ECS ADDRESS bytes
	ECSRawLen int
	Cookie    bool // a COOKIE option, its data at packet[CookieOff:CookieOff+CookieLen]
	CookieOff int
	CookieLen int
}

// ParseShape parses packet as the fast path does, with cookies on; false
// when the fast path would not answer it itself.
func ParseShape(packet []byte) (Shape, bool) {
	q := wireQuery{cookiesOn: true}
	if !parseWire(packet, &q) {
		return Shape{}, false
	}
	return Shape{ID: q.id, NameEnd: q.nameEnd, ECS: q.ecs, ECSSource: q.ecsSource, ECSRaw: q.ecsRaw, ECSRawLen: q.ecsRawLen,
		Cookie: q.cookie, CookieOff: q.cookieOff, CookieLen: q.cookieLen}, true
}
