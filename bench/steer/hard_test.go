package main

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/latency/learn"
)

// synthWorld is a small synthetic sample: n networks per country in three
// countries around fra and iad, each a /20 with a city-level point, plus
// country pools and one public resolver site per country.
func synthWorld(n int) *sampleResult {
	countries := []struct {
		code     string
		lat, lon float64
	}{{"DE", 50, 10}, {"FR", 47, 2}, {"US", 39, -90}}
	smp := &sampleResult{Pools: map[string][]poolPoint{}, Networks: map[string]int{}}
	for k, c := range countries {
		for i := range n {
			network := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(10 + k), byte(i), 0, 0}), 20)
			// Spread the networks over about ±4° around the country's point.
			pt := geo.Point{Lat: c.lat + 8*(float64(i%7)/6-0.5), Lon: c.lon + 8*(float64(i/7%7)/6-0.5)}
			radius := 50.0
			if i%10 == 0 {
				radius = 1000 // a country-level record
			}
			smp.Clients = append(smp.Clients, client{Network: network, Subnet: netip.PrefixFrom(network.Addr(), 24),
				Continent: "EU", Country: c.code, Point: pt, AccuracyKm: radius, Weight: 1 + float64(i%3)})
			smp.Pools[c.code] = append(smp.Pools[c.code], poolPoint{Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(20 + k), byte(i), 0, 0}), 24), Point: pt})
		}
		smp.Sites = append(smp.Sites, resolverSite{Name: c.code, Point: geo.Point{Lat: c.lat, Lon: c.lon},
			Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{30, byte(k), 0, 0}), 24), Km: 1})
	}
	return smp
}

// distanceChoice is what distance-only steering picks for each client: the
// PoP nearest the point believed for the subnet it is decided for (its
// own, or its resolver's pool point or site).
func distanceChoice(smp *sampleResult, cs []client) []int {
	believed := map[netip.Prefix]geo.Point{}
	for _, c := range smp.Clients {
		believed[c.Subnet] = c.Point
	}
	for _, pool := range smp.Pools {
		for _, p := range pool {
			believed[p.Subnet] = p.Point
		}
	}
	for _, s := range smp.Sites {
		believed[s.Subnet] = s.Point
	}
	out := make([]int, len(cs))
	for i, c := range cs {
		out[i] = measuredPoPs(believed[c.seen()], 1)[0]
	}
	return out
}

func trueRTTs(cs []client) [][]float64 {
	out := make([][]float64, len(cs))
	for i := range cs {
		out[i] = cs[i].True
	}
	return out
}

func weightsOf(cs []client) []float64 {
	w := make([]float64, len(cs))
	for i := range cs {
		w[i] = cs[i].Weight
	}
	return w
}

// distanceWithin is distance-only's weighted share within 10 % under m.
func distanceWithin(smp *sampleResult, m Model) float64 {
	cs := smp.remodel(&m)
	return scoreQ(trueRTTs(cs), weightsOf(cs), distanceChoice(smp, cs), nil).Within10
}

// TestHardOptions checks that each part of the harder model, alone, makes
// distance-only steering worse on the synthetic world, with the dense PoPs
// where the nearest PoP is rarely far ahead.
func TestHardOptions(t *testing.T) {
	defer usePoPs(densePoPs)()
	smp := synthWorld(49)
	base := DefaultModel(3)
	base.InflationSigma, base.TailShare = 0.05, 0
	kind := distanceWithin(smp, base)
	with := func(f func(h *HardOptions)) Model {
		m := base
		f(&m.Hard)
		return m
	}
	tests := []struct {
		name string
		m    Model
	}{
		{"AS inflation", with(func(h *HardOptions) { h.ASSigma, h.ASTailShare, h.ASTailMin, h.ASTailMax = 0.3, 0.2, 1.5, 3 })},
		{"country inflation", with(func(h *HardOptions) { h.CountrySigma = 0.3 })},
		{"PoP peering", with(func(h *HardOptions) { h.PoPSigma = 0.3 })},
		{"geolocation error", with(func(h *HardOptions) { h.GeoErrShare, h.GeoErrMaxKm = 1, 3000 })},
		{"country centroids", with(func(h *HardOptions) { h.CentroidKm = 500 })},
		{"ISP resolvers", with(func(h *HardOptions) { h.ISPResolverShare = 0.5 })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := distanceWithin(smp, tc.m)
			if got >= kind {
				t.Errorf("distance only within 10 %%: %.3f with the option, %.3f without; want lower", got, kind)
			}
			if again := distanceWithin(smp, tc.m); again != got {
				t.Errorf("not reproducible: %v then %v", got, again)
			}
		})
	}
	if kind < 0.9 {
		t.Errorf("without the options distance only is within 10 %% for %.3f; want ≥ 0.9 (the world is too hard)", kind)
	}
}

// TestPlace checks where the harder model puts clients and what it decides
// them for.
func TestPlace(t *testing.T) {
	smp := synthWorld(20)
	m := HardModel(5)
	m.Hard.ISPResolverShare, m.Hard.PublicResolverShare = 0.5, 0.5
	cs := smp.remodel(&m)
	vias := map[string]int{}
	asResolver := map[string]netip.Prefix{}
	for i, c := range cs {
		raw := smp.Clients[i]
		vias[c.Via]++
		switch {
		case raw.AccuracyKm >= m.Hard.CentroidKm:
			found := false
			for _, p := range smp.Pools[c.Country] {
				found = found || p.Point == c.At
			}
			if !found {
				t.Errorf("%s: a country-level record truly at %v, not a pool point of %s", c.Network, c.At, c.Country)
			}
		case geo.DistanceKm(c.At, c.Point) > m.Hard.GeoErrMaxKm+1:
			t.Errorf("%s moved %.0f km, more than %g", c.Network, geo.DistanceKm(c.At, c.Point), m.Hard.GeoErrMaxKm)
		}
		switch c.Via {
		case viaISP:
			if r, ok := asResolver[c.AS]; ok && r != c.Seen {
				t.Errorf("%s: AS %s has two resolvers, %s and %s", c.Network, c.AS, r, c.Seen)
			}
			asResolver[c.AS] = c.Seen
		case viaPublic:
			if !strings.HasPrefix(c.Seen.String(), "30.") {
				t.Errorf("%s: public resolver %s is not a site", c.Network, c.Seen)
			}
		case viaECS:
			t.Errorf("%s sends ECS with every network behind a resolver", c.Network)
		}
	}
	if vias[viaISP] == 0 || vias[viaPublic] == 0 {
		t.Errorf("resolver kinds %v, want both", vias)
	}
	// The kind model leaves everything as the database says.
	k := DefaultModel(5)
	for i, c := range smp.remodel(&k) {
		if c.At != smp.Clients[i].Point || c.Seen != c.Subnet || c.Via != viaECS {
			t.Errorf("kind model moved %s: at %v seen %s via %s", c.Network, c.At, c.Seen, c.Via)
		}
	}
}

func TestDisplace(t *testing.T) {
	p := geo.Point{Lat: 50, Lon: 8}
	for _, tc := range []struct{ deg, km float64 }{{0, 100}, {90, 1000}, {225, 5000}, {0, 0}} {
		if got := geo.DistanceKm(p, destination(p, tc.deg, tc.km)); !near(got, tc.km, 0.01) {
			t.Errorf("destination %g km at %g°: %.3f km away", tc.km, tc.deg, got)
		}
	}
	// MaxMind's radius: 67 % of users within it.
	const n = 20000
	in := 0
	for i := range n {
		u1, u2 := (float64(i)+0.5)/n, float64(i*7919%n)/n
		if geo.DistanceKm(p, displace(p, 100, 0, u1, u2)) <= 100 {
			in++
		}
	}
	if got := float64(in) / n; !near(got, errTailQuantile, 0.01) {
		t.Errorf("%.3f of the displaced points within the radius, want %.2f", got, errTailQuantile)
	}
	if d := geo.DistanceKm(p, displace(p, 1000, 300, 0.999999, 0)); !near(d, 300, 0.01) {
		t.Errorf("the cap: moved %.1f km, want 300", d)
	}
}

func TestAsOf(t *testing.T) {
	a := asOf("DE", netip.MustParsePrefix("85.214.1.0/24"), 8)
	if b := asOf("DE", netip.MustParsePrefix("85.214.200.0/22"), 8); a != b {
		t.Errorf("networks of one /16 in two ASes: %s, %s", a, b)
	}
	if c := asOf("DE", netip.MustParsePrefix("85.214.0.0/15"), 1); c != "DE-AS0" {
		t.Errorf("one AS per country: %s", c)
	}
	seen := map[string]bool{}
	for i := range 256 {
		seen[asOf("US", netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i), 1, 0, 0}), 16), 8)] = true
	}
	if len(seen) != 8 {
		t.Errorf("256 /16s spread over %d ASes, want 8", len(seen))
	}
}

// TestScoreQ checks the query-weighted score by hand.
func TestScoreQ(t *testing.T) {
	rtt := [][]float64{
		{10, 10.5, 40}, // chose 1: +0.5 ms, within 10 %
		{20, 24, 60},   // chose 1: +4 ms, not within 10 %, within +5 ms
		{30, 45, 70},   // chose 1: +15 ms, within +20 ms
		{5, 100, 200},  // chose 2: +195 ms
	}
	w := []float64{4, 3, 2, 1}
	got := scoreQ(rtt, w, []int{1, 1, 1, 2}, nil)
	want := qOutcome{Within10: 0.4, Within5ms: 0.7, Within20ms: 0.9, MeanExcess: (4*0.5 + 3*4 + 2*15 + 195) / 10.0,
		// Sorted excesses 0.5 (w 4), 4 (3), 15 (2), 195 (1): cumulative 0.4,
		// 0.7, 0.9, 1.0.
		P90Excess: 15, P95Excess: 195}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"within 10 %", got.Within10, want.Within10}, {"within +5 ms", got.Within5ms, want.Within5ms},
		{"within +20 ms", got.Within20ms, want.Within20ms}, {"mean", got.MeanExcess, want.MeanExcess},
		{"p90", got.P90Excess, want.P90Excess}, {"p95", got.P95Excess, want.P95Excess},
	} {
		if !near(c.got, c.want, 1e-9) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	in := []bool{true, false, false, true}
	if got := scoreQ(rtt, w, []int{1, 1, 1, 2}, in).Within10; !near(got, 0.8, 1e-9) {
		t.Errorf("over a subset: within 10 %% = %v, want 0.8", got)
	}
	if got := withinShare(rtt, w, []int{1, 1, 1, 2}, in); !near(got, 0.8, 1e-9) {
		t.Errorf("withinShare = %v, want 0.8", got)
	}
	if got := scoreQ(nil, nil, nil, nil); got != (qOutcome{}) {
		t.Errorf("no clients: %+v", got)
	}
}

func TestStandInLearner(t *testing.T) {
	l := newStandInLearner(0.5, time.Minute)
	k := netip.MustParsePrefix("192.0.2.77/24")
	t0 := time.Unix(0, 0)
	if _, ok := l.Estimate(k, "fra", t0); ok {
		t.Fatal("an estimate before any measurement")
	}
	l.Observe(k, "fra", 10, t0)
	l.Observe(netip.MustParsePrefix("192.0.2.0/24"), "fra", 20, t0.Add(time.Second))
	got, ok := l.Estimate(k, "fra", t0.Add(time.Second))
	if !ok || got != 15 {
		t.Errorf("estimate %v %v, want 15 (EWMA 0.5 of 10 and 20, keyed by the masked /24)", got, ok)
	}
	if _, ok := l.Estimate(k, "iad", t0); ok {
		t.Error("an estimate for a PoP never measured")
	}
	if _, ok := l.Estimate(k, "fra", t0.Add(2*time.Minute)); ok {
		t.Error("an estimate older than maxAge")
	}
	l.Observe(k, "fra", 40, t0.Add(3*time.Minute))
	if got, _ := l.Estimate(k, "fra", t0.Add(3*time.Minute)); got != 40 {
		t.Errorf("after expiry the estimate restarts: %v, want 40", got)
	}
}

// fixedLearner estimates from a table, to test the learned choice.
type fixedLearner map[string]float64

func (fixedLearner) Observe(netip.Prefix, string, float64, time.Time) {}
func (f fixedLearner) Estimate(_ netip.Prefix, p string, _ time.Time) (float64, bool) {
	v, ok := f[p]
	return v, ok
}

func TestLearnedChoice(t *testing.T) {
	tl := DefaultTimeline() // margin 3 ms and 10 %
	k := netip.MustParsePrefix("192.0.2.0/24")
	tests := []struct {
		name          string
		est           fixedLearner
		cur, fallback int
		want          int
	}{
		{"nothing known: fallback", fixedLearner{}, 0, 3, 3},
		{"current unknown: best known", fixedLearner{"iad": 50, "sin": 40}, 0, 0, 2},
		{"better by less than the margin: stay", fixedLearner{"fra": 50, "iad": 46}, 0, 0, 0},
		{"better by more than the margin: move", fixedLearner{"fra": 50, "iad": 44}, 0, 0, 1},
		{"small RTTs: the ms margin", fixedLearner{"fra": 10, "iad": 7.5}, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := learnedChoice(tc.est, k, tc.cur, tc.fallback, time.Unix(0, 0), tl); got != tc.want {
				t.Errorf("learnedChoice = %s, want %s", thePoPs[got].Name, thePoPs[tc.want].Name)
			}
		})
	}
}

func TestPoisson(t *testing.T) {
	r := rng(1, "test")
	for _, mean := range []float64{0, 0.05, 3, 100} {
		sum := 0
		const n = 20000
		for range n {
			sum += poisson(r, mean)
		}
		if got := float64(sum) / n; !near(got, mean, 0.05*mean+0.01) {
			t.Errorf("poisson(%g): mean %.3f", mean, got)
		}
	}
}

// TestTimeline runs the timeline on the synthetic world: the learned mode
// ends up closer to the best than distance only, recovers from the route
// change within minutes, and the run takes bounded time.
func TestTimeline(t *testing.T) {
	defer usePoPs(densePoPs)()
	smp := synthWorld(49)
	m := HardModel(2)
	cs := smp.remodel(&m)
	dist := distanceChoice(smp, cs)
	tl := DefaultTimeline()
	tl.Warm, tl.After = 20*time.Minute, 10*time.Minute
	tl.RatePer24 = 400 // the /20s' beacons spread over 16 /24s, of which the stand-in reads one
	tl.Event = RouteChange{Scope: "country", Key: "DE", PoP: 0, AddMS: 80}
	tl.BeaconOthers = -1 // the stand-in explores nothing: its beacons measure every PoP
	start := time.Now()
	res := runTimeline(cs, &m, tl, []fixedMode{{"distance only", dist}}, dist, namedLearner{standInName, newStandInLearner(tl.Alpha, tl.MaxAge), tl.BeaconOthers})
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("the timeline took %s", el)
	}
	if len(res.Modes) != 2 || res.Measured == 0 || res.Skipped == 0 {
		t.Fatalf("%d modes, %d measurements, %d skipped from other /24s", len(res.Modes), res.Measured, res.Skipped)
	}
	d, l := res.Modes[0], res.Modes[1]
	if want := int((tl.Warm+tl.After)/tl.Step) + 1; len(l.Steps) != want {
		t.Errorf("%d steps, want %d", len(l.Steps), want)
	}
	if lw, dw := l.at(0).All.Within10, d.at(0).All.Within10; lw <= dw+0.1 || lw < 0.85 {
		t.Errorf("before the change: learned %.3f, distance %.3f within 10 %%", lw, dw)
	}
	if d.Converged >= 0 || d.at(tl.After).Affected >= d.at(0).Affected-0.02 {
		t.Errorf("distance only cannot react to a route change: converged %v, %v → %v", d.Converged, d.at(0).Affected, d.at(tl.After).Affected)
	}
	if l.Converged < 0 || l.Converged > 5*time.Minute {
		t.Errorf("learned converged at %v, want within 5 min", l.Converged)
	}
	if d.MovedAfter != 0 || l.MovedAfter == 0 {
		t.Errorf("moved after the change: distance %v, learned %v", d.MovedAfter, l.MovedAfter)
	}
	if res.Affected <= 0 || res.Affected >= 1 {
		t.Errorf("the change touches %v of the weight", res.Affected)
	}
}

func TestPickEvent(t *testing.T) {
	cs := []client{
		{AS: "A", Country: "DE", Weight: 1, True: []float64{10, 50}},
		{AS: "B", Country: "DE", Weight: 2, True: []float64{10, 50}},
		{AS: "B", Country: "US", Weight: 2, True: []float64{50, 10}},
		{AS: "C", Country: "US", Weight: 1.5, True: []float64{50, 10}},
	}
	tests := []struct {
		scope, key string
		pop        int
	}{{"as", "B", 0}, {"country", "US", 1}}
	for _, tc := range tests {
		e := pickEvent(cs, RouteChange{Scope: tc.scope, AddMS: 10})
		if e.Key != tc.key || e.PoP != tc.pop {
			t.Errorf("%s: picked %s → %d, want %s → %d", tc.scope, e.Key, e.PoP, tc.key, tc.pop)
		}
	}
	e := RouteChange{Scope: "as", Key: "B", PoP: 0, AddMS: -100}
	aff := e.affected(cs)
	after := e.apply(cs, aff)
	if fmt.Sprint(aff) != "[false true true false]" || after[1][0] != 1 || after[0][0] != 10 || cs[1].True[0] != 10 {
		t.Errorf("affected %v, after %v", aff, after)
	}
}

func TestTimelineFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-event", "region"}, {"-event-key", "DE"}, {"-event-key", "DE", "-event-pop", "xyz"},
		{"-measure-share", "2"}, {"-isp-resolver-share", "0.8", "-public-resolver-share", "0.3"}, {"-after", "1s"},
	} {
		if _, err := parseFlags(args, nil); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
	o, err := parseFlags([]string{"-event", "country", "-event-key", "DE", "-event-pop", "iad", "-as-sigma", "0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Timeline.Event != (RouteChange{Scope: "country", Key: "DE", PoP: 1, AddMS: 60}) || o.Hard.Hard.ASSigma != 0 {
		t.Errorf("parsed %+v, %+v", o.Timeline.Event, o.Hard.Hard)
	}
	if got := flagsShown(o); !strings.Contains(got, "harder model or timeline flags changed") {
		t.Errorf("the report's command line %q does not say the flags changed", got)
	}
	if d, _ := parseFlags(nil, nil); flagsShown(d) != "" {
		t.Errorf("defaults shown as %q", flagsShown(d))
	}
}

// TestTimelineReport renders the timeline section from a run on the
// synthetic world.
func TestTimelineReport(t *testing.T) {
	o, err := parseFlags(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	smp := synthWorld(14)
	tl := o.Timeline
	tl.Warm, tl.After = 5*time.Minute, 2*time.Minute
	var tls []*timelineResult
	for _, m := range []Model{DefaultModel(1), HardModel(1)} {
		cs := smp.remodel(&m)
		dist := distanceChoice(smp, cs)
		ls, err := timelineLearners(cs, tl, newSynthLocator(smp), testSnapshot(t))
		if err != nil {
			t.Fatal(err)
		}
		tls = append(tls, runTimeline(cs, &m, tl, []fixedMode{{"distance only", dist}}, dist, ls...))
	}
	r := &report{Opt: o, Timelines: tls, HardPoPs: 6, HardVia: map[string]float64{viaECS: 1},
		HardStatic: []*modeResult{{Name: "distance only", ByVia: map[string]float64{viaECS: 0.5, viaISP: 0.25, viaPublic: 1}}}}
	var b strings.Builder
	r.writeTimelines(&b)
	md := b.String()
	for _, want := range []string{
		"### Over time", "| kind | distance only |", "| harder | " + standInName + " |", "| harder | " + learnName + " |",
		"Issue 17's goal", "| distance only | 50.0 % | 25.0 % | 100.0 % |", "converged within 5 min (10s: met; over 5-minute means",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the timeline section lacks %q:\n%s", want, md)
		}
	}
}

// TestTimelineLearn runs the learned mode over latency/learn on the
// synthetic world with the defaults (RUM beacons of the answering PoP,
// exploration): it ends up well above distance only, explores a bounded
// share, and uses every cell kind. learn_slow_test.go checks convergence
// after a route change, which needs beacons of every PoP.
func TestTimelineLearn(t *testing.T) {
	defer usePoPs(densePoPs)()
	smp := synthWorld(49)
	m := HardModel(2)
	cs := smp.remodel(&m)
	dist := distanceChoice(smp, cs)
	tl := learnTestTimeline()
	a := testAdapter(t, smp, cs, tl)
	start := time.Now()
	res := runTimeline(cs, &m, tl, []fixedMode{{"distance only", dist}}, dist, namedLearner{learnName, a, tl.BeaconOthers})
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("the timeline took %s", el)
	}
	d, l := res.Modes[0], res.Modes[1]
	if a.errs != 0 || a.agg.Len() == 0 || l.Beacons == 0 {
		t.Fatalf("%d ingest errors, %d entries, %d beacons", a.errs, a.agg.Len(), l.Beacons)
	}
	if lw, dw := l.at(0).All.Within10, d.at(0).All.Within10; lw < dw+0.1 {
		t.Errorf("before the change, learned %.3f, distance %.3f within 10 %%", lw, dw)
	}
	if l.Explored == 0 || l.Explored > l.Beacons/50 {
		t.Errorf("%d of %d beacons from exploring answers, want some, at most 2 %%", l.Explored, l.Beacons)
	}
	levels := map[learn.CellKind]int{}
	for _, kd := range a.last {
		levels[kd.Level]++
	}
	if levels[learn.CellPrefix] == 0 || levels[0] != 0 {
		t.Errorf("keys by the cell they were decided in: %v, want some in their /24, none without learned RTTs", levels)
	}
	t.Logf("within 10 %%: distance %.3f, learned %.3f; converged %v; churn %.2f/h; explored %d of %d beacons; keys by cell kind %v",
		d.at(0).All.Within10, l.at(0).All.Within10, l.Converged, l.ChurnBefore, l.Explored, l.Beacons, levels)
}

// learnTestTimeline is the timeline of the learned mode's tests: shorter
// than the default, with a denser stream for the small world.
func learnTestTimeline() Timeline {
	tl := DefaultTimeline()
	tl.Warm, tl.After = 40*time.Minute, 10*time.Minute
	tl.RatePer24 = 100
	tl.Event = RouteChange{Scope: "country", Key: "DE", PoP: 0, AddMS: 80}
	return tl
}
