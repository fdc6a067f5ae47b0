package zones

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/popdns/popdns/internal/yamlx"
	"github.com/popdns/popdns/pops"
	"go.yaml.in/yaml/v3"
)

// IsDataFile reports whether a zones-directory entry is something Load
// reads: a zone file or a latency table.
func IsDataFile(name string) bool { return IsZoneFile(name) || IsLatencyFile(name) }

// IsLatencyFile reports whether a zones-directory entry is a latency
// table: name.csv, or name.latency.yaml (.yml).
func IsLatencyFile(name string) bool {
	base := path.Base(name)
	if strings.HasPrefix(base, ".") || strings.HasSuffix(base, "~") {
		return false
	}
	return path.Ext(base) == ".csv" || strings.HasSuffix(base, ".latency.yaml") || strings.HasSuffix(base, ".latency.yml")
}

// LatencyEntry is one measurement: the round-trip time from the clients in
// Prefix to PoP.
type LatencyEntry struct {
	Prefix   netip.Prefix
	PoP      string
	RTTMS    float64
	Measured time.Time // zero: undated, never too old
	File     string
	Line     int
}

// LatencyTable holds measured RTTs by PoP and client network. For each PoP
// and address family the entries are flattened into disjoint address
// spans, each knowing the entries that cover it (longest prefix first), so
// that a lookup is one binary search and the span bounds give the exact
// ECS scope. It is immutable and safe for concurrent use; a nil table is
// empty.
type LatencyTable struct {
	entries []LatencyEntry
	byPoP   map[string]*popSpans
}

type popSpans struct {
	v4, v6 []span
}

// span is a range of addresses over which the covering entries are the
// same. chain indexes LatencyTable.entries, longest prefix first; it is
// empty where no entry covers the range.
type span struct {
	lo, hi netip.Addr
	chain  []int32
}

// Len is the number of entries.
func (t *LatencyTable) Len() int {
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
func (t *LatencyTable) Lookup(pop string, client netip.Addr, now time.Time, maxAge time.Duration) (e *LatencyEntry, lo, hi netip.Addr) {
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

// newLatencyTable flattens entries, which must hold no duplicate
// (prefix, PoP) pair.
func newLatencyTable(entries []LatencyEntry) *LatencyTable {
	t := &LatencyTable{entries: entries, byPoP: map[string]*popSpans{}}
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
func flatten(entries []LatencyEntry, idx []int32, first, last netip.Addr) []span {
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

// latencyKeys are the keys of one entry of a .latency.yaml table.
var latencyKeys = yamlx.Keys{Names: []string{"prefix", "pop", "rtt_ms", "timestamp"}}

// parseLatencyFile reads a latency table file: CSV (prefix,pop,rtt_ms and
// an optional timestamp, a header line allowed) or, for .latency.yaml, a
// list of mappings with the same keys.
func parseLatencyFile(file string, data []byte, inv *pops.Inventory) ([]LatencyEntry, ErrorList) {
	var errs ErrorList
	var entries []LatencyEntry
	add := func(line int, prefix, pop, rtt, ts string) {
		e := LatencyEntry{PoP: pop, File: file, Line: line}
		p, err := netip.ParsePrefix(strings.TrimSpace(prefix))
		switch {
		case err != nil || p.Addr().Zone() != "":
			errs.Addf(file, line, "prefix", "%q is not a network such as 198.51.100.0/24", prefix)
			return
		case p.Masked() != p:
			errs.Addf(file, line, "prefix", "%s has host bits set; the network is %s", prefix, p.Masked())
			return
		}
		e.Prefix = p
		if inv.Get(e.PoP) == nil {
			errs.Addf(file, line, "pop", "unknown PoP %q", pop)
			return
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rtt), 64)
		if err != nil || v < 0 || v > 60_000 {
			errs.Addf(file, line, "rtt_ms", "%q is not a round-trip time in milliseconds", rtt)
			return
		}
		e.RTTMS = v
		if ts = strings.TrimSpace(ts); ts != "" {
			if secs, err := strconv.ParseInt(ts, 10, 64); err == nil {
				e.Measured = time.Unix(secs, 0)
			} else if tm, err := time.Parse(time.RFC3339, ts); err == nil {
				e.Measured = tm
			} else {
				errs.Addf(file, line, "timestamp", "%q is neither RFC 3339 nor Unix seconds", ts)
				return
			}
		}
		entries = append(entries, e)
	}
	if path.Ext(file) == ".csv" {
		r := csv.NewReader(bytes.NewReader(data))
		r.Comment = '#'
		r.FieldsPerRecord = -1
		r.TrimLeadingSpace = true
		for first := true; ; first = false {
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				line := 0
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					line = pe.Line
				}
				errs.Addf(file, line, "", "invalid CSV: %v", err)
				break
			}
			line, _ := r.FieldPos(0)
			if first && strings.EqualFold(strings.TrimSpace(rec[0]), "prefix") {
				continue // header
			}
			if len(rec) < 3 || len(rec) > 4 {
				errs.Addf(file, line, "", "want prefix,pop,rtt_ms[,timestamp], got %d fields", len(rec))
				continue
			}
			ts := ""
			if len(rec) == 4 {
				ts = rec[3]
			}
			add(line, rec[0], strings.TrimSpace(rec[1]), rec[2], ts)
		}
	} else {
		root, perr := yamlx.Parse(file, data)
		switch {
		case perr != nil:
			perr.Msg += " (want a list of {prefix, pop, rtt_ms, timestamp})"
			return nil, ErrorList{perr}
		case yamlx.IsNull(root):
			return nil, nil
		case root.Kind != yaml.SequenceNode:
			errs.Addf(file, root.Line, "", "a latency table is a list of {prefix, pop, rtt_ms, timestamp}")
			return nil, errs
		}
		for _, n := range root.Content {
			n = yamlx.Resolve(n)
			if n.Kind != yaml.MappingNode {
				errs.Addf(file, n.Line, "", "each entry is a mapping {prefix, pop, rtt_ms, timestamp}")
				continue
			}
			var v struct {
				Prefix, PoP, RTT, Timestamp string
			}
			werrs := yamlx.Walk(file, "", n, latencyKeys, func(e yamlx.Entry) {
				switch e.Key {
				case "prefix":
					v.Prefix = e.Value.Value
				case "pop":
					v.PoP = e.Value.Value
				case "rtt_ms":
					v.RTT = e.Value.Value
				case "timestamp":
					v.Timestamp = e.Value.Value
				}
			})
			if len(werrs) > 0 {
				errs.Add(werrs)
				continue
			}
			add(n.Line, v.Prefix, v.PoP, v.RTT, v.Timestamp)
		}
	}
	return entries, errs
}

// mergeLatency combines the tables of several files; a (prefix, PoP) pair
// measured twice is an error on the later line.
func mergeLatency(files [][]LatencyEntry) (*LatencyTable, ErrorList) {
	var errs ErrorList
	var all []LatencyEntry
	seen := map[string]*LatencyEntry{}
	for _, entries := range files {
		for i := range entries {
			e := &entries[i]
			key := e.Prefix.String() + " " + e.PoP
			if first := seen[key]; first != nil {
				errs.Addf(e.File, e.Line, "prefix", "%s to %s is already measured at %s:%d", e.Prefix, e.PoP, first.File, first.Line)
				continue
			}
			seen[key] = e
			all = append(all, *e)
		}
	}
	if len(all) == 0 {
		return nil, errs
	}
	return newLatencyTable(all), errs
}

func (e *LatencyEntry) String() string {
	return fmt.Sprintf("%s→%s %gms (%s:%d)", e.Prefix, e.PoP, e.RTTMS, e.File, e.Line)
}
