package status

import (
	"testing"
	"testing/fstest"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
)

const statusZone = `
origin: status.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.1, probe: { tcp: "192.0.2.1:443" } }
          iad: { a: 192.0.2.2 }
  api:
    - geo:
        targets:
          fra: { a: 192.0.2.11, probe: { tcp: "192.0.2.11:443" } }
          iad: { a: 192.0.2.12, state: drain }
`

// TestStatusFollowsSelection: the status says what selection does. A PoP
// whose own probe is up but all of whose targets are down gets no clients,
// so it is not up (it was shown up); a down probe's RTT is from its last
// success and is not shown as current.
func TestStatusFollowsSelection(t *testing.T) {
	inv, err := pops.New(
		pops.PoP{Name: "fra", Point: geo.Point{Lat: 50.11, Lon: 8.68}, Probe: "pop-fra"},
		pops.PoP{Name: "iad", Point: geo.Point{Lat: 38.95, Lon: -77.45}},
	)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(fstest.MapFS{"status.test.yaml": {Data: []byte(statusZone)}}, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	checked := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	down := healthprobe.Result{RTT: 12 * time.Millisecond, Baseline: 10 * time.Millisecond, Penalty: 2 * time.Millisecond,
		Checked: checked, LastError: "connection refused"}
	health := healthprobe.NewStatus(1, 1, map[string]healthprobe.Result{
		"pop-fra":              {Healthy: true, RTT: time.Millisecond, Checked: checked},
		"tcp://192.0.2.1:443":  down,
		"tcp://192.0.2.11:443": down,
	})

	tests := []struct {
		name      string
		overrides map[string]pops.AdminState
		pop       string
		up        bool
		class     string
		targetsUp int
	}{
		{"fra's targets all down", nil, "fra", false, "unhealthy", 0},
		{"iad's other target drained", nil, "iad", true, "up", 1},
		{"iad drained by an operator", map[string]pops.AdminState{"iad": pops.Drain}, "iad", false, "draining", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ov *steer.Overrides
			if tc.overrides != nil {
				ov = ov.Next(tc.overrides)
			}
			st := Build(snap, health, ov, time.Now)
			var p *PoP
			for i := range st.PoPs {
				if st.PoPs[i].Name == tc.pop {
					p = &st.PoPs[i]
				}
			}
			if p == nil {
				t.Fatalf("no PoP %s in %+v", tc.pop, st.PoPs)
			}
			if p.Up != tc.up || popClass(*p) != tc.class || p.TargetsUp != tc.targetsUp {
				t.Errorf("%s: up %v class %s targets up %d; want %v %s %d", tc.pop, p.Up, popClass(*p), p.TargetsUp, tc.up, tc.class, tc.targetsUp)
			}
		})
	}

	st := Build(snap, health, nil, time.Now)
	for _, ts := range st.Targets {
		if ts.PoP != "fra" {
			continue
		}
		if ts.Healthy || ts.Eligible || ts.RTTMS != 0 || ts.PenaltyMS != 0 || ts.LastRTTMS != 12 || ts.LastError != "connection refused" {
			t.Errorf("down target %s at fra: %+v; want no current RTT or penalty, last RTT 12 ms", ts.Name, ts)
		}
	}
	for _, ps := range st.Probes {
		if ps.ID == "tcp://192.0.2.1:443" && (ps.RTTMS != 0 || ps.LastRTTMS != 12) {
			t.Errorf("down probe %+v; want no current RTT, last RTT 12 ms", ps)
		}
	}
}
