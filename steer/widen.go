package steer

import (
	"net/netip"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/latency"
	"github.com/popdns/popdns/zones"
)

// Locator places addresses, as the server's geo.Locator does: Locate
// returns an address's Location, whose Prefix is the whole network that
// Location holds for (the database network, intersected with the ASN
// network, or the empty network around an address in none); Network
// returns that Prefix and the identity of the records the Location comes
// from without decoding them, or false. It must be safe for concurrent
// use.
type Locator interface {
	Locate(netip.Addr) geo.Location
	Network(netip.Addr) (netip.Prefix, geo.RecordID, bool)
}

// DefaultWidenBudget is how many networks [Widen] may look up for one
// decision when its caller has no better figure: enough to merge a few
// hundred neighbouring networks (a German /24 widens to /14 or so in
// GeoLite2 City), few enough that a flood of new client networks costs
// each a bounded number of lookups and rankings.
const DefaultWidenBudget = 256

// Widen returns the widest ECS scope, at most d.Scope bits and never
// narrower, over which the decision d, made by Rank for client at loc
// under env, provably does not change: every address in the returned
// prefix around client gets the same answer (the same targets in the same
// order, or the same NoData or Servfail) from Rank under env.
//
// Rank's scope is the database network around the client, narrowed by
// CIDR rules and latency spans. Widen grows it one bit at a time: the
// prefix one bit shorter is the current one plus its sibling half, so it
// only has to look the sibling's networks up with loc (every network,
// gaps in the database included, comes back from Network as a network)
// and decode and rank each one whose records it has not yet found to
// answer alike. It stops at the first sibling network with another answer
// (a wider prefix would contain it too, so that is the widest), at the
// widest prefix no CIDR rule and no latency span of any of g's PoPs
// splits (inside it the client's address matters only through its
// location), and when it has looked up budget networks (the result is
// then correct, only not the widest). A record with spread is not widened: spread hashes the client
// network at the scope, so a wider scope would change the choice it
// stands for.
//
// cands is scratch for the rankings; Widen does not allocate beyond what
// loc.Locate does. It is safe for concurrent use with distinct cands.
func Widen(g *zones.Geo, qtype uint16, client netip.Addr, d *Decision, env *Env, loc Locator, budget int,
	cands *Candidates) int {
	if d.Untailored || g.SpreadMS > 0 || d.Scope <= 0 || !client.IsValid() {
		return d.Scope
	}
	floor := addrScope(g, client, env)
	s := d.Scope
	var alike alikeSet
	for s > floor {
		p, _ := client.Prefix(s)
		sib := sibling(p)
		ok, used := sameWithin(g, qtype, sib, d, env, loc, budget, cands, &alike)
		budget -= used
		if !ok {
			break
		}
		s--
	}
	return s
}

// addrScope is the scope that the client's address imposes through
// everything but its location: the CIDR rules of g, the latency spans
// of every PoP g names (all of them, whether the rules allow them or not,
// so that it holds whatever the location) and the learned /24 and /48
// cells. Inside a prefix of that length around client every address
// matches the same CIDR rules and finds the same latency entries and
// the same prefix cell.
func addrScope(g *zones.Geo, client netip.Addr, env *Env) int {
	s := scopeBits(g, client, geo.Location{})
	if env.Latency != nil {
		for i := range g.Targets {
			_, lo, hi := env.Latency.Lookup(g.Targets[i].PoP.Name, client, env.Now, env.Options.LatencyMaxAge)
			s = latency.ScopeWithin(client, s, lo, hi)
		}
	}
	if env.Learned != nil {
		lo, hi := env.Learned.PrefixGap(client)
		s = latency.ScopeWithin(client, s, lo, hi)
	}
	return s
}

// sibling returns the other half of p's parent prefix.
func sibling(p netip.Prefix) netip.Prefix {
	bits := p.Bits()
	if p.Addr().Is4() {
		a := p.Addr().As4()
		a[(bits-1)/8] ^= 0x80 >> ((bits - 1) % 8)
		return netip.PrefixFrom(netip.AddrFrom4(a), bits)
	}
	a := p.Addr().As16()
	a[(bits-1)/8] ^= 0x80 >> ((bits - 1) % 8)
	return netip.PrefixFrom(netip.AddrFrom16(a), bits)
}

// sameWithin reports whether every network in p gets d's answer, and how
// many networks it looked up; false also when the budget ran out first.
// alike holds records known to answer as d, which need not be decoded
// and ranked again: neighbouring networks often share their records.
func sameWithin(g *zones.Geo, qtype uint16, p netip.Prefix, d *Decision, env *Env, loc Locator, budget int,
	cands *Candidates, alike *alikeSet) (same bool, used int) {
	last := lastOf(p)
	for a := p.Addr(); ; {
		if used >= budget {
			return false, used
		}
		np, id, ok := loc.Network(a)
		used++
		if !ok {
			return false, used
		}
		end := lastOf(np)
		// Inside the prefix being checked, addresses differ only by
		// location (see addrScope): a stands for all of its network.
		// A network with learned RTTs of its own differs from every other
		// network with its records, so it is ranked as itself.
		if env.Learned.HasNetworkCell(np) {
			l := loc.Locate(a)
			if l.Prefix != np {
				return false, used
			}
			if o := Rank(g, qtype, a, l, env, cands); !sameAnswer(&o, d) {
				return false, used
			}
		} else if !alike.has(id) {
			l := loc.Locate(a)
			if l.Prefix != np { // the database changed under us
				return false, used
			}
			l.Prefix = netip.Prefix{}
			if !alike.hasLoc(&l) {
				if o := Rank(g, qtype, a, l, env, cands); !sameAnswer(&o, d) {
					return false, used
				}
				alike.addLoc(&l)
			}
			alike.add(id)
		}
		if end.Compare(last) >= 0 {
			return true, used
		}
		a = end.Next()
	}
}

// alikeSet holds the last few record identities and locations (Prefix
// cleared) found to answer as the decision being widened, in rings: no
// allocation. Records differ more often than locations do (GeoLite2 gives
// many networks of one city records of their own).
type alikeSet struct {
	ids  [8]geo.RecordID
	n    int
	locs [8]geo.Location
	nl   int
}

func (s *alikeSet) hasLoc(l *geo.Location) bool {
	for i := range min(s.nl, len(s.locs)) {
		if s.locs[i] == *l {
			return true
		}
	}
	return false
}

func (s *alikeSet) addLoc(l *geo.Location) {
	s.locs[s.nl%len(s.locs)] = *l
	s.nl++
}

func (s *alikeSet) has(id geo.RecordID) bool {
	for i := range min(s.n, len(s.ids)) {
		if s.ids[i] == id {
			return true
		}
	}
	return false
}

func (s *alikeSet) add(id geo.RecordID) {
	s.ids[s.n%len(s.ids)] = id
	s.n++
}

// sameAnswer reports whether two decisions answer alike: the same targets
// in the same order, or the same failure.
func sameAnswer(a, b *Decision) bool {
	if a.NoData != b.NoData || a.Servfail != b.Servfail || a.AllDown != b.AllDown || a.N != b.N {
		return false
	}
	for i := range a.N {
		if a.Ranked[i] != b.Ranked[i] {
			return false
		}
	}
	return true
}

// lastOf is the highest address in p.
func lastOf(p netip.Prefix) netip.Addr {
	p = p.Masked()
	if p.Addr().Is4() {
		a := p.Addr().As4()
		for i := p.Bits(); i < 32; i++ {
			a[i/8] |= 0x80 >> (i % 8)
		}
		return netip.AddrFrom4(a)
	}
	a := p.Addr().As16()
	for i := p.Bits(); i < 128; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom16(a)
}
