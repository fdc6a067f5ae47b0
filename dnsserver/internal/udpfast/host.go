package udpfast

import (
	"net/netip"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnscookie"
	"github.com/popdns/popdns/internal/rrl"
	"github.com/popdns/popdns/internal/traffic"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
)

// Host is what the fast path needs from the server it answers for: the
// data it answers from, the decisions it answers with, and the general
// path it learns from. dnsserver implements it; the fast path declares
// it, so that it depends on nothing else of the server.
type Host interface {
	// Snapshot is the zones snapshot queries are answered from now; nil
	// before the first. Called once per query: it must not block.
	Snapshot() *zones.Snapshot
	// Signatures is the generation of the presigned signatures replies
	// from signed zones carry now: a reply learnt under another one is
	// dropped, so that re-signed RRsets reach clients. Called once per
	// query: it must not block.
	Signatures() uint64
	// Epoch is the decision epoch (steer.Epoch) of a decision made now
	// from snap. Called once per batch with a geo answer.
	Epoch(snap *zones.Snapshot) steer.Epoch
	// Cached is the shared decision cache's decision for client in
	// epoch, or nil; resolver says client is the query's source, a
	// resolver's own address, rather than its ECS network, which is
	// decided apart (steer.ForResolver).
	Cached(g *zones.Geo, qtype uint16, client netip.Addr, resolver bool, epoch steer.Epoch) *Decision
	// Decide makes the decision for client as the general path would,
	// keeps it in the shared cache, and reports the epoch it was made in.
	// cands is the reader's scratch space for the ranking.
	Decide(snap *zones.Snapshot, g *zones.Geo, qtype uint16, client netip.Addr, resolver bool, cands *steer.Candidates) (*Decision, steer.Epoch)
	// Widenings counts the decisions the server has finished widening:
	// a memoised decision that was Widening is looked up again in the
	// shared cache once it moved. Called only for such decisions: it must
	// not block.
	Widenings() uint64
	// ServeTraced answers req through the general path, writing the reply
	// to w, and returns what the reply depended on. explore is what the
	// fast path drew for it, if anything (one query, one draw).
	ServeTraced(w dns.ResponseWriter, req *dns.Msg, explore Exploring) Trace
	// LogAllDown logs, sampled, that when_all_down decided answers of g;
	// the fast path counts them itself (Metrics.AllDown).
	LogAllDown(g *zones.Geo, servfail bool)
	// Panicked counts and logs a panic of the fast path; the query then
	// goes to the general path.
	Panicked(p any)
	// Cookies are the secrets server cookies are made and checked with
	// now, and the time to make them at (seconds since 1970), as the
	// general path reads them. Called once per batch with a cookie, when
	// Config.Cookies is set.
	Cookies() (*dnscookie.Secrets, uint32)
	// LogLimited logs, sampled, that a reply to src was over its rate
	// limit and what was done (package rrl); the fast path counts them
	// itself (Metrics.RRL) and logs one per batch.
	LogLimited(src netip.Addr, class rrl.Class, act rrl.Action)
}

// Config is what the fast path reads of the server's configuration, and
// the metrics it counts in. It does not change while the server runs.
type Config struct {
	// UDPSize is the most the server sends over UDP (dnsserver.Config).
	UDPSize uint16
	// QueryLog sends every query through the general path, which logs it.
	QueryLog bool
	// Cookies: the server answers DNS cookies (Host.Cookies); else
	// COOKIE options are ignored, as the general path then does.
	Cookies bool
	// RRL limits the rate of replies, shared with the general path and
	// every other reader; nil: off.
	RRL *rrl.Limiter
	// Explore draws the answers that put their decision's exploration
	// target first (Decision.Explore), as the general path does; the
	// zero value never explores.
	Explore Explorer
	Metrics Metrics
}

// Metrics are the server's collectors that the fast path's replies count
// in, the same as the general path's: a reply counts the same whichever
// path sent it.
type Metrics struct {
	// Duration is the UDP series of the request duration histogram;
	// Scope the ECS scope histogram.
	Duration, Scope Histogram
	// Requests is the UDP series of the requests counter for a zone
	// origin ("none": not ours), query type and rcode.
	Requests func(zone string, qtype uint16, rcode int) prometheus.Counter
	ECS      *prometheus.CounterVec // by use: "used", "ignored"
	AllDown  *prometheus.CounterVec // by the when_all_down policy
	Cookies  *prometheus.CounterVec // by dnscookie.Outcome, when Config.Cookies
	// RRL counts replies over their rate limit by action (not rrl.Pass)
	// and class.
	RRL *[rrl.NumActions][rrl.NumClasses]prometheus.Counter
	// DecisionHit and DecisionMiss count the fast path's lookups of the
	// shared decision cache that found a decision and those that ranked
	// afresh; DecisionMemo those the reader's memo answered, without
	// asking the shared cache.
	DecisionHit, DecisionMiss, DecisionMemo prometheus.Counter
	// Explored is the counter of exploring answers whose first PoP is
	// pop, resolved once per reply (at its first flush with one).
	Explored func(pop string) prometheus.Counter
}

// Histogram takes n observations of one value at a time: the fast path
// gives every reply of a batch the same duration.
type Histogram interface {
	ObserveN(v float64, n uint64)
}

// Decision is the part of a geo decision (steer.Decision) that an answer
// needs, as the shared decision cache keeps it. It is immutable once
// made: the cache, the readers' memos and the queries that hit them share
// it.
type Decision struct {
	Ranked     []uint8 // the answered targets' indexes, in answer order
	Untailored bool    // the client's location did not shape it
	NoData     bool
	Servfail   bool
	// AllDown: no target was eligible and when_all_down decided. Every
	// answer with such a decision counts.
	AllDown bool
	Scope   int // ECS scope of the decision
	// Widening: the server is widening Scope in the background, and will
	// replace this decision in the shared cache with one of the widened
	// scope (Host.Widenings moves when it has).
	Widening bool
	// Place is where the client was located, which the catchment
	// counts: a memoised decision answers without locating it again.
	Place traffic.Place
	// Explore is the target an exploring answer puts first
	// (steer.Decision.Explore), when HasExplore; the answer's order is
	// ExploredOrder(Ranked, Explore). Never with NoData, Servfail or
	// AllDown.
	Explore    uint8
	HasExplore bool
}

// Explores reports whether an exploring answer of d differs from its own.
func (d *Decision) Explores() bool {
	return d.HasExplore && len(d.Ranked) > 0 && !d.NoData && !d.Servfail && !d.AllDown
}

// Trace is what a reply of the general path depended on besides the
// question's bytes: the fast path keeps a packed reply for the next query
// of the same shape only when it shows that nothing else could change it.
type Trace struct {
	Snap  *zones.Snapshot // the snapshot answered from; nil: none (an error, or no reply)
	Size  int             // the reply's length as fit measured it, before any cut
	Whole bool            // fit cut nothing
	Rcode int
	Zone  *zones.Zone // the zone the question is in; nil: none of ours
	PoP   string      // the PoP answered first, "" if none
	// Target is what the answer counts in as a geo answer (nil: none),
	// ZoneCount what it counts in as a query of Zone (nil: none).
	Target    *traffic.Target
	ZoneCount *traffic.Counter
	CaseSafe  bool // every name outside the question is lower case (see dnsserver's caseSafe)
	// Decisions counts geo decisions; the first one's record, the type it
	// decided for, the decision, its client and epoch are kept.
	Decisions int
	Geo       *zones.Geo
	QType     uint16
	Decision  *Decision
	Client    netip.Addr
	Epoch     steer.Epoch
	// Explored: the reply is the exploring answer of Decision (its order
	// ExploredOrder), which no memo keeps for the client.
	Explored bool
	// Signatures is the generation of presigned signatures (Host.Signatures)
	// when the reply was made.
	Signatures uint64
	// RRL is the rate-limit account the reply is charged to; its class
	// and name hold for every query of the same shape (and decision).
	RRL rrl.Account
}

// Decided records a geo decision that shaped the reply.
func (tr *Trace) Decided(g *zones.Geo, qtype uint16, d *Decision, client netip.Addr, epoch steer.Epoch) {
	if tr.Decisions == 0 {
		tr.Geo, tr.QType, tr.Decision = g, qtype, d
		tr.Client, tr.Epoch = client, epoch
	}
	tr.Decisions++
}
