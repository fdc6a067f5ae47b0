package dnsserver

import (
	"encoding/hex"
	"net/netip"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnscookie"
)

// DNS cookies (RFC 7873) on the general path; package dnscookie makes and
// checks the server cookie (RFC 9018), and the fast path applies the same
// rules to the wire (udpfast). What a query's COOKIE option gets:
//
//   - a length other than 8 or 16 to 40 octets, or a second COOKIE
//     option: FORMERR, with no cookie (RFC 7873 §5.2.2);
//   - a client cookie alone, or with a server cookie that is not valid
//     (another secret, another client address, too old): the answer, as
//     if the query had only the client cookie, with a new server cookie
//     (§5.2.3, §5.2.4);
//   - a valid server cookie: the answer, with the same cookie, or a new
//     one when it is older than half an hour or made with the previous
//     secret (§5.2.5; RFC 9018 §4.3);
//   - no question (QDCOUNT 0), a query for a server cookie (§5.4):
//     NOERROR with the cookie, BADCOOKIE if the server cookie it sent was
//     not valid.
//
// Every reply to a query with a well-formed option carries the client
// cookie and a valid server cookie, last in its OPT record, over UDP and
// TCP alike. The cookie is made for the query's source address, never its
// ECS subnet. BADCOOKIE for an answerable query is left to policy:
// badCookieReply is what the rate limiter sends instead of a slip.

// cookieReply is what a query's COOKIE option asks of the reply.
type cookieReply struct {
	outcome dnscookie.Outcome
	// data is the reply's option: the client cookie and the server
	// cookie, when outcome is ClientOnly, Valid or Invalid.
	data [dnscookie.ReplyLen]byte
}

// echo reports whether the reply carries a COOKIE option.
func (c *cookieReply) echo() bool {
	return c.outcome == dnscookie.ClientOnly || c.outcome == dnscookie.Valid || c.outcome == dnscookie.Invalid
}

// option is the reply's COOKIE option.
func (c *cookieReply) option() *dns.EDNS0_COOKIE {
	return &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hex.EncodeToString(c.data[:])}
}

// judgeCookie reads the COOKIE option of a query from src; outcome None
// when cookies are off or the query has none.
func (s *Server) judgeCookie(e ednsRequest, src netip.Addr) cookieReply {
	var c cookieReply
	secrets := s.cookies.Load()
	switch {
	case secrets == nil || e.cookies == 0:
		return c
	case e.cookies > 1:
		c.outcome = dnscookie.Malformed
		return c
	}
	copy(c.data[:], e.cookie)
	c.outcome = secrets.Reply((*[dnscookie.ServerLen]byte)(c.data[dnscookie.ClientLen:]), e.cookie, src, s.cookieTime())
	return c
}

// cookieTime is the time cookies are made and checked at: seconds since
// 1970, as a serial number (RFC 9018 §4.3).
func (s *Server) cookieTime() uint32 { return uint32(s.now().Unix()) }

// SetCookieSecrets replaces the secrets that server cookies are made and
// checked with, as a reload reads them again; nil keeps those in use (a
// configuration without a secret file keeps the random one made at
// start). It does nothing when cookies are off. Queries in flight finish
// with the secrets they started with.
func (s *Server) SetCookieSecrets(secrets *dnscookie.Secrets) {
	if secrets == nil || s.cookies.Load() == nil {
		return
	}
	c := *secrets
	s.cookies.Store(&c)
}

// badCookieReply is the reply that refuses to answer req, from src, until
// it comes back with a valid server cookie: BADCOOKIE with the client
// cookie and a new server cookie, and nothing else (RFC 7873 §5.2.3).
// The rate limiter slips it instead of a truncated reply to a limited
// query that carried a client cookie (a query with a valid server cookie
// is exempt); nil when req carried no usable client cookie: the limiter
// then slips TC=1.
func (s *Server) badCookieReply(req *dns.Msg, src netip.Addr) *dns.Msg {
	e := parseEDNS(req)
	ck := s.judgeCookie(e, src)
	if !ck.echo() || e.count != 1 {
		return nil
	}
	resp := new(dns.Msg)
	resp.SetRcode(req, dns.RcodeBadCookie)
	// Only the cookie: the refusal is the rate limiter's, as small as it
	// can be.
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}, Option: []dns.EDNS0{ck.option()}}
	opt.SetUDPSize(s.cfg.UDPSize)
	if e.do {
		opt.SetDo()
	}
	resp.Extra = append(resp.Extra, opt)
	return resp
}

// systemNow is the clock of a Server that a test has not given another.
func systemNow() time.Time { return time.Now() }
