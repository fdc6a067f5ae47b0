// Package dnswire owns the load generator's DNS wire format: it builds
// query packets (EDNS(0), optionally with an EDNS Client Subnet option and
// the DO bit) once, before the load starts, patches a random query's first
// label per send (RandomLabel), and parses replies without allocating, far enough
// to count them: ID, flags, rcode (extended by the OPT record), the answer
// count, the first A/AAAA address and the ECS scope. Replies come from the
// servers under test, so the parser never trusts a length or a pointer.
package dnswire

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// Record types and classes used here.
const (
	TypeA    = 1
	TypeNS   = 2
	TypeSOA  = 6
	TypeAAAA = 28
	TypeOPT  = 41
	ClassIN  = 1

	optionECS = 8

	// UDPSize is the EDNS payload size the queries advertise.
	UDPSize = 1232
)

// Rcodes by name, for query lists and reports.
var rcodeNames = map[string]int{
	"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5, "BADVERS": 16,
}

// RcodeByName returns the rcode called name (NOERROR, NXDOMAIN, ...).
func RcodeByName(name string) (int, bool) {
	r, ok := rcodeNames[strings.ToUpper(name)]
	return r, ok
}

// RcodeName returns the name of rcode, or "RCODE<n>".
func RcodeName(rcode int) string {
	for n, r := range rcodeNames {
		if r == rcode {
			return n
		}
	}
	return "RCODE" + strconv.Itoa(rcode)
}

// TypeByName returns the record type called name (A, AAAA, ...).
func TypeByName(name string) (uint16, bool) {
	switch strings.ToUpper(name) {
	case "A":
		return TypeA, true
	case "AAAA":
		return TypeAAAA, true
	case "NS":
		return TypeNS, true
	case "SOA":
		return TypeSOA, true
	}
	return 0, false
}

// Query is one question to ask.
type Query struct {
	Name string // fully qualified, e.g. www.example.test.
	Type uint16
	EDNS bool
	ECS  netip.Prefix // zero: no ECS option; needs EDNS
	// DO sets the DNSSEC OK bit (RFC 3225): the server signs its answer
	// if the zone is signed. Needs EDNS.
	DO bool
	// Random asks for a new first label on every send (RandomLabel), so
	// that every query is for a name never asked before: the random
	// subdomain flood. The first label must be at least
	// RandomLabelMin characters long.
	Random bool
	Rcode  int // the rcode expected in the reply
}

// RandomLabelMin is the shortest first label a Random query may have:
// enough for a unique name per query over any run.
const RandomLabelMin = 16

// ErrName means a name cannot be encoded.
var ErrName = errors.New("dnswire: bad name")

// Append appends q's packet to buf, with ID id and RD clear, and returns the
// extended buffer.
func Append(buf []byte, id uint16, q Query) ([]byte, error) {
	if q.Random {
		if first, _, _ := strings.Cut(q.Name, "."); len(first) < RandomLabelMin {
			return nil, ErrName
		}
	}
	arcount := byte(0)
	if q.EDNS || q.ECS.IsValid() || q.DO {
		arcount = 1
	}
	buf = append(buf, byte(id>>8), byte(id), 0, 0, 0, 1, 0, 0, 0, 0, 0, arcount)
	var err error
	if buf, err = appendName(buf, q.Name); err != nil {
		return nil, err
	}
	buf = append(buf, byte(q.Type>>8), byte(q.Type), 0, ClassIN)
	if arcount == 0 {
		return buf, nil
	}
	// OPT: root name, type, payload size, extended rcode and version 0,
	// flags: DO or nothing.
	do := byte(0)
	if q.DO {
		do = 0x80
	}
	buf = append(buf, 0, 0, TypeOPT, UDPSize>>8, UDPSize&0xff, 0, 0, do, 0)
	if !q.ECS.IsValid() {
		return append(buf, 0, 0), nil
	}
	p := q.ECS.Masked()
	family, addr := byte(1), p.Addr().AsSlice()
	if p.Addr().Is6() {
		family = 2
	}
	n := (p.Bits() + 7) / 8
	optLen := 4 + n
	buf = append(buf, 0, byte(4+optLen), 0, optionECS, 0, byte(optLen), 0, family, byte(p.Bits()), 0)
	return append(buf, addr[:n]...), nil
}

// appendName appends name in wire form (no compression).
func appendName(buf []byte, name string) ([]byte, error) {
	name = strings.TrimSuffix(name, ".")
	if len(name) > 253 {
		return nil, ErrName
	}
	if name != "" {
		for label := range strings.SplitSeq(name, ".") {
			if label == "" || len(label) > 63 {
				return nil, ErrName
			}
			buf = append(buf, byte(len(label)))
			buf = append(buf, label...)
		}
	}
	return append(buf, 0), nil
}

// SetID overwrites the ID of a packet built by Append.
func SetID(pkt []byte, id uint16) {
	pkt[0], pkt[1] = byte(id>>8), byte(id)
}

const hexDigits = "0123456789abcdef"

// RandomLabel overwrites the first label of a packet built by Append with
// salt in 8 hex digits, then n in hex, zero-padded, in the label's other
// characters (at least 8: 2^32 sends per salt). The same packet with a new
// n, or a new salt, asks for a name never asked before. It does not
// allocate; a packet whose first label is shorter than RandomLabelMin is
// left alone.
func RandomLabel(pkt []byte, salt uint32, n uint64) {
	if len(pkt) < 13 {
		return
	}
	l := int(pkt[12])
	if l < RandomLabelMin || 13+l > len(pkt) {
		return
	}
	label := pkt[13 : 13+l]
	for i := 7; i >= 0; i-- {
		label[i] = hexDigits[salt&0xf]
		salt >>= 4
	}
	for i := l - 1; i >= 8; i-- {
		label[i] = hexDigits[n&0xf]
		n >>= 4
	}
}

// Reply is what Parse reads from a reply.
type Reply struct {
	ID      uint16
	QR      bool
	AA      bool
	TC      bool
	Rcode   int // with the OPT record's extended bits
	QDCount int
	ANCount int
	NSCount int
	ARCount int
	// Addr is the first A or AAAA record's address in the answer section.
	Addr netip.Addr
	// HasOPT tells whether the reply has an OPT record, HasECS whether it
	// carries an ECS option, and Scope is that option's SCOPE PREFIX-LENGTH.
	HasOPT bool
	HasECS bool
	Scope  int
}

// Errors of Parse.
var (
	ErrShort   = errors.New("dnswire: message truncated")
	ErrBadName = errors.New("dnswire: malformed name in message")
)

// Header reads only the ID, the QR bit and the header rcode: enough to
// match a reply to its query.
func Header(msg []byte) (id uint16, qr bool, rcode int, ok bool) {
	if len(msg) < 12 {
		return 0, false, 0, false
	}
	return uint16(msg[0])<<8 | uint16(msg[1]), msg[2]&0x80 != 0, int(msg[3] & 0x0f), true
}

// Parse reads msg. It never allocates and never reads out of bounds; a
// malformed message gives an error.
func Parse(msg []byte) (Reply, error) {
	var r Reply
	if len(msg) < 12 {
		return r, ErrShort
	}
	r.ID = uint16(msg[0])<<8 | uint16(msg[1])
	r.QR = msg[2]&0x80 != 0
	r.AA = msg[2]&0x04 != 0
	r.TC = msg[2]&0x02 != 0
	r.Rcode = int(msg[3] & 0x0f)
	r.QDCount = int(msg[4])<<8 | int(msg[5])
	r.ANCount = int(msg[6])<<8 | int(msg[7])
	r.NSCount = int(msg[8])<<8 | int(msg[9])
	r.ARCount = int(msg[10])<<8 | int(msg[11])
	off := 12
	var err error
	for range r.QDCount {
		if off, err = skipName(msg, off); err != nil {
			return r, err
		}
		if off += 4; off > len(msg) {
			return r, ErrShort
		}
	}
	sections := [3]int{r.ANCount, r.NSCount, r.ARCount}
	for s, count := range sections {
		for range count {
			if off, err = skipName(msg, off); err != nil {
				return r, err
			}
			if off+10 > len(msg) {
				return r, ErrShort
			}
			typ := uint16(msg[off])<<8 | uint16(msg[off+1])
			ttl := msg[off+4 : off+8]
			rdlen := int(msg[off+8])<<8 | int(msg[off+9])
			off += 10
			if off+rdlen > len(msg) {
				return r, ErrShort
			}
			rdata := msg[off : off+rdlen]
			off += rdlen
			switch {
			case s == 0 && !r.Addr.IsValid() && typ == TypeA && rdlen == 4:
				r.Addr = netip.AddrFrom4([4]byte(rdata))
			case s == 0 && !r.Addr.IsValid() && typ == TypeAAAA && rdlen == 16:
				r.Addr = netip.AddrFrom16([16]byte(rdata))
			case s == 2 && typ == TypeOPT && !r.HasOPT:
				r.HasOPT = true
				r.Rcode |= int(ttl[0]) << 4
				if err := r.readOptions(rdata); err != nil {
					return r, err
				}
			}
		}
	}
	return r, nil
}

// readOptions looks for the ECS option in an OPT record's RDATA.
func (r *Reply) readOptions(rdata []byte) error {
	for len(rdata) > 0 {
		if len(rdata) < 4 {
			return ErrShort
		}
		code := int(rdata[0])<<8 | int(rdata[1])
		n := int(rdata[2])<<8 | int(rdata[3])
		if 4+n > len(rdata) {
			return ErrShort
		}
		if code == optionECS && n >= 4 && !r.HasECS {
			r.HasECS = true
			r.Scope = int(rdata[4+3])
		}
		rdata = rdata[4+n:]
	}
	return nil
}

// skipName returns the offset just past the name at off, following no
// pointers (a pointer ends the name in place).
func skipName(msg []byte, off int) (int, error) {
	for hops := 0; hops < 128; hops++ {
		if off >= len(msg) {
			return 0, ErrShort
		}
		c := int(msg[off])
		switch c & 0xc0 {
		case 0x00:
			if c == 0 {
				return off + 1, nil
			}
			off += 1 + c
		case 0xc0:
			if off+2 > len(msg) {
				return 0, ErrShort
			}
			return off + 2, nil
		default:
			return 0, ErrBadName
		}
	}
	return 0, ErrBadName
}

// FormatQuery writes q as one line of a query list: NAME TYPE ECS RCODE,
// with "-" for no ECS, then its flags: "noedns" for a query without EDNS,
// "do" for one with the DO bit, "random" for a new first label per send.
func FormatQuery(q Query) string {
	ecs := "-"
	if q.ECS.IsValid() {
		ecs = q.ECS.String()
	}
	typ := "A"
	switch q.Type {
	case TypeAAAA:
		typ = "AAAA"
	case TypeNS:
		typ = "NS"
	case TypeSOA:
		typ = "SOA"
	}
	s := q.Name + " " + typ + " " + ecs + " " + RcodeName(q.Rcode)
	if !q.EDNS && !q.ECS.IsValid() && !q.DO {
		s += " noedns"
	}
	if q.DO {
		s += " do"
	}
	if q.Random {
		s += " random"
	}
	return s
}

// ParseQuery reads a line written by FormatQuery.
func ParseQuery(line string) (Query, error) {
	f := strings.Fields(line)
	if len(f) < 4 {
		return Query{}, errors.New("dnswire: a query line is NAME TYPE ECS|- RCODE [noedns|do] [random]")
	}
	q := Query{Name: f[0], EDNS: true}
	for _, flag := range f[4:] {
		switch {
		case flag == "noedns" && q.EDNS && !q.DO:
			q.EDNS = false
		case flag == "do" && q.EDNS && !q.DO:
			q.DO = true
		case flag == "random" && !q.Random:
			q.Random = true
		default:
			return Query{}, errors.New("dnswire: flag " + flag + ": the flags are noedns or do, then random, each once")
		}
	}
	var ok bool
	if q.Type, ok = TypeByName(f[1]); !ok {
		return Query{}, errors.New("dnswire: unknown type " + f[1])
	}
	if f[2] != "-" {
		p, err := netip.ParsePrefix(f[2])
		if err != nil {
			return Query{}, err
		}
		if !q.EDNS {
			return Query{}, errors.New("dnswire: ECS needs EDNS")
		}
		q.ECS = p.Masked()
	}
	if q.Rcode, ok = RcodeByName(f[3]); !ok {
		return Query{}, errors.New("dnswire: unknown rcode " + f[3])
	}
	if _, err := Append(nil, 0, q); err != nil {
		return Query{}, err
	}
	return q, nil
}
