package main

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/zones"
)

func near(a, b, eps float64) bool { return math.Abs(a-b) <= eps }

func TestTrueRTT(t *testing.T) {
	fra, iad := thePoPs[0], thePoPs[1]
	net := netip.MustParsePrefix("198.51.100.0/24")
	flat := Model{InflationMedian: 1.7, InflationMin: 1.1, LastMileMedianMS: 8}
	tests := []struct {
		name   string
		m      Model
		at     geo.Point
		to     pop
		lo, hi float64
	}{
		// 0 km: the last mile only.
		{"at the PoP", flat, fra.Point, fra, 8, 8},
		// fra–iad is 6553 km: 65.5 ms of fibre × 1.7 + 8.
		{"fra to iad", flat, fra.Point, iad, 65.53*1.7 + 8 - 0.1, 65.53*1.7 + 8 + 0.1},
		{"inflation floor", Model{InflationMedian: 0.5, InflationMin: 1.1}, fra.Point, iad, 65.53*1.1 - 0.1, 65.53*1.1 + 0.1},
		{"every pair in the tail", Model{InflationMedian: 1.7, InflationMin: 1.1, TailShare: 1, TailMin: 2, TailMax: 4},
			fra.Point, iad, 65.53 * 1.7 * 2, 65.53 * 1.7 * 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.m.TrueRTT(net, net, tc.at, tc.to)
			if got < tc.lo || got > tc.hi {
				t.Errorf("TrueRTT = %.2f ms, want in [%.2f, %.2f]", got, tc.lo, tc.hi)
			}
			if again := tc.m.TrueRTT(net, net, tc.at, tc.to); again != got {
				t.Errorf("TrueRTT is not reproducible: %v then %v", got, again)
			}
		})
	}
}

// TestModelSpread checks the documented distribution over many pairs.
func TestModelSpread(t *testing.T) {
	m := DefaultModel(7)
	var infl, lastMile []float64
	tails := 0
	const n = 20000
	for i := range n {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
		noTail := m
		noTail.TailShare = 0
		f, ft := noTail.Inflation(p, "fra"), m.Inflation(p, "fra")
		infl = append(infl, f)
		if ft > f {
			tails++
		}
		lastMile = append(lastMile, m.LastMileMS(p))
	}
	tests := []struct {
		name      string
		got, want float64
		eps       float64
	}{
		{"inflation median", median(infl), m.InflationMedian, 0.02},
		{"inflation floor", slices.Min(infl), m.InflationMin, 1e-9},
		{"tail share", float64(tails) / n, m.TailShare, 0.01},
		{"last mile median", median(lastMile), m.LastMileMedianMS, 0.3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !near(tc.got, tc.want, tc.eps) {
				t.Errorf("got %.4f, want %.4f ± %g", tc.got, tc.want, tc.eps)
			}
		})
	}
	other := DefaultModel(8)
	p := netip.MustParsePrefix("192.0.2.0/24")
	if m.Inflation(p, "fra") == other.Inflation(p, "fra") {
		t.Error("two seeds gave the same inflation")
	}
}

func TestMeasure(t *testing.T) {
	p := netip.MustParsePrefix("192.0.2.0/24")
	tests := []struct {
		name   string
		m      Model
		rtt    float64
		lo, hi float64
	}{
		{"no noise", Model{Samples: 5}, 100, 100, 100},
		// Queueing only adds; the median of 5 stays well below the mean.
		{"noise", Model{Samples: 5, NoiseFrac: 0.05, NoiseMS: 1}, 100, 100, 100 + 3*6},
		{"one sample", Model{Samples: 1, NoiseMS: 1}, 10, 10, 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.m.Measure(p, "fra", tc.rtt); got < tc.lo || got > tc.hi {
				t.Errorf("Measure = %.2f, want in [%g, %g]", got, tc.lo, tc.hi)
			}
		})
	}
}

func TestScore(t *testing.T) {
	// Three networks, three PoPs.
	rtt := [][]float64{
		{10, 20, 30},
		{50, 40, 100},
		{100, 200, 105},
	}
	tests := []struct {
		name   string
		weight []float64
		choice []int
		dead   []bool
		want   outcome
	}{
		{"all best", nil, []int{0, 1, 0}, nil,
			outcome{N: 3, Within: 1, WithinW: 1}},
		// 50 ≤ 1.1 × 40 is false; 105 ≤ 110 is true. Excesses 0, 10, 5.
		{"one miss", nil, []int{0, 0, 2}, nil,
			outcome{N: 3, Within: 2.0 / 3, WithinW: 2.0 / 3, MeanExcess: 5, P95Excess: 10, P99Excess: 10}},
		{"weighted", []float64{1, 8, 1}, []int{0, 0, 2}, nil,
			outcome{N: 3, Within: 2.0 / 3, WithinW: 0.2, MeanExcess: 5, P95Excess: 10, P99Excess: 10}},
		// PoP 0 is dead: network 0's best is now 20, network 2's 105.
		{"dead PoP", nil, []int{0, 1, 2}, []bool{true},
			outcome{N: 3, Within: 2.0 / 3, WithinW: 2.0 / 3, Dead: 1.0 / 3}},
		{"none", nil, nil, nil, outcome{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := score(rtt[:len(tc.choice)], tc.weight, tc.choice, tc.dead)
			if !near(got.Within, tc.want.Within, 1e-9) || !near(got.WithinW, tc.want.WithinW, 1e-9) ||
				!near(got.MeanExcess, tc.want.MeanExcess, 1e-9) || got.P95Excess != tc.want.P95Excess ||
				got.P99Excess != tc.want.P99Excess || !near(got.Dead, tc.want.Dead, 1e-9) || got.N != tc.want.N {
				t.Errorf("score = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(100 - i) // 100..1, unsorted
	}
	tests := []struct {
		name string
		v    []float64
		q    float64
		want float64
	}{
		{"empty", nil, 0.95, 0},
		{"one", []float64{7}, 0.95, 7},
		{"p95 of 1..100", hundred, 0.95, 95},
		{"p99 of 1..100", slices.Clone(hundred), 0.99, 99},
		{"p10 of 1..100", slices.Clone(hundred), 0.10, 10},
		{"p95 of 10 values is the largest", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.95, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.v, tc.q); got != tc.want {
				t.Errorf("percentile = %g, want %g", got, tc.want)
			}
		})
	}
}

// TestProbePenalty follows a probe whose RTT steps from 20 to 60 ms after
// a full window of 20 ms: the penalty is 40 × (1 − 0.7^k) after k rounds,
// quantised down to 5 ms, until all but a tenth of the window is slow and
// the p10 baseline catches up.
func TestProbePenalty(t *testing.T) {
	tr := newProbeTracker()
	for range baselineWindow {
		tr.observe(20, true)
	}
	if r := tr.result(); r.Penalty != 0 || r.Baseline != 20*time.Millisecond {
		t.Fatalf("quiet: %+v", r)
	}
	catchUp := baselineWindow - baselineWindow/10 + 1 // the round the p10 turns slow
	tests := []struct {
		round       int
		penalty     float64 // ms
		steeringMS  float64
		baselineRTT float64
	}{
		{1, 12, 10, 20},
		{2, 20.4, 20, 20},
		{3, 26.28, 25, 20},
		{4, 30.396, 30, 20},
		{6, 35.294, 35, 20},
		{10, 38.870, 35, 20},
		{catchUp - 1, 40, 35, 20}, // the EWMA approaches 60 from below: 39.99… rounds down
		{catchUp, 0, 0, 60},       // the p10 is now a slow RTT
	}
	round := 0
	for _, tc := range tests {
		for round < tc.round {
			round++
			tr.observe(60, true)
		}
		r := tr.result()
		if !near(ms(r.Penalty), tc.penalty, 0.01) || ms(r.SteeringPenalty()) != tc.steeringMS || ms(r.Baseline) != tc.baselineRTT {
			t.Errorf("round %d: penalty %.3f steering %v baseline %v, want %.3f, %v, %v", round,
				ms(r.Penalty), r.SteeringPenalty(), r.Baseline, tc.penalty, tc.steeringMS, tc.baselineRTT)
		}
	}
}

func TestProbeHealth(t *testing.T) {
	tests := []struct {
		name string
		seq  string // s: success, f: failure
		want []bool // healthy after each
	}{
		{"fall after three failures", "sfff", []bool{true, true, true, false}},
		{"a success resets the count", "sffsff", []bool{true, true, true, true, true, true}},
		{"rise after two successes", "sfffss", []bool{true, true, true, false, false, true}},
		{"first result decides", "f", []bool{false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newProbeTracker()
			for i, c := range tc.seq {
				tr.observe(20, c == 's')
				if got := tr.result().Healthy; got != tc.want[i] {
					t.Errorf("after %q: healthy %v, want %v", tc.seq[:i+1], got, tc.want[i])
				}
			}
		})
	}
}

func TestSteeringGeneration(t *testing.T) {
	h := &simHealth{}
	up := healthprobe.Result{Healthy: true, Penalty: 3 * time.Millisecond}
	h.publish(map[string]healthprobe.Result{"a": up})
	first := h.Status().Steering
	up.Penalty = 4 * time.Millisecond // same 0 ms steering penalty
	h.publish(map[string]healthprobe.Result{"a": up})
	if s := h.Status(); s.Steering != first || s.Generation != 2 {
		t.Errorf("noise below a step: steering %d generation %d, want %d and 2", s.Steering, s.Generation, first)
	}
	up.Penalty = 5 * time.Millisecond
	h.publish(map[string]healthprobe.Result{"a": up})
	if s := h.Status(); s.Steering != first+1 {
		t.Errorf("a step: steering %d, want %d", s.Steering, first+1)
	}
}

func TestSubnet24(t *testing.T) {
	tests := []struct {
		network string
		check   func(netip.Prefix) bool
	}{
		{"192.0.2.0/26", func(p netip.Prefix) bool { return p == netip.MustParsePrefix("192.0.2.0/26") }},
		{"192.0.2.0/24", func(p netip.Prefix) bool { return p == netip.MustParsePrefix("192.0.2.0/24") }},
		{"198.18.0.0/15", func(p netip.Prefix) bool {
			return p.Bits() == 24 && netip.MustParsePrefix("198.18.0.0/15").Contains(p.Addr())
		}},
	}
	for _, tc := range tests {
		t.Run(tc.network, func(t *testing.T) {
			n := netip.MustParsePrefix(tc.network)
			if got := querySubnet(n, 1); !tc.check(got) {
				t.Errorf("querySubnet = %s", got)
			}
			if got := measuredSubnet(n, 1); !tc.check(got) {
				t.Errorf("measuredSubnet = %s", got)
			}
		})
	}
}

// fakeLocator places each /24 of a map at a point.
type fakeLocator map[netip.Prefix]geo.Point

func (f fakeLocator) Locate(a netip.Addr) geo.Location {
	for p, pt := range f {
		if p.Contains(a) {
			return geo.Location{Point: pt, HasPoint: true, Prefix: p, Found: true, Continent: "EU"}
		}
	}
	return geo.Location{Prefix: netip.PrefixFrom(a, 0)}
}

// testClients are two networks: one in Frankfurt whose path to fra is
// badly routed (300 ms) and whose best PoP is iad, one in Sydney.
func testClients() ([]client, fakeLocator) {
	a, b := netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")
	cs := []client{
		{Network: a, Subnet: a, Point: thePoPs[0].Point, Continent: "EU", Weight: 1, True: []float64{300, 90, 200, 250, 330, 260}},
		{Network: b, Subnet: b, Point: thePoPs[4].Point, Continent: "OC", Weight: 1, True: []float64{260, 220, 100, 200, 5, 120}},
	}
	return cs, fakeLocator{a: cs[0].Point, b: cs[1].Point}
}

// TestSelector runs popdns's selector over a fake locator: distance picks
// fra for the Frankfurt network, a table that measured it picks iad.
func TestSelector(t *testing.T) {
	cs, loc := testClients()
	m := Model{Seed: 1, InflationMedian: 1.7, InflationMin: 1.1, Samples: 1}
	s, err := newSim(cs, m, loc)
	if err != nil {
		t.Fatal(err)
	}
	dist, _, err := s.runStatic("distance", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 4}; !slices.Equal(dist.Choice, want) {
		t.Errorf("distance chose %v, want %v", dist.Choice, want)
	}
	var csv strings.Builder
	csv.WriteString("prefix,pop,rtt_ms\n")
	for j, p := range thePoPs {
		fmt.Fprintf(&csv, "%s,%s,%g\n", cs[0].Network, p.Name, cs[0].True[j])
	}
	table, _, err := s.runStatic("table", []byte(csv.String()))
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 4}; !slices.Equal(table.Choice, want) {
		t.Errorf("table chose %v, want %v", table.Choice, want)
	}
	if table.Out.Within != 1 || dist.Out.Within != 0.5 {
		t.Errorf("within 10 %%: table %v, distance %v; want 1 and 0.5", table.Out.Within, dist.Out.Within)
	}
}

// TestLatencyCSV checks that the tables the simulation writes load into
// popdns with the entries intended.
func TestLatencyCSV(t *testing.T) {
	cs, _ := testClients()
	m := DefaultModel(1)
	pops, err := newPoPs()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		spec tableSpec
		want int
	}{
		{tableSpec{Coverage: 1, Agg: "network"}, 12},
		{tableSpec{Coverage: 1, Agg: "24"}, 12},
		{tableSpec{Coverage: 1, Agg: "network", NearestPoPs: 2}, 4},
		{tableSpec{Coverage: 0, Agg: "network"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.spec.String(), func(t *testing.T) {
			csv, n := latencyCSV(cs, &m, tc.spec)
			if n != tc.want {
				t.Errorf("%d entries, want %d", n, tc.want)
			}
			snap, err := zones.Load(fstest.MapFS{"example.test.yaml": {Data: zoneFile()}, "rum.csv": {Data: csv}}, pops, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := snap.Latency().Len(); got != n {
				t.Errorf("table holds %d entries, want %d", got, n)
			}
		})
	}
}

// TestScenarios runs the prober model over the fake-located sample: a dead
// fra loses its clients at the third failed probe, a slow one as the
// penalty grows past the gap to the next PoP.
func TestScenarios(t *testing.T) {
	cs, loc := testClients()
	s, err := newSim(cs, DefaultModel(1), loc)
	if err != nil {
		t.Fatal(err)
	}
	static := []int{0, 4}
	dead, err := s.runScenario(scenario{PoP: 0, Dead: true, Rounds: 4}, nil, DefaultProbeModel(), static)
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range dead.Rounds {
		wantOn := 0.5
		if rr.Round >= probeFall {
			wantOn = 0
		}
		if rr.OnPoP != wantOn || rr.Healthy != (rr.Round < probeFall) {
			t.Errorf("dead, round %d: on fra %v healthy %v, want %v and %v", rr.Round, rr.OnPoP, rr.Healthy, wantOn, rr.Round < probeFall)
		}
	}
	// Distance: fra 0 ms from the Frankfurt network, iad 98.3 ms. A
	// penalty of 100 ms moves it once quantised above 98.3.
	slow, err := s.runScenario(scenario{PoP: 0, SlowMS: 150, Rounds: 6}, nil, ProbeModel{BaseMS: 20}, static)
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range slow.Rounds {
		wantMoved := 0.0
		if rr.SteerMS > 98.3 {
			wantMoved = 1
		}
		if rr.Moved != wantMoved {
			t.Errorf("slow, round %d (steering penalty %v ms): moved %v, want %v", rr.Round, rr.SteerMS, rr.Moved, wantMoved)
		}
	}
	if last := slow.Rounds[len(slow.Rounds)-1]; last.Moved != 1 {
		t.Errorf("slow: after %d rounds moved %v, want 1", last.Round, last.Moved)
	}
}
