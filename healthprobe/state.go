package healthprobe

import (
	"slices"
	"time"
)

// Latency tracking parameters.
const (
	// EWMAAlpha is the weight of the newest RTT in the smoothed RTT.
	EWMAAlpha = 0.3
	// BaselineWindow is how many successful RTTs the baseline is taken
	// over: an hour at the default interval, so that a slowdown keeps its
	// penalty for long (a shorter window soon takes the slow RTTs for
	// normal and sends the clients back).
	BaselineWindow = 360

	ewmaAlpha      = EWMAAlpha
	baselineWindow = BaselineWindow
	baselinePct    = 0.1 // the baseline is this percentile of the window
)

// Tracker is the state of one probe target exactly as a Prober keeps it,
// for callers that simulate probes (the steering simulation) rather than
// run them: feed it results with Observe and read Result. It is not safe
// for concurrent use.
type Tracker struct{ t *tracker }

// NewTracker returns the state of a target not yet probed, with the given
// rise and fall thresholds.
func NewTracker(rise, fall int) *Tracker { return &Tracker{newTracker(rise, fall)} }

// Observe records one probe that finished at now: a success taking rtt
// when err is nil, else a failure. It reports whether Healthy changed.
func (t *Tracker) Observe(now time.Time, rtt time.Duration, err error) bool {
	reason := ""
	if err != nil {
		reason = classify(err)
	}
	return t.t.observe(now, rtt, err, reason)
}

// Result is the target's state as a Prober would publish it.
func (t *Tracker) Result() Result { return t.t.result() }

// tracker is the state machine of one probe: rise/fall hysteresis plus RTT
// smoothing. It is not safe for concurrent use; Prober guards it with mu.
type tracker struct {
	rise, fall int

	probed     bool // at least one result; before that the target counts as healthy
	healthy    bool
	succ, fail int // consecutive successes and failures
	lastErr    string
	lastReason string
	checked    time.Time // last result
	changed    time.Time // last change of healthy (or the first result)

	ewma     time.Duration // smoothed RTT of successes; 0 until the first
	window   []time.Duration
	next     int           // ring index into window once it is full
	steering time.Duration // SteeringPenalty, moved by steerPenalty
}

func newTracker(rise, fall int) *tracker {
	return &tracker{rise: rise, fall: fall, healthy: true}
}

// observe records one probe result at now and reports whether healthy
// changed. The first result decides the state outright; later ones need
// rise consecutive successes to go up and fall consecutive failures to go
// down. A failure with an empty reason is classified as ReasonOther.
func (t *tracker) observe(now time.Time, rtt time.Duration, err error, reason string) (changed bool) {
	first := !t.probed
	t.probed = true
	t.checked = now
	was := t.healthy
	if err == nil {
		t.succ++
		t.fail = 0
		t.lastErr, t.lastReason = "", ""
		t.addRTT(rtt)
		if first || t.succ >= t.rise {
			t.healthy = true
		}
	} else {
		t.fail++
		t.succ = 0
		if reason == "" {
			reason = ReasonOther
		}
		t.lastErr, t.lastReason = err.Error(), reason
		if first || t.fail >= t.fall {
			t.healthy = false
		}
	}
	if first || was != t.healthy {
		t.changed = now
	}
	return was != t.healthy
}

// addRTT folds a successful RTT into the EWMA and the baseline window.
func (t *tracker) addRTT(rtt time.Duration) {
	if t.ewma == 0 {
		t.ewma = rtt
	} else {
		t.ewma = time.Duration(ewmaAlpha*float64(rtt) + (1-ewmaAlpha)*float64(t.ewma))
	}
	if len(t.window) < baselineWindow {
		t.window = append(t.window, rtt)
	} else {
		t.window[t.next] = rtt
		t.next = (t.next + 1) % baselineWindow
	}
	t.steering = steerPenalty(t.steering, t.penalty())
}

// baseline is the nearest-rank p10 of the recent successful RTTs, or 0.
func (t *tracker) baseline() time.Duration {
	n := len(t.window)
	if n == 0 {
		return 0
	}
	s := slices.Clone(t.window)
	slices.Sort(s)
	i := int(baselinePct*float64(n)+0.999999) - 1 // ceil(p*n) - 1
	return s[max(i, 0)]
}

// penalty is how far the smoothed RTT exceeds the baseline, never negative.
func (t *tracker) penalty() time.Duration {
	return max(0, t.ewma-t.baseline())
}

// result renders the tracker as a Result.
func (t *tracker) result() Result {
	b := t.baseline()
	return Result{
		Healthy:    t.healthy,
		RTT:        t.ewma,
		Baseline:   b,
		Penalty:    max(0, t.ewma-b),
		Checked:    t.checked,
		LastChange: t.changed,
		LastError:  t.lastErr,
		LastReason: t.lastReason,
		steering:   t.steering,
		steered:    true,
	}
}
