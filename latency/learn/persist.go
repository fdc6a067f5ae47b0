package learn

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/popdns/popdns/pops"
)

// StateFile is the name of the aggregator's state file in the state
// directory.
const StateFile = "learned-latency.jsonl"

// stateFormat and stateVersion open the state file; a reader refuses
// any other version rather than guess.
const (
	stateFormat  = "popdns-learned-latency"
	stateVersion = 1
)

type stateHeader struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Saved   time.Time `json:"saved"`
	Entries int       `json:"entries"`
}

// stateEntry is one (cell, PoP) of the state file: the running sums as
// they are, so that a load continues exactly where the save stopped.
type stateEntry struct {
	Kind   string  `json:"kind"`
	Prefix string  `json:"prefix,omitempty"`
	ASN    uint32  `json:"asn,omitempty"`
	PoP    string  `json:"pop"`
	Sum    float64 `json:"sum"`
	Weight float64 `json:"weight"`
	// Count is the sample count MinSamples gates (Config.CountHalfLife);
	// absent, it is Weight, as when both half-lives are equal.
	Count float64 `json:"count,omitempty"`
	Last  int64   `json:"last_ns"`
}

// Save writes the aggregator's state to dir/StateFile atomically: into a
// temporary file in dir, synced, then renamed over the old one, so that
// a crash leaves the old state or the new, never half of one. The lock is
// held only to copy the entries.
func (a *Aggregator) Save(dir string, now time.Time) error {
	a.mu.Lock()
	list := make([]entry, 0, len(a.entries))
	for _, e := range a.entries {
		if e.wt > 0 { // else its mean underflowed: nothing to keep, and Load would refuse it
			list = append(list, *e)
		}
	}
	pops := slices.Clone(a.pops)
	a.mu.Unlock()
	// Oldest first, so that a load that must evict keeps the same ones.
	slices.SortFunc(list, func(x, y entry) int {
		if x.last != y.last {
			return compareInt(x.last, y.last)
		}
		return compareInt(x.seq, y.seq)
	})

	f, err := os.CreateTemp(dir, ".learned-latency-*.tmp")
	if err != nil {
		return fmt.Errorf("learn: save state: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, a no-op
	w := bufio.NewWriterSize(f, 1<<16)
	enc := json.NewEncoder(w)
	err = enc.Encode(stateHeader{Format: stateFormat, Version: stateVersion, Saved: now.UTC(), Entries: len(list)})
	for i := 0; err == nil && i < len(list); i++ {
		e := &list[i]
		c := cellOfKey(e.key.cell)
		se := stateEntry{Kind: c.Kind.String(), PoP: pops[e.key.pop], Sum: e.sum, Weight: e.wt, Last: e.last}
		if e.n != e.wt {
			se.Count = e.n
		}
		if c.Kind == CellAS {
			se.ASN = c.ASN
		} else {
			se.Prefix = c.Prefix.String()
		}
		err = enc.Encode(se)
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, StateFile))
	}
	if err != nil {
		return fmt.Errorf("learn: save state: %w", err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename durable
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func compareInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// Bounds of a state file read by Load. It is streamed, so memory is
// bounded by MaxEntries, not by the file; a line is about 150 bytes, and
// the size bound is a sanity check (a file that never ends), far above
// what max_cells' largest table writes.
const (
	maxStateLine  = 4 << 10
	maxStateBytes = 64 << 30
)

// LoadReport says what Load did with a state file.
type LoadReport struct {
	Entries int // entries loaded (after evictions)
	Stale   int // entries stale at now, skipped
	Evicted int // entries beyond MaxEntries, evicted oldest first
	// Future counts entries whose newest sample lay after now, taken as
	// measured now: the clock is behind the one that saved them (NTP
	// not yet synced after boot, a restored VM).
	Future int
}

// Load reads dir/StateFile into a new aggregator with cfg (LoadState
// without its report).
func Load(dir string, cfg Config, now time.Time) (*Aggregator, error) {
	a, _, err := LoadState(dir, cfg, now)
	return a, err
}

// LoadState reads dir/StateFile into a new aggregator with cfg. A
// missing file is an empty aggregator and no error. A corrupt or foreign
// file is an error naming the file and line, with an empty aggregator
// beside it, so that the caller logs it and learns afresh; it never
// panics. Entries stale at now are skipped; beyond MaxEntries, the oldest
// are evicted. An entry whose newest sample lies after now is kept, as
// measured now, and counted in LoadReport.Future: a clock behind the
// saver's must not cost the learned table.
func LoadState(dir string, cfg Config, now time.Time) (*Aggregator, LoadReport, error) {
	a := NewAggregator(cfg)
	path := filepath.Join(dir, StateFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return a, LoadReport{}, nil
	}
	if err != nil {
		return a, LoadReport{}, fmt.Errorf("learn: load state: %w", err)
	}
	defer f.Close()
	rep, err := a.load(f, now)
	if err != nil {
		return NewAggregator(cfg), LoadReport{}, fmt.Errorf("learn: load state %s: %w (starting empty)", path, err)
	}
	return a, rep, nil
}

func (a *Aggregator) load(r io.Reader, now time.Time) (LoadReport, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var rep LoadReport
	lr := &io.LimitedReader{R: r, N: maxStateBytes + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 0, maxStateLine), maxStateLine)
	lineNo := 0
	next := func() ([]byte, error) {
		if !sc.Scan() {
			switch err := sc.Err(); {
			case errors.Is(err, bufio.ErrTooLong):
				return nil, fmt.Errorf("line %d: longer than %d bytes: not a state file", lineNo+1, maxStateLine)
			case err != nil:
				return nil, fmt.Errorf("line %d: %w", lineNo+1, err)
			case lr.N <= 0:
				return nil, fmt.Errorf("line %d: the file is larger than %d bytes", lineNo, int64(maxStateBytes))
			}
			return nil, io.EOF
		}
		lineNo++
		return sc.Bytes(), nil
	}
	line, err := next()
	if errors.Is(err, io.EOF) {
		return rep, errors.New("line 1: empty file, want a header")
	}
	if err != nil {
		return rep, err
	}
	var h stateHeader
	if err := strictJSON(line, &h); err != nil {
		return rep, fmt.Errorf("line 1: header: %w", err)
	}
	if h.Format != stateFormat || h.Version != stateVersion {
		return rep, fmt.Errorf("line 1: header: format %q version %d, want %q version %d", h.Format, h.Version, stateFormat, stateVersion)
	}
	staleBefore := now.Add(-a.cfg.StaleAfter).UnixNano()
	nowNS := now.UnixNano()
	n := 0
	for {
		line, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rep, err
		}
		n++
		if n > h.Entries {
			return rep, fmt.Errorf("line %d: the header counts %d entries, the file holds more", lineNo, h.Entries)
		}
		var se stateEntry
		if err := strictJSON(line, &se); err != nil {
			return rep, fmt.Errorf("line %d: %w", lineNo, err)
		}
		k, err := a.checkEntryLocked(&se)
		if err != nil {
			return rep, fmt.Errorf("line %d: %w", lineNo, err)
		}
		if se.Last < staleBefore {
			rep.Stale++
			continue
		}
		if a.entries[k] != nil {
			return rep, fmt.Errorf("line %d: %s to %s listed twice", lineNo, cellOfKey(k.cell), se.PoP)
		}
		if se.Last > nowNS {
			// Saved by a clock ahead of ours, or ours is behind: its
			// samples are as fresh as can be, so they count as now. The
			// sums stay as saved (decayed to their newest sample).
			se.Last = nowNS
			rep.Future++
		}
		a.seq++
		e := &entry{key: k, sum: se.Sum, wt: se.Weight, n: se.Count, last: se.Last, seq: a.seq}
		if se.Count == 0 {
			e.n = se.Weight
		}
		a.entries[k] = e
		heap.Push(&a.age, e)
		if len(a.entries) > a.cfg.MaxEntries {
			a.evictLocked(heap.Pop(&a.age).(*entry))
			rep.Evicted++
		}
	}
	if n != h.Entries {
		return rep, fmt.Errorf("line %d: the header counts %d entries, the file holds %d (truncated?)", lineNo, h.Entries, n)
	}
	rep.Entries = len(a.entries)
	return rep, nil
}

// checkEntryLocked validates one state entry and interns its PoP.
func (a *Aggregator) checkEntryLocked(se *stateEntry) (entryKey, error) {
	var c Cell
	switch se.Kind {
	case "prefix", "network":
		p, err := netip.ParsePrefix(se.Prefix)
		if err != nil || p.Masked() != p || p.Addr().Zone() != "" {
			return entryKey{}, fmt.Errorf("prefix: %q is not a network", se.Prefix)
		}
		c = Cell{Kind: CellNetwork, Prefix: p}
		cell := CellOf(p.Addr())
		switch {
		case se.Kind == "prefix" && cell != p:
			return entryKey{}, fmt.Errorf("prefix: %s is not a /%d or /%d cell", p, CellBits4, CellBits6)
		case se.Kind == "prefix":
			c.Kind = CellPrefix
		case p.Addr().Is4In6() || p.Bits() >= cell.Bits():
			return entryKey{}, fmt.Errorf("prefix: network %s is not wider than a /%d or /%d cell", p, CellBits4, CellBits6)
		}
	case "as":
		if se.ASN == 0 {
			return entryKey{}, errors.New("asn: missing")
		}
		c = Cell{Kind: CellAS, ASN: se.ASN}
	default:
		return entryKey{}, fmt.Errorf("kind: %q is not prefix, network or as", se.Kind)
	}
	if !pops.ValidName(se.PoP) {
		return entryKey{}, fmt.Errorf("pop: %q is not a PoP name", se.PoP)
	}
	if !(se.Weight > 0) || math.IsInf(se.Weight, 0) || math.IsNaN(se.Sum) || math.IsInf(se.Sum, 0) {
		return entryKey{}, fmt.Errorf("weight: %v, sum %v: not a running mean", se.Weight, se.Sum)
	}
	if se.Count < 0 || math.IsInf(se.Count, 0) || math.IsNaN(se.Count) {
		return entryKey{}, fmt.Errorf("count: %v is not a sample count", se.Count)
	}
	if mean := se.Sum / se.Weight; !(mean > math.Log(1e-9) && mean <= math.Log(MaxRTTMS)+1e-9) {
		return entryKey{}, fmt.Errorf("sum: mean RTT %s ms is out of range", strconv.FormatFloat(math.Exp(mean), 'g', 4, 64))
	}
	if _, known := a.popIdx[se.PoP]; !known && len(a.pops) >= MaxPoPs {
		return entryKey{}, fmt.Errorf("pop: more than %d PoPs", MaxPoPs)
	}
	return entryKey{c.key(), a.internLocked(se.PoP)}, nil
}

// strictJSON decodes one JSON object, refusing unknown fields and
// trailing data.
func strictJSON(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}
