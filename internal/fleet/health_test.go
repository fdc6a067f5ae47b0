package fleet

import (
	"testing"
	"time"

	"github.com/popdns/popdns/healthprobe"
	"github.com/prometheus/client_golang/prometheus"
)

// TestHealthFirstCombination: until the first combination, Status hands
// out the local probe status, whose numbers caches key their decisions
// on. The first combined status must follow it: when the fleet overturns
// the local verdict, its Health number must move past the local one's,
// or a decision cached under the local verdict would stay (ns3 in
// cmd/popdns's TestFleetHealth answered fra for 15 s).
func TestHealthFirstCombination(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name         string
		localHealthy bool
		changed      bool
	}{
		{"the fleet overturns the local verdict", false, true},
		{"the fleet agrees", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := healthprobe.NewStatus(7, 7, map[string]healthprobe.Result{
				"iad-health": {Healthy: tc.localHealthy, Checked: now},
			})
			rule, err := healthprobe.ParseRule("majority", 0)
			if err != nil {
				t.Fatal(err)
			}
			rule.MaxAge = 3 * time.Second
			h := &Health{f: &Fleet{cfg: Config{Instance: "ns3", MinObservers: 2, ObservationTTL: 3 * time.Second}},
				local: func() *healthprobe.Status { return local }, rule: rule, published: map[string]publishedObs{},
				divergent: prometheus.NewGauge(prometheus.GaugeOpts{Name: "d"}),
				observers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "o"}, []string{"probe"})}
			if got := h.Status(); got != local {
				t.Fatalf("before any combination, Status is %+v, want the local one", got)
			}
			obs := map[string][]Observation{"iad-health": {
				{Instance: "ns1", Healthy: true, Checked: now},
				{Instance: "ns2", Healthy: true, Checked: now},
				{Instance: "ns3", Healthy: tc.localHealthy, Checked: now},
			}}
			h.observed.Store(&obs)
			h.recombine(now)
			st := h.Status()
			if r := st.Results["iad-health"]; !r.Healthy {
				t.Fatalf("combined: iad-health %+v, want healthy by the majority", r)
			}
			if st.Generation <= local.Generation || st.Health < local.Health || st.Steering < local.Steering {
				t.Errorf("combined numbers %d/%d/%d go back from the local %d/%d/%d", st.Generation, st.Health, st.Steering,
					local.Generation, local.Health, local.Steering)
			}
			if changed := st.Health != local.Health; changed != tc.changed {
				t.Errorf("Health %d after the local %d: changed %v, want %v", st.Health, local.Health, changed, tc.changed)
			}
		})
	}
}
