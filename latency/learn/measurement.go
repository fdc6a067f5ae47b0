package learn

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/popdns/popdns/pops"
)

// Measurement is one checked round-trip time from a client network to a
// PoP. Prefix is the client's cell: a /24 for IPv4, a /48 for IPv6
// (finer prefixes and addresses are widened to it). Time is zero when the
// measurement carried none; the aggregator then uses the time of ingest.
// Weight is at least MinWeight and at most MaxWeight (1 when not given).
type Measurement struct {
	Prefix netip.Prefix
	PoP    string
	RTTMS  float64
	Time   time.Time
	Weight float64
	Source string
}

// Bounds of a measurement's values.
const (
	// MinRTTMS is the smallest round-trip time accepted, in ms: below any
	// real client-to-PoP path (a client in the PoP's own rack sees
	// about 0.1 ms). The mean is taken in log space, where one 1e-6 would
	// pull an entry down by orders of magnitude before clipping is armed.
	MinRTTMS = 0.1
	// MaxRTTMS is the largest round-trip time accepted, in ms: a minute.
	MaxRTTMS = 60_000
	// MaxWeight bounds a measurement's weight, so that one line cannot
	// outweigh a cell's whole history by orders of magnitude.
	MaxWeight = 1_000
	// MaxSourceLen bounds the source label.
	MaxSourceLen = 64
	// CellBits4 and CellBits6 are the prefix lengths of the finest cells:
	// one /24 or /48 is what a resolver's ECS usually reveals, and what
	// one site's clients share.
	CellBits4 = 24
	CellBits6 = 48
)

// CellOf returns the finest cell of addr: its /24 (IPv4, including
// IPv4-mapped IPv6) or its /48. An invalid addr gives the zero Prefix.
func CellOf(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	bits := CellBits6
	if addr.Is4() {
		bits = CellBits4
	}
	p, err := addr.WithZone("").Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// raw is one input line's fields as text, before checking; has says
// which were present.
type raw struct {
	prefix, addr, pop, rtt, time, weight, source   string
	hasPrefix, hasAddr, hasTime, hasWeight, hasSrc bool
}

// fieldError is a problem with one field of one line.
type fieldError struct {
	field, msg string
}

// check turns a line's fields into a Measurement, or says which field is
// wrong and why.
func (o *ParseOptions) check(r *raw) (Measurement, *fieldError) {
	var m Measurement
	bad := func(field, format string, args ...any) (Measurement, *fieldError) {
		return Measurement{}, &fieldError{field, fmt.Sprintf(format, args...)}
	}
	switch {
	case r.hasPrefix && r.hasAddr:
		return bad("addr", "give prefix or addr, not both")
	case r.hasPrefix:
		p, err := netip.ParsePrefix(strings.TrimSpace(r.prefix))
		if err != nil || p.Addr().Zone() != "" || p.Addr().Is4In6() {
			return bad("prefix", "%q is not a client network such as 198.51.100.0/24", r.prefix)
		}
		cell := CellOf(p.Addr())
		switch {
		case p.Bits() < cell.Bits():
			return bad("prefix", "%s is wider than a client cell (/%d); measure per /%d or finer", p, cell.Bits(), cell.Bits())
		case p.Bits() == cell.Bits() && p.Masked() != p:
			return bad("prefix", "%s has host bits set; the network is %s", p, p.Masked())
		}
		m.Prefix = cell
	case r.hasAddr:
		a, err := netip.ParseAddr(strings.TrimSpace(r.addr))
		if err != nil || a.Zone() != "" {
			return bad("addr", "%q is not an IP address", r.addr)
		}
		m.Prefix = CellOf(a)
	default:
		return bad("prefix", "missing: give the client's prefix or addr")
	}
	if !clientNetwork(m.Prefix.Addr()) {
		return bad(map[bool]string{true: "prefix", false: "addr"}[r.hasPrefix], "%s is not a client network (loopback, link-local, multicast, unspecified or reserved)", m.Prefix)
	}
	m.PoP = strings.TrimSpace(r.pop)
	switch {
	case m.PoP == "":
		return bad("pop", "missing")
	case !pops.ValidName(m.PoP):
		return bad("pop", "%q is not a PoP name (lowercase letters, digits, - and _)", r.pop)
	case o.KnownPoP != nil && !o.KnownPoP(m.PoP):
		return bad("pop", "unknown PoP %q", m.PoP)
	}
	rtt := strings.TrimSpace(r.rtt)
	if rtt == "" {
		return bad("rtt_ms", "missing")
	}
	v, err := strconv.ParseFloat(rtt, 64)
	if err != nil || !(v >= MinRTTMS && v <= MaxRTTMS) {
		return bad("rtt_ms", "%s is not a round-trip time (%g <= rtt_ms <= %d)", quoteIfNeeded(rtt), MinRTTMS, MaxRTTMS)
	}
	m.RTTMS = v
	m.Weight = 1
	if r.hasWeight {
		w := strings.TrimSpace(r.weight)
		v, err := strconv.ParseFloat(w, 64)
		if err != nil || !(v > 0 && v <= MaxWeight) {
			return bad("weight", "%s is not a weight (0 < weight <= %d)", quoteIfNeeded(w), MaxWeight)
		}
		m.Weight = v
	}
	if r.hasTime {
		ts := strings.TrimSpace(r.time)
		t, ok := parseTime(ts)
		switch {
		case !ok:
			return bad("time", "%s is neither RFC 3339 nor Unix seconds", quoteIfNeeded(ts))
		case t.After(o.Now.Add(o.MaxSkew)):
			return bad("time", "%s is in the future (more than %s after %s)", ts, o.MaxSkew, o.Now.UTC().Format(time.RFC3339))
		case t.Before(o.Now.Add(-o.MaxAge)):
			return bad("time", "%s is older than the maximum age %s", ts, o.MaxAge)
		}
		m.Time = t
	}
	if r.hasSrc {
		s := strings.TrimSpace(r.source)
		if len(s) > MaxSourceLen || strings.IndexFunc(s, func(c rune) bool { return !sourceOK(c) }) >= 0 {
			return bad("source", "%s is not a source label (up to %d letters, digits and - _ . : /)", quoteIfNeeded(s), MaxSourceLen)
		}
		m.Source = s
	}
	return m, nil
}

// notClients are the IPv4 ranges no client sends from: "this network"
// (0/8), loopback, link-local, multicast and the reserved 240/4 with the
// broadcast address. Private and documentation ranges are clients of
// internal deployments (and of the examples).
var notClients = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("224.0.0.0/3"),
}

// clientNetwork reports whether a cell's address may be a client's: for
// IPv6 global unicast (2000::/3) or unique local (fc00::/7), where the
// rest is loopback, link-local, multicast, mapped or reserved space.
func clientNetwork(a netip.Addr) bool {
	if a.Is4() {
		for _, p := range notClients {
			if p.Contains(a) {
				return false
			}
		}
		return true
	}
	b := a.As16()
	return b[0]&0xe0 == 0x20 || b[0]&0xfe == 0xfc
}

func sourceOK(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:/", c)
}

// parseTime reads Unix seconds (fractions allowed) or RFC 3339.
func parseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	if c := s[0]; c >= '0' && c <= '9' {
		if v, err := strconv.ParseFloat(s, 64); err == nil {
			if v > 1<<40 || math.IsNaN(v) {
				return time.Time{}, false
			}
			sec, frac := math.Modf(v)
			return time.Unix(int64(sec), int64(frac*1e9)), true
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// quoteIfNeeded shows a number as it is and anything else quoted, short.
func quoteIfNeeded(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s
	}
	return strconv.Quote(s)
}
