package dnsserver

import (
	"net/netip"
	"runtime/debug"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnscookie"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/internal/rrl"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
)

// fastHost is the Server as the UDP fast path (package udpfast) sees it:
// what it answers from, how it decides, and the general path it learns
// from. A type of its own, so that the methods the fast path needs do not
// widen the Server's API.
type fastHost struct{ s *Server }

var _ udpfast.Host = fastHost{}

func (h fastHost) Snapshot() *zones.Snapshot { return h.s.zones.Load() }

func (h fastHost) Signatures() uint64 { return h.s.signer.generation() }

func (h fastHost) Epoch(snap *zones.Snapshot) steer.Epoch { return h.s.decisionEnv(snap).Epoch }

func (h fastHost) Cached(g *zones.Geo, qtype uint16, client netip.Addr, resolver bool, epoch steer.Epoch) *udpfast.Decision {
	return h.s.cache.get(cacheKey{geo: g, qtype: qtype, client: client, resolver: resolver}, epoch)
}

// Widenings is how many decisions the widener has finished (widen.go).
func (h fastHost) Widenings() uint64 { return h.s.widen.done.Load() }

// Decide makes and caches the decision for client through Server.decide,
// as the general path's decideCached does, but without decoding the query
// into a dns.Msg and packing a reply: after a penalty step every client
// is re-decided, and through the general path each left kilobytes of
// garbage, whose collection then shared the CPU with the reader.
func (h fastHost) Decide(snap *zones.Snapshot, g *zones.Geo, qtype uint16, client netip.Addr, resolver bool,
	cands *steer.Candidates) (*udpfast.Decision, steer.Epoch) {
	s := h.s
	env := s.decisionEnv(snap)
	_, cd := s.decide(&env, g, qtype, client, resolver, s.locateFor(client, resolver), cands, true)
	return cd, env.Epoch
}

// ServeTraced is ServeDNS with the trace the fast path learns from. Only
// the fast path needs CaseSafe, so ServeDNS does not pay for it.
func (h fastHost) ServeTraced(w dns.ResponseWriter, req *dns.Msg, explore udpfast.Exploring) udpfast.Trace {
	resp, tr := h.s.serve(w, req, explore)
	if tr.Snap != nil {
		tr.CaseSafe = caseSafe(resp)
	}
	return tr
}

func (h fastHost) LogAllDown(g *zones.Geo, servfail bool) { h.s.logAllDown(g, servfail) }

func (h fastHost) LogLimited(src netip.Addr, class rrl.Class, act rrl.Action) {
	h.s.logLimited(src, class, act)
}

// Panicked contains a panic of the fast path: it is counted and logged,
// and the query goes to the general path.
func (h fastHost) Panicked(p any) {
	h.s.metrics.panics.Inc()
	h.s.log.Error().Interface("panic", p).Bytes("stack", debug.Stack()).
		Msg("panic on the UDP fast path; the general path answers")
}

// Cookies are the secrets and time the general path makes cookies with.
func (h fastHost) Cookies() (*dnscookie.Secrets, uint32) { return h.s.cookies.Load(), h.s.cookieTime() }

// fastConfig is what the fast path's readers read of the configuration,
// and the metrics their replies count in.
func (s *Server) fastConfig() udpfast.Config {
	m := s.metrics
	return udpfast.Config{
		UDPSize:  s.cfg.UDPSize,
		QueryLog: s.cfg.QueryLog,
		Cookies:  s.cookies.Load() != nil,
		RRL:      s.limiter,
		Explore:  s.explore,
		Metrics: udpfast.Metrics{
			Duration: m.durationUDP,
			Scope:    m.scopeAll,
			Requests: func(zone string, qtype uint16, rcode int) prometheus.Counter {
				return m.requests.WithLabelValues("udp", zone, qtypeLabel(qtype), rcodeLabel(rcode))
			},
			ECS:          m.ecs,
			AllDown:      m.allDown,
			Cookies:      m.cookies,
			RRL:          &m.rrlN,
			DecisionHit:  m.decisionHit,
			DecisionMiss: m.decisionMiss,
			DecisionMemo: m.decisionMemo,
			Explored:     func(pop string) prometheus.Counter { return m.explored.WithLabelValues(pop) },
		},
	}
}
