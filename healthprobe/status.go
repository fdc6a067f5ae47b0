package healthprobe

import "time"

// Result is the latest view of one probe target. It is a plain value.
type Result struct {
	// Healthy is the state after rise/fall hysteresis. It is true for a
	// target not yet probed, so that a restart never blackholes a name.
	Healthy bool
	RTT     time.Duration // smoothed (EWMA, alpha 0.3) RTT of successes; 0: none yet
	// Baseline is the p10 of the last 360 successful RTTs; Penalty is
	// max(0, RTT-Baseline), the latency excess the selector adds.
	Baseline   time.Duration
	Penalty    time.Duration
	Checked    time.Time // when the last probe finished; zero: never probed
	LastChange time.Time // when Healthy last changed (or the first result)
	LastError  string    // error of the last probe; empty if it succeeded
	LastReason string    // its Reason constant; empty if it succeeded
	// Quorum says how a fleet's Combine reached this Result; the zero
	// value in a Prober's own Status.
	Quorum Quorum

	// steering is the tracker's SteeringPenalty, which has hysteresis;
	// steered tells it was set (Results made by NewStatus callers have
	// only a Penalty).
	steering time.Duration
	steered  bool
}

// PenaltyStep is the granularity of the penalty that steers clients: RTT
// noise within a step neither moves clients nor invalidates cached
// decisions.
const PenaltyStep = 5 * time.Millisecond

// SteeringPenalty is what selection adds for the probe's latency: a
// multiple of PenaltyStep. A probed target's rises to Penalty rounded down
// as soon as Penalty reaches the next step, and falls only once Penalty is
// more than half a step below it, to the step nearest Penalty
// (steerPenalty), so that noise around a step's edge does not flip it on
// every probe; it may stand up to half a step above Penalty. Every flip re-decides every client, and a
// loaded server's probes wobbled by a few ms. For a Result with only a
// Penalty it is Penalty rounded down.
func (r Result) SteeringPenalty() time.Duration {
	if r.steered {
		return r.steering
	}
	return r.Penalty - r.Penalty%PenaltyStep
}

// steerPenalty is the steering penalty that follows current when the
// penalty is now p: up to p rounded down when that is higher, down to
// p + half a step rounded down when that is lower, else unchanged.
func steerPenalty(current, p time.Duration) time.Duration {
	if up := p - p%PenaltyStep; up > current {
		return up
	}
	down := p + PenaltyStep/2
	if down -= down % PenaltyStep; down < current {
		return down
	}
	return current
}

// Probed reports whether the target has at least one result.
func (r Result) Probed() bool { return !r.Checked.IsZero() }

// Status is an immutable snapshot of every configured probe's Result,
// keyed by probe ID. Prober publishes a new one on every change; never
// modify one. A nil *Status means no probe is configured; every target then
// counts as healthy. Its methods are safe for concurrent use.
type Status struct {
	Generation uint64 // increases with every published snapshot
	// Steering increases only when what selection reads changes: the set
	// of IDs, a Healthy or a SteeringPenalty. Caches of decisions key on it.
	Steering uint64
	// Health increases when the set of IDs or a Healthy changes, and not
	// for a SteeringPenalty alone: a cache may apply a penalty's change
	// gradually, but a health change at once.
	Health  uint64
	Results map[string]Result

	superseded chan struct{} // closed when a newer snapshot is published
}

// Result returns the result for id and whether id is a configured probe.
// It is safe on a nil Status.
func (s *Status) Result(id string) (Result, bool) {
	if s == nil {
		return Result{}, false
	}
	r, ok := s.Results[id]
	return r, ok
}

// NewStatus returns a Status holding results, for callers that simulate
// probes (tests, the steering simulation); the map is not copied. Its
// Health is steering, so that every change counts as a health change.
func NewStatus(generation, steering uint64, results map[string]Result) *Status {
	return &Status{Generation: generation, Steering: steering, Health: steering, Results: results,
		superseded: make(chan struct{})}
}

// Changes reports what differs from s to t for selection: health (the
// set of IDs or a Healthy), and steering (health or a SteeringPenalty).
func (s *Status) Changes(t *Status) (health, steering bool) {
	if len(s.Results) != len(t.Results) {
		return true, true
	}
	for id, r := range s.Results {
		o, ok := t.Results[id]
		if !ok || o.Healthy != r.Healthy {
			return true, true
		}
		steering = steering || o.SteeringPenalty() != r.SteeringPenalty()
	}
	return false, steering
}
