package dnsserver

import (
	"context"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnssec"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// signer holds the signatures that answers from signed zones carry (RFC
// 4035 §3.1), in two places:
//
//   - presigned: every RRset a reply can contain that the zones and the
//     PoP set enumerate — each node's RRsets, each geo target's address
//     sets, the negative SOA, each node's compact NSEC — signed in the
//     background by run when a zone or the window changes, and published
//     as one immutable value that the query path Loads once;
//   - made: what the query path had to sign itself, kept in a bounded
//     cache: the NSEC of a name that does not exist (or exists only
//     through a wildcard), geo answers that combine several targets, and
//     anything asked before the background pass reached it. The query
//     path alone takes its locks.
//
// Signatures are made for the window of the time they are made in
// (dnssec.WindowAt), which is the same on every instance; a signature from
// either place is always valid for at least another dnssec.Period.
type signer struct {
	now func() time.Time
	log zerolog.Logger
	// queryLog is log sampled, for what goes wrong on the query path.
	queryLog  zerolog.Logger
	metrics   *signMetrics
	presigned atomic.Pointer[presigned] // nil until the first pass
	// made is the query path's cache; each pass that publishes starts a
	// new one, so that what it held for zones no longer served (and the
	// snapshots they belong to) can go.
	made atomic.Pointer[sigCache]
	// wake asks run for a pass (SetZones); buffered, never blocks.
	wake chan struct{}
	// zones is what the next pass signs; set by SetZones.
	zones atomic.Pointer[zones.Snapshot]
}

// presigned is one background pass's signatures. It is immutable.
type presigned struct {
	// gen counts passes: a reply that carries signatures is good while
	// gen is (the UDP fast path drops what it learnt from older ones).
	gen    uint64
	window dnssec.Window
	zones  map[*zones.Zone]*zoneSigs
}

// zoneSigs are the presigned signatures of one zone.
type zoneSigs struct {
	// sets maps the first RR of an RRset of the zone (a node's, a geo
	// target's, the negative SOA) to the RRset's length and RRSIGs.
	sets map[dns.RR]sigSet
	// nsec maps a node to its compact NSEC and the NSEC's RRSIGs.
	nsec map[*zones.Node][]dns.RR
}

type sigSet struct {
	n    int
	sigs []dns.RR
}

func newSigner(now func() time.Time, log zerolog.Logger, m *signMetrics) *signer {
	sg := &signer{now: now, log: log, metrics: m, wake: make(chan struct{}, 1),
		queryLog: log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second})}
	sg.made.Store(newSigCache())
	return sg
}

// setZones hands the signer the snapshot to sign next.
func (sg *signer) setZones(snap *zones.Snapshot) {
	sg.zones.Store(snap)
	select {
	case sg.wake <- struct{}{}:
	default:
	}
}

// generation is the current pass's gen, 0 before the first.
func (sg *signer) generation() uint64 {
	if p := sg.presigned.Load(); p != nil {
		return p.gen
	}
	return 0
}

// run makes a pass whenever the zones change and when a new window
// starts, until ctx ends.
func (sg *signer) run(ctx context.Context) {
	for {
		sg.pass(ctx)
		next := dnssec.NextPeriod(sg.now())
		timer := time.NewTimer(next.Sub(sg.now()) + time.Second)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-sg.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// pass presigns every signed zone of the current snapshot for the window
// of now, keeping what the last pass made for a zone it already signed in
// that window, and publishes the result.
func (sg *signer) pass(ctx context.Context) {
	snap := sg.zones.Load()
	if snap == nil {
		return
	}
	now := sg.now()
	w := dnssec.WindowAt(now)
	old := sg.presigned.Load()
	next := &presigned{gen: 1, window: w, zones: map[*zones.Zone]*zoneSigs{}}
	if old != nil {
		next.gen = old.gen + 1
	}
	changed := false
	for _, z := range snap.Zones() {
		if z.DNSSEC() == nil {
			continue
		}
		if old != nil && old.window == w && old.zones[z] != nil {
			next.zones[z] = old.zones[z]
			continue
		}
		if ctx.Err() != nil {
			return
		}
		start := time.Now()
		zs, n, err := presignZone(z, w)
		if err != nil {
			sg.log.Error().Err(err).Str("zone", z.Origin()).Msg("presign zone; its answers are signed as they are asked")
			continue
		}
		took := time.Since(start)
		sg.metrics.signed.WithLabelValues("presign").Add(float64(n))
		sg.metrics.signSeconds.WithLabelValues("presign").Add(took.Seconds())
		sg.log.Info().Str("zone", z.Origin()).Int("signatures", n).Dur("took", took).
			Time("expiration", time.Unix(int64(w.Expiration), 0)).Msg("zone signed")
		next.zones[z] = zs
		changed = true
	}
	if old != nil && !changed && len(old.zones) == len(next.zones) && old.window == w {
		return // nothing new to publish: keep gen, and what the fast path learnt
	}
	sg.presigned.Store(next)
	sg.made.Store(newSigCache())
}

// presignZone signs every RRset of z that a reply can carry, and each
// node's compact NSEC, for window w. It reports how many signatures it
// made.
func presignZone(z *zones.Zone, w dnssec.Window) (*zoneSigs, int, error) {
	zs := &zoneSigs{sets: map[dns.RR]sigSet{}, nsec: map[*zones.Node][]dns.RR{}}
	made := 0
	add := func(rrs []dns.RR) error {
		if len(rrs) == 0 {
			return nil
		}
		if _, ok := zs.sets[rrs[0]]; ok {
			return nil
		}
		sigs, err := dnssec.Sign(rrs, signingKeys(z, rrs[0]), z.Origin(), w)
		if err != nil {
			return err
		}
		zs.sets[rrs[0]] = sigSet{n: len(rrs), sigs: sigs}
		made += len(sigs)
		return nil
	}
	if err := add([]dns.RR{z.NegativeSOA()}); err != nil {
		return nil, 0, err
	}
	for _, node := range z.Nodes() {
		if below(z, node) {
			continue // occluded by a zone cut: never answered
		}
		for _, set := range node.RRsets() {
			if node.IsDelegation() && set.Type != dns.TypeDS {
				continue // the cut's NS and glue are the child's, unsigned
			}
			if err := add(set.RRs); err != nil {
				return nil, 0, err
			}
		}
		if g := node.Geo(); g != nil {
			for i := range g.Targets {
				t := &g.Targets[i]
				for _, rrs := range [][]dns.RR{t.A, t.AAAA} {
					if err := add(rrs); err != nil {
						return nil, 0, err
					}
				}
				if t.CNAME != nil {
					if err := add([]dns.RR{t.CNAME}); err != nil {
						return nil, 0, err
					}
				}
			}
		}
		nsec := dnssec.NoDataNSEC(node.Name(), nodeTypes(node), z.NegativeSOA().Header().Ttl)
		sigs, err := dnssec.Sign([]dns.RR{nsec}, signingKeys(z, nsec), z.Origin(), w)
		if err != nil {
			return nil, 0, err
		}
		zs.nsec[node] = append([]dns.RR{nsec}, sigs...)
		made += len(sigs)
	}
	return zs, made, nil
}

// below reports whether node lies under a zone cut of z (not at it).
func below(z *zones.Zone, node *zones.Node) bool {
	cut := z.CutAtOrAbove(node.Name())
	return cut != nil && cut != node
}

// nodeTypes are the types a node's compact NSEC lists (RFC 9824 §3.2):
// its RRsets', its geo record's (A and AAAA if a target has them; a
// target's CNAME is left out, since a NODATA proof with the CNAME bit set
// is bogus), and at a zone cut only NS and DS (RFC 4035 §2.3).
func nodeTypes(node *zones.Node) []uint16 {
	var types []uint16
	for _, set := range node.RRsets() {
		if node.IsDelegation() && set.Type != dns.TypeNS && set.Type != dns.TypeDS {
			continue
		}
		types = append(types, set.Type)
	}
	if g := node.Geo(); g != nil {
		for i := range g.Targets {
			if len(g.Targets[i].A) > 0 {
				types = append(types, dns.TypeA)
			}
			if len(g.Targets[i].AAAA) > 0 {
				types = append(types, dns.TypeAAAA)
			}
		}
	}
	return types
}

// signingKeys are the keys that sign an RRset like rr's in z: the KSKs
// sign the apex's key RRsets, the ZSKs everything else.
func signingKeys(z *zones.Zone, rr dns.RR) []*dnssec.Key {
	f := z.DNSSEC().InForce
	switch h := rr.Header(); h.Rrtype {
	case dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY:
		if h.Name == z.Origin() {
			return f.KSK
		}
	}
	return f.ZSK
}

// sigKey names what the query path signed: an RRset of a zone by its
// first RR (first, with its length n), a combination of geo targets (geo,
// qtype, targets), or a made-up NSEC (nsec, owner name).
type sigKey struct {
	zone    *zones.Zone
	first   dns.RR
	n       int
	geo     *zones.Geo
	qtype   uint16
	targets zones.TargetSet
	nsec    nsecKind
	name    string
}

type nsecKind uint8

const (
	nsecNone     nsecKind = iota
	nsecNXName            // compact denial of a nonexistent name
	nsecWildcard          // compact NODATA of a name that exists through a wildcard
	nsecCovering          // RFC 4470 proof for a wildcard answer's next closer name
	nsecNode              // a node's own compact NSEC, when not presigned
	nsecRuled             // a geo name's NSEC without the type a rule left a client no target of
)

// sigCache is the query path's cache of what it signed. It is bounded:
// each shard starts over when full. A cached value made in another window
// is made again.
type sigCache struct {
	seed   maphash.Seed
	shards [sigShards]sigShard
}

const (
	sigShards     = 64
	sigShardLimit = 2048 // 131,072 entries in all
)

type sigShard struct {
	mu sync.Mutex // mu guards m
	m  map[sigKey]sigCached
}

type sigCached struct {
	window dnssec.Window
	rrs    []dns.RR
}

func newSigCache() *sigCache {
	c := &sigCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = map[sigKey]sigCached{}
	}
	return c
}

func (c *sigCache) shard(k *sigKey) *sigShard {
	return &c.shards[maphash.Comparable(c.seed, *k)%sigShards]
}

func (c *sigCache) get(k *sigKey, w dnssec.Window) ([]dns.RR, bool) {
	sh := c.shard(k)
	sh.mu.Lock()
	v, ok := sh.m[*k]
	sh.mu.Unlock()
	if !ok || v.window != w {
		return nil, false
	}
	return v.rrs, true
}

func (c *sigCache) put(k *sigKey, w dnssec.Window, rrs []dns.RR) {
	sh := c.shard(k)
	sh.mu.Lock()
	if len(sh.m) >= sigShardLimit {
		clear(sh.m)
	}
	sh.m[*k] = sigCached{window: w, rrs: rrs}
	sh.mu.Unlock()
}

// window is the window answers are signed in now: the presigned one, so
// that what the query path signs matches it, until a pass has run.
func (sg *signer) window() (dnssec.Window, *presigned) {
	p := sg.presigned.Load()
	if p != nil {
		return p.window, p
	}
	return dnssec.WindowAt(sg.now()), nil
}

// rrsetSigs returns the RRSIGs of rrs, an RRset of z as the zone holds it
// (or a geo target's), presigned or signed now.
func (sg *signer) rrsetSigs(z *zones.Zone, rrs []dns.RR) []dns.RR {
	w, p := sg.window()
	if p != nil {
		if zs := p.zones[z]; zs != nil {
			if s, ok := zs.sets[rrs[0]]; ok && s.n == len(rrs) {
				sg.metrics.hits.Inc()
				return s.sigs
			}
		}
	}
	k := sigKey{zone: z, first: rrs[0], n: len(rrs)}
	return sg.signNow(&k, w, func() []dns.RR { return rrs }, nil)
}

// geoSigs returns the RRSIGs of a geo answer that combines several
// targets' address sets (rrs), signed on first use.
func (sg *signer) geoSigs(z *zones.Zone, g *zones.Geo, qtype uint16, targets zones.TargetSet, rrs []dns.RR) []dns.RR {
	w, _ := sg.window()
	k := sigKey{zone: z, geo: g, qtype: qtype, targets: targets}
	return sg.signNow(&k, w, func() []dns.RR { return rrs }, nil)
}

// nodeNSEC returns node's compact NSEC and its RRSIGs.
func (sg *signer) nodeNSEC(z *zones.Zone, node *zones.Node) []dns.RR {
	w, p := sg.window()
	if p != nil {
		if zs := p.zones[z]; zs != nil {
			if rrs, ok := zs.nsec[node]; ok {
				sg.metrics.hits.Inc()
				return rrs
			}
		}
	}
	k := sigKey{zone: z, name: node.Name(), nsec: nsecNode}
	return sg.signNow(&k, w, nil, func() *dns.NSEC {
		return dnssec.NoDataNSEC(node.Name(), nodeTypes(node), z.NegativeSOA().Header().Ttl)
	})
}

// madeNSEC returns an NSEC the query path makes for name (kind says
// which) and its RRSIGs; types are the wildcard's for nsecWildcard.
func (sg *signer) madeNSEC(z *zones.Zone, kind nsecKind, name string, types func() []uint16) []dns.RR {
	w, _ := sg.window()
	k := sigKey{zone: z, name: name, nsec: kind}
	ttl := z.NegativeSOA().Header().Ttl
	return sg.signNow(&k, w, nil, func() *dns.NSEC {
		switch kind {
		case nsecNXName:
			return dnssec.NXNameNSEC(name, ttl)
		case nsecCovering:
			n := dnssec.CoveringNSEC(name, ttl)
			if ts := types(); ts != nil {
				n.TypeBitMap = dnssec.NoDataNSEC(n.Hdr.Name, ts, ttl).TypeBitMap
			}
			return n
		case nsecRuled:
			owner, _, _ := strings.Cut(name, "/")
			return dnssec.NoDataNSEC(owner, types(), ttl)
		}
		return dnssec.NoDataNSEC(name, types(), ttl)
	})
}

// signNow returns what the cache holds for k in window w, or signs it:
// the RRSIGs of set(), or the NSEC nsec() followed by its RRSIGs.
func (sg *signer) signNow(k *sigKey, w dnssec.Window, set func() []dns.RR, nsec func() *dns.NSEC) []dns.RR {
	made := sg.made.Load()
	if rrs, ok := made.get(k, w); ok {
		sg.metrics.hits.Inc()
		return rrs
	}
	sg.metrics.misses.Inc()
	start := time.Now()
	var rrs, out []dns.RR
	if nsec != nil {
		n := nsec()
		rrs = []dns.RR{n}
		out = append(out, n)
	} else {
		rrs = set()
	}
	sigs, err := dnssec.Sign(rrs, signingKeys(k.zone, rrs[0]), k.zone.Origin(), w)
	if err != nil {
		sg.queryLog.Error().Err(err).Str("zone", k.zone.Origin()).Msg("sign on the query path; the answer goes unsigned")
		return nil
	}
	out = append(out, sigs...)
	sg.metrics.signed.WithLabelValues("query").Add(float64(len(sigs)))
	sg.metrics.signSeconds.WithLabelValues("query").Add(time.Since(start).Seconds())
	made.put(k, w, slices.Clip(out))
	return out
}

// signMetrics count signing.
type signMetrics struct {
	signed      *prometheus.CounterVec // by path: presign, query
	signSeconds *prometheus.CounterVec // by path
	hits        prometheus.Counter
	misses      prometheus.Counter
}

func newSignMetrics(reg prometheus.Registerer) (*signMetrics, error) {
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "popdns", Subsystem: "dnssec", Name: "signature_lookups_total",
		Help: "Signatures an answer needed, by whether they were ready (hit: presigned or signed for an earlier answer) or signed for this one (miss).",
	}, []string{"result"})
	m := &signMetrics{
		signed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "popdns", Subsystem: "dnssec", Name: "signatures_total",
			Help: "RRSIGs made, by path: presign (in the background, when a zone or the validity window changes) or query (what the query path could not find presigned: the NSEC of a nonexistent name, combined geo answers).",
		}, []string{"path"}),
		signSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "popdns", Subsystem: "dnssec", Name: "sign_seconds_total",
			Help: "Time spent signing, by path (presign, query).",
		}, []string{"path"}),
		hits:   cache.WithLabelValues("hit"),
		misses: cache.WithLabelValues("miss"),
	}
	for _, path := range []string{"presign", "query"} {
		m.signed.WithLabelValues(path)
		m.signSeconds.WithLabelValues(path)
	}
	for _, c := range []prometheus.Collector{m.signed, m.signSeconds, cache} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
