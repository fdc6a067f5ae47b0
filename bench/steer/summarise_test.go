package main

import (
	"testing"
	"time"
)

// TestSummarise checks both convergence times against series whose
// answers are worked by hand: 30 minutes before the event at a share
// (or alternating between two), a dip after it, then a level.
func TestSummarise(t *testing.T) {
	tl := Timeline{Step: 10 * time.Second, Warm: 30 * time.Minute}
	// series is the event's clients' share at each step from -30 min to
	// +30 min: pre(i) for the steps up to the event, post(T) after it.
	series := func(pre func(i int) float64, post func(time.Duration) float64) *modeSeries {
		ms := &modeSeries{}
		for i := -180; i <= 180; i++ {
			st := stepResult{T: time.Duration(i) * tl.Step}
			if i <= 0 {
				st.Affected = pre(i)
			} else {
				st.Affected = post(st.T)
			}
			ms.Steps = append(ms.Steps, st)
		}
		return ms
	}
	flat := func(v float64) func(int) float64 { return func(int) float64 { return v } }
	// Alternating between 0.93 (at even steps, the event's included) and
	// 0.97: a mean of 0.95 over the 30 minutes, 0.93 just before.
	noisy := func(i int) float64 {
		if i%2 == 0 {
			return 0.93
		}
		return 0.97
	}
	dipThen := func(until time.Duration, low float64, after func(time.Duration) float64) func(time.Duration) float64 {
		return func(t time.Duration) float64 {
			if t < until {
				return low
			}
			return after(t)
		}
	}
	for _, tc := range []struct {
		name      string
		ms        *modeSeries
		strict    time.Duration
		overMeans time.Duration
	}{
		{"back at once", series(flat(0.95), func(time.Duration) float64 { return 0.95 }), 10 * time.Second, 10 * time.Second},
		// Back to 0.95 at +2 min, after 11 steps at 0.35: a 5-minute
		// window's mean is within 2 points with at most one of them.
		{"a dip of 2 min", series(flat(0.95), dipThen(2*time.Minute, 0.35, func(time.Duration) float64 { return 0.95 })),
			2 * time.Minute, 110 * time.Second},
		{"never back", series(flat(0.95), func(time.Duration) float64 { return 0.5 }), -1, -1},
		// After a dip of 5 steps, one step in six at 0.90 (a heavy
		// network across the line), the last one too: never within 2
		// points step by step to the end, but every 5-minute mean from
		// +1 min on is (0.942).
		{"noise after the dip", series(flat(0.95), dipThen(time.Minute, 0.35, func(t time.Duration) float64 {
			if t/(10*time.Second)%6 == 0 {
				return 0.90
			}
			return 0.95
		})), -1, time.Minute},
		// 0.925 after the event is within 2 points of the last step
		// before it, not of the mean before it.
		{"noise before", series(noisy, func(time.Duration) float64 { return 0.925 }), 10 * time.Second, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ms.summarise(tl)
			if tc.ms.Converged != tc.strict {
				t.Errorf("converged %v, want %v", tc.ms.Converged, tc.strict)
			}
			if tc.ms.ConvergedMean != tc.overMeans {
				t.Errorf("converged over means %v, want %v", tc.ms.ConvergedMean, tc.overMeans)
			}
		})
	}
}
