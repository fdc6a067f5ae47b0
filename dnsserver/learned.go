package dnsserver

import "github.com/popdns/popdns/latency/learn"

// SetLearned makes snap the learned-latency table the server decides
// with; nil holds none. The swap is atomic, and the owner of the table
// (cmd/popdns's learned.Service) publishes a new snapshot every publish
// interval. A snapshot's generation is a gradual part of the decision
// epoch (steer.Epoch): cached decisions are re-made a few clients at a
// time after a publish, not all at once.
func (s *Server) SetLearned(snap *learn.Snapshot) { s.learned.Store(snap) }

// Learned returns the learned-latency table set last; nil when none.
func (s *Server) Learned() *learn.Snapshot { return s.learned.Load() }
