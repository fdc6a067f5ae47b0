package dnsserver

import (
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Exploration (Config.ExplorePct): a share of the geo answers whose
// decision names an exploration target (steer.Decision.Explore) put it
// first, so that learned latency gets measurements of the PoPs a client
// could move to. The decision stays the client's: its cache entries, its
// ECS scope and its other answers are untouched, and only the answer's
// order changes (udpfast.ExploredOrder). The UDP fast path draws and
// answers the same way (package udpfast, Config.Explore).

// exploring reports whether the answer from decision d explores: puts its
// exploration target first. An explanation never does; it shows the
// target instead.
func (q *request) exploring(d *udpfast.Decision) bool {
	if q.explain || !d.Explores() {
		return false
	}
	switch q.explore {
	case udpfast.ExploreNever:
		return false
	case udpfast.ExploreAlways:
		return true
	}
	return q.s.explore.Draw()
}

// Explored returns how many answers explored each PoP since the server
// started (popdns_learned_explored_total), for the status page; PoPs
// never explored are left out. It reads the metric, which costs a few
// µs per PoP: not for the query path.
func (s *Server) Explored() map[string]uint64 {
	ch := make(chan prometheus.Metric, 16)
	go func() {
		s.metrics.explored.Collect(ch)
		close(ch)
	}()
	out := map[string]uint64{}
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil || len(d.GetLabel()) != 1 {
			continue
		}
		out[d.GetLabel()[0].GetValue()] += uint64(d.GetCounter().GetValue())
	}
	return out
}
