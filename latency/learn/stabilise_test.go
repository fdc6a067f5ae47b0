package learn

import (
	"math"
	"net/netip"
	"testing"
	"time"
)

func TestShouldMove(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	m := Margin{MS: 5, Percent: 10}
	tests := []struct {
		name               string
		current, candidate float64
		m                  Margin
		want               bool
	}{
		{"better by both", 100, 80, m, true},
		{"exactly both margins", 50, 45, m, true},
		{"ms but not percent", 100, 94, m, false}, // 6 ms, 6 %
		{"percent but not ms", 20, 16, m, false},  // 4 ms, 20 %
		{"slow path, 2 ms is nothing", 300, 298, m, false},
		{"fast path, 10 % is 1 ms", 10, 9, m, false},
		{"worse", 50, 60, m, false},
		{"equal, zero margin", 50, 50, Margin{}, false},
		{"better, zero margin", 50, 49.9, Margin{}, true},
		{"percent only", 10, 8, Margin{Percent: 20}, true},
		{"ms only", 300, 299, Margin{MS: 1}, true},
		{"current unknown: NaN", nan, 80, m, true},
		{"current unknown: 0", 0, 80, m, true},
		{"current unknown: inf", inf, 80, m, true},
		{"candidate unknown", 100, nan, m, false},
		{"candidate negative", 100, -1, m, false},
		{"both unknown", nan, inf, m, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ShouldMove(tt.current, tt.candidate, tt.m); got != tt.want {
				t.Errorf("ShouldMove(%v, %v, %+v) = %v, want %v", tt.current, tt.candidate, tt.m, got, tt.want)
			}
		})
	}
}

// TestLeader publishes one cell's RTTs snapshot after snapshot and checks
// its leader against the rule worked by hand: kept until another PoP is
// better by the margin, the best when the cell is new or its leader left.
func TestLeader(t *testing.T) {
	type step map[string]float64 // PoP → its RTT from this snapshot on; 0: no longer measured
	m := Margin{MS: 3, Percent: 10}
	tests := []struct {
		name   string
		margin Margin
		steps  []step
		want   []string
	}{
		{"first the best", m, []step{{"fra": 20, "iad": 18}}, []string{"iad"}},
		{"kept within the margin", m, []step{{"fra": 20, "iad": 21}, {"fra": 22, "iad": 20}, {"fra": 22.9, "iad": 20}},
			[]string{"fra", "fra", "fra"}},
		{"moved beyond both parts", m, []step{{"fra": 20, "iad": 21}, {"fra": 40, "iad": 21}, {"fra": 20, "iad": 21}},
			[]string{"fra", "iad", "iad"}},
		{"3 ms but not 10 %", m, []step{{"fra": 60, "iad": 70}, {"fra": 60, "iad": 56}}, []string{"fra", "fra"}},
		{"a new PoP must beat it too", m, []step{{"fra": 20}, {"fra": 20, "iad": 18}, {"fra": 20, "iad": 16.5}},
			[]string{"fra", "fra", "iad"}},
		{"the leader gone", m, []step{{"fra": 20, "iad": 21, "lhr": 22}, {"fra": 0, "iad": 21, "lhr": 20.5}},
			[]string{"fra", "lhr"}},
		{"no margin: the best", Margin{}, []step{{"fra": 20, "iad": 21}, {"fra": 20.5, "iad": 20.4}}, []string{"fra", "iad"}},
	}
	cell := netip.MustParsePrefix("192.0.2.0/24")
	client := ClientOf(cell.Addr(), netip.Prefix{}, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A half-life of a nanosecond makes each mean its newest
			// sample. Each PoP is measured once a step, so one that is
			// no longer measured drops out at the next: its count,
			// decaying over an hour, falls below MinSamples (1).
			agg := NewAggregator(Config{HalfLife: time.Nanosecond, CountHalfLife: time.Hour, MinSamples: 1, Margin: tt.margin})
			at := now
			for i, st := range tt.steps {
				at = at.Add(time.Minute)
				var ms []Measurement
				for pop, rtt := range st {
					if rtt > 0 {
						ms = append(ms, Measurement{Prefix: cell, PoP: pop, RTTMS: rtt, Weight: 1, Time: at})
					}
				}
				if _, err := agg.Ingest(ms, at, nil); err != nil {
					t.Fatal(err)
				}
				snap := agg.Snapshot(at)
				got, ok := snap.Find(client).LeaderIn(CellPrefix)
				if !ok || got != tt.want[i] {
					t.Errorf("snapshot %d: leader %q (%v), want %q", i+1, got, ok, tt.want[i])
				}
				if _, ok := snap.Find(client).LeaderIn(CellNetwork); ok {
					t.Errorf("snapshot %d: a leader for a cell without entries", i+1)
				}
			}
		})
	}
}

// TestWeightCountsLines: an estimate's Weight, which decides whether a
// cell may decide alone (steer.CellWeight), counts a line at most once
// whatever its weight, as Samples does, and decays over HalfLife.
func TestWeightCountsLines(t *testing.T) {
	cell := netip.MustParsePrefix("192.0.2.0/24")
	client := ClientOf(cell.Addr(), netip.Prefix{}, 0)
	for _, tc := range []struct {
		name    string
		weights []float64
		age     time.Duration
		want    float64
	}{
		{"one heavy line", []float64{MaxWeight}, 0, 1},
		{"two light lines", []float64{0.5, 0.5}, 0, 1},
		{"two lines", []float64{1, 1}, 0, 2},
		{"two lines a half-life ago", []float64{1, 1}, DefaultHalfLife, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			agg := NewAggregator(Config{MinSamples: 0.1})
			var ms []Measurement
			for _, w := range tc.weights {
				ms = append(ms, Measurement{Prefix: cell, PoP: "fra", RTTMS: 20, Weight: w, Time: now.Add(-tc.age)})
			}
			if _, err := agg.Ingest(ms, now, nil); err != nil {
				t.Fatal(err)
			}
			e, ok := agg.Snapshot(now).Find(client).EstimateIn("fra", CellPrefix)
			if !ok || math.Abs(e.Weight-tc.want) > 1e-9 {
				t.Errorf("weight %v (%v), want %v", e.Weight, ok, tc.want)
			}
		})
	}
}
