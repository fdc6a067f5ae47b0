package main

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/latency/learn"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
)

// learnAdapter runs the learned mode as the server does: beacons are
// buffered and ingested into a learn.Aggregator, which publishes an
// immutable Snapshot every PublishEvery; every key is then decided again
// by popdns's selector (steer.Rank under an Env built WithLearned(the
// snapshot)), whose Decision.Explore is what a share of the key's answers
// put first. The adapter owns only what is simulation: the beacon stream
// in, the publish clock, and the synthetic ASes (GeoLite2 City has none;
// the server's ASN database would give them).
type learnAdapter struct {
	cfg     LearnOptions
	agg     *learn.Aggregator
	snap    *learn.Snapshot
	next    time.Time
	pending []learn.Measurement
	// asn maps the networks of the sample (a client's GeoLite2 network, an
	// ISP resolver's /24) to their AS.
	asn     map[netip.Prefix]uint32
	locator dnsserver.Locator
	locs    map[netip.Addr]geo.Location // per /24 looked up, memoised
	// The selector's inputs besides the learned snapshot.
	g        *zones.Geo
	env      steer.Env
	popIndex []int // target index → index into thePoPs
	// Ingest errors, which the simulation's inputs should never cause.
	errs int
	// last is each key's last decision, for diagnosis (diagnose).
	last  map[netip.Prefix]keyDecision
	byKey map[netip.Prefix][]netip.Prefix
	// For diagnosis too: each key's last choice, and how often it moved
	// and moved with a change of cell level, from 30 minutes after the
	// first publish on.
	first      time.Time
	lastChoice map[netip.Prefix]int
	moves      map[netip.Prefix]moveCount
}

type moveCount struct{ moves, levelMoves int }

// keyDecision is what the selector said of a key at the last publish.
type keyDecision struct {
	Level    learn.CellKind // cell compared in; 0: no learned RTTs
	Source   steer.Source   // of the chosen candidate's RTT
	Borrowed bool           // the chosen candidate's RTT borrowed from a coarser cell
	Held     bool           // the stabiliser kept the current PoP
}

// LearnOptions tune the learned mode over latency/learn.
type LearnOptions struct {
	// HalfLife, CountHalfLife and MinSamples are learn.Config's.
	HalfLife      time.Duration
	CountHalfLife time.Duration
	MinSamples    float64
	// PublishEvery is how often a snapshot is built and published, as the
	// server's ingest loop does.
	PublishEvery time.Duration
	// ExploreShare of a key's answers put the selector's Decision.Explore
	// first, so that the alternatives get measured (the server's share is
	// off by default); ExploreAge is steer.Options.LearnedFreshAge, when
	// an estimate stops being fresh.
	ExploreShare float64
	ExploreAge   time.Duration
}

// keyInfo is what popdns knows of a key (the subnet it decides for): the
// address it is looked up by and its location, AccuracyKm included.
type keyInfo struct {
	Key  netip.Prefix
	Addr netip.Addr
	Loc  geo.Location
}

// asNumber maps a synthetic AS name to a stable number.
func asNumber(as string) uint32 {
	if as == "" {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(as))
	return h.Sum32()%4_000_000_000 + 1
}

// newLearnAdapter returns an adapter over a fresh aggregator for the
// clients cs, deciding with the geo record of snap (its latency table, if
// any, taking part as in the server) under margin m, its locations from
// locator with the clients' synthetic ASes added.
func newLearnAdapter(cs []client, o LearnOptions, m learn.Margin, locator dnsserver.Locator, snap *zones.Snapshot) (*learnAdapter, error) {
	zone := snap.Match(qname)
	if zone == nil {
		return nil, fmt.Errorf("steer: no zone for %s", qname)
	}
	g := zone.Lookup(qname, dns.TypeA).Node.Geo()
	if g == nil {
		return nil, fmt.Errorf("steer: %s is not a geo record", qname)
	}
	opt, err := steer.Options{LearnedMargin: m, LearnedFreshAge: o.ExploreAge}.Provision()
	if err != nil {
		return nil, err
	}
	a := &learnAdapter{
		cfg:     o,
		agg:     learn.NewAggregator(learn.Config{HalfLife: o.HalfLife, CountHalfLife: o.CountHalfLife, MinSamples: o.MinSamples, Margin: m}),
		asn:     map[netip.Prefix]uint32{},
		locator: locator,
		locs:    map[netip.Addr]geo.Location{},
		g:       g,
		env:     steer.NewEnv(opt, snap, nil, nil, time.Now),
		last:    map[netip.Prefix]keyDecision{},

		lastChoice: map[netip.Prefix]int{},
		moves:      map[netip.Prefix]moveCount{},
	}
	for i := range g.Targets {
		p := popIndex(g.Targets[i].Name())
		if p < 0 {
			return nil, fmt.Errorf("steer: target %s is no PoP of the model", g.Targets[i].Name())
		}
		a.popIndex = append(a.popIndex, p)
	}
	for i := range cs {
		c := &cs[i]
		a.asn[c.Network.Masked()] = asNumber(c.AS)
		if c.Via == viaISP {
			a.asn[c.Seen.Masked()] = asNumber(c.AS)
		}
	}
	return a, nil
}

// locate is where popdns places addr: the database's location (point,
// accuracy radius, network), with the AS of the longest sampled network
// holding it. One lookup per /24: every address of a /24 is placed alike
// in the sample.
func (a *learnAdapter) locate(addr netip.Addr) geo.Location {
	p, _ := addr.Prefix(24)
	if loc, ok := a.locs[p.Addr()]; ok {
		return loc
	}
	loc := a.locator.Locate(p.Addr())
	for bits := 32; bits >= 8; bits-- {
		q, _ := addr.Prefix(bits)
		if n, ok := a.asn[q]; ok {
			loc.ASN = n
			break
		}
	}
	a.locs[p.Addr()] = loc
	return loc
}

// ingestLocate is the learn.LocateFunc, as the server's ingest builds it
// (internal/learned): the GeoIP network only when the database found the
// address or its AS.
func (a *learnAdapter) ingestLocate(addr netip.Addr) (netip.Prefix, uint32) {
	return learn.Located(a.locate(addr))
}

// info is the keyInfo of client c's key: a resolver's key (no ECS) is
// located as the server locates a resolver (steer.ForResolver).
func (a *learnAdapter) info(c *client) keyInfo {
	k := keyInfo{Key: c.seen().Masked()}
	k.Addr = k.Key.Addr()
	k.Loc = a.locate(k.Addr)
	if c.viaResolver() {
		k.Loc = steer.ForResolver(k.Loc)
	}
	return k
}

// Observe buffers a beacon until the next publish.
func (a *learnAdapter) Observe(key netip.Prefix, pop string, rttMS float64, at time.Time) {
	a.pending = append(a.pending, learn.Measurement{Prefix: learn.CellOf(key.Addr()), PoP: pop, RTTMS: rttMS, Time: at, Weight: 1})
}

// Estimate is the published snapshot's estimate, any cell.
func (a *learnAdapter) Estimate(key netip.Prefix, pop string, _ time.Time) (float64, bool) {
	e, ok := a.snap.Lookup(learn.ClientAt(key.Addr(), a.locate(key.Addr())), pop)
	return e.RTTMS, ok
}

// Publish ingests the buffered beacons and publishes a snapshot when
// PublishEvery has passed since the last; true when it did.
func (a *learnAdapter) Publish(now time.Time) bool {
	if now.Before(a.next) {
		return false
	}
	if len(a.pending) > 0 {
		if _, err := a.agg.Ingest(a.pending, now, a.ingestLocate); err != nil {
			a.errs++
		}
		a.pending = a.pending[:0]
	}
	if a.first.IsZero() {
		a.first = now
	}
	a.snap = a.agg.Snapshot(now)
	a.env = a.env.WithLearned(a.snap)
	a.next = now.Add(a.cfg.PublishEvery)
	return true
}

// Choose is key k's PoP as popdns's selector answers it from the published
// snapshot, and the PoP an exploring answer puts first (-1: none).
func (a *learnAdapter) Choose(k *keyInfo) (choice, explore int) {
	var cands steer.Candidates
	var kd keyDecision
	choice, explore, kd = a.choose(k, &cands)
	a.last[k.Key] = kd
	return choice, explore
}

// ChooseAll is Choose for every key of ks into choice and explore, the
// keys split over the CPUs: the selector is pure and the snapshot
// immutable, as on the server's query path.
func (a *learnAdapter) ChooseAll(ks []*keyInfo, choice, explore []int) {
	workers := min(runtime.GOMAXPROCS(0), 1+len(ks)/64)
	kds := make([]keyDecision, len(ks))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cands steer.Candidates
			for i := w; i < len(ks); i += workers {
				choice[i], explore[i], kds[i] = a.choose(ks[i], &cands)
			}
		}()
	}
	wg.Wait()
	counting := a.snap.At().Sub(a.first) >= 30*time.Minute
	for i, k := range ks {
		if prev, ok := a.lastChoice[k.Key]; ok && counting && prev != choice[i] {
			mc := a.moves[k.Key]
			mc.moves++
			if a.last[k.Key].Level != kds[i].Level {
				mc.levelMoves++
			}
			a.moves[k.Key] = mc
		}
		a.lastChoice[k.Key] = choice[i]
		a.last[k.Key] = kds[i]
	}
}

func (a *learnAdapter) choose(k *keyInfo, cands *steer.Candidates) (choice, explore int, kd keyDecision) {
	d := steer.Rank(a.g, dns.TypeA, k.Addr, k.Loc, &a.env, cands)
	choice, explore = -1, -1
	if d.N > 0 {
		choice = a.popIndex[d.Ranked[0]]
	}
	if d.HasExplore {
		explore = a.popIndex[d.Explore]
	}
	kd = keyDecision{Level: d.Level, Held: d.Held}
	for _, c := range cands[:d.Cands] {
		if d.N > 0 && c.Index == d.Ranked[0] {
			kd.Source, kd.Borrowed = c.Source, c.Borrowed != 0
			break
		}
	}
	return choice, explore, kd
}

// diagnose breaks the learned mode's misses down by what the selector
// knew, over the clients cs with their RTTs rtt, choices and weights w:
// for tuning and for README.md's account of where the learned mode falls
// short, not for RESULTS.md.
func (a *learnAdapter) diagnose(cs []client, rtt [][]float64, choice []int, w []float64, centroidKm float64) string {
	type agg struct{ w, in, moved, levelMoved float64 }
	groups := map[string]*agg{}
	var total float64
	var mc moveCount
	add := func(group string, wi float64, ok bool) {
		g := groups[group]
		if g == nil {
			g = &agg{}
			groups[group] = g
		}
		g.w += wi
		if ok {
			g.in += wi
		}
		g.moved += wi * float64(mc.moves)
		g.levelMoved += wi * float64(mc.levelMoves)
	}
	for i := range cs {
		c := &cs[i]
		key := c.seen().Masked()
		kd := a.last[key]
		mc = a.moves[key]
		best := bestPoP(rtt[i], nil)
		ok := rtt[i][choice[i]] <= bestRTT(rtt[i], nil)*goodEnough
		total += w[i]
		via := c.Via
		if via == "" {
			via = viaECS
		}
		add("via "+via, w[i], ok)
		add(fmt.Sprintf("centroid %v", centroidKm > 0 && c.AccuracyKm >= centroidKm), w[i], ok)
		add(fmt.Sprintf("level %v", kd.Level), w[i], ok)
		add(fmt.Sprintf("chosen source %v borrowed %v", kd.Source, kd.Borrowed), w[i], ok)
		add(fmt.Sprintf("held %v", kd.Held), w[i], ok)
		loc := a.locate(key.Addr())
		f := a.snap.Find(learn.ClientAt(key.Addr(), loc))
		bestKnown := "best unmeasured"
		if e, ok := f.EstimateIn(thePoPs[best].Name, kd.Level); ok && kd.Level != 0 {
			bestKnown = "best measured in the cell"
			if e.Age > a.cfg.ExploreAge {
				bestKnown = "best measured, stale"
			}
		} else if _, ok := f.Estimate(thePoPs[best].Name); ok {
			bestKnown = "best measured in a coarser cell"
		}
		add(bestKnown, w[i], ok)
		add(fmt.Sprintf("key shared with other networks %v", len(a.keyNetworks(cs, key)) > 1), w[i], ok)
	}
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("| group | share of weight | within 10 % | share of all weight missed | moved, share of all weight | of which the cell level changed |\n|---|--:|--:|--:|--:|--:|\n")
	for _, n := range names {
		g := groups[n]
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", n, pct(g.w/total), pct(g.in/g.w), pct((g.w-g.in)/total),
			pct(g.moved/total), pct(g.levelMoved/total))
	}
	return b.String()
}

// keyNetworks lists the networks of cs decided as key (memoised).
func (a *learnAdapter) keyNetworks(cs []client, key netip.Prefix) []netip.Prefix {
	if a.byKey == nil {
		a.byKey = map[netip.Prefix][]netip.Prefix{}
		for i := range cs {
			k := cs[i].seen().Masked()
			a.byKey[k] = append(a.byKey[k], cs[i].Network)
		}
	}
	return a.byKey[key]
}
