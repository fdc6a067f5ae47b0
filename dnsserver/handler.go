package dnsserver

import (
	"errors"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnscookie"
	"github.com/popdns/popdns/dnssec"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/internal/rrl"
)

// acceptQuery screens a message by its header before miekg/dns decodes the
// rest. Responses are dropped (answering them invites loops). Messages too
// odd to be worth decoding (more than one record in the answer or
// authority section — one is allowed there for NOTIFY and IXFR, which then
// get NOTIMP and REFUSED —, more additional records than OPT and TSIG,
// more than one question) get FORMERR from miekg/dns. Everything else reaches ServeDNS, which answers
// other opcodes with NOTIMP and a missing question with FORMERR, keeping
// the client's OPT and the metrics right.
func acceptQuery(dh dns.Header) dns.MsgAcceptAction {
	const qrBit = 1 << 15
	if dh.Bits&qrBit != 0 {
		return dns.MsgIgnore
	}
	if dh.Qdcount > 1 || dh.Ancount > 1 || dh.Nscount > 1 || dh.Arcount > 2 {
		return dns.MsgReject
	}
	return dns.MsgAccept
}

// screenReader is the DecorateReader of the general path's miekg/dns
// servers: each message they read goes through screenECS before they
// decode it, so that ServeDNS answers every malformed ECS option with
// FORMERR and an OPT record.
func screenReader(r dns.Reader) dns.Reader { return ecsScreen{r} }

// ecsScreen is a dns.Reader that applies screenECS. It is a
// dns.PacketConnReader when the reader it wraps is one, as miekg/dns's own
// is: the fast path's hand-off (udpfast.Socket.Handoff) needs it.
type ecsScreen struct{ r dns.Reader }

func (e ecsScreen) ReadTCP(conn net.Conn, timeout time.Duration) ([]byte, error) {
	m, err := e.r.ReadTCP(conn, timeout)
	return screenECS(m), err
}

func (e ecsScreen) ReadUDP(conn *net.UDPConn, timeout time.Duration) ([]byte, *dns.SessionUDP, error) {
	m, s, err := e.r.ReadUDP(conn, timeout)
	return screenECS(m), s, err
}

func (e ecsScreen) ReadPacketConn(conn net.PacketConn, timeout time.Duration) ([]byte, net.Addr, error) {
	pr, ok := e.r.(dns.PacketConnReader)
	if !ok {
		return nil, nil, errors.New("dnsserver: the wrapped reader cannot read a net.PacketConn")
	}
	m, a, err := pr.ReadPacketConn(conn, timeout)
	return screenECS(m), a, err
}

// ServeDNS answers one query. It is the dns.Handler of every listener and
// is safe for concurrent use. A panic while answering is contained: the
// client gets SERVFAIL, the panic is counted and logged once, and the
// process keeps serving.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) { s.serve(w, req, udpfast.ExploreDraw) }

// serve is ServeDNS, returning the reply and what it depended on, for the
// UDP fast path's cache of packed replies (fastHost.ServeTraced). The
// trace has no snapshot when nothing was answered from one: no reply, a
// failed write, a panic.
func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg, explore udpfast.Exploring) (resp *dns.Msg, tr udpfast.Trace) {
	start := time.Now()
	tcp := isTCP(w)
	written := false
	defer func() {
		if p := recover(); p != nil {
			s.answerPanic(w, req, p, !written, tcp, start)
		}
	}()
	edns := parseEDNS(req)
	sigs := s.signer.generation() // before any signature is read
	var lim *limitCheck
	if s.limiter != nil && !tcp {
		lim = &limitCheck{src: sourceAddr(w.RemoteAddr()), start: start}
	}
	resp, out := s.respondTo(req, edns, w.RemoteAddr(), false, explore, lim)
	if resp == nil {
		return nil, tr
	}
	if tcp && edns.keepalive {
		s.signalKeepalive(resp)
	}
	// Rate limiting comes before the reply is fitted and packed: a
	// dropped reply costs neither. TCP is never limited, nor a query
	// whose valid server cookie proves its source.
	// The account is named even for a valid cookie: the fast path keeps
	// it with the reply, which answers the next query of the same shape
	// whatever its cookie.
	var account rrl.Account
	if s.limiter != nil && !tcp {
		account = rrlAccount(req, resp, &out)
	}
	if s.limiter != nil && !tcp && !out.validCookie {
		act := lim.act
		if !lim.checked {
			act = s.rateLimit(lim.src, account, start)
		}
		switch act {
		case rrl.Drop:
			return nil, tr
		case rrl.Slip:
			written = true
			// A client with a cookie is told the server cookie that
			// exempts it, so that it retries over UDP (RFC 7873 §5.4);
			// any other gets TC=1 and retries over TCP.
			reply := s.badCookieReply(req, sourceAddr(w.RemoteAddr()))
			if reply == nil {
				reply = slipReply(resp)
			}
			if err := w.WriteMsg(reply); err != nil {
				s.log.Debug().Err(err).Msg("write reply")
			}
			return nil, tr
		}
	}
	limit := s.sizeLimit(edns, tcp)
	size := fit(resp, limit, out.cut)
	err := w.WriteMsg(resp)
	written = true
	if err != nil {
		s.log.Debug().Err(err).Msg("write reply")
		return resp, tr
	}
	s.observe(req, resp, &out, tcp, start)
	tr = out.trace
	tr.Size, tr.Whole, tr.Rcode = size, size <= limit, resp.Rcode
	tr.Zone, tr.PoP = out.zone, out.pop
	tr.Target, tr.ZoneCount = out.target, out.zoneCount
	tr.RRL = account
	tr.Signatures = sigs
	return resp, tr
}

// caseSafe reports whether every name in resp outside the question is in
// lower case, as zone data is, so that how the reply compresses (miekg/dns
// compares names byte for byte) depends on the question's case only
// through its lower-case last labels. It judges by type: these types carry
// no names in their data or names the zones package lower-cases.
func caseSafe(resp *dns.Msg) bool {
	for _, sec := range [3][]dns.RR{resp.Answer, resp.Ns, resp.Extra} {
		for _, rr := range sec {
			switch rr.Header().Rrtype {
			case dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeNS, dns.TypeSOA, dns.TypeMX, dns.TypePTR,
				dns.TypeSRV, dns.TypeNAPTR, dns.TypeSVCB, dns.TypeHTTPS, dns.TypeTXT, dns.TypeCAA,
				dns.TypeDS, dns.TypeDNSKEY, dns.TypeTLSA, dns.TypeSSHFP, dns.TypeOPT,
				dns.TypeRRSIG, dns.TypeNSEC, dns.TypeCDS, dns.TypeCDNSKEY:
			default:
				return false
			}
		}
	}
	return true
}

// respondTo builds the reply to req from a client at src, without regard to
// its size. It returns nil when the query deserves no reply, and what was
// decided: the zone, the zone cut of a referral, the PoP, and how geo
// records decided, explained when explain is set.
//
// lim, when not nil, lets the answer consult rate limiting before it
// signs what it must sign for this query alone (limitCheck).
func (s *Server) respondTo(req *dns.Msg, edns ednsRequest, src net.Addr, explain bool, explore udpfast.Exploring,
	lim *limitCheck) (*dns.Msg, outcome) {
	if req.Response {
		return nil, outcome{}
	}
	resp := new(dns.Msg)
	resp.SetReply(req)
	ecs, ecsOK := parseECS(req)
	q := &request{s: s, resp: resp, explain: explain, explore: explore, do: edns.do, co: edns.do && edns.co, lim: lim}
	q.client = sourceAddr(src)
	// The cookie is the source address's, whatever the client subnet.
	q.cookie = s.judgeCookie(edns, q.client)
	q.validCookie = q.cookie.outcome == dnscookie.Valid
	switch {
	case !ecsOK: // FORMERR: a malformed option neither placed the client nor was ignored
	case ecs.usable():
		q.client = ecs.prefix.Addr()
		q.ecs = ecsUsed
	case ecs.present:
		q.ecs = ecsIgnored
	}
	switch {
	case !ecsOK:
		resp.Rcode = dns.RcodeFormatError // RFC 7871 §7.2.1
	case q.cookie.outcome == dnscookie.Malformed:
		resp.Rcode = dns.RcodeFormatError // RFC 7873 §5.2.2
	default:
		s.answer(req, q, edns)
	}
	// An OPT in the reply exactly when the query had one (RFC 6891 §7), last
	// in the additional section.
	if edns.present && edns.count == 1 {
		opt := s.replyOPT(edns)
		if ecs.present && ecsOK && resp.Rcode != dns.RcodeFormatError {
			q.replyScope = q.ecsScope(ecs)
			opt.Option = append(opt.Option, ecs.reply(q.replyScope))
		}
		// The cookie last: the fast path patches it there.
		if q.cookie.echo() {
			opt.Option = append(opt.Option, q.cookie.option())
		}
		resp.Extra = append(resp.Extra, opt)
	}
	return resp, q.outcome
}

// ecsScope is the SCOPE PREFIX-LENGTH of the reply (RFC 7871 §7.2.1): how
// far around the client subnet the answer holds. An answer that depended
// on no client holds everywhere: 0; so does any answer to SOURCE 0, which
// asks for none. A tailored answer holds over the network it was decided
// for. An answer tailored to the query's source address, because the
// subnet was private, holds for that subnet only: scope 0 would let the
// resolver give its own location's answer to every client subnet.
func (q *request) ecsScope(ecs clientSubnet) int {
	return udpfast.ReplyScope(q.tailored, q.scope, ecs.source, ecs.usable())
}

func sourceAddr(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.UDPAddr:
		addr, _ := netip.AddrFromSlice(v.IP)
		return addr.Unmap()
	case *net.TCPAddr:
		addr, _ := netip.AddrFromSlice(v.IP)
		return addr.Unmap()
	case *udpfast.Peer:
		return v.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// answer sets the rcode and sections of q.resp for req.
func (s *Server) answer(req *dns.Msg, q *request, edns ednsRequest) {
	resp := q.resp
	if req.Opcode != dns.OpcodeQuery {
		resp.Rcode = dns.RcodeNotImplemented
		return
	}
	if len(req.Question) == 0 && edns.count == 1 && q.cookie.echo() {
		// A query for a server cookie (RFC 7873 §5.4): the reply is the
		// cookie, and BADCOOKIE if the one the query sent is not valid;
		// an EDNS version we do not speak comes first, as for any query.
		switch {
		case edns.version != 0:
			resp.Rcode = dns.RcodeBadVers // RFC 6891 §6.1.3
		case q.cookie.outcome == dnscookie.Invalid:
			resp.Rcode = dns.RcodeBadCookie
		}
		return
	}
	if edns.count > 1 || len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError // RFC 6891 §6.1.1, RFC 9619
		return
	}
	if edns.present && edns.version != 0 {
		resp.Rcode = dns.RcodeBadVers // RFC 6891 §6.1.3
		return
	}
	question := req.Question[0]
	switch {
	case question.Qclass != dns.ClassINET:
		resp.Rcode = dns.RcodeRefused // we only hold IN data
		return
	case question.Qtype == dns.TypeAXFR || question.Qtype == dns.TypeIXFR:
		resp.Rcode = dns.RcodeRefused // zone transfers are not offered
		return
	case question.Qtype == dns.TypeOPT || question.Qtype == dns.TypeTSIG || question.Qtype == dns.TypeTKEY ||
		question.Qtype == dnssec.TypeNXNAME:
		resp.Rcode = dns.RcodeFormatError // meta types cannot be asked for (RFC 6895 §3.1, RFC 9824 §3.5)
		return
	}
	qname := strings.ToLower(question.Name)
	q.snap = s.zones.Load()
	q.trace.Snap = q.snap
	zone := q.snap.Match(qname)
	if zone == nil {
		resp.Rcode = dns.RcodeRefused
		return
	}
	if question.Qtype == dns.TypeDS && zone.Origin() == qname && qname != "." {
		// A zone's DS is its parent's data (RFC 4035 §3.1.4.1): when we
		// serve the parent too, the parent side answers, signed as the
		// parent is, so that a validator can follow the chain down.
		parent := "."
		if off, end := dns.NextLabel(qname, 0); !end {
			parent = qname[off:]
		}
		if p := q.snap.Match(parent); p != nil {
			zone = p
		}
	}
	q.zone = zone
	q.qtype = question.Qtype
	q.resolve(zone, qname)
}

// answerPanic contains a panic: it is counted and logged, and the client
// gets SERVFAIL, with an OPT if it sent one (else it might decide that we
// do not speak EDNS), unless a reply had already been written (a panic
// after the write must not send a second one).
func (s *Server) answerPanic(w dns.ResponseWriter, req *dns.Msg, p any, reply, tcp bool, start time.Time) {
	s.metrics.panics.Inc()
	qname := ""
	if req != nil && len(req.Question) > 0 {
		qname = req.Question[0].Name
	}
	s.log.Error().Str("qname", qname).Interface("panic", p).Bytes("stack", debug.Stack()).
		Msg("panic while answering a query; replied SERVFAIL")
	if !reply || req == nil {
		return
	}
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	if e := parseEDNS(req); e.present && e.count == 1 {
		m.Extra = append(m.Extra, s.replyOPT(e))
	}
	if w.WriteMsg(m) == nil {
		s.observe(req, m, nil, tcp, start)
	}
}

// observe counts an answered query; out is nil for a panic's SERVFAIL.
func (s *Server) observe(req, resp *dns.Msg, out *outcome, tcp bool, start time.Time) {
	proto := "udp"
	if tcp {
		proto = "tcp"
	}
	var qtype uint16
	qname := ""
	if len(req.Question) > 0 {
		qtype, qname = req.Question[0].Qtype, req.Question[0].Name
	}
	elapsed := time.Since(start)
	zone := "none"
	if out != nil {
		if out.zone != nil {
			zone = out.zone.Origin()
			out.zoneCount = s.traffic.Zone(zone)
			out.zoneCount.Add(1)
		}
		out.target.Count(out.place)
		s.metrics.observeGeo(out, resp.Rcode)
		if s.cookies.Load() != nil {
			s.metrics.cookies.WithLabelValues(out.cookie.outcome.String()).Inc()
		}
	}
	s.metrics.requests.WithLabelValues(proto, zone, qtypeLabel(qtype), rcodeLabel(resp.Rcode)).Inc()
	duration := s.metrics.durationUDP
	if tcp {
		duration = s.metrics.durationTCP
	}
	duration.observe(elapsed.Seconds())
	if s.cfg.QueryLog {
		s.log.Info().Str("proto", proto).Str("qname", qname).Str("qtype", dns.TypeToString[qtype]).
			Str("rcode", dns.RcodeToString[resp.Rcode]).Dur("took", elapsed).Msg("query")
	}
}

func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.LocalAddr().(*net.TCPAddr)
	return ok
}
