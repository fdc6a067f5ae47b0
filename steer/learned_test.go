package steer

import (
	"net/netip"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/latency/learn"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
)

var learnNow = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

// sample is learned measurements of the test: a /24, a PoP, an RTT,
// a weight (how many measurements) and their age.
type sample struct {
	prefix string
	pop    string
	rtt    float64
	weight float64
	age    time.Duration
}

// learnedBerlin is berlin in a wider GeoIP network and an AS, so that a
// client there has all three cells.
var learnedBerlin = func() geo.Location {
	l := berlin
	l.Prefix = netip.MustParsePrefix("81.2.64.0/20")
	l.ASN = 64500
	return l
}()

// learnedSnapshot learns samples, every client in 81.2.0.0/16 located
// in learnedBerlin's network and AS.
func learnedSnapshot(t testing.TB, samples ...sample) *learn.Snapshot {
	t.Helper()
	return learnedHistory(t, learn.Margin{}, nil, samples)
}

// learnedHistory learns before and publishes a snapshot, so that the
// cells' leaders are set under margin, then learns after and returns the
// next snapshot.
func learnedHistory(t testing.TB, margin learn.Margin, before, after []sample) *learn.Snapshot {
	t.Helper()
	agg := learn.NewAggregator(learn.Config{MinSamples: 1, HalfLife: time.Hour, CountHalfLife: time.Hour, Margin: margin})
	locate := func(a netip.Addr) (netip.Prefix, uint32) {
		if netip.MustParsePrefix("81.2.64.0/20").Contains(a) {
			return learnedBerlin.Prefix, learnedBerlin.ASN
		}
		return netip.Prefix{}, 64500
	}
	for i, stage := range [][]sample{before, after} {
		for _, s := range stage {
			// A measurement counts at most once towards MinSamples: weight
			// samples are weight measurements.
			var ms []learn.Measurement
			for range int(s.weight) {
				ms = append(ms, learn.Measurement{Prefix: netip.MustParsePrefix(s.prefix), PoP: s.pop, RTTMS: s.rtt,
					Weight: 1, Time: learnNow.Add(-s.age)})
			}
			if res, err := agg.Ingest(ms, learnNow, locate); err != nil || res.Applied != len(ms) {
				t.Fatalf("ingest %+v: %+v, %v", s, res, err)
			}
		}
		if i == 0 && before != nil {
			agg.Snapshot(learnNow)
		}
	}
	return agg.Snapshot(learnNow)
}

func TestRankLearned(t *testing.T) {
	snap := loadTest(t)
	g := geoOf(t, snap, "www.steer.test.")
	client := netip.MustParseAddr("81.2.69.10")
	uncertain := learnedBerlin
	uncertain.AccuracyKm = 2000
	tests := []struct {
		name      string
		before    []sample // learned and published first, setting the cells' leaders
		samples   []sample
		loc       geo.Location
		margin    learn.Margin
		overrides map[string]pops.AdminState
		want      []string // the candidates' PoPs, best first
		source    []Source // and their RTTs' sources
		level     learn.CellKind
		current   string
		held      bool
		explore   string // "": none
	}{
		{name: "no samples: distance, and exploring the second",
			want: []string{"fra", "iad", "sin"}, source: []Source{Distance, Distance, Distance}, explore: "iad"},
		{name: "learned beats distance",
			samples: []sample{{"81.2.69.0/24", "fra", 40, 5, 0}, {"81.2.69.0/24", "iad", 20, 1, 0}},
			want:    []string{"iad", "fra", "sin"}, source: []Source{Learned, Learned, Distance},
			level: learn.CellPrefix, current: "iad", explore: "sin"},
		{name: "stabiliser holds the leader within the margin", margin: learn.Margin{MS: 5, Percent: 10},
			before:  []sample{{"81.2.69.0/24", "fra", 20, 5, 0}},
			samples: []sample{{"81.2.69.0/24", "iad", 17, 1, 0}},
			want:    []string{"fra", "iad", "sin"}, source: []Source{Learned, Learned, Distance},
			level: learn.CellPrefix, current: "fra", held: true, explore: "sin"},
		{name: "the leader moves past the margin", margin: learn.Margin{MS: 5, Percent: 10},
			before:  []sample{{"81.2.69.0/24", "fra", 20, 5, 0}},
			samples: []sample{{"81.2.69.0/24", "iad", 12, 1, 0}},
			want:    []string{"iad", "fra", "sin"}, source: []Source{Learned, Learned, Distance},
			level: learn.CellPrefix, current: "iad", explore: "sin"},
		{name: "the leader stays while both PoPs are measured alike", margin: learn.Margin{MS: 3, Percent: 10},
			before:  []sample{{"81.2.69.0/24", "fra", 20, 5, 0}, {"81.2.69.0/24", "iad", 21, 5, 0}},
			samples: []sample{{"81.2.69.0/24", "fra", 22, 5, 0}, {"81.2.69.0/24", "iad", 19.5, 5, 0}},
			want:    []string{"fra", "iad", "sin"}, source: []Source{Learned, Learned, Distance},
			level: learn.CellPrefix, current: "fra", held: true, explore: "sin"},
		{name: "the current PoP drained: no holding", margin: learn.Margin{MS: 100},
			overrides: map[string]pops.AdminState{"fra": pops.Drain},
			samples:   []sample{{"81.2.69.0/24", "fra", 20, 5, 0}, {"81.2.69.0/24", "iad", 30, 1, 0}},
			want:      []string{"fra", "iad", "sin"}, source: []Source{Learned, Learned, Distance},
			level: learn.CellPrefix, current: "iad", explore: "sin"},
		{name: "an unmeasured PoP better by the margin wins",
			margin:  learn.Margin{MS: 5, Percent: 10},
			samples: []sample{{"81.2.69.0/24", "iad", 90, 3, 0}},
			want:    []string{"fra", "iad", "sin"}, source: []Source{Distance, Learned, Distance},
			level: learn.CellPrefix, current: "iad", explore: "sin"},
		{name: "uncertain location: the measured PoP stays",
			loc: uncertain, margin: learn.Margin{MS: 5, Percent: 10},
			samples: []sample{{"81.2.69.0/24", "iad", 30, 3, 0}},
			want:    []string{"iad", "fra", "sin"}, source: []Source{Learned, Distance, Distance},
			level: learn.CellPrefix, current: "iad", explore: "fra"},
		{name: "a stale estimate is explored",
			samples: []sample{{"81.2.69.0/24", "fra", 20, 5, 0}, {"81.2.69.0/24", "iad", 25, 5, 20 * time.Minute}},
			want:    []string{"fra", "iad", "sin"}, source: []Source{Learned, Learned, Distance},
			level: learn.CellPrefix, current: "fra", explore: "iad"},
		{name: "only stale estimates still decide",
			samples: []sample{{"81.2.69.0/24", "fra", 30, 5, 20 * time.Minute}, {"81.2.69.0/24", "iad", 25, 2, 20 * time.Minute}},
			want:    []string{"iad", "fra", "sin"}, source: []Source{Learned, Learned, Distance},
			level: learn.CellPrefix, current: "iad", explore: "fra"},
		{name: "the leader is current, not the PoP measured most", margin: learn.Margin{MS: 5, Percent: 10},
			before:  []sample{{"81.2.69.0/24", "iad", 21, 5, 0}},
			samples: []sample{{"81.2.69.0/24", "fra", 20, 20, 8 * time.Minute}},
			want:    []string{"iad", "fra", "sin"}, source: []Source{Learned, Learned, Distance},
			level: learn.CellPrefix, current: "iad", held: true, explore: "sin"},
		{name: "an AS's RTTs do not decide: its clients are elsewhere",
			samples: []sample{{"81.2.1.0/24", "iad", 20, 5, 0}, {"81.2.1.0/24", "fra", 90, 5, 0}},
			want:    []string{"fra", "iad", "sin"}, source: []Source{Distance, Distance, Distance}, explore: "iad"},
		{name: "nor are they borrowed",
			samples: []sample{{"81.2.69.0/24", "fra", 30, 5, 0}, {"81.2.1.0/24", "iad", 10, 5, 0}, {"81.2.1.0/24", "fra", 90, 5, 0}},
			want:    []string{"fra", "iad", "sin"}, source: []Source{Learned, Distance, Distance},
			level: learn.CellPrefix, current: "fra", explore: "iad"},
		{name: "a client placed only by country decides by its AS's RTTs",
			loc:     uncertain,
			samples: []sample{{"81.2.1.0/24", "iad", 20, 5, 0}, {"81.2.1.0/24", "fra", 90, 5, 0}},
			want:    []string{"iad", "fra", "sin"}, source: []Source{Learned, Learned, Distance},
			level: learn.CellAS, current: "iad", explore: "sin"},
		{name: "a thin /24 defers to its network",
			samples: []sample{{"81.2.69.0/24", "fra", 40, 1, 0}, {"81.2.69.0/24", "iad", 20, 1, 0},
				{"81.2.70.0/24", "fra", 20, 5, 0}, {"81.2.70.0/24", "iad", 40, 5, 0}},
			want: []string{"fra", "iad", "sin"}, source: []Source{Learned, Learned, Distance},
			level: learn.CellNetwork, current: "fra", explore: "sin"},
		{name: "a /24 with CellWeight measurements decides",
			samples: []sample{{"81.2.69.0/24", "fra", 40, CellWeight, 0}, {"81.2.69.0/24", "iad", 20, 1, 0},
				{"81.2.70.0/24", "fra", 20, 5, 0}, {"81.2.70.0/24", "iad", 40, 5, 0}},
			want: []string{"iad", "fra", "sin"}, source: []Source{Learned, Learned, Distance},
			level: learn.CellPrefix, current: "iad", explore: "sin"},
		{name: "every cell thin: the finest decides",
			samples: []sample{{"81.2.69.0/24", "fra", 40, 1, 0}, {"81.2.69.0/24", "iad", 20, 1, 0}},
			want:    []string{"iad", "fra", "sin"}, source: []Source{Learned, Learned, Distance},
			level: learn.CellPrefix, current: "iad", explore: "sin"},
		{name: "a fresh network cell outranks a stale /24",
			samples: []sample{{"81.2.69.0/24", "fra", 25, 5, 30 * time.Minute},
				{"81.2.70.0/24", "fra", 50, 5, 0}, {"81.2.70.0/24", "iad", 20, 1, 0}},
			want: []string{"iad", "fra", "sin"}, source: []Source{Learned, Learned, Distance},
			level: learn.CellNetwork, current: "iad", explore: "sin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ov *Overrides
			if tc.overrides != nil {
				ov = ov.Next(tc.overrides)
			}
			loc := tc.loc
			if loc.Prefix == (netip.Prefix{}) {
				loc = learnedBerlin
			}
			env := NewEnv(provisioned(t, Options{LearnedMargin: tc.margin}), snap, nil, ov, time.Now).
				WithLearned(learnedHistory(t, tc.margin, tc.before, tc.samples))
			var cands Candidates
			d := Rank(g, dns.TypeA, client, loc, &env, &cands)
			var got []string
			var src []Source
			for _, c := range cands[:d.Cands] {
				got = append(got, g.Targets[c.Index].Name())
				src = append(src, c.Source)
			}
			current, explored := "", ""
			if d.Level != 0 {
				current = g.Targets[d.Current].Name()
			}
			if d.HasExplore {
				explored = g.Targets[d.Explore].Name()
			}
			if !equal(got, tc.want) || !slices.Equal(src, tc.source) || d.Level != tc.level || current != tc.current ||
				d.Held != tc.held || explored != tc.explore {
				t.Errorf("ranked %v sources %v level %v current %q held %v explore %q;\n"+
					"want %v %v %v %q %v %q", got, src, d.Level, current, d.Held, explored,
					tc.want, tc.source, tc.level, tc.current, tc.held, tc.explore)
			}
			if tc.overrides == nil && g.Targets[d.Ranked[0]].Name() != tc.want[0] {
				t.Errorf("answered %s first, want %s", g.Targets[d.Ranked[0]].Name(), tc.want[0])
			}
		})
	}
}

// TestRankLearnedBorrowed: a PoP the client's /24 has not measured
// borrows its network's estimate, scaled by how the current PoP compares
// in the /24 and in the network when the /24 is the slower; a /24 faster
// than its network borrows the network's estimate as it is.
func TestRankLearnedBorrowed(t *testing.T) {
	snap := loadTest(t)
	g := geoOf(t, snap, "www.steer.test.")
	client := netip.MustParseAddr("81.2.69.10")
	for _, tc := range []struct {
		name   string
		ownFra float64 // the client's /24's RTT to fra; its neighbour's is 40, to iad 30
		scaled bool
		first  string
	}{
		{"the /24 slower than its network: scaled", 60, true, "iad"},
		{"the /24 faster than its network: not scaled", 20, false, "fra"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls := learnedSnapshot(t, sample{"81.2.69.0/24", "fra", tc.ownFra, 5, 0},
				sample{"81.2.70.0/24", "fra", 40, 5, 0}, sample{"81.2.70.0/24", "iad", 30, 5, 0})
			env := NewEnv(provisioned(t, Options{}), snap, nil, nil, time.Now).WithLearned(ls)
			var cands Candidates
			d := Rank(g, dns.TypeA, client, learnedBerlin, &env, &cands)
			f := ls.Find(learn.ClientAt(client, learnedBerlin))
			own, _ := f.EstimateIn("fra", learn.CellPrefix)
			netFra, _ := f.EstimateIn("fra", learn.CellNetwork)
			netIad, ok := f.EstimateIn("iad", learn.CellNetwork)
			if !ok {
				t.Fatal("no network estimate of iad")
			}
			scale := 1.0
			if tc.scaled {
				scale = own.RTTMS / netFra.RTTMS
			}
			var iad *Candidate
			for i := range cands[:d.Cands] {
				if g.Targets[cands[i].Index].Name() == "iad" {
					iad = &cands[i]
				}
			}
			if iad.Source != Learned || iad.Borrowed != scale || iad.RTTMS != netIad.RTTMS*scale || iad.Learned.Cell.Kind != learn.CellNetwork {
				t.Errorf("iad: source %v borrowed %v rtt %v cell %v; want learned, %v, %v, the network", iad.Source, iad.Borrowed,
					iad.RTTMS, iad.Learned.Cell, scale, netIad.RTTMS*scale)
			}
			if got := g.Targets[d.Ranked[0]].Name(); got != tc.first {
				t.Errorf("answered %s, want %s", got, tc.first)
			}
			// The explore target is another one: the /24 has not measured
			// iad, nor sin.
			if !d.HasExplore || g.Targets[d.Explore].Name() == g.Targets[d.Ranked[0]].Name() {
				t.Errorf("explore %v %d, want a target other than the first", d.HasExplore, d.Explore)
			}
		})
	}
}

// TestRankLearnedScope: the scope never holds a learned /24 but the
// client's own, so that every client in it finds the same cells.
func TestRankLearnedScope(t *testing.T) {
	snap := loadTest(t)
	g := geoOf(t, snap, "www.steer.test.")
	client := netip.MustParseAddr("81.2.69.10")
	for _, tt := range []struct {
		name    string
		samples []sample
		off     bool
		want    int
	}{
		{"learning off: the network", nil, true, 20},
		{"no cells: the network", nil, false, 20},
		{"own /24 learned", []sample{{"81.2.69.0/24", "fra", 20, 1, 0}}, false, 24},
		{"a neighbour /24 learned", []sample{{"81.2.70.0/24", "fra", 20, 1, 0}}, false, 23},
		{"a /24 outside the network", []sample{{"81.2.100.0/24", "fra", 20, 1, 0}}, false, 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := NewEnv(provisioned(t, Options{}), snap, nil, nil, time.Now)
			if !tt.off {
				env = env.WithLearned(learnedSnapshot(t, tt.samples...))
			}
			var cands Candidates
			if d := Rank(g, dns.TypeA, client, learnedBerlin, &env, &cands); d.Scope != tt.want {
				t.Errorf("scope %d, want %d", d.Scope, tt.want)
			}
		})
	}
}

func TestRankLearnedAllocs(t *testing.T) {
	snap := loadTest(t)
	g := geoOf(t, snap, "www.steer.test.")
	client := netip.MustParseAddr("81.2.69.10")
	env := NewEnv(provisioned(t, Options{}), snap, nil, nil, time.Now).WithLearned(learnedSnapshot(t,
		sample{"81.2.69.0/24", "fra", 20, 5, 0}, sample{"81.2.70.0/24", "fra", 40, 5, 0}, sample{"81.2.70.0/24", "iad", 30, 5, 0}))
	var cands Candidates
	if n := testing.AllocsPerRun(100, func() { Rank(g, dns.TypeA, client, learnedBerlin, &env, &cands) }); n != 0 {
		t.Errorf("Rank with learned latency: %v allocations, want 0", n)
	}
}

func TestEpochLearned(t *testing.T) {
	ls := learnedSnapshot(t, sample{"81.2.69.0/24", "fra", 20, 1, 0})
	env := NewEnv(provisioned(t, Options{}), loadTest(t), nil, nil, time.Now)
	with := env.WithLearned(ls)
	if with.Epoch.Learned != ls.Generation() || ls.Generation() == 0 {
		t.Fatalf("Epoch.Learned %d, want the snapshot's generation %d", with.Epoch.Learned, ls.Generation())
	}
	if with.Epoch.Strict() != env.Epoch.Strict() {
		t.Error("the learned generation is in the strict epoch: every publish would drop every cache")
	}
	if !with.Epoch.Newer(env.Epoch) || env.Epoch.Newer(with.Epoch) {
		t.Error("an epoch with a newer learned generation is not newer")
	}
}

// BenchmarkRankLearned is BenchmarkRank with a learned table: the
// client's /24 measured two PoPs, its network a third.
func BenchmarkRankLearned(b *testing.B) {
	inv, _ := pops.New(testPoPs...)
	snap, err := zones.Load(fstest.MapFS{"steer.test.yaml": {Data: []byte(testZone)}}, inv, nil)
	if err != nil {
		b.Fatal(err)
	}
	opt, _ := Options{}.Provision()
	env := NewEnv(opt, snap, nil, nil, time.Now).WithLearned(learnedSnapshot(b, sample{"81.2.69.0/24", "fra", 20, 5, 0},
		sample{"81.2.69.0/24", "iad", 90, 5, 0}, sample{"81.2.70.0/24", "fra", 25, 5, 0}, sample{"81.2.70.0/24", "sin", 200, 5, 0}))
	g := snap.Match("www.steer.test.").Lookup("www.steer.test.", dns.TypeA).Node.Geo()
	client := netip.MustParseAddr("81.2.69.10")
	var cands Candidates
	b.ReportAllocs()
	for b.Loop() {
		Rank(g, dns.TypeA, client, learnedBerlin, &env, &cands)
	}
}
