package udpfast

import (
	"encoding/binary"
	"math"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnscookie"
	"github.com/popdns/popdns/internal/rrl"
	"github.com/popdns/popdns/internal/traffic"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
)

// The UDP fast path answers the common query without decoding it into a
// dns.Msg, without building a reply and without allocating: it parses the
// packet in place (parseWire), finds the reply the general path gave last
// time to a query of the same shape, copies it and patches what differs
// from query to query: the ID, the question's case (echoed as asked, 0x20),
// and the ECS option's ADDRESS and SCOPE. Replies are learnt by watching
// the general path answer (Host.ServeTraced and the Trace it returns),
// never built separately, so the two cannot drift apart: a reply is kept
// only when nothing but the question's shape and, for geo records, one
// cached geo decision shaped it. Everything else, and every first query of a shape, goes through the
// general path. Each reader owns one Path: no locks, no sharing.
type Path struct {
	host  Host
	cfg   Config
	q     wireQuery
	snap  *zones.Snapshot // the snapshot the entries were learnt from
	sigs  uint64          // and the signatures' generation (Host.Signatures)
	cache map[string]*fastEntry
	w     captureWriter
	// Metric handles resolved on first use, so that no series appears
	// before its first event, and no query hashes label values.
	ecsUsed, ecsIgnored prometheus.Counter
	// Counts of the fast path's replies since the last flush, which
	// flush publishes: one atomic add per batch costs less than one per
	// reply, and reading the clock per reply for its duration cost more
	// than all the other metrics together.
	answered              int
	pending               []*fastReply // replies with a count
	ecsUsedN, ecsIgnoredN uint64
	scopeN                [129]uint32 // by ECS scope
	scopes                []uint8     // the scopes with a count
	// The decision epoch read for this batch, and its snapshot: health
	// and overrides are read once per batch (tens of µs), not per query.
	epoch     steer.Epoch
	epochSnap *zones.Snapshot
	memo      decisionMemo
	refreshes int // stale memoised decisions re-decided in this batch
	// drawn is what the query being answered drew for exploration, for
	// the general path when it is handed on (Learn).
	drawn Exploring
	// mark is widenMark of Host.Widenings as this batch first read it, 0
	// before: a mark older than the count only costs a decision being
	// widened one more look at the shared cache.
	mark   uint8
	cands  steer.Candidates
	nextID uint32 // of the last entry made
	// The cookie secrets and time read for this batch (Host.Cookies),
	// once its first cookie is seen; nil: not yet.
	secrets   *dnscookie.Secrets
	cookieNow uint32
	// Replies by what their query's COOKIE option was, since the last
	// flush, and their counters, resolved on first use.
	cookieN       [dnscookie.NumOutcomes]uint64
	cookieCounter [dnscookie.NumOutcomes]prometheus.Counter
	// Rate limiting (Config.RRL): the time checks are made at, read once
	// per batch (Begin, or the first check after Flush), and the limited
	// replies since the last flush, by action and class, with the last
	// one for the log.
	now      int64
	nowOK    bool
	limitedN [rrl.NumActions][rrl.NumClasses]uint32
	limited  bool
	lastSrc  netip.Addr
	lastAcct rrl.Account
	lastAct  rrl.Action
	// Geo decision lookups since the last flush, by what answered them:
	// the shared cache (hit), a ranking afresh (miss), the reader's memo.
	// Plain counts, added to the metrics once a batch.
	decisionHitN, decisionMissN, decisionMemoN uint64
}

// fastCacheCap bounds one reader's entries. A flood of distinct names
// fills it, and it starts over, as the decision cache does.
const fastCacheCap = 16384

// maxVariants bounds the replies kept per entry: one per distinct geo
// decision (order of the answered targets), few in practice.
const maxVariants = 64

// fastEntry is what a query of one shape gets from one snapshot: a static
// reply, or one reply per decision of one geo record.
type fastEntry struct {
	static   *fastReply
	geo      *zones.Geo
	qtype    uint16 // the type decided for
	variants []*fastReply
	// id names the entry in the reader's memo (decisionMemo).
	id uint32
}

// RefreshesPerBatch is how many memoised decisions made before a penalty
// or latency age moved a reader re-decides per batch; the others are
// answered as decided until their turn. Re-deciding every client at once
// (a GeoIP lookup and a ranking each, through the general path) stalled a
// loaded reader for tens of ms on every step of a probe's penalty, long
// enough for its socket to overflow.
const RefreshesPerBatch = 4

// fastReply is a packed reply and what answering with it counts.
type fastReply struct {
	// wire is the reply; for a query with a cookie, it ends with the
	// COOKIE option, whose data (the client's cookie and ours, the last
	// dnscookie.ReplyLen octets) is zero here and written per query.
	wire []byte
	size int // the general path's measure: the reply fits a limit ≥ size
	// ecs is the offset of the ECS option's SCOPE byte, its ADDRESS
	// following; 0 when the reply has none.
	ecs   int
	rcode int
	// rrl is the rate-limit account the reply is charged to.
	rrl rrl.Account
	// The decision this reply answers, for geo entries; allDown is its
	// record when when_all_down decided it, and allDownN counts each
	// answer with it.
	ranked           string
	nodata, servfail bool
	allDown          *zones.Geo
	allDownN         prometheus.Counter

	requests prometheus.Counter
	// target is what the reply counts in as a geo answer (nil: none), per
	// query for its client's place; zone as a query of its zone (nil: none
	// of ours), per flush.
	target *traffic.Target
	zone   *traffic.Counter
	// count is how many times the reply was answered since the reader's
	// last flush; a reply belongs to one reader. explored is how many of
	// them were exploring answers (the same bytes answer one client's
	// decision and explore another's), counted in exploredN, the series
	// of pop, the PoP answered first.
	count     uint32
	explored  uint32
	pop       string
	exploredN prometheus.Counter
}

// Result is what the fast path did with a packet.
type Result uint8

const (
	Answered Result = iota // the reply is ready
	ToLearn                // a plain query it has no reply for: Learn answers it through the general path
	HandOff                // not a plain query: miekg/dns's server must see it
	Dropped                // over its rate limit: no reply at all
)

// New returns a fast path answering for host, for one reader.
func New(host Host, cfg Config) *Path {
	f := &Path{host: host, cfg: cfg}
	f.q.cookiesOn = cfg.Cookies
	return f
}

// judgeCookie judges the query's COOKIE option and makes the server
// cookie its reply carries, as the general path does (dnscookie's
// Secrets.Reply), with the batch's secrets and time. parseWire has
// refused malformed options.
func (f *Path) judgeCookie(packet []byte, src netip.Addr) {
	q := &f.q
	if f.secrets == nil {
		f.secrets, f.cookieNow = f.host.Cookies()
		if f.secrets == nil {
			return // cookies turned off meanwhile: the general path learns so
		}
	}
	q.cookieOutcome = f.secrets.Reply(&q.replyCookie, packet[q.cookieOff:q.cookieOff+q.cookieLen], src, f.cookieNow)
	q.validCookie = q.cookieOutcome == dnscookie.Valid
}

// Answer answers packet from src into out (whose capacity must hold
// Config.UDPSize bytes) when it can.
// The reply's duration is observed by the next Flush.
func (f *Path) Answer(packet []byte, src netip.Addr, out []byte) ([]byte, Result) {
	q := &f.q
	f.drawn = ExploreDraw
	if !parseWire(packet, q) {
		return nil, HandOff
	}
	snap := f.host.Snapshot()
	if snap == nil || f.cfg.QueryLog {
		return nil, ToLearn
	}
	if sigs := f.host.Signatures(); f.snap != snap || f.sigs != sigs {
		f.snap, f.sigs = snap, sigs
		f.dropEntries()
	}
	if q.cookie {
		if f.judgeCookie(packet, src); q.cookieOutcome == dnscookie.None {
			return nil, ToLearn
		}
	}
	e := f.cache[string(q.key[:q.keyLen])]
	if e == nil {
		return nil, ToLearn
	}
	usable := q.usableECS()
	r := e.static
	tailored, scope, explored := false, 0, false
	var place traffic.Place
	if r == nil {
		if q.unroutableECS() {
			return nil, ToLearn // rare; the general path answers, and Learn does not memoise it
		}
		client, resolver := src, !usable
		if usable {
			client = q.ecsAddr
		}
		if f.epochSnap != snap {
			f.epoch = f.host.Epoch(snap)
			f.epochSnap = snap
		}
		epoch := f.epoch
		cr, fresh, found := f.memo.lookup(e, client, epoch)
		var cd *Decision // the decision, when looked up rather than memoised
		// A decision being widened asks the shared cache again once a
		// widening finished, which may have been its own.
		rewiden := found && cr.widening != 0 && cr.widening != f.widenMark()
		if stale := found && !fresh; !found || rewiden || stale && f.refreshes < RefreshesPerBatch {
			if stale {
				f.refreshes++
			}
			// Read before the decision: a widening that finishes after it
			// then moves the count past the mark.
			mark := f.widenMark()
			cd = f.host.Cached(e.geo, e.qtype, client, resolver, epoch)
			if cd == nil {
				// A decision made now reads the epoch afresh; the rest of
				// the batch keeps to it, or a strict epoch that moved
				// meanwhile would start the memo over at every switch
				// between the two.
				cd, epoch = f.host.Decide(snap, e.geo, e.qtype, client, resolver, &f.cands)
				f.epoch = epoch
				f.decisionMissN++
			} else {
				f.decisionHitN++
			}
			// Without the decision's own reply, an exploring answer
			// may still have one: at a large share, the general path
			// seldom answers the decision's own.
			if cr = replyOf(e.variant(cd), cd, mark); cr.r != nil {
				f.memo.remember(e, client, epoch, cr)
			}
		} else {
			f.decisionMemoN++
		}
		r, tailored, scope, place = cr.r, cr.tailored(), cr.scopeBits(), cr.place
		if f.cfg.Explore.On() {
			// One draw per query: a query handed on keeps it (Learn).
			f.drawn = ExploreNever
			if f.cfg.Explore.Draw() {
				if cd == nil {
					// The memo keeps no exploration target (its slots
					// have no byte to spare); the shared cache has the
					// decision. Not counted: the memo answered the lookup.
					cd = f.host.Cached(e.geo, e.qtype, client, resolver, epoch)
				}
				if cd != nil && cd.Explores() {
					f.drawn = ExploreAlways
					r, explored = e.explored(cd.Ranked, cd.Explore), true
				}
			}
		}
		if r == nil {
			return nil, ToLearn // the general path answers as drawn, and the reply is learnt
		}
	}
	if r.size > q.sizeLimit(f.cfg.UDPSize) {
		return nil, ToLearn // the general path fits it to the client
	}
	if f.cfg.RRL != nil && !q.validCookie {
		switch f.rateLimit(src, r.rrl) {
		case rrl.Drop:
			return nil, Dropped
		case rrl.Slip:
			if bc := f.BadCookie(packet, out); bc != nil {
				return bc, Answered // as the general path: the cookie that exempts it
			}
			return slip(r, q, packet, out, f.cfg.UDPSize), Answered
		}
	}
	out = append(out[:0], r.wire...)
	binary.BigEndian.PutUint16(out, q.id)
	copy(out[12:q.nameEnd], packet[12:q.nameEnd])
	if q.ecs {
		if usable {
			f.ecsUsedN++
		} else {
			f.ecsIgnoredN++
		}
		if r.ecs != 0 {
			scope := ReplyScope(tailored, scope, q.ecsSource, usable)
			out[r.ecs] = byte(scope)
			copy(out[r.ecs+1:], packet[q.ecsRaw:q.ecsRaw+q.ecsRawLen])
			if r.rcode != dns.RcodeFormatError {
				if f.scopeN[scope] == 0 {
					f.scopes = append(f.scopes, uint8(scope))
				}
				f.scopeN[scope]++
			}
		}
	}
	if q.cookie {
		// The reply's COOKIE option is its last bytes (remember).
		c := out[len(out)-dnscookie.ReplyLen:]
		copy(c, packet[q.cookieOff:q.cookieOff+dnscookie.ClientLen])
		copy(c[dnscookie.ClientLen:], q.replyCookie[:])
	}
	if f.cfg.Cookies {
		f.cookieN[q.cookieOutcome]++
	}
	if r.count == 0 {
		f.pending = append(f.pending, r)
	}
	if r.target != nil {
		r.target.PoP.Count(place) // the record's count is added per flush
	}
	if explored {
		r.explored++
	}
	r.count++
	f.answered++
	return out, Answered
}

// Begin tells the fast path that a batch read at t starts: rate limiting
// checks its replies at t. Without it, the first check after a flush
// reads the clock.
func (f *Path) Begin(t time.Time) {
	if f.cfg.RRL != nil {
		f.now, f.nowOK = f.cfg.RRL.Now(t), true
	}
}

// rateLimit is the verdict on a reply of account a to src, counted.
func (f *Path) rateLimit(src netip.Addr, a rrl.Account) rrl.Action {
	if !f.nowOK {
		f.Begin(time.Now())
	}
	act := f.cfg.RRL.Check(src, a, f.now)
	if act != rrl.Pass {
		f.limitedN[act][a.Class]++
		f.limited = true
		f.lastSrc, f.lastAcct, f.lastAct = src, a, act
	}
	return act
}

// slip writes into out the minimal truncated reply that stands for r when
// its rate is over the limit: r's header with TC set, the question and, if
// the query had one, a bare OPT record advertising udpSize (RFC 6891 §7),
// patched as a reply is; the general path's slipReply writes the same
// bytes. The cached replies the fast path answers have no extended rcode,
// so the OPT record's is 0.
func slip(r *fastReply, q *wireQuery, packet, out []byte, udpSize uint16) []byte {
	out = append(out[:0], r.wire[:q.nameEnd+4]...)
	binary.BigEndian.PutUint16(out, q.id)
	copy(out[12:q.nameEnd], packet[12:q.nameEnd])
	out[2] |= 1 << 1 // TC
	clear(out[6:12]) // ANCOUNT, NSCOUNT, ARCOUNT
	if q.edns {
		out[11] = 1
		do := byte(0)
		if q.do {
			do = 0x80
		}
		out = append(out, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(udpSize>>8), byte(udpSize), 0, 0, do, 0, 0, 0)
	}
	return out
}

// flushLimited counts and logs the limited replies since the last flush.
func (f *Path) flushLimited() {
	f.limited = false
	for a := range f.limitedN {
		for c, n := range f.limitedN[a] {
			if n > 0 {
				f.cfg.Metrics.RRL[a][c].Add(float64(n))
				f.limitedN[a][c] = 0
			}
		}
	}
	f.host.LogLimited(f.lastSrc, f.lastAcct.Class, f.lastAct)
}

// Flush adds what the replies Answer made since the last flush count to
// the metrics, with the duration of each the time since start, when the
// batch holding them was read. The next query reads the epoch afresh.
func (f *Path) Flush(start time.Time) {
	f.epochStale()
	f.refreshes = 0
	f.mark = 0
	f.secrets = nil
	f.nowOK = false
	if f.limited {
		f.flushLimited()
	}
	f.flushDecisions()
	if f.answered == 0 {
		return
	}
	m := &f.cfg.Metrics
	m.Duration.ObserveN(time.Since(start).Seconds(), uint64(f.answered))
	f.answered = 0
	var allDown *fastReply // one of the batch's all-down replies, for the log
	for _, r := range f.pending {
		r.requests.Add(float64(r.count))
		if r.target != nil {
			r.target.Answers.Add(uint64(r.count))
		}
		r.zone.Add(uint64(r.count))
		if r.allDown != nil {
			r.allDownN.Add(float64(r.count))
			allDown = r
		}
		if r.explored > 0 && m.Explored != nil {
			if r.exploredN == nil {
				r.exploredN = m.Explored(r.pop)
			}
			r.exploredN.Add(float64(r.explored))
		}
		r.count, r.explored = 0, 0
	}
	f.pending = f.pending[:0]
	if allDown != nil {
		f.host.LogAllDown(allDown.allDown, allDown.servfail)
	}
	if f.ecsUsedN > 0 {
		if f.ecsUsed == nil {
			f.ecsUsed = m.ECS.WithLabelValues("used")
		}
		f.ecsUsed.Add(float64(f.ecsUsedN))
		f.ecsUsedN = 0
	}
	if f.ecsIgnoredN > 0 {
		if f.ecsIgnored == nil {
			f.ecsIgnored = m.ECS.WithLabelValues("ignored")
		}
		f.ecsIgnored.Add(float64(f.ecsIgnoredN))
		f.ecsIgnoredN = 0
	}
	for _, sc := range f.scopes {
		m.Scope.ObserveN(float64(sc), uint64(f.scopeN[sc]))
		f.scopeN[sc] = 0
	}
	f.scopes = f.scopes[:0]
	for o, n := range f.cookieN {
		if n == 0 {
			continue
		}
		if f.cookieCounter[o] == nil {
			f.cookieCounter[o] = m.Cookies.WithLabelValues(dnscookie.Outcome(o).String())
		}
		f.cookieCounter[o].Add(float64(n))
		f.cookieN[o] = 0
	}
}

// flushDecisions adds the decisions counted since the last flush to the
// metrics, when it has them (a Path made without metrics counts nothing).
func (f *Path) flushDecisions() {
	m := &f.cfg.Metrics
	if f.decisionHitN > 0 && m.DecisionHit != nil {
		m.DecisionHit.Add(float64(f.decisionHitN))
	}
	if f.decisionMissN > 0 && m.DecisionMiss != nil {
		m.DecisionMiss.Add(float64(f.decisionMissN))
	}
	if f.decisionMemoN > 0 && m.DecisionMemo != nil {
		m.DecisionMemo.Add(float64(f.decisionMemoN))
	}
	f.decisionHitN, f.decisionMissN, f.decisionMemoN = 0, 0, 0
}

// variant is the entry's reply for decision cd, or nil.
func (e *fastEntry) variant(cd *Decision) *fastReply {
	for _, r := range e.variants {
		if r.ranked == string(cd.Ranked) && r.nodata == cd.NoData && r.servfail == cd.Servfail && (r.allDown != nil) == cd.AllDown {
			return r
		}
	}
	return nil
}

// explored is the entry's reply that explores x from a decision that
// answers ranked (ExploredOrder), or nil when none was learnt yet. An exploring
// answer's bytes are those of any decision that answers its order, so
// a reply learnt from either serves it.
func (e *fastEntry) explored(ranked []uint8, x uint8) *fastReply {
	var buf [zones.MaxGeoTargets]uint8
	order := ExploredOrder(ranked, x, &buf)
	for _, v := range e.variants {
		if v.ranked == string(order) && !v.nodata && !v.servfail && v.allDown == nil {
			return v
		}
	}
	return nil
}

// Learn answers a plain query that Answer returned ToLearn for through
// the general path, and keeps the reply when it may serve the next query
// of the same shape. It returns the reply (valid until the next call), or
// false when the packet must be handed off after all.
func (f *Path) Learn(packet []byte, src netip.AddrPort, local net.Addr) ([]byte, bool) {
	// A learnt query takes long enough for health to change meanwhile:
	// the next query of the batch reads the epoch afresh.
	defer f.epochStale()
	req := new(dns.Msg)
	if err := req.Unpack(packet); err != nil {
		return nil, false
	}
	f.w = captureWriter{local: local, remote: net.UDPAddrFromAddrPort(src), wire: f.w.wire[:0]}
	tr := f.host.ServeTraced(&f.w, req, f.drawn)
	if !f.w.written {
		return nil, true
	}
	if !f.cfg.QueryLog {
		f.remember(&tr, f.w.wire)
	}
	return f.w.wire, true
}

// remember keeps wire, the general path's reply to f.q, when tr shows that
// it holds for every query of the same shape (for geo records: of the same
// decision), patched.
func (f *Path) remember(tr *Trace, wire []byte) {
	q := &f.q
	switch {
	case tr.Snap == nil || tr.Snap != f.snap || tr.Signatures != f.sigs || !tr.Whole || tr.Rcode == dns.RcodeFormatError:
		return
	case tr.Rcode == dns.RcodeBadCookie:
		return // a refusal that depended on the cookie
	case q.lowerLabels != q.labels && !tr.CaseSafe:
		return
	case tr.Decisions > 1:
		return
	}
	r := &fastReply{wire: append([]byte(nil), wire...), size: tr.Size, rcode: tr.Rcode, rrl: tr.RRL}
	cookieOpt := 0
	if q.cookie {
		// The COOKIE option is the last thing in the reply (respondTo
		// puts the OPT record last and the cookie last in it), and its
		// data is the query's: not kept.
		cookieOpt = 4 + dnscookie.ReplyLen
		c := len(wire) - cookieOpt
		if c < 12+11 || binary.BigEndian.Uint16(wire[c:]) != dns.EDNS0COOKIE ||
			binary.BigEndian.Uint16(wire[c+2:]) != dnscookie.ReplyLen {
			return
		}
		clear(r.wire[c+4:])
	}
	if q.ecs && tr.Rcode != dns.RcodeFormatError {
		// The ECS option comes last in the reply but for the cookie.
		r.ecs = len(wire) - cookieOpt - q.ecsRawLen - 1
		if r.ecs < 12+4 || binary.BigEndian.Uint16(wire[r.ecs-3:]) != q.ecsFamily || wire[r.ecs-1] != q.ecsSource {
			return
		}
	}
	zone := "none"
	if tr.Zone != nil {
		zone = tr.Zone.Origin()
	}
	m := &f.cfg.Metrics
	r.requests = m.Requests(zone, q.qtype, tr.Rcode)
	r.target, r.zone = tr.Target, tr.ZoneCount
	if len(f.cache) >= fastCacheCap || f.nextID == math.MaxUint32 {
		f.dropEntries()
	}
	if f.cache == nil {
		f.cache = make(map[string]*fastEntry)
	}
	key := string(q.key[:q.keyLen])
	e := f.cache[key]
	if tr.Decisions == 0 {
		switch {
		case e == nil:
			f.cache[key] = f.newEntry(&fastEntry{static: r})
		case e.static == nil:
			delete(f.cache, key) // the same shape answered differently: trust neither
		}
		return
	}
	cd := tr.Decision
	r.ranked, r.nodata, r.servfail, r.pop = string(cd.Ranked), cd.NoData, cd.Servfail, tr.PoP
	if tr.Explored {
		// The reply answers the exploring order: it is that order's
		// variant, and no client's decision.
		var buf [zones.MaxGeoTargets]uint8
		r.ranked = string(ExploredOrder(cd.Ranked, cd.Explore, &buf))
	}
	if cd.AllDown {
		r.allDown, r.allDownN = tr.Geo, m.AllDown.WithLabelValues(tr.Geo.WhenAllDown.String())
	}
	switch {
	case e == nil:
		f.cache[key] = f.newEntry(&fastEntry{geo: tr.Geo, qtype: tr.QType, variants: []*fastReply{r}})
	case e.static != nil || e.geo != tr.Geo || e.qtype != tr.QType:
		// The same shape answered differently: trust neither.
		delete(f.cache, key)
	case e.variantOf(r) == nil && len(e.variants) < maxVariants:
		e.variants = append(e.variants, r)
	}
	// The client's next query finds the decision in the memo, rather than
	// re-deciding it when the decision is a refresh of a stale one. An
	// exploring answer is not its decision's: the next query draws again.
	// A resolver's decision for an unroutable ECS network is not the
	// decision of a usable network at the same address.
	if e = f.cache[key]; e != nil && !tr.Explored && !q.unroutableECS() {
		if v := e.variant(cd); v != nil {
			// Marked for a recheck: the count may have moved past cd's
			// widening already.
			f.memo.remember(e, tr.Client, tr.Epoch, replyOf(v, cd, recheckMark))
		}
	}
}

// variantOf is the entry's reply answering what r answers, or nil.
func (e *fastEntry) variantOf(r *fastReply) *fastReply {
	for _, v := range e.variants {
		if v.ranked == r.ranked && v.nodata == r.nodata && v.servfail == r.servfail && (v.allDown != nil) == (r.allDown != nil) {
			return v
		}
	}
	return nil
}

// widenMark is the batch's mark of Host.Widenings, read once per batch.
func (f *Path) widenMark() uint8 {
	if f.mark == 0 {
		f.mark = widenMark(f.host.Widenings())
	}
	return f.mark
}

// Memoised reports how many IPv4 and IPv6 client networks the reader's
// memo holds decisions for.
func (f *Path) Memoised() (v4, v6 int) { return f.memo.v4.n, f.memo.v6.n }

// epochStale makes the next query read the decision epoch afresh, after
// something slower than a fast answer.
func (f *Path) epochStale() { f.epochSnap = nil }

// newEntry gives e the next id.
func (f *Path) newEntry(e *fastEntry) *fastEntry {
	f.nextID++ // from 1: the memo's zero key is no entry's
	e.id = f.nextID
	return e
}

// dropEntries starts the reader's entries over, and with them the memo,
// whose keys hold their ids.
func (f *Path) dropEntries() {
	f.cache, f.nextID = nil, 0
	f.memo.reset()
}

// captureWriter is the dns.ResponseWriter of answers learnt on the fast
// path: it keeps the packed reply for the reader to send.
type captureWriter struct {
	local, remote net.Addr
	wire          []byte
	written       bool
}

func (w *captureWriter) LocalAddr() net.Addr  { return w.local }
func (w *captureWriter) RemoteAddr() net.Addr { return w.remote }

// WriteMsg packs m as miekg/dns's server does.
func (w *captureWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (w *captureWriter) Write(b []byte) (int, error) {
	w.wire = append(w.wire[:0], b...)
	w.written = true
	return len(b), nil
}

func (w *captureWriter) Close() error        { return nil }
func (w *captureWriter) TsigStatus() error   { return nil }
func (w *captureWriter) TsigTimersOnly(bool) {}
func (w *captureWriter) Hijack()             {}

// BadCookie writes into out, and returns, the reply that refuses to
// answer the query Answer last read, packet, until it comes back with a
// valid server cookie: BADCOOKIE, the question, and an OPT record with the
// client cookie and a new server cookie (RFC 7873 §5.2.3), as dnsserver's
// badCookieReply makes it on the general path. The rate limiter slips it
// instead of a truncated reply to a limited query with a client cookie. nil when the query had no cookie (or
// the reader did not judge it: it went to the general path). It does not
// allocate when out holds 512 octets.
func (f *Path) BadCookie(packet, out []byte) []byte {
	q := &f.q
	if !q.cookie || q.cookieOutcome == dnscookie.None {
		return nil
	}
	const qr, rdcd = 1 << 15, 1<<8 | 1<<4
	out = append(out[:0], packet[:q.nameEnd+4]...)
	flags := binary.BigEndian.Uint16(packet[2:])&rdcd | qr | dns.RcodeBadCookie&0xf
	binary.BigEndian.PutUint16(out[2:], flags)
	binary.BigEndian.PutUint64(out[4:], 1<<48|1) // QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 1
	do := byte(0)
	if q.do {
		do = 0x80
	}
	out = append(out, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(f.cfg.UDPSize>>8), byte(f.cfg.UDPSize),
		dns.RcodeBadCookie>>4, 0, do, 0, 0, 4+dnscookie.ReplyLen,
		0, dns.EDNS0COOKIE, 0, dnscookie.ReplyLen)
	out = append(out, packet[q.cookieOff:q.cookieOff+dnscookie.ClientLen]...)
	return append(out, q.replyCookie[:]...)
}
