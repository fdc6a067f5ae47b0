//go:build slow

package main

import (
	"testing"
	"time"
)

// TestTimelineLearnConverges: with beacons of every PoP, the learned mode
// over latency/learn recovers from a route change within five minutes on
// the synthetic world (about 8 s: every beacon is 22 measurements).
func TestTimelineLearnConverges(t *testing.T) {
	defer usePoPs(densePoPs)()
	smp := synthWorld(49)
	m := HardModel(2)
	cs := smp.remodel(&m)
	dist := distanceChoice(smp, cs)
	tl := learnTestTimeline()
	a := testAdapter(t, smp, cs, tl)
	res := runTimeline(cs, &m, tl, []fixedMode{{"distance only", dist}}, dist, namedLearner{learnName, a, -1})
	d, l := res.Modes[0], res.Modes[1]
	if lw, dw := l.at(0).All.Within10, d.at(0).All.Within10; lw < dw+0.15 {
		t.Errorf("before the change, learned %.3f, distance %.3f within 10 %%", lw, dw)
	}
	if l.Converged < 0 || l.Converged > 5*time.Minute {
		t.Errorf("converged at %v, want within 5 min (%.3f before, %.3f at +5 min)", l.Converged, l.at(0).Affected, l.at(5*time.Minute).Affected)
	}
	if d.Converged >= 0 {
		t.Errorf("distance only converged at %v: the change does not hurt it", d.Converged)
	}
	t.Logf("within 10 %%: distance %.3f, learned %.3f; converged %v; churn %.2f/h", d.at(0).All.Within10, l.at(0).All.Within10, l.Converged, l.ChurnBefore)
}
