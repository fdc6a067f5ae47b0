package dnsserver

import (
	"context"
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
)

// ECS scope widening (docs/zones.md, "Client location and ECS"): a
// decision is answered at once with Rank's scope, and the widener grows it
// in the background with steer.Widen, which looks up as many as a budget
// of neighbouring networks (some 170 µs on GeoLite2 City): far too much
// for the query path. What it proves is kept in the widened-prefix store,
// where the next decision for any client inside the prefix finds it
// instead of ranking.

// WidenConfig configures ECS scope widening.
type WidenConfig struct {
	// Off answers every client with Rank's scope (its database network,
	// narrowed by rules and latency spans) and widens nothing.
	Off bool
	// PerSecond caps the widenings run per second, so that a flood of
	// new client networks costs at most that much CPU; the rest are
	// dropped and keep Rank's scope. A widening counts once for every
	// widenUnit network lookups it made (at most widenBudget). Default
	// DefaultWidenPerSecond.
	PerSecond int
}

// DefaultWidenPerSecond is WidenConfig.PerSecond's default: at ~170 µs
// per widenUnit lookups, at most about a tenth of one core.
const DefaultWidenPerSecond = 500

const (
	// widenUnit is the network lookups that count as one widening of
	// WidenConfig.PerSecond.
	widenUnit = steer.DefaultWidenBudget
	// widenBudget is the most network lookups one widening makes: merging
	// a country's networks takes thousands (a German /24 widens to /14
	// in GeoLite2 City), and with a budget of 256 a third of widenings
	// stopped short. The pacer charges a widening for what it looked up,
	// so the CPU bound is the same.
	widenBudget = 16 * widenUnit
)

const (
	// widenQueue is how many decisions may wait to be widened; more are
	// dropped (counted) rather than make the query path wait.
	widenQueue = 256
	// widenCap bounds the prefixes the store holds in one epoch: past it
	// the store starts over, as the decision cache does.
	widenCap = 32 * 1024
	// widenShards spreads the store's locks.
	widenShards = 32
	// widenFilterLog is log2 of the bits of the store's filter: 64 KiB,
	// which widenCap prefixes fill to some 6 % at most.
	widenFilterLog = 19
)

// widenJob is one decision to widen: what it was made from, and the
// decision as the caches share it.
type widenJob struct {
	g      *zones.Geo
	qtype  uint16
	client netip.Addr
	env    steer.Env
	d      steer.Decision
	cd     *udpfast.Decision
	db     uint64 // the locator's database generation when it was decided
}

// widener runs steer.Widen off the query path and keeps what it proves.
// Its queue, store and counters are its own: nothing a reload or a probe
// holds.
type widener struct {
	loc       steer.Locator // nil: widening off
	dbGen     func() uint64 // the locator's database generation (0 when it has none)
	perSecond int
	budget    int
	jobs      chan widenJob
	store     widenStore
	cache     *decisionCache
	running   atomic.Bool // a worker drains jobs (Serve runs)
	// done counts the widenings finished, whatever they found: a UDP
	// reader re-reads the shared cache for a memoised decision waiting to
	// be widened only once it moved (udpfast.Host.Widenings).
	done atomic.Uint64
	m    widenMetrics
}

// dbGenerations is what a Locator that can replace its database tells of
// it; *geo.Locator implements it.
type dbGenerations interface{ Generation() uint64 }

func newWidener(cfg WidenConfig, loc Locator, cache *decisionCache, m widenMetrics) *widener {
	w := &widener{perSecond: cfg.PerSecond, budget: widenBudget, cache: cache, m: m,
		dbGen: func() uint64 { return 0 }}
	if sl, ok := loc.(steer.Locator); ok && !cfg.Off {
		w.loc = sl
		w.jobs = make(chan widenJob, widenQueue)
		if g, ok := loc.(dbGenerations); ok {
			w.dbGen = g.Generation
		}
	}
	return w
}

// wants reports whether d, made for a query, is worth widening: a worker
// runs, and the answer depends on the client through a scope Widen can
// grow (steer.Widen returns d.Scope for the rest).
func (w *widener) wants(g *zones.Geo, d *steer.Decision) bool {
	return w.loc != nil && w.running.Load() && !d.Untailored && g.SpreadMS == 0 && d.Scope > 0
}

// enqueue hands j to the worker without waiting: false when the queue is
// full, and the decision keeps Rank's scope.
func (w *widener) enqueue(j widenJob) bool {
	select {
	case w.jobs <- j:
		return true
	default:
		w.m.dropped.Inc()
		return false
	}
}

// lookup is the widened decision whose prefix holds client, for g and
// qtype in epoch e, or nil. It takes one shard's read lock per stored
// prefix length and does not allocate.
func (w *widener) lookup(g *zones.Geo, qtype uint16, client netip.Addr, e steer.Epoch) *udpfast.Decision {
	if w.loc == nil {
		return nil
	}
	return w.store.lookup(g, qtype, client, e, w.dbGen())
}

// run drains the queue until ctx is done, at most perSecond widenings
// (of widenUnit lookups) a second.
func (w *widener) run(ctx context.Context) {
	if w.loc == nil {
		return
	}
	w.running.Store(true)
	defer w.running.Store(false)
	var cands steer.Candidates
	pace := newPacer(w.perSecond, time.Now)
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-w.jobs:
			if d := pace.wait(); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			if n := w.widen(&j, &cands); n > 0 {
				pace.ran((n + widenUnit - 1) / widenUnit)
			}
			w.done.Add(1)
		}
	}
}

// pacer spaces widenings perSecond a second, letting a tenth of a second's
// worth through at once (a burst of new clients is widened at once; a
// flood waits). It is the worker's own: no lock.
type pacer struct {
	interval, burst time.Duration
	now             func() time.Time
	tat             time.Time // when the next widening is due, at the steady rate
}

func newPacer(perSecond int, now func() time.Time) *pacer {
	interval := time.Second / time.Duration(perSecond)
	return &pacer{interval: interval, burst: time.Duration(max(1, perSecond/10)-1) * interval, now: now}
}

// wait is how long to wait before the next widening.
func (p *pacer) wait() time.Duration {
	now := p.now()
	if p.tat.Before(now) {
		p.tat = now
	}
	return p.tat.Sub(now) - p.burst
}

// ran counts units widenings.
func (p *pacer) ran(units int) { p.tat = p.tat.Add(time.Duration(units) * p.interval) }

// countingLocator counts Network lookups, to tell a widening that ran out
// of budget.
type countingLocator struct {
	steer.Locator
	n int
}

func (c *countingLocator) Network(a netip.Addr) (netip.Prefix, geo.RecordID, bool) {
	c.n++
	return c.Locator.Network(a)
}

// widen widens j's decision and publishes the result: the client's own
// entry in the decision cache, and the prefix in the store when it is
// wider than Rank's scope. It returns how many networks steer.Widen
// looked up (what the rate counts), 0 when it did not run.
func (w *widener) widen(j *widenJob, cands *steer.Candidates) int {
	e := j.env.Epoch
	if j.db != w.dbGen() {
		w.m.stale.Inc() // the database changed: the decision is no longer the locator's
		w.settle(j, j.d.Scope)
		return 0
	}
	if cd := w.store.lookup(j.g, j.qtype, j.client, e, j.db); cd != nil {
		// Another widening already covers this client.
		w.m.covered.Inc()
		w.settle(j, cd.Scope)
		return 0
	}
	// Widen proves the neighbours of the client's network, not the
	// network itself: rank the client again in the database it now
	// reads, so that a decision made before the last swap is not widened.
	loc := w.loc.Locate(j.client)
	if again := steer.Rank(j.g, j.qtype, j.client, loc, &j.env, cands); !sameDecision(&again, &j.d) {
		w.m.stale.Inc()
		w.settle(j, j.d.Scope)
		return 0
	}
	cl := countingLocator{Locator: w.loc}
	s := steer.Widen(j.g, j.qtype, j.client, &j.d, &j.env, &cl, w.budget, cands)
	if w.dbGen() != j.db {
		w.m.stale.Inc()
		w.settle(j, j.d.Scope)
		return max(cl.n, 1)
	}
	if cl.n >= w.budget {
		w.m.budget.Inc()
	}
	w.m.done.Inc()
	w.m.bits.Observe(float64(s))
	cd := w.settle(j, s)
	if s < j.d.Scope {
		// The answer holds over the prefix, the exploration target need
		// not: it is this client's alternative, which another client's
		// rules may exclude. Only a client's own decision explores.
		shared := *cd
		shared.Explore, shared.HasExplore = 0, false
		p, _ := j.client.Prefix(s)
		w.store.insert(widenKey{geo: j.g, qtype: j.qtype, p: p}, e, j.db, &shared)
	}
	return max(cl.n, 1)
}

// settle replaces the client's decision in the shared cache with one of
// scope s that waits for no widening, so that the readers' memos stop
// asking for it.
func (w *widener) settle(j *widenJob, s int) *udpfast.Decision {
	cd := *j.cd
	cd.Scope, cd.Widening = s, false
	w.cache.put(cacheKey{geo: j.g, qtype: j.qtype, client: j.client}, j.env.Epoch, &cd)
	return &cd
}

// sameDecision reports whether a and b answer alike with the same scope.
func sameDecision(a, b *steer.Decision) bool {
	return a.NoData == b.NoData && a.Servfail == b.Servfail && a.AllDown == b.AllDown &&
		a.Untailored == b.Untailored && a.Scope == b.Scope && slices.Equal(a.Answered(), b.Answered())
}

// widenStore holds widened prefixes with their decisions, by record and
// query type, for one epoch and one database generation: any other starts
// it over, which is what keeps a widened scope from outliving the inputs
// it was proven under. Lookups take a shard's read lock, the store's own.
type widenStore struct {
	cur atomic.Pointer[widenGen]
}

type widenGen struct {
	epoch steer.Epoch
	db    uint64
	n     atomic.Int64
	// lens has bit L set when a prefix of L bits is stored, by family
	// (0: IPv4, 1: IPv6), so that a lookup tries only those lengths.
	lens [2][3]atomic.Uint64
	// filter has the bit of each stored prefix's hash set, so that a
	// lookup tries a shard only for a length that may hold the client:
	// a decision-cache miss with 16 lengths stored took 0.7 µs of shard
	// locks and map lookups without it.
	filter [1 << widenFilterLog / 64]atomic.Uint64
	shards [widenShards]widenShard
}

type widenShard struct {
	mu sync.RWMutex // mu guards m
	m  map[widenKey]*udpfast.Decision
}

type widenKey struct {
	geo   *zones.Geo
	qtype uint16
	p     netip.Prefix
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// prefixHash mixes a prefix and a query type, for the filter and the
// shards.
func prefixHash(p netip.Prefix, qtype uint16) uint64 {
	a := p.Addr().As16()
	return halvesHash(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:]), p.Bits(), qtype)
}

// halvesHash is prefixHash of the prefix of bits (of its family's) whose
// masked address, as 16 bytes (IPv4 mapped), has the halves hi and lo.
func halvesHash(hi, lo uint64, bits int, qtype uint16) uint64 {
	const fib = 0x9e3779b97f4a7c15
	h := hi*fib ^ lo
	h = (h^uint64(bits)<<16^uint64(qtype))*fib ^ h>>29
	return h * fib
}

// maskHalves keeps the first n of the 128 bits whose halves are hi and lo.
func maskHalves(hi, lo uint64, n int) (uint64, uint64) {
	if n >= 64 {
		return hi, lo &^ (^uint64(0) >> (n - 64))
	}
	return hi &^ (^uint64(0) >> n), 0
}

func (g *widenGen) shard(h uint64) *widenShard { return &g.shards[h>>59%widenShards] }

// maybe reports whether a prefix of hash h may be stored: false means
// it is not, without taking a lock.
func (g *widenGen) maybe(h uint64) bool {
	i := h >> (64 - widenFilterLog)
	return g.filter[i/64].Load()&(1<<(i%64)) != 0
}

func (st *widenStore) lookup(geo *zones.Geo, qtype uint16, client netip.Addr, e steer.Epoch, db uint64) *udpfast.Decision {
	g := st.cur.Load()
	if g == nil || !client.IsValid() {
		return nil
	}
	if g.epoch != e || g.db != db {
		if e.Newer(g.epoch) && db >= g.db || e == g.epoch && db > g.db {
			// Let go of the old snapshot's records now, not at the next
			// widening, which may never come.
			st.cur.CompareAndSwap(g, nil)
		}
		return nil
	}
	f, offset := family(client), 0 // offset: where client's bits start in its 16 bytes
	if f == 0 {
		offset = 96
	}
	a := client.As16()
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	for word := range g.lens[f] {
		for set := g.lens[f][word].Load(); set != 0; set &= set - 1 {
			n := word*64 + bits.TrailingZeros64(set)
			mh, ml := maskHalves(hi, lo, offset+n)
			h := halvesHash(mh, ml, n, qtype)
			if !g.maybe(h) {
				continue
			}
			p, err := client.Prefix(n)
			if err != nil {
				continue
			}
			sh := g.shard(h)
			sh.mu.RLock()
			cd := sh.m[widenKey{geo: geo, qtype: qtype, p: p}]
			sh.mu.RUnlock()
			if cd != nil {
				return cd
			}
		}
	}
	return nil
}

// insert keeps cd for k.p, proven in epoch e under database generation
// db. A result of an older epoch or database is dropped; a newer one, or a
// full store, starts the store over.
func (st *widenStore) insert(k widenKey, e steer.Epoch, db uint64, cd *udpfast.Decision) {
	k.p = k.p.Masked() // as lookups hash it
	for {
		g := st.cur.Load()
		switch {
		case g == nil:
		case g.epoch == e && g.db == db:
			if g.n.Load() < widenCap {
				g.put(k, cd)
				return
			}
			// Full: start over.
		case e.Newer(g.epoch) && db >= g.db, e == g.epoch && db > g.db:
			// Newer: start over, which lets go of the old records.
		default:
			return // proven under inputs that have since moved on, or neither newer: the store's win
		}
		st.cur.CompareAndSwap(g, &widenGen{epoch: e, db: db})
	}
}

func (g *widenGen) put(k widenKey, cd *udpfast.Decision) {
	h := prefixHash(k.p, k.qtype)
	sh := g.shard(h)
	sh.mu.Lock()
	if sh.m == nil {
		sh.m = make(map[widenKey]*udpfast.Decision)
	}
	if _, ok := sh.m[k]; !ok {
		g.n.Add(1)
	}
	sh.m[k] = cd
	sh.mu.Unlock()
	i := h >> (64 - widenFilterLog)
	g.filter[i/64].Or(1 << (i % 64))
	g.lens[family(k.p.Addr())][k.p.Bits()/64].Or(1 << (k.p.Bits() % 64))
}

// len is how many prefixes the store holds.
func (st *widenStore) len() int {
	if g := st.cur.Load(); g != nil {
		return int(g.n.Load())
	}
	return 0
}

// widenMetrics count what the widener did.
type widenMetrics struct {
	done, dropped, budget, stale, covered prometheus.Counter
	bits                                  prometheus.Observer
}

func newWidenMetrics(reg prometheus.Registerer) (widenMetrics, error) {
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "popdns", Subsystem: "geo", Name: "ecs_widen_total",
		Help: "Decisions handed to the ECS scope widener, by result: done (widened, perhaps not wider), dropped (the queue was full: Rank's scope kept), budget (done, but out of network lookups: correct, perhaps not the widest), stale (the database or the decision changed first), covered (a prefix widened before already held the client).",
	}, []string{"result"})
	bits := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "popdns", Subsystem: "geo", Name: "ecs_widen_scope_prefix_length",
		Help:    "ECS scope, in prefix bits, of each widened decision.",
		Buckets: []float64{8, 12, 14, 16, 18, 20, 22, 24, 32, 48, 56, 64},
	})
	for _, c := range []prometheus.Collector{runs, bits} {
		if err := reg.Register(c); err != nil {
			return widenMetrics{}, err
		}
	}
	return widenMetrics{done: runs.WithLabelValues("done"), dropped: runs.WithLabelValues("dropped"),
		budget: runs.WithLabelValues("budget"), stale: runs.WithLabelValues("stale"),
		covered: runs.WithLabelValues("covered"), bits: bits}, nil
}
