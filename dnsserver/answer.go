package dnsserver

import (
	"strings"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/zones"
)

// maxCNAMEChain bounds how many CNAMEs one answer follows, so that a loop
// or an absurd chain across our zones ends quickly. Like other
// authoritative servers we then return the chain so far and let the
// resolver continue.
const maxCNAMEChain = 8

// resolve fills resp's sections and rcode with the authoritative answer for
// qname/qtype from zone, following CNAMEs into any zone of snap
// (RFC 1034 §4.3.2, RFC 2308, RFC 4592, RFC 6604). qname is a lowercase
// FQDN inside zone.
func resolve(snap *zones.Snapshot, zone *zones.Zone, resp *dns.Msg, qname string, qtype uint16) {
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
			return
		case zones.NameError:
			resp.Rcode = dns.RcodeNameError
			resp.Ns = append(resp.Ns, zone.NegativeSOA())
			return
		}

		node := m.Node
		synthesize := m.Kind == zones.WildcardMatch
		if cname := node.RRset(dns.TypeCNAME); cname != nil && qtype != dns.TypeCNAME && qtype != dns.TypeANY {
			resp.Answer = appendAnswer(resp.Answer, cname.RRs, synthesize, name)
			target := strings.ToLower(cname.RRs[0].(*dns.CNAME).Target)
			if hops+1 >= maxCNAMEChain || chainVisits(resp.Answer, target) {
				return
			}
			next := snap.Match(target)
			if next == nil {
				return // out of our authority: the resolver follows it
			}
			zone, name = next, target
			continue
		}

		var set *zones.RRset
		if qtype == dns.TypeANY {
			set = minimalANY(node)
		} else {
			set = node.RRset(qtype)
		}
		if set == nil {
			resp.Ns = append(resp.Ns, zone.NegativeSOA()) // NODATA (RFC 2308 §2.2)
			return
		}
		resp.Answer = appendAnswer(resp.Answer, set.RRs, synthesize, name)
		resp.Extra = append(resp.Extra, set.Additional...)
		return
	}
}

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
