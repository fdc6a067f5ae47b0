package dnsserver

import "github.com/popdns/popdns/latency/learn"

// SetLearned makes snap the learned-latency table the server holds; nil
// holds none. The swap is atomic, and the owner of the table (cmd/popdns's
// learned.Service) publishes a new snapshot every publish interval.
//
// Selection does not read it yet: steer.Rank ranks by distance, latency
// tables and probes only, and the decision cache is not keyed by the
// table's generation. Wiring it into the selection (and the cache) is the
// next step of issue 17; until then the table is learned, persisted,
// exported and shown, but answers do not depend on it.
func (s *Server) SetLearned(snap *learn.Snapshot) { s.learned.Store(snap) }

// Learned returns the learned-latency table set last; nil when none.
func (s *Server) Learned() *learn.Snapshot { return s.learned.Load() }
