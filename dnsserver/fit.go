package dnsserver

import "github.com/miekg/dns"

// fit makes resp no larger than limit bytes. Additional records go first,
// from the end, as they are optional (RFC 2181 §9) — except the in-domain
// glue of a referral to cut, whose loss sets TC (RFC 9471 §3.1); cut is ""
// for other replies. If the answer and authority
// sections still do not fit, TC is set and they are emptied, so the
// resolver retries over TCP (RFC 7766 §5) instead of caching a partial
// RRset. It returns the length it measured before cutting anything.
func fit(resp *dns.Msg, limit int, cut string) int {
	resp.Compress = true
	size := resp.Len()
	if size <= limit {
		return size
	}
	var opt dns.RR
	extra := resp.Extra[:0:0]
	for _, rr := range resp.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opt = rr
			continue
		}
		extra = append(extra, rr)
	}
	withOPT := func(rrs []dns.RR) []dns.RR {
		if opt == nil {
			return rrs
		}
		return append(rrs[:len(rrs):len(rrs)], opt)
	}
	for len(extra) > 0 {
		dropped := extra[len(extra)-1]
		extra = extra[:len(extra)-1]
		resp.Extra = withOPT(extra)
		if cut != "" && dns.IsSubDomain(cut, dropped.Header().Name) {
			resp.Truncated = true
		}
		if resp.Len() <= limit {
			return size
		}
	}
	resp.Truncated = true
	resp.Answer, resp.Ns, resp.Extra = nil, nil, withOPT(nil)
	return size
}
