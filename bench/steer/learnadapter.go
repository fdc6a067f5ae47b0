package main

import (
	"hash/fnv"
	"math"
	"net/netip"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/latency/learn"
)

// learnAdapter drives the learned mode with the learned-latency package
// (latency/learn), as the server will: beacons are buffered and ingested
// into a learn.Aggregator, which publishes an immutable Snapshot every
// PublishEvery; every key is then decided again from the snapshot (Choose:
// its cells the /24, its GeoLite2 network and its AS) with learn's
// stabiliser (ShouldMove).
type learnAdapter struct {
	cfg     LearnOptions
	margin  learn.Margin
	agg     *learn.Aggregator
	snap    *learn.Snapshot
	next    time.Time
	pending []learn.Measurement
	// where locates a cell: the GeoLite2 network and AS of an ECS
	// client's networks, the AS of an ISP resolver's /24.
	where map[netip.Prefix]cellWhere
	// Ingest errors, which the simulation's inputs should never cause.
	errs int
	// moves counts the moves by the cell kinds of the current PoP's
	// estimate and the winner's, for tests and tuning.
	moves map[[2]learn.CellKind]int
}

type cellWhere struct {
	network netip.Prefix // zero: none wider than the /24
	asn     uint32
}

// LearnOptions tune the learned mode over latency/learn.
type LearnOptions struct {
	// HalfLife, CountHalfLife and MinSamples are learn.Config's.
	HalfLife      time.Duration
	CountHalfLife time.Duration
	MinSamples    float64
	// PublishEvery is how often a snapshot is built and published, as the
	// server's ingest loop will.
	PublishEvery time.Duration
	// ExploreShare of the answers of a key whose candidates lack fresh
	// data goes to the best-ranked such candidate, so that the
	// alternatives get measured (the server's option is off by default);
	// ExploreAge is when an estimate stops being fresh.
	ExploreShare float64
	ExploreAge   time.Duration
	// UnmeasuredInflation and UnmeasuredLastMileMS turn a distance into
	// the RTT estimate of a PoP without data: fibre × inflation + last
	// mile, from the far edge of the location's accuracy circle (see
	// rankKm).
	UnmeasuredInflation  float64
	UnmeasuredLastMileMS float64
	// CoarseMargin multiplies the stabiliser's margins for a candidate
	// calibrated from a coarser cell than the current PoP's estimate: an
	// AS's average says less about one network than its own samples.
	CoarseMargin float64
	// NoECSRadiusKm is the location uncertainty of a key seen without ECS:
	// its clients are anywhere the resolver serves.
	NoECSRadiusKm float64
}

// keyInfo is what popdns knows of a key (the subnet it decides for): where
// the database places it and how sure it is, its cells.
type keyInfo struct {
	Key      netip.Prefix
	Point    geo.Point
	RadiusKm float64
	Client   learn.Client
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
// clients cs: their networks and ASes are what the server's GeoIP and ASN
// databases would say of a beacon's /24.
func newLearnAdapter(cs []client, o LearnOptions, m learn.Margin) *learnAdapter {
	a := &learnAdapter{
		cfg:    o,
		margin: m,
		agg:    learn.NewAggregator(learn.Config{HalfLife: o.HalfLife, CountHalfLife: o.CountHalfLife, MinSamples: o.MinSamples}),
		where:  map[netip.Prefix]cellWhere{},
		moves:  map[[2]learn.CellKind]int{},
	}
	for i := range cs {
		c := &cs[i]
		a.where[c.Network.Masked()] = cellWhere{network: c.Network.Masked(), asn: asNumber(c.AS)}
		if c.Via == viaISP {
			a.where[c.Seen.Masked()] = cellWhere{asn: asNumber(c.AS)}
		}
	}
	return a
}

// locate is the learn.LocateFunc: the longest known network holding addr.
func (a *learnAdapter) locate(addr netip.Addr) (netip.Prefix, uint32) {
	for bits := 32; bits >= 8; bits-- {
		p, _ := addr.Prefix(bits)
		if w, ok := a.where[p]; ok {
			return w.network, w.asn
		}
	}
	return netip.Prefix{}, 0
}

// info is the keyInfo of client c's key.
func (a *learnAdapter) info(c *client) keyInfo {
	k := keyInfo{Key: c.seen().Masked(), Point: c.SeenAt, RadiusKm: c.AccuracyKm}
	if c.Via != viaECS && c.Via != "" {
		k.RadiusKm = max(k.RadiusKm, a.cfg.NoECSRadiusKm)
	}
	network, asn := a.locate(k.Key.Addr())
	k.Client = learn.ClientOf(k.Key.Addr(), network, asn)
	return k
}

// Observe buffers a beacon until the next publish.
func (a *learnAdapter) Observe(key netip.Prefix, pop string, rttMS float64, at time.Time) {
	a.pending = append(a.pending, learn.Measurement{Prefix: learn.CellOf(key.Addr()), PoP: pop, RTTMS: rttMS, Time: at, Weight: 1})
}

// Estimate is the published snapshot's estimate, any cell.
func (a *learnAdapter) Estimate(key netip.Prefix, pop string, _ time.Time) (float64, bool) {
	network, asn := a.locate(key.Addr())
	e, ok := a.snap.Lookup(learn.ClientOf(key.Addr(), network, asn), pop)
	return e.RTTMS, ok
}

// Publish ingests the buffered beacons and publishes a snapshot when
// PublishEvery has passed since the last; true when it did.
func (a *learnAdapter) Publish(now time.Time) bool {
	if now.Before(a.next) {
		return false
	}
	if len(a.pending) > 0 {
		if _, err := a.agg.Ingest(a.pending, now, a.locate); err != nil {
			a.errs++
		}
		a.pending = a.pending[:0]
	}
	a.snap = a.agg.Snapshot(now)
	a.next = now.Add(a.cfg.PublishEvery)
	return true
}

// rankKm is the distance a PoP without data is ranked by: from the far
// edge of the accuracy circle, so that a client placed at a country's
// centroid (a radius of hundreds of km) ranks by measured data first and a
// client placed within a few km ranks an unmeasured nearby PoP almost as
// its distance says.
func rankKm(k *keyInfo, p geo.Point) float64 {
	return geo.DistanceKm(k.Point, p) + k.RadiusKm
}

// Choose is key k's PoP given its current one, and the PoP a share of
// its answers explores (-1: none).
//
// Measured data ranks first: k moves only to a PoP with a learned
// estimate, and only when learn.ShouldMove says so against the current
// PoP's estimate, which is its distance estimate (rankKm) while it has no
// data: a client placed precisely stays on its nearest PoP until a
// measured one is clearly better, and one placed at a country's centroid
// moves to measured data at once.
//
// A candidate estimated only in a coarser cell than the current PoP (an
// AS's average against the network's own measurement) is calibrated: its
// estimate × the current PoP's own estimate ÷ the current PoP's in that
// coarser cell, so that the two are compared as that cell sees them; a
// candidate the coarser cell cannot calibrate does not win.
//
// A PoP without data gets traffic only by exploration: the best-ranked
// other PoP whose data is missing or older than ExploreAge. With no data
// at all, k keeps cur (popdns's answer without learning).
func (a *learnAdapter) Choose(k *keyInfo, cur int) (choice, explore int) {
	f := a.snap.Find(k.Client)
	est := make([]float64, len(thePoPs))
	kind := make([]learn.CellKind, len(thePoPs))
	fresh := make([]bool, len(thePoPs))
	from := a.level(f, thePoPs[cur].Name)
	for p := range thePoPs {
		if e, ok := estimate(f, thePoPs[p].Name, from); ok {
			est[p], kind[p] = e.RTTMS, e.Cell.Kind
			fresh[p] = e.Age <= a.cfg.ExploreAge
			continue
		}
		est[p] = 2*rankKm(k, thePoPs[p].Point)/fibreKmPerMs*a.cfg.UnmeasuredInflation + a.cfg.UnmeasuredLastMileMS
	}
	best := -1
	for p := range est {
		e := est[p]
		if kind[p] == 0 {
			continue
		}
		if kind[cur] != 0 && kind[p] > kind[cur] {
			ref, ok := f.EstimateIn(thePoPs[cur].Name, kind[p])
			if !ok {
				continue
			}
			e *= est[cur] / ref.RTTMS
		}
		if best < 0 || e < est[best] {
			best = p
			if p != cur {
				est[p] = e
			}
		}
	}
	choice = cur
	m := a.margin
	if best >= 0 && kind[cur] != 0 && kind[best] > kind[cur] && a.cfg.CoarseMargin > 1 {
		m.MS *= a.cfg.CoarseMargin
		m.Percent *= a.cfg.CoarseMargin
	}
	if best >= 0 && best != cur && learn.ShouldMove(est[cur], est[best], m) {
		choice = best
		a.moves[[2]learn.CellKind{kind[cur], kind[best]}]++
	}
	explore = -1
	if a.cfg.ExploreShare > 0 {
		lo := math.Inf(1)
		for p := range est {
			if p != choice && !fresh[p] && est[p] < lo {
				explore, lo = p, est[p]
			}
		}
	}
	return choice, explore
}

// level is the finest cell kind the key decides in: the finest in which
// its current PoP has a sample at most ExploreAge old (the finest of all
// when none has). With a count half-life longer than the mean's, a /24's
// few old samples would otherwise outrank its network's fresh ones after
// a route change, since a mean without new samples does not move; taking
// the level per key rather than per PoP keeps the PoPs compared in the
// same cells.
func (a *learnAdapter) level(f learn.Found, cur string) learn.CellKind {
	for _, kind := range []learn.CellKind{learn.CellPrefix, learn.CellNetwork, learn.CellAS} {
		if e, ok := f.EstimateIn(cur, kind); ok && e.Age <= a.cfg.ExploreAge {
			return kind
		}
	}
	return learn.CellPrefix
}

// estimate is pop's estimate from the finest of the client's cells at
// least as coarse as from.
func estimate(f learn.Found, pop string, from learn.CellKind) (learn.Estimate, bool) {
	for kind := from; kind <= learn.CellAS; kind++ {
		if e, ok := f.EstimateIn(pop, kind); ok {
			return e, true
		}
	}
	return learn.Estimate{}, false
}

// fibreKmPerMs is light in fibre, as geo.FibreRTT takes it.
const fibreKmPerMs = 200
