package dnsserver

import (
	"net/netip"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/rrl"
)

// rrlAccount is the rate-limit account a reply to req is charged to
// (package rrl): an answer per question name and type, anything else per
// zone (or none of ours).
func rrlAccount(req, resp *dns.Msg, out *outcome) rrl.Account {
	class := rrl.Error
	switch resp.Rcode {
	case dns.RcodeNameError:
		class = rrl.NXDomain
	case dns.RcodeSuccess:
		switch {
		case out.nxname:
			class = rrl.NXDomain
		case len(resp.Answer) > 0:
			class = rrl.Answer
		case out.cut != "":
			class = rrl.Referral
		default:
			class = rrl.NoData
		}
	}
	if class == rrl.Answer {
		q := req.Question[0] // an answer has a question
		name := q.Name
		if out.wildcard != "" {
			name = out.wildcard
		}
		return rrl.Account{Class: class, Name: rrl.NameHash(name, q.Qtype)}
	}
	return rrl.Account{Class: class, Name: zoneAccount(out)}
}

// limitCheck lets an answer ask rate limiting for its verdict before
// serve does, so that a reply the limiter will drop or slip costs no
// signature made for it alone: the NSEC of a nonexistent name is signed
// only for replies that will be sent, and a random-subdomain flood with
// DO costs at most the limiter's rate in signatures. serve then uses the
// verdict instead of asking again.
type limitCheck struct {
	src     netip.Addr
	start   time.Time
	checked bool
	act     rrl.Action
}

// allows asks the limiter about a, once, and reports whether the reply
// will be sent in full.
func (l *limitCheck) allows(s *Server, a rrl.Account) bool {
	if !l.checked {
		l.checked = true
		l.act = s.rateLimit(l.src, a, l.start)
	}
	return l.act == rrl.Pass || l.act == rrl.Logged
}

// zoneAccount names the zone of a reply that is not an answer; replies
// about no zone of ours share one name.
func zoneAccount(out *outcome) uint64 {
	if out.zone == nil {
		return 0
	}
	return rrl.NameHash(out.zone.Origin(), 0)
}

// rateLimit is the general path's verdict on resp, a UDP reply to req
// from src, counted and (sampled) logged when it is over its limit. The
// UDP fast path checks its own replies (udpfast.Path.Answer).
func (s *Server) rateLimit(src netip.Addr, a rrl.Account, start time.Time) rrl.Action {
	act := s.limiter.Check(src, a, s.limiter.Now(start))
	if act != rrl.Pass {
		s.metrics.rrlN[act][a.Class].Inc()
		s.logLimited(src, a.Class, act)
	}
	return act
}

// logLimited logs, sampled, that a reply to src was over its limit.
func (s *Server) logLimited(src netip.Addr, class rrl.Class, act rrl.Action) {
	e := s.rrlLog.Info() // nil when sampled out: then src is not boxed, which would allocate
	if e == nil {
		return
	}
	e.Stringer("client", src).Str("class", class.String()).Str("action", act.String()).
		Msg("response rate limit reached")
}

// slipReply is the minimal reply that a limited reply slips out as: resp's
// header with TC set, the question and, when the query had one, a bare OPT
// record (RFC 6891 §7: a reply to a query with OPT has one), nothing else,
// so that a real resolver retries over TCP (which is never limited) while a
// forged source gets no more bytes than it sent. The fast path writes the
// same bytes (udpfast's slip). Without an OPT record an extended rcode
// cannot be sent: its low bits stand.
func slipReply(resp *dns.Msg) *dns.Msg {
	m := &dns.Msg{MsgHdr: resp.MsgHdr, Question: resp.Question}
	m.Truncated = true
	m.Compress = false
	if opt := resp.IsEdns0(); opt != nil {
		bare := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		bare.SetUDPSize(opt.UDPSize())
		if opt.Do() {
			bare.SetDo()
		}
		m.Extra = []dns.RR{bare}
	} else {
		m.Rcode &= 0xf
	}
	return m
}
