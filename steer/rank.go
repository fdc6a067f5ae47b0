package steer

import (
	"math"
	"math/bits"
	"net/netip"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/latency"
	"github.com/popdns/popdns/latency/learn"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
)

// Source says where a candidate's RTT estimate came from.
type Source uint8

const (
	Order    Source = iota // location unknown: the record's order decides
	Distance               // great-circle distance over fibre
	Table                  // measured, from the latency table
	Region                 // no coordinates: same country, then continent, first
	Learned                // measured from real traffic: the learned-latency table
)

func (s Source) String() string {
	switch s {
	case Distance:
		return "distance"
	case Table:
		return "table"
	case Region:
		return "region"
	case Learned:
		return "learned"
	}
	return "order"
}

// Candidates receives the ranked candidates of one decision. The caller
// owns it (on the stack, or one per reader), so that ranking does not
// allocate.
type Candidates [zones.MaxGeoTargets]Candidate

// Candidate is one target being ranked for one query, and how it fared.
type Candidate struct {
	Index     uint8 // into Geo.Targets
	State     pops.AdminState
	Healthy   bool
	Eligible  bool
	Km        float64 // great-circle distance; -1 when the client has no point
	RTTMS     float64 // estimate, bias and penalty included: what ranking uses
	BiasMS    float64
	PenaltyMS float64 // weighted probe penalty added to RTTMS
	// Calibration is the factor a distance estimate was scaled by to
	// match this client's measured targets; 0 when it was not.
	Calibration float64
	Source      Source
	Entry       *latency.Entry // the measurement used, when source is Table
	// Learned is the learned estimate used, when Source is Learned: the
	// cell it was learned in, its samples and its age.
	Learned learn.Estimate
	// Borrowed is the factor Learned's RTT was scaled by to compare it
	// in the client's cell (Decision.Level): the client's current PoP's
	// RTT there over its RTT in Learned's coarser cell, at least 1.
	// 0: not borrowed.
	Borrowed float64
}

// Decision is the outcome of choosing among a geo record's targets.
type Decision struct {
	Ranked     [zones.MaxGeoTargets]uint8 // answered target indexes, best first
	N          int                        // how many of Ranked are answered
	NoData     bool                       // no target has the type asked for, or none the rule allows
	Untailored bool                       // the outcome is the same for every client
	Servfail   bool                       // nothing can be answered
	AllDown    bool                       // no target was eligible: when_all_down decided
	Rule       *zones.GeoRule             // the rule that applied, or nil
	Scope      int                        // ECS scope: prefix bits the decision depends on
	Cands      int                        // how many candidates were ranked (for explain)

	// Level is the kind of cell the client's learned estimates were
	// compared in; 0 when learned latency did not take part. Current is
	// the target of that cell's leader (learn.Found.LeaderIn), else the
	// one it measured most lately: the one its clients are taken to be
	// on. Held says the stabiliser kept them there
	// although another ranked better, by less than the margin.
	Level   learn.CellKind
	Current uint8
	Held    bool
	// Explore is the target an exploring answer puts first: the best
	// ranked eligible one after the first answered whose learned RTT in
	// the client's cell is missing or stale. HasExplore says there is
	// one; there never is when learning is off or all targets are down.
	Explore    uint8
	HasExplore bool
}

// Rank chooses the targets of g that answer a query of type qtype from a
// client at client (the ECS network address or the source address) located
// at loc. cands receives the ranked candidates, best first, for
// explanations: the first d.Cands of them. Rank is safe for concurrent use
// with distinct cands.
func Rank(g *zones.Geo, qtype uint16, client netip.Addr, loc geo.Location, env *Env, cands *Candidates) Decision {
	var d Decision
	var has zones.TargetSet
	for i := range g.Targets {
		if t := &g.Targets[i]; t.CNAME != nil || qtype == dns.TypeAAAA && len(t.AAAA) > 0 || qtype != dns.TypeAAAA && len(t.A) > 0 {
			has |= 1 << uint(i)
		}
	}
	if has == 0 {
		// No target has the type, whoever asks: NODATA for everyone.
		d.NoData, d.Untailored = true, true
		return d
	}
	d.Scope = scopeBits(g, client, loc)
	var found learn.Found
	if env.Learned != nil {
		found = env.Learned.Find(learn.ClientAt(client, loc))
		// Inside the scope, every client must find the same prefix cell:
		// its own, or none.
		lo, hi := env.Learned.PrefixGap(client)
		d.Scope = latency.ScopeWithin(client, d.Scope, lo, hi)
	}
	allowed := has
	if r := matchRule(g, client, loc); r != nil {
		d.Rule = r
		if r.Only != 0 {
			allowed &= r.Only
		}
		allowed &^= r.Exclude
	}
	if allowed == 0 {
		d.NoData = true
		return d
	}

	n := 0
	for i := range g.Targets {
		if !allowed.Has(i) {
			continue
		}
		t := &g.Targets[i]
		c := &cands[n]
		n++
		*c = Candidate{Index: uint8(i), State: env.TargetState(t), BiasMS: t.BiasMS, Km: -1}
		var penalty float64
		c.Healthy, penalty = env.TargetHealth(t)
		c.PenaltyMS = penalty * env.Options.penaltyWeight()
		c.Eligible = eligible(c.State, c.Healthy)
		if loc.HasPoint {
			c.Km = geo.DistanceKm(loc.Point, t.PoP.Point)
		}
		if env.Latency != nil {
			var lo, hi netip.Addr
			c.Entry, lo, hi = env.Latency.Lookup(t.PoP.Name, client, env.Now, env.Options.LatencyMaxAge)
			d.Scope = latency.ScopeWithin(client, d.Scope, lo, hi)
		}
		switch {
		case c.Entry != nil:
			c.RTTMS, c.Source = c.Entry.RTTMS, Table
		case loc.HasPoint:
			c.RTTMS = estimateMS(c.Km, loc.AccuracyKm, env.Options.PathInflation)
			c.Source = Distance
		case loc.Country != "" && loc.Country == t.PoP.Country:
			// Placed only by country: a PoP in that country first, then
			// one on the continent, each behind every real estimate.
			c.RTTMS, c.Source = regionCountry, Region
		case loc.Continent != "" && loc.Continent == t.PoP.Continent:
			c.RTTMS, c.Source = regionContinent, Region
		default:
			// Unknown: behind every estimate, in the record's order.
			c.RTTMS = math.Inf(1)
		}
	}
	if env.Learned != nil {
		d.Level, d.Current = applyLearned(found, g, cands[:n], env.Options.LearnedFreshAge, coarsestCell(loc))
	}
	calibrate(cands[:n], loc.AccuracyKm, env.Options.PathInflation)
	for i := range cands[:n] {
		c := &cands[i]
		c.RTTMS += c.BiasMS + c.PenaltyMS
	}
	d.Cands = n
	rank(cands[:n])
	if d.Level != 0 {
		d.Held = stabilise(cands[:n], d.Current, env.Options.LearnedMargin)
	}

	pool := d.Ranked[:0]
	for _, c := range cands[:n] {
		if c.Eligible {
			pool = append(pool, c.Index)
		}
	}
	answers := g.Answers
	if len(pool) == 0 {
		d.AllDown = true
		for _, c := range cands[:n] {
			switch {
			case c.State == pops.Down:
			case g.WhenAllDown == zones.AllDownNearest, g.WhenAllDown == zones.AllDownAll,
				g.WhenAllDown == zones.AllDownFallback && g.Fallback.Has(int(c.Index)):
				pool = append(pool, c.Index)
			}
		}
		if g.WhenAllDown == zones.AllDownAll {
			answers = len(pool)
		}
		if g.WhenAllDown == zones.AllDownServfail || len(pool) == 0 {
			d.Servfail = true
			return d
		}
	}
	if g.SpreadMS > 0 && len(pool) > 1 {
		spread(g, pool, cands[:n], client, d.Scope)
	}
	d.N = min(answers, len(pool))
	if env.Learned != nil && !d.AllDown {
		d.Explore, d.HasExplore = explore(cands[:n], pool[0], env.Options.LearnedFreshAge)
	}
	return d
}

// applyLearned gives the candidates learned RTTs where the client has
// them, compared in one cell: the finest in which an eligible target's PoP
// has a fresh estimate (else any estimate), the target of the cell's
// leader being the client's current one. Taking one cell per client rather
// than the finest per PoP keeps the PoPs compared alike: after a route
// change a /24's few old samples would otherwise outrank its AS's fresh
// ones. The cell's leader (learn.Found.LeaderIn) is kept from snapshot
// to snapshot under the stabiliser's margin; when it is not an eligible
// target of this record, the current target is the one with the most
// recent samples (recentSamples). A PoP the cell has no estimate of
// borrows one from a coarser cell (network, then AS), scaled by how the
// current PoP compares in the two when the client's cell is the slower
// (its access adds to every path alike), as it is when the faster: a
// client faster than its AS's average to its current PoP is so mostly by
// where it is, which makes it no faster to the others, and taking it so
// sent clients to a PoP their cell had not measured and back; without
// the current PoP there it has none. It returns the cell's kind
// and the current target; 0 when the client has no learned RTTs.
func applyLearned(f learn.Found, g *zones.Geo, cs []Candidate, fresh time.Duration, coarsest learn.CellKind) (learn.CellKind, uint8) {
	level, freshOnly := learn.CellKind(0), false
passes:
	for _, pass := range [3]struct{ fresh, weighty bool }{{true, true}, {true, false}, {false, false}} {
		last := coarsest
		if pass.weighty {
			last = min(coarsest, learn.CellNetwork) // an AS is a mix: never preferred for its weight
		}
		for kind := learn.CellPrefix; kind <= last; kind++ {
			if has, weight := learnedIn(f, g, cs, kind, pass.fresh, fresh); has && (!pass.weighty || weight >= CellWeight) {
				level, freshOnly = kind, pass.fresh
				break passes
			}
		}
	}
	if level == 0 {
		return 0, 0
	}
	cur := -1
	if name, ok := f.LeaderIn(level); ok {
		for i := range cs {
			if cs[i].Eligible && g.Targets[cs[i].Index].PoP.Name == name {
				cur = i
				break
			}
		}
	}
	if cur < 0 {
		most := -1.0
		for i := range cs {
			e, ok := f.EstimateIn(g.Targets[cs[i].Index].PoP.Name, level)
			if !ok || !cs[i].Eligible || freshOnly && e.Age > fresh {
				continue
			}
			if r := recentSamples(e); r > most {
				most, cur = r, i
			}
		}
	}
	curPoP := g.Targets[cs[cur].Index].PoP.Name
	own, _ := f.EstimateIn(curPoP, level)
	for i := range cs {
		c := &cs[i]
		pop := g.Targets[c.Index].PoP.Name
		if e, ok := f.EstimateIn(pop, level); ok {
			c.RTTMS, c.Source, c.Learned = e.RTTMS, Learned, e
			continue
		}
		for kind := level + 1; kind <= coarsest; kind++ {
			e, ok := f.EstimateIn(pop, kind)
			if !ok {
				continue
			}
			if base, ok := f.EstimateIn(curPoP, kind); ok {
				scale := max(own.RTTMS/base.RTTMS, 1)
				c.RTTMS, c.Source, c.Learned, c.Borrowed = e.RTTMS*scale, Learned, e, scale
			}
			break
		}
	}
	return level, cs[cur].Index
}

// learnedIn reports whether an eligible candidate has an estimate in the
// client's cell of kind (at most fresh old when freshOnly), and the
// largest weight of those estimates.
func learnedIn(f learn.Found, g *zones.Geo, cs []Candidate, kind learn.CellKind, freshOnly bool, fresh time.Duration) (has bool, weight float64) {
	for i := range cs {
		e, ok := f.EstimateIn(g.Targets[cs[i].Index].PoP.Name, kind)
		if ok && cs[i].Eligible && (!freshOnly || e.Age <= fresh) {
			has, weight = true, max(weight, e.Weight)
		}
	}
	return has, weight
}

// CellWeight is the weight (learn.Estimate.Weight) a cell's RTT to some
// eligible PoP must have for the cell to decide for its clients while a
// coarser cell holding them also could: a /24 with a sample every few
// minutes has RTTs that are each one noisy measurement, while its
// network's, which include the /24's own, rest on many. A client whose
// cells all fall short is decided in the finest with a fresh estimate,
// as before.
const CellWeight = 2

// coarsestCell is the coarsest learned cell a decision for a client
// located at loc reads. An AS spans a country or a continent: its mean RTT
// to a PoP is its clients' geographic mix, and one client's ratio to it
// differs from PoP to PoP as the client's place among them does, so for a
// client the database places within a city or a region its AS's RTTs are
// worse than its distance estimates, and deciding on them made clients
// flap between cells as their own data aged. For a client placed no
// better than a country (UncertainKm), the AS's mix is as much as is
// known of where it is.
func coarsestCell(loc geo.Location) learn.CellKind {
	if !loc.HasPoint || loc.AccuracyKm >= UncertainKm {
		return learn.CellAS
	}
	return learn.CellNetwork
}

// UncertainKm is the accuracy radius from which a location says no more
// than a country does: GeoLite2 gives city-level records radii up to 200
// km and country-level ones 500 or 1000.
const UncertainKm = 250

// ForResolver is loc as a decision for a resolver's own address reads it:
// a query without a usable ECS option is decided for the resolver, whose
// users may be anywhere around it (an ISP's resolver serves a country
// from a few cities), so the location is taken to say no more than a
// country does: distance estimates lose to measurements, and the AS's
// learned RTTs, the mix of its clients, may decide. In bench/steer's
// harder model this took clients behind ISP resolvers without ECS from
// 57 % to 83 % within 10 % of their best with RUM beacons.
func ForResolver(loc geo.Location) geo.Location {
	loc.AccuracyKm = max(loc.AccuracyKm, UncertainKm)
	return loc
}

// recentSamples is how much of e's sample count is recent: the count
// decayed once more by the time since e's newest sample, over
// learn.DefaultHalfLife. With measurements from real traffic the PoP
// answering a client gets its samples continuously and the one it left
// none, but the count decays over learn's count half-life (30 min), so
// for that long after a move the PoP left would still have the most
// samples: taken as current, the stabiliser's margin would protect it
// against the PoP now answering, and the client would go back and forth
// between two PoPs whenever their estimates' noise crossed.
func recentSamples(e learn.Estimate) float64 {
	return e.Samples * math.Exp2(-float64(e.Age)/float64(learn.DefaultHalfLife))
}

// stabilise keeps the client on its current target when the best ranked
// eligible one is not better by the margin (learn.ShouldMove): it moves
// the current target ahead of it and reports so. Measurements are noisy,
// and a client that follows every fluctuation between two PoPs of
// similar RTT gains nothing and empties resolver caches.
func stabilise(cs []Candidate, current uint8, m learn.Margin) bool {
	best, at := -1, -1
	for i := range cs {
		if !cs[i].Eligible {
			continue
		}
		if best < 0 {
			best = i
		}
		if cs[i].Index == current {
			at = i
			break
		}
	}
	if at <= best || learn.ShouldMove(cs[at].RTTMS, cs[best].RTTMS, m) {
		return false
	}
	c := cs[at]
	copy(cs[best+1:at+1], cs[best:at])
	cs[best] = c
	return true
}

// explore picks the target an exploring answer puts first instead of
// first: the best ranked eligible other one whose RTT the client's own
// cell has not measured lately, so that measurements come to exist for
// the alternatives a client could move to.
func explore(cs []Candidate, first uint8, fresh time.Duration) (uint8, bool) {
	for i := range cs {
		c := &cs[i]
		if !c.Eligible || c.Index == first {
			continue
		}
		if c.Source == Learned && c.Borrowed == 0 && c.Learned.Age <= fresh {
			continue
		}
		return c.Index, true
	}
	return 0, false
}

// estimateMS is the RTT over the great-circle distance km, from the far
// edge of the location's accuracy circle: a location known to hundreds of
// km is a guess that many km long, and its estimates must lose to
// measurements rather than beat them by being optimistic. For a location
// known to a few km it changes little, and it keeps the order of
// estimates among themselves.
func estimateMS(km float64, accuracyKm uint16, inflation float64) float64 {
	return float64(geo.FibreRTT(km+float64(accuracyKm), inflation).Nanoseconds()) / 1e6
}

// calibrate scales the distance estimates of a client that also has
// measured RTTs to some targets by how far its measurements are from the
// distance estimates of the same targets. Measurements carry the client's
// last mile and its real routes, distance estimates neither: compared
// as they are, unmeasured targets would look systematically nearer than
// measured ones. The factor is the median ratio, kept within [1, 4]: it
// only ever corrects that optimism, and one odd measurement cannot throw
// every estimate off.
func calibrate(cs []Candidate, accuracyKm uint16, inflation float64) {
	var ratios [zones.MaxGeoTargets]float64
	n, distance := 0, false
	for i := range cs {
		c := &cs[i]
		switch {
		case (c.Source == Table || c.Source == Learned) && c.Km > 0:
			ratios[n] = c.RTTMS / estimateMS(c.Km, accuracyKm, inflation)
			n++
		case c.Source == Distance:
			distance = true
		}
	}
	if n == 0 || !distance {
		return
	}
	r := ratios[:n]
	for i := 1; i < n; i++ { // insertion sort: no allocation
		for j := i; j > 0 && r[j] < r[j-1]; j-- {
			r[j], r[j-1] = r[j-1], r[j]
		}
	}
	k := r[n/2]
	if n%2 == 0 {
		k = (r[n/2-1] + r[n/2]) / 2
	}
	if k <= 1 {
		return
	}
	k = min(k, 4)
	for i := range cs {
		if c := &cs[i]; c.Source == Distance {
			c.RTTMS *= k
			c.Calibration = k
		}
	}
}

// Stand-in RTTs for clients placed only by country or continent: larger
// than any real RTT, so that they never beat a measurement or an estimate.
const (
	regionCountry   = 1e6
	regionContinent = 2e6
)

// rank sorts candidates by estimated RTT, the record's order breaking ties
// (and deciding alone when the client's location is unknown). Insertion
// sort: at most 64 elements, and no allocation.
func rank(cs []Candidate) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && less(&cs[j], &cs[j-1]); j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

func less(a, b *Candidate) bool {
	if a.RTTMS != b.RTTMS {
		return a.RTTMS < b.RTTMS
	}
	return a.Index < b.Index
}

// spread lets the targets within g.SpreadMS of the best share clients in
// proportion to their PoPs' capacity weights. The choice hashes the client
// network (at the answer's scope) and the name, so one network always gets
// the same PoP and resolver caches stay stable.
func spread(g *zones.Geo, pool []uint8, cands []Candidate, client netip.Addr, scope int) {
	rtt := func(idx uint8) float64 {
		for i := range cands {
			if cands[i].Index == idx {
				return cands[i].RTTMS
			}
		}
		return math.Inf(1)
	}
	best := rtt(pool[0])
	if best >= regionCountry {
		return // nothing was estimated: there is no distance to spread over
	}
	k, total := 0, 0.0
	for k < len(pool) && rtt(pool[k]) <= best+g.SpreadMS {
		total += g.Targets[pool[k]].PoP.Weight
		k++
	}
	if k < 2 {
		return
	}
	x := float64(networkHash(client, scope, g.Owner)>>11) / (1 << 53) * total
	chosen := k - 1
	for i := 0; i < k; i++ {
		x -= g.Targets[pool[i]].PoP.Weight
		if x < 0 {
			chosen = i
			break
		}
	}
	// Move the chosen one to the front, the others keep their rank.
	c := pool[chosen]
	copy(pool[1:chosen+1], pool[:chosen])
	pool[0] = c
}

// networkHash is FNV-1a over the client network and the owner name: fixed,
// so the same network gets the same choice on every server and restart.
func networkHash(client netip.Addr, scope int, owner string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	p, _ := client.Prefix(scope)
	b := p.Addr().As16()
	for _, c := range b {
		h = (h ^ uint64(c)) * prime
	}
	h = (h ^ uint64(scope)) * prime
	for i := 0; i < len(owner); i++ {
		h = (h ^ uint64(owner[i])) * prime
	}
	return h
}

// matchRule returns the most specific rule that matches the client: the
// longest matching CIDR, else the ASN, country or continent rule (each
// value is in at most one rule of its kind, and Rules is sorted so that
// the kinds come in that order).
func matchRule(g *zones.Geo, client netip.Addr, loc geo.Location) *zones.GeoRule {
	var best *zones.GeoRule
	bestBits := -1
	for i := range g.Rules {
		r := &g.Rules[i]
		switch r.Kind {
		case zones.RuleCIDR:
			for _, p := range r.CIDRs {
				if p.Bits() > bestBits && p.Contains(client) {
					best, bestBits = r, p.Bits()
				}
			}
			continue
		case zones.RuleASN:
			if best == nil && loc.ASN != 0 && containsASN(r.ASNs, loc.ASN) {
				return r
			}
		case zones.RuleCountry:
			if best == nil && loc.Country != "" && containsString(r.Countries, loc.Country) {
				return r
			}
		case zones.RuleContinent:
			if best == nil && loc.Continent != "" && containsString(r.Continents, loc.Continent) {
				return r
			}
		}
		if best != nil {
			return best
		}
	}
	return best
}

func containsASN(list []uint32, a uint32) bool {
	for _, v := range list {
		if v == a {
			return true
		}
	}
	return false
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// scopeBits is the ECS SCOPE PREFIX-LENGTH of a geo answer: the widest
// network around client over which the decision cannot change. It starts
// from the database network (what location, country, continent and ASN
// depend on) and narrows it until no CIDR rule straddles its edge: a rule
// network that contains the client must contain the scope network, and
// one that does not must lie outside it.
func scopeBits(g *zones.Geo, client netip.Addr, loc geo.Location) int {
	s := 0
	if loc.Prefix.IsValid() {
		s = loc.Prefix.Bits()
	}
	for changed := true; changed; {
		changed = false
		for i := range g.Rules {
			r := &g.Rules[i]
			if r.Kind != zones.RuleCIDR {
				continue
			}
			for _, p := range r.CIDRs {
				need := 0
				switch {
				case p.Contains(client):
					need = p.Bits()
				case p.Bits() > s && p.Addr().Is4() == client.Is4() && prefixContains(client, s, p.Addr()):
					need = commonBits(client, p.Addr()) + 1
				}
				if need > s {
					s, changed = need, true
				}
			}
		}
	}
	return s
}

func prefixContains(client netip.Addr, bits int, a netip.Addr) bool {
	p, err := client.Prefix(bits)
	return err == nil && p.Contains(a)
}

// commonBits counts the leading bits two addresses of one family share.
func commonBits(a, b netip.Addr) int {
	x, y := a.As16(), b.As16()
	n := 0
	for i := range x {
		if d := x[i] ^ y[i]; d != 0 {
			n += bits.LeadingZeros8(d)
			break
		}
		n += 8
	}
	if a.Is4() {
		n -= 96 // As16 puts IPv4 behind a 96-bit ::ffff: prefix
	}
	return n
}

// Answered is the answered target indexes, best first.
func (d *Decision) Answered() []uint8 { return d.Ranked[:d.N] }
