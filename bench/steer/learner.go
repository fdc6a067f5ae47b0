package main

import (
	"net/netip"
	"time"
)

// Learner is what the learned mode of the simulation needs of a latency
// learner: measurements in, an estimate per (client key, PoP) out. key is
// the subnet popdns decides for (the client's /24 with ECS, the resolver's
// /24 without), so a learner learns what a resolver's clients see when the
// measurement is joined to the resolver that asked, as RUM systems do with
// per-beacon hostnames. The learned-latency package plugs in here through a
// small adapter; standInLearner only exercises the interface.
type Learner interface {
	// Observe records one RTT measurement, in ms, from key to pop at at.
	Observe(key netip.Prefix, pop string, rttMS float64, at time.Time)
	// Estimate is the learner's RTT for key to pop at at; ok is false
	// when it has none it trusts.
	Estimate(key netip.Prefix, pop string, at time.Time) (rttMS float64, ok bool)
}

// standInLearner is a STAND-IN for the learned-latency package, not a
// model of it: an EWMA per (/24, PoP) with no coarser cells, no decay
// other than forgetting an estimate older than maxAge. It exists so that
// the learned mode and the Learner interface run end to end.
type standInLearner struct {
	alpha  float64
	maxAge time.Duration
	cells  map[standInCell]standInEntry
}

type standInCell struct {
	key netip.Prefix
	pop string
}

type standInEntry struct {
	rtt  float64
	last time.Time
}

// newStandInLearner returns an EWMA learner with smoothing alpha that
// forgets a cell not measured for maxAge.
func newStandInLearner(alpha float64, maxAge time.Duration) *standInLearner {
	return &standInLearner{alpha: alpha, maxAge: maxAge, cells: map[standInCell]standInEntry{}}
}

func (l *standInLearner) Observe(key netip.Prefix, pop string, rttMS float64, at time.Time) {
	c := standInCell{key.Masked(), pop}
	e, ok := l.cells[c]
	if !ok || at.Sub(e.last) > l.maxAge {
		e.rtt = rttMS
	} else {
		e.rtt += l.alpha * (rttMS - e.rtt)
	}
	e.last = at
	l.cells[c] = e
}

func (l *standInLearner) Estimate(key netip.Prefix, pop string, at time.Time) (float64, bool) {
	e, ok := l.cells[standInCell{key.Masked(), pop}]
	if !ok || at.Sub(e.last) > l.maxAge {
		return 0, false
	}
	return e.rtt, true
}

// PerKeyOnly tells the timeline that this learner answers for a /24 only
// from that /24's own measurements, so the measurements of a network's
// other /24s need not be generated (they would fill memory unread).
func (l *standInLearner) PerKeyOnly() bool { return true }
