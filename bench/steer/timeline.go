package main

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/latency/learn"
	"github.com/popdns/popdns/zones"
)

// The learned modes' rows.
const (
	standInName = "learned, STAND-IN (EWMA per /24, for comparison)"
	learnName   = "learned (latency/learn)"
)

// The timeline runs the modes over time: a measurement stream from a share
// of the clients' requests feeds the learned mode, and at time 0 one path
// (an AS's or a country's, to one PoP) changes.

// Timeline says how the timeline runs.
type Timeline struct {
	Step  time.Duration // between two decisions and scores
	Warm  time.Duration // measurements before the route change
	After time.Duration // run after it
	// RatePer24 is the requests per minute a network sends per /24 it
	// holds (capped like the weight); MeasureShare of them yield an RTT
	// measurement (a RUM beacon) of the PoP that answered the request,
	// and of BeaconOthers other PoPs, the nearest by the database's point
	// (NS1 Pulsar-style multi-PoP beacons; -1: every PoP).
	RatePer24    float64
	MeasureShare float64
	BeaconOthers int
	// CompareOthers adds a row of the learned mode over latency/learn
	// whose beacons measure that many others (-1: every PoP; below -1 or
	// equal to BeaconOthers: no row), to show what multi-PoP beacons add.
	CompareOthers int
	// The learned mode's stabiliser: it leaves its PoP only for one
	// estimated lower by more than MarginMS and MarginPct of the current.
	MarginMS, MarginPct float64
	// The stand-in learner's EWMA weight and how long an estimate lives.
	Alpha  float64
	MaxAge time.Duration
	// Learn tunes the learned mode over latency/learn (learnadapter.go).
	Learn LearnOptions
	Event RouteChange
	// Diagnose, when above 0, has the learned modes break their misses
	// down just before the event (clients whose accuracy radius is at
	// least Diagnose are centroid-placed) into modeSeries.Diagnosis.
	Diagnose float64
}

// RouteChange is the event at time 0: the path from every network of one
// AS or country (Scope "as" or "country"; "none": no event) to PoP gets
// AddMS longer (negative: shorter, never below 1 ms). An empty Key picks
// the (key, PoP) pair carrying the most weight on its best PoP.
type RouteChange struct {
	Scope string
	Key   string
	PoP   int
	AddMS float64
}

func (e RouteChange) String() string {
	if e.Scope == "none" || e.Scope == "" {
		return "no route change"
	}
	return fmt.Sprintf("%s %s → %s %+g ms", e.Scope, e.Key, thePoPs[e.PoP].Name, e.AddMS)
}

// DefaultTimeline is the documented timeline (README.md).
func DefaultTimeline() Timeline {
	return Timeline{
		Step: 10 * time.Second, Warm: time.Hour, After: 30 * time.Minute,
		RatePer24: 10, MeasureShare: 0.01, BeaconOthers: 0, CompareOthers: -1,
		MarginMS: 3, MarginPct: 0.1,
		Alpha: 0.1, MaxAge: time.Hour,
		Learn: LearnOptions{
			HalfLife: 2 * time.Minute, CountHalfLife: 30 * time.Minute, MinSamples: 3, PublishEvery: 30 * time.Second,
			ExploreShare: 0.01, ExploreAge: 10 * time.Minute,
		},
		Event: RouteChange{Scope: "as", AddMS: 60},
	}
}

// scopeKey is client c's key under scope.
func scopeKey(c *client, scope string) string {
	switch scope {
	case "as":
		return c.AS
	case "country":
		return c.Country
	}
	return ""
}

// pickEvent fills in e's key and PoP when e.Key is empty: the pair whose
// networks put the most weight on that PoP as their best.
func pickEvent(cs []client, e RouteChange) RouteChange {
	if e.Scope == "none" || e.Scope == "" || e.Key != "" {
		return e
	}
	type pair struct {
		key string
		pop int
	}
	w := map[pair]float64{}
	var best pair
	for i := range cs {
		p := pair{scopeKey(&cs[i], e.Scope), bestPoP(cs[i].True, nil)}
		w[p] += cs[i].Weight
		if w[p] > w[best] || (w[p] == w[best] && (p.key < best.key || (p.key == best.key && p.pop < best.pop))) {
			best = p
		}
	}
	e.Key, e.PoP = best.key, best.pop
	return e
}

// affected reports which clients the event touches.
func (e RouteChange) affected(cs []client) []bool {
	out := make([]bool, len(cs))
	for i := range cs {
		out[i] = e.Scope != "none" && e.Scope != "" && scopeKey(&cs[i], e.Scope) == e.Key
	}
	return out
}

// apply is the clients' RTTs after the event.
func (e RouteChange) apply(cs []client, aff []bool) [][]float64 {
	out := make([][]float64, len(cs))
	for i := range cs {
		out[i] = append([]float64(nil), cs[i].True...)
		if aff[i] {
			out[i][e.PoP] = max(1, out[i][e.PoP]+e.AddMS)
		}
	}
	return out
}

// qOutcome is a query-weighted score of one set of choices.
type qOutcome struct {
	Within10, Within5ms, Within20ms  float64 // weighted shares
	MeanExcess, P90Excess, P95Excess float64 // weighted, ms
}

// scoreQ scores choice against rtt, each client weighted by w, over the
// clients with in[i] true (nil: all).
func scoreQ(rtt [][]float64, w []float64, choice []int, in []bool) qOutcome {
	var o qOutcome
	type ex struct{ e, w float64 }
	var xs []ex
	var total float64
	for i, c := range choice {
		if in != nil && !in[i] {
			continue
		}
		best := bestRTT(rtt[i], nil)
		e := rtt[i][c] - best
		total += w[i]
		xs = append(xs, ex{e, w[i]})
		if rtt[i][c] <= best*goodEnough {
			o.Within10 += w[i]
		}
		if e <= 5 {
			o.Within5ms += w[i]
		}
		if e <= 20 {
			o.Within20ms += w[i]
		}
		o.MeanExcess += e * w[i]
	}
	if total == 0 {
		return o
	}
	o.Within10 /= total
	o.Within5ms /= total
	o.Within20ms /= total
	o.MeanExcess /= total
	e := make([]float64, len(xs))
	ws := make([]float64, len(xs))
	for i, x := range xs {
		e[i], ws[i] = x.e, x.w
	}
	o.P90Excess = weightedPercentile(e, ws, 0.90)
	o.P95Excess = weightedPercentile(e, ws, 0.95)
	return o
}

// withinShare is the weighted share of the clients with in[i] sent within
// 10 % of their best: scoreQ's Within10, without the percentiles.
func withinShare(rtt [][]float64, w []float64, choice []int, in []bool) float64 {
	var got, total float64
	for i, c := range choice {
		if !in[i] {
			continue
		}
		total += w[i]
		if rtt[i][c] <= bestRTT(rtt[i], nil)*goodEnough {
			got += w[i]
		}
	}
	if total == 0 {
		return 0
	}
	return got / total
}

// weightedPercentile is the smallest v[i] such that the weight of the
// values at most v[i] is at least q of the total (nearest rank, weighted).
func weightedPercentile(v, w []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sortByValue(idx, v)
	var total float64
	for _, x := range w {
		total += x
	}
	var cum float64
	for _, i := range idx {
		cum += w[i]
		if cum >= q*total*(1-1e-12) {
			return v[i]
		}
	}
	return v[idx[len(idx)-1]]
}

// stepResult is one mode at one step.
type stepResult struct {
	T        time.Duration // since the event
	All      qOutcome
	Affected float64 // within 10 %, weighted, over the event's clients
	Moved    float64 // weight whose PoP changed since the last step, share of all
}

// modeSeries is one mode over the timeline.
type modeSeries struct {
	Name  string
	Steps []stepResult // from -Warm to After, every Step
	// Converged is the time after the event from which the event's
	// clients stay within 2 points of their share within 10 % just before
	// it; -1: not within the run.
	Converged time.Duration
	// ConvergedMean is the same over means: the time after the event
	// from which the mean share of the event's clients over every 5
	// minutes is within 2 points of their mean over the 30 minutes before
	// it; -1: not within the run. The event's clients are a few heavy
	// networks, so one of them crossing the 10 % line moves their share
	// by points from one step to the next, before the event as after it,
	// which Converged takes for a lack of convergence.
	ConvergedMean time.Duration
	// MovedAfter is the weight moved after the event (summed over steps),
	// ChurnBefore the weight moved in the last half hour before it, per
	// hour; both shares of all weight.
	MovedAfter, ChurnBefore float64
	// Beacons counts the beacons of a learned mode, Explored those whose
	// request was answered by an exploring choice.
	Beacons, Explored int
	// Diagnosis is the learned mode's misses by group (Timeline.Diagnose).
	Diagnosis string
}

// at is the step at time t after the event (clamped to the run).
func (ms *modeSeries) at(t time.Duration) stepResult {
	for _, s := range ms.Steps {
		if s.T >= t {
			return s
		}
	}
	return ms.Steps[len(ms.Steps)-1]
}

// timelineResult is the timeline of every mode.
type timelineResult struct {
	TL       Timeline
	Event    RouteChange
	EventStr string // Event as text, with the PoPs of the run
	PoPs     int
	Affected float64 // the event's clients, share of all weight
	Modes    []*modeSeries
	Measured int // measurements observed
	// Skipped counts the beacons from a network's other /24s, which a
	// per-/24 learner would store and never read, so they are not drawn.
	Skipped int
}

// fixedMode is a mode whose choice does not change over the timeline.
type fixedMode struct {
	Name   string
	Choice []int
}

// namedLearner is a learned mode: its row's name, its learner, and the
// PoPs its beacons measure besides the one that answered (Timeline's
// BeaconOthers).
type namedLearner struct {
	Name         string
	Learner      Learner
	BeaconOthers int
}

// publisher is a learner that publishes snapshots, as the server does, and
// decides a key from the published one (learnAdapter): it is asked again
// for every key at each publish, since a coarser cell's data changes the
// estimates of keys that were not measured themselves.
type publisher interface {
	Learner
	Publish(now time.Time) bool
	info(c *client) keyInfo
	// ChooseAll decides every key of ks: its PoP (-1: none) into choice,
	// the PoP an exploring answer puts first (-1: none) into explore.
	ChooseAll(ks []*keyInfo, choice, explore []int)
}

// runTimeline runs the fixed modes and each learned mode (falling back to
// fallback's choice for a key its learner knows nothing of) over the
// timeline.
func runTimeline(cs []client, m *Model, tl Timeline, fixed []fixedMode, fallback []int, learners ...namedLearner) *timelineResult {
	ev := pickEvent(cs, tl.Event)
	aff := ev.affected(cs)
	pre := make([][]float64, len(cs))
	for i := range cs {
		pre[i] = cs[i].True
	}
	post := ev.apply(cs, aff)
	w := make([]float64, len(cs))
	var totalW, affW float64
	for i := range cs {
		w[i] = cs[i].Weight
		totalW += w[i]
		if aff[i] {
			affW += w[i]
		}
	}
	res := &timelineResult{TL: tl, Event: ev, EventStr: ev.String(), PoPs: len(thePoPs), Affected: affW / totalW}
	sc := &scorer{tl: tl, pre: pre, post: post, w: w, aff: aff, totalW: totalW}
	for _, f := range fixed {
		ms := &modeSeries{Name: f.Name}
		var prev []int
		for s := 0; s <= sc.steps(); s++ {
			sc.add(ms, s, f.Choice, &prev)
		}
		res.Modes = append(res.Modes, ms)
	}
	for _, l := range learners {
		res.Modes = append(res.Modes, runLearner(cs, m, tl, fallback, l, sc, res))
	}
	for _, ms := range res.Modes {
		ms.summarise(tl)
	}
	return res
}

// scorer scores one mode's choice at each step.
type scorer struct {
	tl        Timeline
	pre, post [][]float64
	w         []float64
	aff       []bool
	totalW    float64
}

func (sc *scorer) steps() int { return int(sc.tl.Warm/sc.tl.Step) + int(sc.tl.After/sc.tl.Step) }

func (sc *scorer) at(s int) (time.Duration, [][]float64) {
	t := time.Duration(s)*sc.tl.Step - sc.tl.Warm
	if t > 0 {
		return t, sc.post
	}
	return t, sc.pre
}

// add scores choice at step s into ms; prev is the last step's choice.
func (sc *scorer) add(ms *modeSeries, s int, choice []int, prev *[]int) {
	t, rtt := sc.at(s)
	sr := stepResult{T: t, All: scoreQ(rtt, sc.w, choice, nil), Affected: withinShare(rtt, sc.w, choice, sc.aff)}
	if *prev != nil {
		var mv float64
		for i := range choice {
			if choice[i] != (*prev)[i] {
				mv += sc.w[i]
			}
		}
		sr.Moved = mv / sc.totalW
	}
	*prev = append((*prev)[:0], choice...)
	ms.Steps = append(ms.Steps, sr)
}

// runLearner runs one learned mode over the timeline.
func runLearner(cs []client, m *Model, tl Timeline, fallback []int, nl namedLearner, sc *scorer, res *timelineResult) *modeSeries {
	learner := nl.Learner
	ms := &modeSeries{Name: nl.Name}
	// Each client's beacons draw from its own stream, the same for every
	// learner.
	rngs := make([]*rand.Rand, len(cs))
	for i := range cs {
		rngs[i] = rng(m.Seed, kindBeacon, cs[i].Network.String())
	}
	base := time.Unix(1_000_000, 0)
	learned := slices.Clone(fallback)
	// The learned mode decides per key, as popdns would. A stand-in's
	// key changes only when it is measured (an estimate that ages out is
	// noticed at the key's next measurement); a publisher's keys are all
	// decided again at each publish.
	keyChoice := map[netip.Prefix]int{}
	keyExplore := map[netip.Prefix]int{}
	members := map[netip.Prefix][]int{}
	var keys []netip.Prefix
	for i := range cs {
		key := cs[i].seen().Masked()
		if _, ok := keyChoice[key]; !ok {
			keyChoice[key] = fallback[i]
			keys = append(keys, key)
		}
		members[key] = append(members[key], i)
	}
	pub, _ := learner.(publisher)
	var infoList []*keyInfo
	choices, explores := make([]int, len(keys)), make([]int, len(keys))
	if pub != nil {
		for _, key := range keys {
			k := pub.info(&cs[members[key][0]])
			infoList = append(infoList, &k)
		}
	}
	dirty := map[netip.Prefix]bool{}
	perKey := false
	if pk, ok := learner.(interface{ PerKeyOnly() bool }); ok {
		perKey = pk.PerKeyOnly()
	}
	var prev []int
	for s := 0; s <= sc.steps(); s++ {
		t, rtt := sc.at(s)
		now := base.Add(t)
		// The requests of the step before t, and their beacons.
		if s > 0 {
			for i := range cs {
				mean := tl.RatePer24 * weight24(cs[i].Network) * tl.Step.Minutes() * tl.MeasureShare
				seenKey := cs[i].seen().Masked()
				for range poisson(rngs[i], mean) {
					key := seenKey
					if cs[i].Via == viaECS || cs[i].Via == "" {
						// The request came from any /24 of the network, all
						// taken to see the queried one's RTTs; a learner that
						// reads only the /24 it is asked for gets only the
						// queried /24's.
						from := subnet24(cs[i].Network, rngs[i])
						if from != key && perKey {
							res.Skipped++
							continue
						}
						key = from
					}
					if _, ok := members[key]; ok {
						dirty[key] = true
					}
					// The answer the beacon's request got: a share of a
					// key's answers explores.
					answered := learned[i]
					if x, ok := keyExplore[seenKey]; ok && x >= 0 && rngs[i].Float64() < tl.Learn.ExploreShare {
						answered = x
						ms.Explored++
					}
					for _, p := range beaconPoPs(&cs[i], answered, nl.BeaconOthers) {
						r := rtt[i][p]
						r += (m.NoiseFrac*r + m.NoiseMS) * rngs[i].ExpFloat64()
						learner.Observe(key, thePoPs[p].Name, r, now)
						res.Measured++
					}
					ms.Beacons++
				}
			}
		}
		switch {
		case pub != nil:
			if pub.Publish(now) {
				pub.ChooseAll(infoList, choices, explores)
				for j, key := range keys {
					c := choices[j]
					if c < 0 {
						c = keyChoice[key]
					}
					keyChoice[key], keyExplore[key] = c, explores[j]
					for _, i := range members[key] {
						learned[i] = c
					}
				}
			}
		default:
			for key := range dirty {
				first := members[key][0]
				c := learnedChoice(learner, key, keyChoice[key], fallback[first], now, tl)
				keyChoice[key] = c
				for _, i := range members[key] {
					learned[i] = c
				}
			}
		}
		clear(dirty)
		sc.add(ms, s, learned, &prev)
		if d, ok := learner.(*learnAdapter); ok && tl.Diagnose > 0 && t == 0 {
			ms.Diagnosis = d.diagnose(cs, rtt, learned, sc.w, tl.Diagnose)
		}
	}
	return ms
}

// summarise computes the convergence time and traffic moved of a series.
func (ms *modeSeries) summarise(tl Timeline) {
	before := ms.at(0).Affected
	ms.Converged = -1
	for i := len(ms.Steps) - 1; i >= 0 && ms.Steps[i].T > 0; i-- {
		if ms.Steps[i].Affected < before-0.02 {
			break
		}
		ms.Converged = ms.Steps[i].T
	}
	ms.ConvergedMean = -1
	var base float64
	var n int
	for _, s := range ms.Steps {
		if s.T > -30*time.Minute && s.T <= 0 {
			base, n = base+s.Affected, n+1
		}
	}
	base /= float64(max(n, 1))
	win := max(int(5*time.Minute/tl.Step), 1)
	for i := len(ms.Steps) - win; i >= 0 && ms.Steps[i].T > 0; i-- {
		var sum float64
		for _, s := range ms.Steps[i : i+win] {
			sum += s.Affected
		}
		if sum/float64(win) < base-0.02 {
			break
		}
		ms.ConvergedMean = ms.Steps[i].T
	}
	for _, s := range ms.Steps {
		switch {
		case s.T > 0:
			ms.MovedAfter += s.Moved
		case s.T > -30*time.Minute:
			ms.ChurnBefore += s.Moved
		}
	}
	ms.ChurnBefore *= float64(time.Hour) / float64(min(30*time.Minute, tl.Warm))
}

// learnedChoice is the learned mode's PoP for key: the lowest estimate,
// unless it beats the current PoP's estimate by less than the margin; the
// fallback when the learner knows neither the current PoP nor any other.
func learnedChoice(l Learner, key netip.Prefix, cur, fallback int, now time.Time, tl Timeline) int {
	curEst, curOK := l.Estimate(key, thePoPs[cur].Name, now)
	best, bestEst := -1, math.Inf(1)
	for p := range thePoPs {
		if e, ok := l.Estimate(key, thePoPs[p].Name, now); ok && e < bestEst {
			best, bestEst = p, e
		}
	}
	switch {
	case best < 0:
		return fallback
	case !curOK:
		return best
	case curEst-bestEst > max(tl.MarginMS, tl.MarginPct*curEst):
		return best
	}
	return cur
}

// beaconPoPs are the PoPs one beacon of c measures: the one that answered
// and the k others nearest the database's point (all when k < 0).
func beaconPoPs(c *client, chosen, k int) []int {
	if k < 0 || k+1 >= len(thePoPs) {
		return allPoPs()
	}
	out := []int{chosen}
	for _, p := range measuredPoPs(c.Point, len(thePoPs)) {
		if len(out) == k+1 {
			break
		}
		if p != chosen {
			out = append(out, p)
		}
	}
	return out
}

// allPoPs lists the indexes of thePoPs.
func allPoPs() []int {
	out := make([]int, len(thePoPs))
	for i := range out {
		out[i] = i
	}
	return out
}

// poisson draws from a Poisson distribution of the given mean: Knuth's
// product of uniforms when small, a rounded normal when large.
func poisson(r *rand.Rand, mean float64) int {
	switch {
	case mean <= 0:
		return 0
	case mean > 30:
		return max(0, int(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// sortByValue sorts idx by v[idx[i]], ties by index.
func sortByValue(idx []int, v []float64) {
	slices.SortFunc(idx, func(a, b int) int {
		if c := cmp.Compare(v[a], v[b]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
}

// timeline runs distance only (dist), the static table of spec (table,
// from the zones snapshot snap) and the learned modes over s's clients,
// the learned ones deciding with snap's latency table too, as a server
// with both would.
func (s *sim) timeline(tl Timeline, spec tableSpec, dist, table []int, snap *zones.Snapshot) (*timelineResult, error) {
	fixed := []fixedMode{{"distance only", dist}, {"static " + spec.String(), table}}
	ls, err := timelineLearners(s.clients, tl, s.locator, snap)
	if err != nil {
		return nil, err
	}
	return runTimeline(s.clients, &s.model, tl, fixed, table, ls...), nil
}

// timelineLearners are the learned modes: the stand-in, for comparison,
// then popdns's selector over latency/learn, deciding with the geo record
// of snap and locating keys with locator.
func timelineLearners(cs []client, tl Timeline, locator dnsserver.Locator, snap *zones.Snapshot) ([]namedLearner, error) {
	m := learn.Margin{MS: tl.MarginMS, Percent: tl.MarginPct * 100}
	a, err := newLearnAdapter(cs, tl.Learn, m, locator, snap)
	if err != nil {
		return nil, err
	}
	out := []namedLearner{
		{standInName, newStandInLearner(tl.Alpha, tl.MaxAge), tl.BeaconOthers},
		{learnName, a, tl.BeaconOthers},
	}
	if tl.CompareOthers != tl.BeaconOthers && tl.CompareOthers >= -1 {
		b, err := newLearnAdapter(cs, tl.Learn, m, locator, snap)
		if err != nil {
			return nil, err
		}
		out = append(out, namedLearner{fmt.Sprintf("%s, beacons of %s", learnName, beaconText(tl.CompareOthers)), b, tl.CompareOthers})
	}
	return out, nil
}
