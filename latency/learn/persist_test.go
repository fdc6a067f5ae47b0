package learn

import (
	"bytes"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/latency"
	"github.com/popdns/popdns/pops"
)

// randomAggregator learns a random stream, with locate's networks and ASes.
func randomAggregator(t testing.TB, cfg Config, seed uint64) (*Aggregator, []Measurement) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 4))
	agg := NewAggregator(cfg)
	var all []Measurement
	for range 10 {
		var ms []Measurement
		for range 30 {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, byte(rng.IntN(20)), 0}), 24)
			if rng.IntN(3) == 0 {
				p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 5: byte(rng.IntN(5))}), 48)
			}
			ms = append(ms, Measurement{Prefix: p, PoP: []string{"fra", "iad", "sin"}[rng.IntN(3)], RTTMS: 1 + rng.Float64()*300, Weight: 1,
				Time: now.Add(-time.Duration(rng.IntN(3600)) * time.Second)})
		}
		if _, err := agg.Ingest(ms, now, locate); err != nil {
			t.Fatal(err)
		}
		all = append(all, ms...)
	}
	return agg, all
}

// dump lists a snapshot's entries exactly and sorted, for comparing two
// (PoPs are numbered in the order they were first seen, which a load
// need not keep).
func dump(s *Snapshot) string {
	var lines []string
	for _, k := range s.keys {
		c, sp := cellOfKey(k), s.cells[k]
		for _, st := range s.stats[sp.lo:sp.hi] {
			lines = append(lines, strings.Join([]string{c.String(), s.pops[st.pop], time.Unix(0, st.updated).UTC().Format(time.RFC3339Nano), ftoa(st.rtt), ftoa(st.samples)}, " "))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func TestSaveLoad(t *testing.T) {
	for _, count := range []time.Duration{0, time.Hour} {
		testSaveLoad(t, Config{HalfLife: 20 * time.Minute, CountHalfLife: count, MinSamples: 1, MaxEntries: 50, MaxNewPerIngest: 1000})
	}
}

// testSaveLoad round-trips an aggregator of cfg through its state file.
func testSaveLoad(t *testing.T, cfg Config) {
	agg, _ := randomAggregator(t, cfg, 1)
	dir := t.TempDir()
	if err := agg.Save(dir, now); err != nil {
		t.Fatal(err)
	}
	if err := agg.Save(dir, now); err != nil { // over the old one
		t.Fatal(err)
	}
	saved := agg.Len()
	back, err := Load(dir, cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	if agg.Len() != back.Len() || dump(agg.Snapshot(now)) != dump(back.Snapshot(now)) {
		t.Fatalf("round trip differs:\n%s\nvs\n%s", dump(agg.Snapshot(now)), dump(back.Snapshot(now)))
	}
	// Both go on identically, evictions included.
	_, ms := randomAggregator(t, cfg, 3)
	later := now.Add(10 * time.Minute)
	r1, err1 := agg.Ingest(ms, later, locate)
	r2, err2 := back.Ingest(ms, later, locate)
	if err1 != nil || err2 != nil || r1 != r2 || dump(agg.Snapshot(later)) != dump(back.Snapshot(later)) {
		t.Fatalf("after more measurements: %+v %v vs %+v %v", r1, err1, r2, err2)
	}
	if r1.Evicted == 0 {
		t.Error("no evictions: the test does not check their order")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != StateFile {
		t.Errorf("state dir holds %v, want only %s", entries, StateFile)
	}

	// Loading later skips what went stale; a smaller cap keeps the newest.
	small := cfg
	small.MaxEntries = 10
	b2, err := Load(dir, small, now)
	if err != nil || b2.Len() != 10 {
		t.Fatalf("with a cap of 10: %d entries, %v", b2.Len(), err)
	}
	b3, err := Load(dir, Config{StaleAfter: 30 * time.Minute}, now.Add(28*time.Minute))
	if err != nil || b3.Len() == 0 || b3.Len() >= saved {
		t.Errorf("28 min later, stale after 30: %d of %d entries, %v", b3.Len(), saved, err)
	}
}

func TestLoadMissing(t *testing.T) {
	a, err := Load(t.TempDir(), Config{}, now)
	if err != nil || a == nil || a.Len() != 0 {
		t.Fatalf("%v, %v", a, err)
	}
	if err := NewAggregator(Config{}).Save(filepath.Join(t.TempDir(), "nope"), now); err == nil {
		t.Error("saving into a missing directory succeeded")
	}
}

func TestLoadCorrupt(t *testing.T) {
	const header = `{"format":"popdns-learned-latency","version":1,"saved":"2026-12-02T01:00:00Z","entries":1}` + "\n"
	entry := func(s string) string { return header + s + "\n" }
	const good = `{"kind":"prefix","prefix":"198.51.100.0/24","pop":"fra","sum":4.6,"weight":2,"last_ns":1796173200000000000}`
	tests := []struct{ name, data, want string }{
		{"empty", "", "line 1: empty file, want a header"},
		{"not JSON", "PK\x03\x04", "line 1: header: invalid character"},
		{"other format", `{"format":"x","version":1,"saved":"2026-12-02T01:00:00Z","entries":0}`, `line 1: header: format "x" version 1, want "popdns-learned-latency" version 1`},
		{"newer version", `{"format":"popdns-learned-latency","version":2,"saved":"2026-12-02T01:00:00Z","entries":0}`, `line 1: header: format "popdns-learned-latency" version 2, want`},
		{"truncated", header, "line 1: the header counts 1 entries, the file holds 0 (truncated?)"},
		{"unknown header field", `{"format":"popdns-learned-latency","version":1,"saved":"2026-12-02T01:00:00Z","entries":0,"compressed":true}`, `line 1: header: json: unknown field "compressed"`},
		{"bad line", entry(`{"kind":"prefix",`), "line 2: unexpected EOF"},
		{"unknown field", entry(`{"kind":"prefix","prefix":"198.51.100.0/24","pop":"fra","sum":4.6,"weight":2,"last_ns":1,"x":1}`), `line 2: json: unknown field "x"`},
		{"bad kind", entry(strings.Replace(good, `"prefix",`, `"city",`, 1)), `line 2: kind: "city" is not prefix, network or as`},
		{"bad prefix", entry(strings.Replace(good, "198.51.100.0/24", "198.51.100.1/24", 1)), `line 2: prefix: "198.51.100.1/24" is not a network`},
		{"not a cell", entry(strings.Replace(good, "198.51.100.0/24", "198.51.100.0/25", 1)), "line 2: prefix: 198.51.100.0/25 is not a /24 or /48 cell"},
		{"network too fine", entry(strings.Replace(good, `"prefix",`, `"network",`, 1)), "line 2: prefix: network 198.51.100.0/24 is not wider than a /24 or /48 cell"},
		{"no asn", entry(`{"kind":"as","pop":"fra","sum":4.6,"weight":2,"last_ns":1}`), "line 2: asn: missing"},
		{"bad pop", entry(strings.Replace(good, `"fra"`, `"FRA"`, 1)), `line 2: pop: "FRA" is not a PoP name`},
		{"zero weight", entry(strings.Replace(good, `"weight":2`, `"weight":0`, 1)), "line 2: weight: 0, sum 4.6: not a running mean"},
		{"mean out of range", entry(strings.Replace(good, `"sum":4.6`, `"sum":46`, 1)), "line 2: sum: mean RTT 9.745e+09 ms is out of range"},
		{"long line", header + `{"kind":"prefix","prefix":"` + strings.Repeat("1", 5000) + "\n", "line 2: longer than 4096 bytes: not a state file"},
		{"more than counted", header + good + "\n" + good + "\n", "line 3: the header counts 1 entries, the file holds more"},
		{"twice", strings.Replace(header, `"entries":1`, `"entries":2`, 1) + good + "\n" + good + "\n", "line 3: 198.51.100.0/24 to fra listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(tt.data), 0o644); err != nil {
				t.Fatal(err)
			}
			a, err := Load(dir, Config{StaleAfter: 100 * 365 * 24 * time.Hour}, now)
			prefix := "learn: load state " + filepath.Join(dir, StateFile) + ": "
			if err == nil || !strings.HasPrefix(err.Error(), prefix+tt.want) || !strings.HasSuffix(err.Error(), "(starting empty)") {
				t.Fatalf("got %v\nwant %s%s…", err, prefix, tt.want)
			}
			if a == nil || a.Len() != 0 {
				t.Fatalf("after a corrupt file: %v, want an empty aggregator", a)
			}
			if _, err := a.Ingest([]Measurement{{Prefix: pfx("198.51.100.0/24"), PoP: "fra", RTTMS: 3, Weight: 1}}, now, nil); err != nil || a.Len() != 1 {
				t.Errorf("the empty aggregator does not learn: %v", err)
			}
		})
	}
	// The good entry alone loads.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(entry(good)), 0o644); err != nil {
		t.Fatal(err)
	}
	if a, err := Load(dir, Config{StaleAfter: 100 * 365 * 24 * time.Hour}, now); err != nil || a.Len() != 1 {
		t.Errorf("the good entry: %v, %v", a.Len(), err)
	}
}

// TestWriteTable: the export reads back through the latency package's
// own parser, with each prefix and network entry and no AS entry.
func TestWriteTable(t *testing.T) {
	agg, _ := randomAggregator(t, Config{MinSamples: 1, MaxNewPerIngest: 1000, HalfLife: time.Hour}, 5)
	snap := agg.Snapshot(now)
	var buf bytes.Buffer
	if err := snap.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	var list []pops.PoP
	for _, name := range []string{"fra", "iad", "sin"} {
		list = append(list, pops.PoP{Name: name, Weight: 1})
	}
	inv, err := pops.New(list...)
	if err != nil {
		t.Fatal(err)
	}
	entries, errs := latency.Parse("learned.csv", buf.Bytes(), inv)
	if len(errs) > 0 {
		t.Fatalf("the export does not parse: %v\n%s", errs, buf.String())
	}
	table, errs := latency.Merge([][]latency.Entry{entries})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	byKey := map[string]latency.Entry{}
	for _, e := range entries {
		byKey[e.Prefix.String()+" "+e.PoP] = e
	}
	want := 0
	for _, k := range snap.keys {
		c, sp := cellOfKey(k), snap.cells[k]
		for _, st := range snap.stats[sp.lo:sp.hi] {
			if c.Kind == CellAS {
				continue
			}
			want++
			e, ok := byKey[c.Prefix.String()+" "+snap.pops[st.pop]]
			if !ok || math.Abs(e.RTTMS-st.rtt) > 0.0005 || e.Measured.Unix() != st.updated/1e9 {
				t.Errorf("%v %s: table has %v, want %v ms", c, snap.pops[st.pop], e, st.rtt)
			}
		}
	}
	// The table's longest-prefix match borrows as the snapshot does, from
	// the /24 to its network.
	if e, _, _ := table.Lookup("fra", netip.MustParseAddr("198.51.1.1"), now, 0); e == nil {
		t.Error("no table entry for 198.51.1.1 to fra")
	}
	if len(entries) != want || want == 0 {
		t.Errorf("%d entries exported, want %d", len(entries), want)
	}
	var empty bytes.Buffer
	if err := (*Snapshot)(nil).WriteTable(&empty); err != nil || !strings.HasSuffix(empty.String(), "prefix,pop,rtt_ms,timestamp\n") {
		t.Errorf("nil snapshot: %q %v", empty.String(), err)
	}
}

// FuzzLoad: a state file of any content loads or fails cleanly, never
// panics, and a failed load leaves an empty aggregator.
func FuzzLoad(f *testing.F) {
	agg, _ := randomAggregator(f, Config{MinSamples: 1, MaxNewPerIngest: 1000}, 9)
	dir := f.TempDir()
	if err := agg.Save(dir, now); err != nil {
		f.Fatal(err)
	}
	saved, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(saved)                // a real state file
	f.Add(saved[:len(saved)/2]) // cut short
	f.Add([]byte(`{"format":"popdns-learned-latency","version":1,"saved":"2026-12-02T01:00:00Z","entries":1}` + "\n" +
		`{"kind":"as","asn":4294967295,"pop":"a","sum":-1e300,"weight":1e-300,"last_ns":-9223372036854775808}`)) // extremes
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, StateFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := Load(dir, Config{StaleAfter: 100 * 365 * 24 * time.Hour, MinSamples: 1e-300}, now)
		if a == nil || err != nil && a.Len() != 0 {
			t.Fatalf("%v, %v", a, err)
		}
		s := a.Snapshot(now)
		var buf bytes.Buffer
		if err := s.WriteTable(&buf); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLoadFuture: a state file saved by a clock ahead of ours (NTP not
// yet synced after boot, a restored VM) loads whole, its entries taken
// as measured now and counted, rather than being refused as corrupt and
// the table learned afresh (review M1).
func TestLoadFuture(t *testing.T) {
	cfg := Config{MinSamples: 0.5, MaxNewPerIngest: 1000, HalfLife: 20 * time.Minute, StaleAfter: 100 * 24 * time.Hour}
	for _, ahead := range []time.Duration{time.Minute, time.Hour, 30 * 24 * time.Hour} {
		t.Run(ahead.String(), func(t *testing.T) {
			saved := now.Add(ahead)
			agg := NewAggregator(cfg)
			ms := []Measurement{
				{Prefix: pfx("198.51.100.0/24"), PoP: "fra", RTTMS: 10, Weight: 1, Time: saved},
				{Prefix: pfx("203.0.113.0/24"), PoP: "iad", RTTMS: 80, Weight: 1, Time: now.Add(-time.Minute)}, // before now: as saved
			}
			if _, err := agg.Ingest(ms, saved, nil); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := agg.Save(dir, saved); err != nil {
				t.Fatal(err)
			}
			back, rep, err := LoadState(dir, cfg, now)
			if err != nil {
				t.Fatalf("LoadState: %v", err)
			}
			if rep != (LoadReport{Entries: 2, Future: 1}) || back.Len() != 2 {
				t.Fatalf("report %+v, %d entries; want 2 entries, 1 from the future", rep, back.Len())
			}
			snap := back.Snapshot(now)
			e, ok := snap.Lookup(ClientOf(netip.MustParseAddr("198.51.100.1"), netip.Prefix{}, 0), "fra")
			if !ok || !near(e.RTTMS, 10) || !e.Updated.Equal(now) {
				t.Errorf("the future entry: %+v %v, want 10 ms updated now", e, ok)
			}
			if _, ok := snap.Lookup(ClientOf(netip.MustParseAddr("203.0.113.1"), netip.Prefix{}, 0), "iad"); !ok {
				t.Errorf("the past entry is gone")
			}
			// It learns on at its own clock, the new sample folding in.
			if _, err := back.Ingest([]Measurement{{Prefix: pfx("198.51.100.0/24"), PoP: "fra", RTTMS: 10, Weight: 1}}, now, nil); err != nil {
				t.Fatal(err)
			}
			if e, ok := back.Snapshot(now).Lookup(ClientOf(netip.MustParseAddr("198.51.100.1"), netip.Prefix{}, 0), "fra"); !ok || !near(e.RTTMS, 10) || !near(e.Samples, 2) {
				t.Errorf("after a new sample: %+v %v, want 10 ms from 2", e, ok)
			}
		})
	}
}
