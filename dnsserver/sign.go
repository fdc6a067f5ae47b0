package dnsserver

import (
	"slices"
	"strings"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnssec"
	"github.com/popdns/popdns/zones"
)

// signs reports whether answers from zone to this query carry DNSSEC
// records: the query set DO and the zone is signed. A query without DO
// gets the unsigned reply, byte for byte.
func (q *request) signs(zone *zones.Zone) bool {
	return q.do && zone.DNSSEC() != nil
}

// appendSigned appends rrs, an RRset of zone owned by node, to the answer
// section, rewritten to name when synthesised from a wildcard, with its
// RRSIGs when the answer is signed; a wildcard answer also proves that
// name itself does not exist (RFC 4035 §3.1.3.3).
func (q *request) appendSigned(zone *zones.Zone, rrs []dns.RR, synthesize bool, node *zones.Node, name string) {
	q.resp.Answer = appendAnswer(q.resp.Answer, rrs, synthesize, name)
	if !q.signs(zone) || len(rrs) == 0 {
		return
	}
	sigs := q.s.signer.rrsetSigs(zone, rrs)
	if synthesize {
		sigs = dnssec.Renamed(sigs, name)
	}
	q.resp.Answer = append(q.resp.Answer, sigs...)
	if synthesize {
		q.proveWildcard(zone, node, name)
	}
}

// appendAdditional appends the in-zone addresses an answer's targets
// have (zones.RRset.Additional) to the additional section, each RRset
// with its RRSIGs when the answer is signed (RFC 4035 §3.1.1); fit drops
// them first when the reply is too big.
func (q *request) appendAdditional(zone *zones.Zone, rrs []dns.RR) {
	q.resp.Extra = append(q.resp.Extra, rrs...)
	if !q.signs(zone) {
		return
	}
	for i := 0; i < len(rrs); {
		h := rrs[i].Header()
		j := i + 1
		for j < len(rrs) && rrs[j].Header().Rrtype == h.Rrtype && rrs[j].Header().Name == h.Name {
			j++
		}
		// Addresses below a zone cut are glue, the child's: unsigned.
		if zone.CutAtOrAbove(h.Name) == nil {
			q.resp.Extra = append(q.resp.Extra, q.s.signer.rrsetSigs(zone, rrs[i:j])...)
		}
		i = j
	}
}

// appendCNAME is appendSigned for a CNAME; an unsigned answer does not
// allocate for it.
func (q *request) appendCNAME(zone *zones.Zone, cname dns.RR, synthesize bool, node *zones.Node, name string) {
	if !q.signs(zone) {
		q.resp.Answer = appendAnswer(q.resp.Answer, []dns.RR{cname}, synthesize, name)
		return
	}
	q.appendSigned(zone, []dns.RR{cname}, synthesize, node, name)
}

// signGeo appends the RRSIGs of a geo answer: one RRset made of the
// address sets of the ranked targets. One target's set is presigned; a
// combination of several is signed when first answered.
func (q *request) signGeo(zone *zones.Zone, node *zones.Node, g *zones.Geo, qtype uint16, ranked []uint8,
	synthesize bool, name string) {
	pick := func(t *zones.GeoTarget) []dns.RR {
		if qtype == dns.TypeAAAA {
			return t.AAAA
		}
		return t.A
	}
	var sigs []dns.RR
	if len(ranked) == 1 {
		rrs := pick(&g.Targets[ranked[0]])
		if len(rrs) == 0 {
			return
		}
		sigs = q.s.signer.rrsetSigs(zone, rrs)
	} else {
		var rrs []dns.RR
		var targets zones.TargetSet
		for _, idx := range ranked {
			rrs = append(rrs, pick(&g.Targets[idx])...)
			targets |= 1 << idx
		}
		if len(rrs) == 0 {
			return
		}
		sigs = q.s.signer.geoSigs(zone, g, qtype, targets, rrs)
	}
	if synthesize {
		sigs = dnssec.Renamed(sigs, name)
	}
	q.resp.Answer = append(q.resp.Answer, sigs...)
	if synthesize {
		q.proveWildcard(zone, node, name)
	}
}

// proveWildcard adds to the authority section the proof that name, which
// a wildcard node answered, does not exist itself: an NSEC covering the
// next closer name (RFC 4035 §3.1.3.3, RFC 4470), made on the query path.
func (q *request) proveWildcard(zone *zones.Zone, wildcard *zones.Node, name string) {
	encloser := strings.TrimPrefix(wildcard.Name(), "*.")
	labels := dns.SplitDomainName(name)
	depth := dns.CountLabel(encloser) + 1
	if len(labels) < depth {
		return
	}
	nextCloser := dns.Fqdn(strings.Join(labels[len(labels)-depth:], "."))
	if !q.limitAllows() {
		return // dropped or slipped: not worth a signature
	}
	q.resp.Ns = append(q.resp.Ns, q.s.signer.madeNSEC(zone, nsecCovering, nextCloser, func() []uint16 {
		// The covering NSEC's owner lies before the next closer name;
		// should a name of the zone own it, it lists that name's types.
		owner := dnssec.CoveringNSEC(nextCloser, 0).Hdr.Name
		if n := zone.Node(strings.ToLower(owner)); n != nil {
			return nodeTypes(n)
		}
		return nil
	})...)
}

// noData fills the authority section of a NODATA answer at node (RFC 2308
// §2.2): the zone's SOA, and for a signed answer its RRSIGs and the
// compact NSEC of the name (RFC 9824 §3.2). A name that exists only
// through a wildcard gets a compact NSEC of its own, listing the
// wildcard's types, as if it existed.
func (q *request) noData(zone *zones.Zone, node *zones.Node, synthesize bool, name string) {
	q.appendNegativeSOA(zone)
	if !q.signs(zone) {
		return
	}
	if synthesize {
		if !q.limitAllows() {
			return // dropped or slipped: not worth a signature
		}
		q.resp.Ns = append(q.resp.Ns, q.s.signer.madeNSEC(zone, nsecWildcard, name, func() []uint16 { return nodeTypes(node) })...)
		return
	}
	if types := nodeTypes(node); slices.Contains(types, q.qtype) {
		// A geo rule left this client no target of the type others get:
		// the proof must not list it (RFC 4035 §5.4), so it lists the
		// name's other types.
		q.resp.Ns = append(q.resp.Ns, q.s.signer.madeNSEC(zone, nsecRuled, node.Name()+"/"+dns.TypeToString[q.qtype], func() []uint16 {
			return slices.DeleteFunc(types, func(t uint16) bool { return t == q.qtype })
		})...)
		return
	}
	q.resp.Ns = append(q.resp.Ns, q.s.signer.nodeNSEC(zone, node)...)
}

// limitAllows asks rate limiting, once per query, whether the reply
// (as it stands: its account is what serve will charge) will be sent in
// full: what is signed for this query alone is signed only then.
func (q *request) limitAllows() bool {
	if q.lim == nil || q.validCookie {
		return true
	}
	return q.lim.allows(q.s, rrlAccount(q.resp, q.resp, &q.outcome))
}

// appendNegativeSOA adds the zone's negative SOA to the authority section,
// with its RRSIGs when the answer is signed.
func (q *request) appendNegativeSOA(zone *zones.Zone) {
	soa := zone.NegativeSOA()
	q.resp.Ns = append(q.resp.Ns, soa)
	if q.signs(zone) {
		q.resp.Ns = append(q.resp.Ns, q.s.signer.rrsetSigs(zone, []dns.RR{soa})...)
	}
}

// denyName answers, signed, that name does not exist, the compact way
// (RFC 9824 §3.1): NOERROR with the SOA and an NSEC at name whose bitmap
// holds NXNAME, so that one signature made now proves it without walking
// the zone's names. A query with the CO flag gets its NXDOMAIN back
// (RFC 9824 §4). Rate limiting counts it as a nonexistent name either way.
func (q *request) denyName(zone *zones.Zone, name string) {
	q.nxname = true
	if q.co {
		q.resp.Rcode = dns.RcodeNameError
	}
	q.appendNegativeSOA(zone)
	if !q.limitAllows() {
		return // dropped or slipped: not worth a signature
	}
	q.resp.Ns = append(q.resp.Ns, q.s.signer.madeNSEC(zone, nsecNXName, name, nil)...)
}

// proveDelegation adds to a signed referral to cut the DS RRset and its
// RRSIGs, or, for an unsigned child, the cut's NSEC proving it has no DS
// (RFC 4035 §3.1.4). The NS RRset stays unsigned: the child owns it.
func (q *request) proveDelegation(zone *zones.Zone, cut *zones.Node) {
	if ds := cut.RRset(dns.TypeDS); ds != nil {
		q.resp.Ns = append(q.resp.Ns, ds.RRs...)
		q.resp.Ns = append(q.resp.Ns, q.s.signer.rrsetSigs(zone, ds.RRs)...)
		return
	}
	q.resp.Ns = append(q.resp.Ns, q.s.signer.nodeNSEC(zone, cut)...)
}
