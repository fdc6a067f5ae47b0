package learn

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"time"
)

// Snapshot is the aggregator's state at one instant, reduced to what a
// lookup needs: for each (cell, PoP) whose decayed sample weight reached
// MinSamples at that instant, the smoothed RTT, the weight and the time of
// the newest sample. Whether an entry may decide is fixed when the
// snapshot is built, not when it is read, so that a decision depends on
// the snapshot alone and caches can key on it. It is immutable and safe
// for concurrent use; a nil *Snapshot is empty.
type Snapshot struct {
	at     time.Time
	gen    uint64
	cells  map[uint64]span // by Cell.key
	keys   []uint64        // every cell, in stats order, for export
	stats  []stat
	popIdx map[string]uint16
	pops   []string
	// The prefix cells' addresses, sorted: the /24s (top 24 bits) and
	// the /48s (top 48 bits). A decision's ECS scope must not contain a
	// prefix cell other than its client's own (PrefixGap).
	prefix4 []uint32
	prefix6 []uint64
}

// span is a cell's stats: stats[lo:hi], sorted by PoP index, and its
// leader's PoP index.
type span struct {
	lo, hi int32
	leader uint16
}

type stat struct {
	pop     uint16
	rtt     float64
	samples float64
	weight  float64
	updated int64 // Unix ns
}

// Estimate is what a lookup found for one PoP: the smoothed RTT, the
// cell it was learned in, its sample count (decayed to the snapshot's
// time over CountHalfLife), the time of its newest sample and its age at
// the snapshot's time: what explain shows as "which cell and how many
// samples decided". Weight is the RTT's own weight at the snapshot's
// time, its samples' weights decayed over HalfLife: how many
// measurements the RTT rests on now, where Samples says how many the
// entry has seen lately; at most Samples, so that one line of a heavy
// weight is still one measurement.
type Estimate struct {
	RTTMS   float64
	Cell    Cell
	Samples float64
	Weight  float64
	Updated time.Time
	Age     time.Duration
}

// Snapshot builds an immutable snapshot of the state at now, evicting
// stale entries first. It holds the aggregator's lock only for one pass
// over the entries, and sorts and indexes outside it; publish the result
// (atomic.Pointer) for the query path.
func (a *Aggregator) Snapshot(now time.Time) *Snapshot {
	type keyed struct {
		cell uint64
		stat
	}
	a.mu.Lock()
	pruned := a.pruneLocked(now)
	if last := a.last; last != nil && pruned == 0 && a.seq == a.lastSeq && !now.Before(last.at) && now.Sub(last.at) < a.cfg.SnapshotReuse {
		// Nothing was measured or evicted since: the same snapshot, and
		// its generation, so that the caches of decisions keyed on it
		// keep them.
		a.mu.Unlock()
		return last
	}
	a.gen++
	s := &Snapshot{at: now, gen: a.gen, pops: slices.Clone(a.pops)}
	seq, prev := a.seq, a.last
	all := make([]keyed, 0, len(a.entries))
	nowNS := now.UnixNano()
	for k, e := range a.entries {
		w := e.n
		if e.last < nowNS {
			w *= a.decayCount(nowNS - e.last)
		}
		if w < a.cfg.MinSamples || e.wt <= 0 {
			continue // too few samples, or a mean whose weight underflowed: unknown
		}
		wt := e.wt
		if e.last < nowNS {
			wt *= a.decay(nowNS - e.last)
		}
		wt = min(wt, w) // a line counts at most once here too
		all = append(all, keyed{k.cell, stat{pop: k.pop, rtt: math.Exp(e.sum / e.wt), samples: w, weight: wt, updated: e.last}})
	}
	a.mu.Unlock()

	s.popIdx = make(map[string]uint16, len(s.pops))
	for i, p := range s.pops {
		s.popIdx[p] = uint16(i)
	}
	slices.SortFunc(all, func(x, y keyed) int {
		if c := cmp.Compare(x.cell, y.cell); c != 0 {
			return c
		}
		return cmp.Compare(x.pop, y.pop)
	})
	s.stats = make([]stat, len(all))
	for i, k := range all {
		s.stats[i] = k.stat
		if i == 0 || all[i-1].cell != k.cell {
			s.keys = append(s.keys, k.cell)
		}
	}
	for _, k := range s.keys {
		if c := cellOfKey(k); c.Kind == CellPrefix {
			if c.Prefix.Addr().Is4() {
				s.prefix4 = append(s.prefix4, uint32(k&(1<<48-1)))
			} else {
				s.prefix6 = append(s.prefix6, k&(1<<48-1))
			}
		}
	}
	s.cells = make(map[uint64]span, len(s.keys))
	lo := 0
	for i := range all {
		if i+1 == len(all) || all[i+1].cell != all[i].cell {
			sp := span{lo: int32(lo), hi: int32(i + 1)}
			var was span
			had := false
			if prev != nil {
				was, had = prev.cells[all[i].cell]
			}
			// The previous leader's PoP index is the same here: PoPs are
			// interned for good.
			sp.leader = s.leader(sp, was.leader, had, a.cfg.Margin)
			s.cells[all[i].cell] = sp
			lo = i + 1
		}
	}
	a.mu.Lock()
	if a.last == nil || s.gen > a.last.gen { // of two built at once, the later
		a.last, a.lastSeq = s, seq
	}
	a.mu.Unlock()
	return s
}

// leader is the PoP index of the cell sp's leader: the one it had in the
// last snapshot (prev, when had) while it is still in the cell and no
// other is better than it by m, else the one with the lowest RTT. It is
// the stabiliser's state: a decision that compared the cell's estimates
// afresh each time could not tell which PoP its clients are on when
// beacons measure several PoPs alike, and would follow the noise
// between two close ones.
func (s *Snapshot) leader(sp span, prev uint16, had bool, m Margin) uint16 {
	best, kept := sp.lo, int32(-1)
	for j := sp.lo; j < sp.hi; j++ {
		if s.stats[j].rtt < s.stats[best].rtt {
			best = j
		}
		if had && s.stats[j].pop == prev {
			kept = j
		}
	}
	if kept >= 0 && !ShouldMove(s.stats[kept].rtt, s.stats[best].rtt, m) {
		return prev
	}
	return s.stats[best].pop
}

// At is the time the snapshot was built at.
func (s *Snapshot) At() time.Time {
	if s == nil {
		return time.Time{}
	}
	return s.at
}

// Generation numbers the snapshots of one aggregator from 1, so that
// caches of decisions made under one can tell it from the next; 0 for nil.
func (s *Snapshot) Generation() uint64 {
	if s == nil {
		return 0
	}
	return s.gen
}

// Len is the number of (cell, PoP) entries that may decide.
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return len(s.stats)
}

// Found is a client's cells as a snapshot holds them, for estimating
// several PoPs with one set of cell lookups.
type Found struct {
	s     *Snapshot
	cells [3]Cell
	spans [3]span
}

// Find looks up the client's cells. It does not allocate.
func (s *Snapshot) Find(c Client) Found {
	f := Found{s: s, cells: c.cells}
	if s == nil {
		return f
	}
	for i, key := range c.keys {
		if key != 0 {
			f.spans[i] = s.cells[key]
		}
	}
	return f
}

// Estimate returns the learned RTT to pop from the finest of the client's
// cells that has one (prefix, then network, then AS), and false when none
// has. It does not allocate.
func (f Found) Estimate(pop string) (Estimate, bool) {
	if f.s == nil {
		return Estimate{}, false
	}
	idx, ok := f.s.popIdx[pop]
	if !ok {
		return Estimate{}, false
	}
	for i := range f.spans {
		if e, ok := f.in(i, idx); ok {
			return e, true
		}
	}
	return Estimate{}, false
}

// EstimateIn returns the learned RTT to pop from the client's cell of
// kind only, without borrowing: for comparing two PoPs within one cell,
// as a caller that calibrates a coarser cell's estimate by the client's
// own does. It does not allocate.
func (f Found) EstimateIn(pop string, kind CellKind) (Estimate, bool) {
	if f.s == nil || kind < CellPrefix || kind > CellAS {
		return Estimate{}, false
	}
	idx, ok := f.s.popIdx[pop]
	if !ok {
		return Estimate{}, false
	}
	return f.in(int(kind-CellPrefix), idx)
}

// in is the estimate of PoP index idx in the client's i-th cell.
func (f Found) in(i int, idx uint16) (Estimate, bool) {
	sp := f.spans[i]
	for j := sp.lo; j < sp.hi; j++ {
		st := &f.s.stats[j]
		if st.pop == idx {
			return Estimate{RTTMS: st.rtt, Cell: f.cells[i], Samples: st.samples, Weight: st.weight, Updated: time.Unix(0, st.updated), Age: time.Duration(f.s.at.UnixNano() - st.updated)}, true
		}
		if st.pop > idx {
			break
		}
	}
	return Estimate{}, false
}

// LeaderIn is the PoP that leads the client's cell of kind: the one with
// the lowest RTT there when it last took the lead, kept from snapshot to
// snapshot while it is in the cell and no other is better by
// Config.Margin. False when the cell has no entries. It does not
// allocate.
func (f Found) LeaderIn(kind CellKind) (string, bool) {
	if f.s == nil || kind < CellPrefix || kind > CellAS {
		return "", false
	}
	sp := f.spans[kind-CellPrefix]
	if sp.hi <= sp.lo {
		return "", false
	}
	return f.s.pops[sp.leader], true
}

// Lookup is Find(c).Estimate(pop).
func (s *Snapshot) Lookup(c Client, pop string) (Estimate, bool) {
	return s.Find(c).Estimate(pop)
}

// HasNetworkCell reports whether the snapshot holds learned entries for
// the GeoIP network p (a network cell): a decision for a client in p may
// depend on them, so the networks around it cannot stand in for it.
func (s *Snapshot) HasNetworkCell(p netip.Prefix) bool {
	if s == nil || !p.IsValid() {
		return false
	}
	c := Cell{Kind: CellNetwork, Prefix: p.Masked()}
	_, ok := s.cells[c.key()]
	return ok
}

// PrefixGap is the range of addresses around addr over which a lookup's
// prefix cell cannot change: addr's own /24 or /48 when the snapshot
// holds it, else the addresses between the nearest prefix cells below and
// above it (the whole family's space when there are none). lo is invalid
// when the snapshot holds no prefix cell of addr's family, so that the
// prefix cells do not narrow a scope at all (latency.ScopeWithin takes it
// so). It does not allocate.
func (s *Snapshot) PrefixGap(addr netip.Addr) (lo, hi netip.Addr) {
	if s == nil {
		return
	}
	addr = addr.Unmap()
	if addr.Is4() {
		if len(s.prefix4) == 0 {
			return
		}
		b := addr.As4()
		top := uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
		i, found := slices.BinarySearch(s.prefix4, top)
		first, last := uint32(0), uint32(1<<24-1)
		switch {
		case found:
			first, last = top, top
		default:
			if i > 0 {
				first = s.prefix4[i-1] + 1
			}
			if i < len(s.prefix4) {
				last = s.prefix4[i] - 1
			}
		}
		return v4Addr(first << 8), v4Addr(last<<8 | 0xff)
	}
	if !addr.Is6() || len(s.prefix6) == 0 {
		return
	}
	b := addr.As16()
	var top uint64
	for _, x := range b[:6] {
		top = top<<8 | uint64(x)
	}
	i, found := slices.BinarySearch(s.prefix6, top)
	first, last := uint64(0), uint64(1<<48-1)
	switch {
	case found:
		first, last = top, top
	default:
		if i > 0 {
			first = s.prefix6[i-1] + 1
		}
		if i < len(s.prefix6) {
			last = s.prefix6[i] - 1
		}
	}
	return v6Addr(first, false), v6Addr(last, true)
}

func v4Addr(a uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
}

// v6Addr is the first (or, with ones, the last) address of the /48 whose
// top 48 bits are top.
func v6Addr(top uint64, ones bool) netip.Addr {
	var b [16]byte
	for i := range 6 {
		b[i] = byte(top >> (40 - 8*i))
	}
	if ones {
		for i := 6; i < 16; i++ {
			b[i] = 0xff
		}
	}
	return netip.AddrFrom16(b)
}
