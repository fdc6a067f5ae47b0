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

// Load reads dir/StateFile into a new aggregator with cfg. A missing file
// is an empty aggregator and no error. A corrupt or foreign file is an
// error naming the file and line, with an empty aggregator beside it, so
// that the caller logs it and learns afresh; it never panics. Entries
// stale at now are skipped; beyond MaxEntries, the oldest are evicted.
func Load(dir string, cfg Config, now time.Time) (*Aggregator, error) {
	a := NewAggregator(cfg)
	path := filepath.Join(dir, StateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return a, fmt.Errorf("learn: load state: %w", err)
	}
	if err := a.load(data, now); err != nil {
		return NewAggregator(cfg), fmt.Errorf("learn: load state %s: %w (starting empty)", path, err)
	}
	return a, nil
}

func (a *Aggregator) load(data []byte, now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	lines := bytes.Split(data, []byte{'\n'})
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return errors.New("line 1: empty file, want a header")
	}
	var h stateHeader
	if err := strictJSON(lines[0], &h); err != nil {
		return fmt.Errorf("line 1: header: %w", err)
	}
	if h.Format != stateFormat || h.Version != stateVersion {
		return fmt.Errorf("line 1: header: format %q version %d, want %q version %d", h.Format, h.Version, stateFormat, stateVersion)
	}
	if h.Entries != len(lines)-1 {
		return fmt.Errorf("line %d: the header counts %d entries, the file holds %d (truncated?)", len(lines), h.Entries, len(lines)-1)
	}
	staleBefore := now.Add(-a.cfg.StaleAfter).UnixNano()
	for i, line := range lines[1:] {
		var se stateEntry
		if err := strictJSON(line, &se); err != nil {
			return fmt.Errorf("line %d: %w", i+2, err)
		}
		k, err := a.checkEntryLocked(&se)
		if err != nil {
			return fmt.Errorf("line %d: %w", i+2, err)
		}
		if se.Last > now.Add(DefaultMaxSkew).UnixNano() {
			return fmt.Errorf("line %d: last_ns: %s is in the future", i+2, time.Unix(0, se.Last).UTC().Format(time.RFC3339))
		}
		if se.Last < staleBefore {
			continue
		}
		if a.entries[k] != nil {
			return fmt.Errorf("line %d: %s to %s listed twice", i+2, cellOfKey(k.cell), se.PoP)
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
		}
	}
	return nil
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
