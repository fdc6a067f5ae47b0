package healthprobe

import (
	"errors"
	"testing"
	"time"
)

func TestTrackerRiseFall(t *testing.T) {
	errX := errors.New("x")
	// Each step is a probe result (true = success) and the state after it.
	tests := []struct {
		name       string
		rise, fall int
		steps      []bool
		want       []bool
	}{
		{"first failure decides", 2, 3, []bool{false}, []bool{false}},
		{"first success decides", 2, 3, []bool{true}, []bool{true}},
		{"fall after three", 2, 3, []bool{true, false, false, false, false}, []bool{true, true, true, false, false}},
		{"flap does not fall", 2, 3, []bool{true, false, false, true, false, false, true}, []bool{true, true, true, true, true, true, true}},
		{"rise after two", 2, 3, []bool{false, true, true, true}, []bool{false, false, true, true}},
		{"rise interrupted", 2, 3, []bool{false, true, false, true, true}, []bool{false, false, false, false, true}},
		{"rise 1 fall 1", 1, 1, []bool{true, false, true, false}, []bool{true, false, true, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker(tc.rise, tc.fall)
			if !tr.result().Healthy {
				t.Fatal("unprobed target is not healthy")
			}
			now := time.Unix(0, 0)
			lastChange := time.Time{}
			for i, ok := range tc.steps {
				now = now.Add(time.Second)
				var err error
				if !ok {
					err = errX
				}
				prev := tr.healthy
				changed := tr.observe(now, 10*time.Millisecond, err, ReasonRefused)
				r := tr.result()
				if r.Healthy != tc.want[i] {
					t.Fatalf("step %d: healthy = %t, want %t", i, r.Healthy, tc.want[i])
				}
				if changed != (prev != r.Healthy) {
					t.Errorf("step %d: changed = %t", i, changed)
				}
				if changed || i == 0 {
					lastChange = now
				}
				if !r.LastChange.Equal(lastChange) {
					t.Errorf("step %d: LastChange = %v, want %v", i, r.LastChange, lastChange)
				}
				if ok == (r.LastReason != "") {
					t.Errorf("step %d: LastReason = %q", i, r.LastReason)
				}
			}
		})
	}
}

func TestTrackerLatency(t *testing.T) {
	tr := newTracker(1, 1)
	now := time.Unix(0, 0)
	tr.observe(now, ms(10), nil, "")
	if r := tr.result(); r.RTT != ms(10) || r.Baseline != ms(10) || r.Penalty != 0 {
		t.Fatalf("after one: %+v", r)
	}
	tr.observe(now, ms(20), nil, "")
	// EWMA: 0.3*20 + 0.7*10 = 13
	if got := tr.result().RTT; got != ms(13) {
		t.Fatalf("ewma = %v, want 13ms", got)
	}
	// Failures leave the RTT alone.
	tr.observe(now, 0, errors.New("x"), ReasonTimeout)
	if got := tr.result().RTT; got != ms(13) {
		t.Fatalf("ewma after failure = %v", got)
	}

	// Fill the window with 1..N ms: p10 (nearest rank) is the N/10th smallest.
	tr = newTracker(1, 1)
	for i := 1; i <= baselineWindow; i++ {
		tr.observe(now, ms(float64(i)), nil, "")
	}
	if got, want := tr.baseline(), ms(float64(baselineWindow/10)); got != want {
		t.Fatalf("baseline = %v, want %v", got, want)
	}
	// The window slides: as many samples of 100 ms push out every old one.
	for range baselineWindow {
		tr.observe(now, ms(100), nil, "")
	}
	if got := tr.baseline(); got != ms(100) {
		t.Fatalf("baseline after slide = %v, want 100ms", got)
	}
	if got := tr.penalty(); got != 0 || tr.result().Penalty != 0 {
		t.Fatalf("steady-state penalty = %v", got)
	}

	// A slowdown raises the EWMA above the baseline: penalty = EWMA - p10.
	tr = newTracker(1, 1)
	for range 20 {
		tr.observe(now, ms(10), nil, "")
	}
	tr.observe(now, ms(110), nil, "")
	r := tr.result()
	if r.RTT != ms(40) || r.Baseline != ms(10) || r.Penalty != ms(30) {
		t.Fatalf("slowdown: rtt %v baseline %v penalty %v, want 40/10/30ms", r.RTT, r.Baseline, r.Penalty)
	}
	// Penalty is never negative, even when the EWMA dips below the baseline.
	tr = newTracker(1, 1)
	tr.window = []time.Duration{ms(50)}
	tr.ewma = ms(20)
	if got := tr.result().Penalty; got != 0 {
		t.Fatalf("penalty = %v, want 0", got)
	}
}

func TestStatusChanges(t *testing.T) {
	ms := time.Millisecond
	up := func(penalty time.Duration) Result { return Result{Healthy: true, Penalty: penalty} }
	tests := []struct {
		name string
		a, b map[string]Result
		same bool
		// sameHealth: only a penalty differs, or nothing.
		sameHealth bool
	}{
		{"equal", map[string]Result{"x": up(0)}, map[string]Result{"x": up(0)}, true, true},
		{"penalty noise within a step", map[string]Result{"x": up(6 * ms)}, map[string]Result{"x": up(9 * ms)}, true, true},
		{"penalty crosses a step", map[string]Result{"x": up(4 * ms)}, map[string]Result{"x": up(5 * ms)}, false, true},
		{"health flips", map[string]Result{"x": up(0)}, map[string]Result{"x": {}}, false, false},
		{"RTT and errors do not steer", map[string]Result{"x": up(0)}, map[string]Result{"x": {Healthy: true, RTT: 9 * ms, LastError: "slow"}}, true, true},
		{"id added", map[string]Result{"x": up(0)}, map[string]Result{"x": up(0), "y": up(0)}, false, false},
		{"id renamed", map[string]Result{"x": up(0)}, map[string]Result{"y": up(0)}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := NewStatus(1, 1, tc.a), NewStatus(2, 1, tc.b)
			health, steering := a.Changes(b)
			if !steering != tc.same {
				t.Errorf("steering changed = %t, want %t", steering, !tc.same)
			}
			if !health != tc.sameHealth {
				t.Errorf("health changed = %t, want %t", health, !tc.sameHealth)
			}
		})
	}
}

func TestSteerPenalty(t *testing.T) {
	tests := []struct {
		name             string
		current, penalty time.Duration
		want             time.Duration
	}{
		{"noise below the first step", 0, ms(4.9), 0},
		{"reaching a step raises it", 0, ms(5), ms(5)},
		{"a jump raises it to the step below", 0, ms(23), ms(20)},
		{"just below a step keeps it", ms(5), ms(4), ms(5)},
		{"half a step below keeps it", ms(5), ms(2.5), ms(5)},
		{"more than half a step below lowers it", ms(5), ms(2.4), 0},
		{"recovery lowers it by many steps", ms(40), ms(1), 0},
		{"a partial recovery lowers it to the nearest step", ms(40), ms(12), ms(10)},
		{"within the step above keeps it", ms(10), ms(14.9), ms(10)},
		{"the next step raises it", ms(10), ms(15), ms(15)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := steerPenalty(tc.current, tc.penalty); got != tc.want {
				t.Errorf("steerPenalty(%v, %v) = %v, want %v", tc.current, tc.penalty, got, tc.want)
			}
		})
	}
}

// TestSteeringIgnoresEdgeNoise probes a target whose RTT wobbles so that
// its penalty crosses the first step's edge again and again: the steering
// penalty rises once and then holds, where rounding alone would flip on
// most probes; a real slowdown still raises it, and recovery lowers it.
func TestSteeringIgnoresEdgeNoise(t *testing.T) {
	tr := newTracker(1, 1)
	now := time.Unix(0, 0)
	for range 50 {
		tr.observe(now, ms(1), nil, "")
	}
	flips, rounded := 0, 0
	prev, prevRounded := tr.result().SteeringPenalty(), time.Duration(0)
	for i := range 200 {
		rtt := ms(2.5) // the EWMA settles at 6.3 / 5.2 ms alternately: penalties 5.3 / 4.2 ms
		if i%2 == 0 {
			rtt = ms(9)
		}
		tr.observe(now, rtt, nil, "")
		r := tr.result()
		if sp := r.SteeringPenalty(); sp != prev {
			flips++
			prev = sp
		}
		if rp := r.Penalty - r.Penalty%PenaltyStep; rp != prevRounded {
			rounded++
			prevRounded = rp
		}
	}
	if flips != 1 || prev != PenaltyStep || rounded < 50 {
		t.Errorf("steering penalty changed %d times to %v (want once, to %v), rounding alone %d times (want many: the test needs noise at the edge)",
			flips, prev, PenaltyStep, rounded)
	}
	for range 10 {
		tr.observe(now, ms(60), nil, "")
	}
	if sp := tr.result().SteeringPenalty(); sp < ms(40) {
		t.Errorf("after a slowdown to 60 ms: steering penalty %v, want ≥ 40ms", sp)
	}
	for range 30 {
		tr.observe(now, ms(1), nil, "")
	}
	if sp := tr.result().SteeringPenalty(); sp != 0 {
		t.Errorf("after recovery: steering penalty %v, want 0", sp)
	}
}

// ms is n milliseconds.
func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
