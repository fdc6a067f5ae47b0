// Package latency owns measured latency data: the round-trip times from
// client networks to PoPs that operators feed popdns as table files (CSV,
// or .latency.yaml) beside the zone files. Parse reads one file, checking
// each entry against the PoP inventory; Merge combines files into a Table,
// which answers, for a PoP and a client address, the measurement of the
// longest prefix that is fresh enough, and the address span over which
// that answer holds, from which ScopeWithin derives the ECS scope.
//
// zones loads the table files of its directory with the zone files (a
// broken or missing file keeps its last good version) and hands the Table
// to steer with the snapshot. A Table and its entries are immutable and
// safe for concurrent use; a nil *Table is empty.
package latency

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Entry is one measurement: the round-trip time from the clients in
// Prefix to PoP, and where it was read (File, Line), for errors and
// explanations. Entries in a Table must not be modified.
type Entry struct {
	Prefix   netip.Prefix
	PoP      string
	RTTMS    float64
	Measured time.Time // zero: undated, never too old
	File     string
	Line     int
}

// Table holds measured RTTs by PoP and client network. For each PoP
// and address family the entries are flattened into disjoint address
// spans, each knowing the entries that cover it (longest prefix first), so
// that a lookup is one binary search and the span bounds give the exact
// ECS scope. It is immutable and safe for concurrent use; a nil table is
// empty.
type Table struct {
	entries []Entry
	byPoP   map[string]*popSpans
}

type popSpans struct {
	v4, v6 []span
}

// span is a range of addresses over which the covering entries are the
// same. chain indexes Table.entries, longest prefix first; it is
// empty where no entry covers the range.
type span struct {
	lo, hi netip.Addr
	chain  []int32
}

// Len is the number of entries.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.entries)
}

// Lookup returns the measured RTT from client to pop: the entry with the
// longest prefix containing client that is not older than maxAge at now
// (maxAge 0: any age). It also returns the span of addresses around client
// over which the entries that could answer are the same: an answer that
// used this lookup holds for the largest prefix within [lo, hi].
func (t *Table) Lookup(pop string, client netip.Addr, now time.Time, maxAge time.Duration) (e *Entry, lo, hi netip.Addr) {
	if t == nil {
		return nil, netip.Addr{}, netip.Addr{}
	}
	ps := t.byPoP[pop]
	if ps == nil {
		return nil, netip.Addr{}, netip.Addr{}
	}
	spans := ps.v6
	if client.Is4() {
		spans = ps.v4
	}
	i, found := slices.BinarySearchFunc(spans, client, func(s span, a netip.Addr) int { return s.lo.Compare(a) })
	if !found {
		i--
	}
	if i < 0 || i >= len(spans) {
		return nil, netip.Addr{}, netip.Addr{}
	}
	s := &spans[i]
	for _, idx := range s.chain {
		entry := &t.entries[idx]
		if maxAge > 0 && !entry.Measured.IsZero() && now.Sub(entry.Measured) > maxAge {
			continue
		}
		return entry, s.lo, s.hi
	}
	return nil, s.lo, s.hi
}

// newTable flattens entries, which must hold no duplicate (prefix, PoP)
// pair; Merge makes sure of that.
func newTable(entries []Entry) *Table {
	t := &Table{entries: entries, byPoP: map[string]*popSpans{}}
	groups := map[string][2][]int32{}
	for i, e := range entries {
		g := groups[e.PoP]
		fam := 1
		if e.Prefix.Addr().Is4() {
			fam = 0
		}
		g[fam] = append(g[fam], int32(i))
		groups[e.PoP] = g
	}
	for pop, g := range groups {
		t.byPoP[pop] = &popSpans{
			v4: flatten(entries, g[0], netip.IPv4Unspecified(), netip.AddrFrom4([4]byte{255, 255, 255, 255})),
			v6: flatten(entries, g[1], netip.IPv6Unspecified(), netip.AddrFrom16([16]byte{0: 0xff, 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff, 8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff})),
		}
	}
	return t
}

// flatten sweeps the prefixes of one PoP and family, in address order with
// wider prefixes first, keeping a stack of the prefixes that are open; it
// emits a span wherever the stack changes, covering [first, last] whole.
func flatten(entries []Entry, idx []int32, first, last netip.Addr) []span {
	slices.SortFunc(idx, func(a, b int32) int {
		pa, pb := entries[a].Prefix, entries[b].Prefix
		if c := pa.Addr().Compare(pb.Addr()); c != 0 {
			return c
		}
		return pa.Bits() - pb.Bits()
	})
	var spans []span
	var stack []int32
	cur, done := first, false
	emit := func(lo, hi netip.Addr) {
		if lo.Compare(hi) > 0 {
			return
		}
		chain := make([]int32, len(stack))
		for i, v := range stack {
			chain[len(stack)-1-i] = v // longest (innermost) first
		}
		spans = append(spans, span{lo: lo, hi: hi, chain: chain})
	}
	closeTop := func() {
		end := lastAddr(entries[stack[len(stack)-1]].Prefix)
		emit(cur, end)
		stack = stack[:len(stack)-1]
		if end == last {
			done = true
			return
		}
		cur = end.Next()
	}
	for _, i := range idx {
		start := entries[i].Prefix.Addr()
		for len(stack) > 0 && lastAddr(entries[stack[len(stack)-1]].Prefix).Less(start) {
			closeTop()
		}
		if cur.Less(start) {
			emit(cur, start.Prev())
			cur = start
		}
		stack = append(stack, i)
	}
	for len(stack) > 0 && !done {
		closeTop()
	}
	if !done {
		emit(cur, last)
	}
	return spans
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	if p.Addr().Is4() {
		b := p.Addr().As4()
		for i := p.Bits(); i < 32; i++ {
			b[i/8] |= 0x80 >> (i % 8)
		}
		return netip.AddrFrom4(b)
	}
	b := p.Addr().As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom16(b)
}

// ScopeWithin narrows bits until the prefix of that length around client
// lies inside [lo, hi]: the widest network over which a lookup that
// returned this span cannot change.
func ScopeWithin(client netip.Addr, bits int, lo, hi netip.Addr) int {
	if !lo.IsValid() {
		return bits
	}
	for ; bits < client.BitLen(); bits++ {
		p, err := client.Prefix(bits)
		if err != nil {
			break
		}
		if lo.Compare(p.Addr()) <= 0 && lastAddr(p).Compare(hi) <= 0 {
			return bits
		}
	}
	return client.BitLen()
}

func (e *Entry) String() string {
	return fmt.Sprintf("%s→%s %gms (%s:%d)", e.Prefix, e.PoP, e.RTTMS, e.File, e.Line)
}
