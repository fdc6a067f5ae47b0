package dnsserver

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/traffic"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
)

// maxCNAMEChain bounds how many CNAMEs one answer follows, so that a loop
// or an absurd chain across our zones ends quickly. Like other
// authoritative servers we then return the chain so far and let the
// resolver continue.
const maxCNAMEChain = 8

// request is one question being answered: what it reads (one snapshot, one
// client) and what it has decided so far. It lives on the query path only.
type request struct {
	s     *Server
	snap  *zones.Snapshot
	resp  *dns.Msg
	qtype uint16
	// loc is looked up on the first geo decision only: static answers
	// never pay for it.
	loc      geo.Location
	located  bool
	scope    int  // ECS scope of the answer; 0 while nothing depended on the client
	tailored bool // a geo decision shaped the answer
	outcome
	cands steer.Candidates
	// do: the query set DNSSEC OK, so answers from signed zones carry
	// their signatures and proofs; co: it set Compact Answers OK too, so
	// a nonexistent name keeps its NXDOMAIN (RFC 9824 §4).
	do, co bool
	// lim is rate limiting's verdict, asked early (nil: not limited).
	lim *limitCheck
	// explain: Server.Explain asks, which decides afresh and records each
	// decision in outcome.explained.
	explain bool
	// explore is what the fast path drew for exploration, when it hands
	// the query on; else the request draws (Server.explore).
	explore udpfast.Exploring
	// order holds an exploring answer's order (udpfast.ExploredOrder).
	order [zones.MaxGeoTargets]uint8
}

// location is where the query's client is placed: for a query without
// a usable ECS option, the resolver, its location taken as uncertain.
func (q *request) location() geo.Location {
	if !q.located {
		q.located = true
		q.loc = q.s.locateFor(q.client, q.resolver())
	}
	return q.loc
}

// resolver reports whether the query's client is its source, a resolver,
// rather than the network its ECS option named.
func (q *request) resolver() bool { return q.ecs != ecsUsed }

// locateFor places client as a decision for it reads it: when resolver
// (no usable ECS), the address is a resolver's, taken as uncertain
// (steer.ForResolver).
func (s *Server) locateFor(client netip.Addr, resolver bool) geo.Location {
	if resolver {
		return steer.ForResolver(s.locate(client))
	}
	return s.locate(client)
}

// locate places client; without a database, or for no client, nowhere.
func (s *Server) locate(client netip.Addr) geo.Location {
	switch {
	case !client.IsValid():
		return geo.Location{}
	case s.locator != nil:
		return s.locator.Locate(client)
	}
	return geo.Location{Prefix: netip.PrefixFrom(client, 0).Masked()}
}

// resolve fills resp's sections and rcode with the authoritative answer for
// qname from zone, following CNAMEs into any zone of the snapshot
// (RFC 1034 §4.3.2, RFC 2308, RFC 4592, RFC 6604). qname is a lowercase
// FQDN inside zone.
func (q *request) resolve(zone *zones.Zone, qname string) {
	resp, qtype := q.resp, q.qtype
	resp.Authoritative = true
	name := qname
	for hops := 0; ; hops++ {
		m := zone.Lookup(name, qtype)
		switch m.Kind {
		case zones.Delegated:
			// A referral is not an authoritative answer (RFC 1034 §4.3.2 3b),
			// unless a CNAME of ours led here, which is.
			if hops == 0 {
				resp.Authoritative = false
			}
			ns := m.Node.RRset(dns.TypeNS)
			resp.Ns = append(resp.Ns, ns.RRs...)
			resp.Extra = append(resp.Extra, ns.Additional...)
			q.cut = m.Node.Name()
			if q.signs(zone) {
				q.proveDelegation(zone, m.Node)
			}
			return
		case zones.NameError:
			if q.signs(zone) {
				q.denyName(zone, name)
				return
			}
			resp.Rcode = dns.RcodeNameError
			resp.Ns = append(resp.Ns, zone.NegativeSOA())
			return
		}

		node := m.Node
		synthesize := m.Kind == zones.WildcardMatch
		if synthesize && hops == 0 {
			q.wildcard = node.Name()
		}
		var cname dns.RR
		// A CNAME answers every type but itself and ANY (RFC 1034
		// §3.6.2), and, in a signed answer, the NSEC and RRSIG its owner
		// has (RFC 4035 §2.5).
		follows := qtype != dns.TypeCNAME && qtype != dns.TypeANY &&
			!(q.signs(zone) && (qtype == dns.TypeNSEC || qtype == dns.TypeRRSIG))
		switch g := node.Geo(); {
		case node.RRset(dns.TypeCNAME) != nil && follows:
			cname = node.RRset(dns.TypeCNAME).RRs[0]
		case g != nil && (isAddressType(qtype) || qtype == dns.TypeCNAME || qtype == dns.TypeANY || follows && geoAliases(g)):
			var done bool
			cname, done = q.answerGeo(zone, node, g, synthesize, name)
			if done {
				return
			}
			if cname != nil && (qtype == dns.TypeCNAME || qtype == dns.TypeANY) {
				// The CNAME is the answer itself: it is not followed
				// (RFC 1034 §4.3.2 step 3a).
				q.appendCNAME(zone, cname, synthesize, node, name)
				return
			}
		}
		if cname != nil {
			q.appendCNAME(zone, cname, synthesize, node, name)
			target := strings.ToLower(cname.(*dns.CNAME).Target)
			if hops+1 >= maxCNAMEChain || chainVisits(resp.Answer, target) {
				return
			}
			next := q.snap.Match(target)
			if next == nil {
				return // out of our authority: the resolver follows it
			}
			zone, name = next, target
			continue
		}

		var set *zones.RRset
		switch {
		case qtype == dns.TypeANY:
			set = minimalANY(node)
		case qtype == dns.TypeNSEC && q.signs(zone):
			// The name's own compact NSEC is its NSEC RRset; a name a
			// wildcard answers gets one made for it.
			if synthesize {
				resp.Answer = append(resp.Answer, q.s.signer.madeNSEC(zone, nsecWildcard, name, func() []uint16 { return nodeTypes(node) })...)
			} else {
				resp.Answer = append(resp.Answer, q.s.signer.nodeNSEC(zone, node)...)
			}
			return
		default:
			set = node.RRset(qtype)
		}
		if set == nil {
			q.noData(zone, node, synthesize, name) // RFC 2308 §2.2
			return
		}
		q.appendSigned(zone, set.RRs, synthesize, node, name)
		q.appendAdditional(zone, set.Additional)
		return
	}
}

// answerGeo answers from a geo record. It returns a CNAME to follow when
// the chosen target answers with one; otherwise the answer is complete
// (done).
//
// A geo record with CNAME targets also decides for other types (MX,
// HTTPS…): a client sent to a CNAME target gets the CNAME, as any type
// at a CNAME's owner does; for a client sent to an address target, the
// name's other data answers (done is false, cname nil).
func (q *request) answerGeo(zone *zones.Zone, node *zones.Node, g *zones.Geo, synthesize bool, name string) (cname dns.RR, done bool) {
	qtype := q.qtype
	other := !isAddressType(qtype) && qtype != dns.TypeCNAME && qtype != dns.TypeANY
	if !isAddressType(qtype) {
		qtype = dns.TypeA // decide as for an address; ANY gets one RRset (RFC 8482)
	}
	d := q.decideCached(g, qtype)
	switch {
	case other && (d.Servfail || d.NoData):
		return nil, false
	case d.Servfail:
		q.resp.Rcode = dns.RcodeServerFailure
		q.resp.Answer, q.resp.Ns, q.resp.Extra = nil, nil, nil
		return nil, true
	case d.NoData:
		q.noData(zone, node, synthesize, name)
		return nil, true
	}
	ranked := d.Ranked
	// A CNAME query of a record without CNAME targets is NODATA whatever
	// the order: nobody is sent anywhere, so it does not explore.
	if (q.qtype != dns.TypeCNAME || geoAliases(g)) && q.exploring(d) {
		ranked = udpfast.ExploredOrder(d.Ranked, d.Explore, &q.order)
		q.trace.Explored = true
		q.s.metrics.explored.WithLabelValues(g.Targets[ranked[0]].PoP.Name).Inc()
	}
	first := &g.Targets[ranked[0]]
	if q.pop == "" {
		q.pop = first.Name()
		q.target, q.place = q.s.traffic.Target(g, int(ranked[0])), d.Place
	}
	if first.CNAME != nil {
		return first.CNAME, false
	}
	if other {
		return nil, false
	}
	if q.qtype == dns.TypeCNAME {
		q.noData(zone, node, synthesize, name)
		return nil, true
	}
	for _, idx := range ranked {
		t := &g.Targets[idx]
		rrs := t.A
		if qtype == dns.TypeAAAA {
			rrs = t.AAAA
		}
		// A CNAME target has no addresses, so it adds nothing here: a
		// CNAME cannot share its name with other data.
		q.resp.Answer = appendAnswer(q.resp.Answer, rrs, synthesize, name)
	}
	if q.signs(zone) {
		q.signGeo(zone, node, g, qtype, ranked, synthesize, name)
	}
	return nil, true
}

// decideCached chooses among g's targets for this query's client, from the
// decision cache when it can. An explanation always decides afresh, since
// it reports the ranking itself.
func (q *request) decideCached(g *zones.Geo, qtype uint16) *udpfast.Decision {
	env := q.s.decisionEnv(q.snap)
	var cd *udpfast.Decision
	if !q.explain {
		cd = q.s.cache.get(cacheKey{geo: g, qtype: qtype, client: q.client, resolver: q.resolver()}, env.Epoch)
		if cd != nil {
			q.s.metrics.decisionHit.Inc()
		} else {
			q.s.metrics.decisionMiss.Inc()
		}
	}
	if cd == nil {
		var d steer.Decision
		d, cd = q.s.decide(&env, g, qtype, q.client, q.resolver(), q.location(), &q.cands, !q.explain)
		if q.explain {
			q.explainDecision(g, &d, &env)
		}
	}
	q.scope = max(q.scope, cd.Scope)
	q.tailored = q.tailored || !cd.Untailored
	if !q.explain {
		// Every answer made from an all-down decision counts, cached or not.
		if cd.AllDown {
			q.s.allDown(g, cd.Servfail)
		}
		q.trace.Decided(g, qtype, cd, q.client, env.Epoch)
	}
	return cd
}

// decide ranks g's targets for client, located at loc, under env, and
// keeps the outcome in the decision cache when keep is set (an explanation
// does not: it decides afresh and leaves the cache alone). It is the one
// place where either path makes a decision; cands receives the ranking.
// resolver says client is a resolver's own address (no usable ECS) and
// loc is steer.ForResolver's.
//
// When keep is set, a client inside a prefix the widener has proven for
// g under env gets that prefix's decision and scope without a ranking (the
// steer.Decision returned is then the zero one); otherwise the new
// decision is handed to the widener, and answered meanwhile with Rank's
// scope. A resolver's decision is neither: its reply has no ECS scope to
// widen, and a prefix's widened decision is for ECS clients.
func (s *Server) decide(env *steer.Env, g *zones.Geo, qtype uint16, client netip.Addr, resolver bool, loc geo.Location,
	cands *steer.Candidates, keep bool) (steer.Decision, *udpfast.Decision) {
	key := cacheKey{geo: g, qtype: qtype, client: client, resolver: resolver}
	if keep && !resolver {
		if wd := s.widen.lookup(g, qtype, client, env.Epoch); wd != nil {
			cd := *wd
			cd.Place = s.traffic.PlaceOf(loc.Country, loc.Continent)
			s.cache.put(key, env.Epoch, &cd)
			return steer.Decision{}, &cd
		}
	}
	db := s.widen.dbGen() // before the job is made: a swap since makes the widener drop it
	d := steer.Rank(g, qtype, client, loc, env, cands)
	cd := cached(&d, s.traffic.PlaceOf(loc.Country, loc.Continent))
	if keep {
		widen := !resolver && s.widen.wants(g, &d)
		cd.Widening = widen
		s.cache.put(key, env.Epoch, cd)
		if widen && !s.widen.enqueue(widenJob{g: g, qtype: qtype, client: client, env: *env, d: d, cd: cd, db: db}) {
			settled := *cd
			settled.Widening = false
			cd = &settled
			s.cache.put(key, env.Epoch, cd)
		}
	}
	return d, cd
}

// cached is the part of d that answers need, to share through the cache.
// place is where the client was located, which the catchment counts.
func cached(d *steer.Decision, place traffic.Place) *udpfast.Decision {
	return &udpfast.Decision{Ranked: slices.Clone(d.Answered()), Untailored: d.Untailored,
		NoData: d.NoData, Servfail: d.Servfail, AllDown: d.AllDown, Scope: d.Scope,
		Place: place, Explore: d.Explore, HasExplore: d.HasExplore}
}

// decisionEnv is what a geo decision made now from snap reads; its Epoch
// keys the caches.
func (s *Server) decisionEnv(snap *zones.Snapshot) steer.Env {
	var health *healthprobe.Status
	if s.health != nil {
		health = s.health.Status()
	}
	return steer.NewEnv(s.steering, snap, health, s.overrides.Load(), time.Now).WithLearned(s.learned.Load())
}

// outcome is what answering a query decided, beyond the reply itself:
// what size limits and metrics need.
type outcome struct {
	client netip.Addr  // the ECS network address, or the source address
	cut    string      // the zone cut of a referral in the answer, for truncation
	zone   *zones.Zone // the zone the question is in; nil: none of ours
	pop    string      // the PoP of the first geo answer, "" if none
	// target is what the first geo answer counts in (nil: none, or not
	// counted), place where its client is.
	target *traffic.Target
	place  traffic.Place
	// zoneCount is zone's query counter, looked up once by observe.
	zoneCount *traffic.Counter
	ecs       ecsUse // what the query's client subnet option did
	// replyScope is the ECS scope sent back, when the reply has ECS.
	replyScope int
	// cookie is what the query's COOKIE option was and what the reply
	// sends back (validCookie says whether it was valid).
	cookie cookieReply
	// trace is what shaped the reply, as the fast path learns it
	// (udpfast.Trace): the snapshot and the geo decisions, recorded as
	// the answer is built; serve adds the rest.
	trace udpfast.Trace
	// wildcard is the wildcard that answered the question's name, "" if
	// none: rate limiting charges its answers to the wildcard, so that
	// random names under it share one account.
	wildcard string
	// nxname: the answer denies the name exists the compact way (RFC
	// 9824), NOERROR unless the query set CO; rate limiting counts it as
	// NXDOMAIN.
	nxname bool
	// explained holds each geo decision's explanation, when the request
	// is Server.Explain's.
	explained []GeoDecision
	// validCookie: the query carried a valid server cookie (RFC 7873
	// §5.4), which proves its source address, so rate limiting skips it.
	// respondTo sets it from cookie.
	validCookie bool
}

// ecsUse is what a query's client subnet option did.
type ecsUse uint8

const (
	ecsAbsent  ecsUse = iota // the query had none
	ecsUsed                  // it placed the client
	ecsIgnored               // it asked for no placement (SOURCE 0) or named an unroutable network
)

// appendAnswer appends rrs, rewritten to owner name when they come from a
// wildcard (RFC 4592 §3.3.1). Shared RRs are cloned, never modified.
func appendAnswer(answer, rrs []dns.RR, synthesize bool, name string) []dns.RR {
	if !synthesize {
		return append(answer, rrs...)
	}
	for _, rr := range rrs {
		c := dns.Copy(rr)
		c.Header().Name = name
		answer = append(answer, c)
	}
	return answer
}

// isAddressType reports whether t is A or AAAA, the types geo targets
// hold.
func isAddressType(t uint16) bool { return t == dns.TypeA || t == dns.TypeAAAA }

// geoAliases reports whether a target of g answers with a CNAME.
func geoAliases(g *zones.Geo) bool {
	for i := range g.Targets {
		if g.Targets[i].CNAME != nil {
			return true
		}
	}
	return false
}

// chainVisits reports whether target already owns a CNAME in the answer: a loop.
func chainVisits(answer []dns.RR, target string) bool {
	for _, rr := range answer {
		if strings.EqualFold(rr.Header().Name, target) {
			return true
		}
	}
	return false
}

// minimalANY answers ANY with one RRset instead of all of them (RFC 8482
// §4.1), which keeps ANY useless as an amplifier. It prefers the RRset with
// the lowest type code, so the choice is stable across reloads.
func minimalANY(node *zones.Node) *zones.RRset {
	var best *zones.RRset
	sets := node.RRsets()
	for i := range sets {
		if best == nil || sets[i].Type < best.Type {
			best = &sets[i]
		}
	}
	return best
}
