package main

import (
	"time"

	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/zones"
)

// statusJSON is what GET /status reports, and what the status page at GET /
// draws: the zones, the PoPs, every geo target and every probe.
type statusJSON struct {
	Generation uint64            `json:"generation"`
	LoadedAt   time.Time         `json:"loaded_at"`
	Ready      bool              `json:"ready"`
	NotReady   string            `json:"not_ready,omitempty"` // why not, when not ready
	Zones      []zoneStatus      `json:"zones"`
	Errors     map[string]string `json:"errors"` // file → why its latest version is not served
	PoPs       []popStatus       `json:"pops"`
	Targets    []targetStatus    `json:"targets"`
	// TargetsLeftOut counts geo targets not listed, past maxStatusTargets.
	TargetsLeftOut int           `json:"targets_left_out,omitempty"`
	Probes         []probeStatus `json:"probes"`
	Latency        int           `json:"latency_entries"`
}

type zoneStatus struct {
	Origin   string    `json:"origin"`
	File     string    `json:"file"`
	Serial   uint32    `json:"serial"`
	Records  int       `json:"records"`
	LoadedAt time.Time `json:"loaded_at"`       // when the version serving was loaded
	Error    string    `json:"error,omitempty"` // its file's latest version failed: this is the last good one
}

// popStatus is one PoP: where it is, what the operators say and what its
// own probe finds.
type popStatus struct {
	Name      string  `json:"name"`
	Lat       float64 `json:"lat"`
	Lon       float64 `json:"lon"`
	Country   string  `json:"country,omitempty"`
	Continent string  `json:"continent,omitempty"`
	// State is the configuration's admin state combined with Override,
	// the runtime one set through the admin API.
	State    string `json:"state"`
	Override string `json:"override,omitempty"`
	Probe    string `json:"probe,omitempty"`
	// Healthy is the PoP probe's verdict (true without a probe); Up is
	// whether the PoP gets clients: active and healthy.
	Healthy bool `json:"healthy"`
	Up      bool `json:"up"`
	// TargetsUp and Targets count the geo targets at this PoP that get
	// clients, and all of them.
	TargetsUp int `json:"targets_up"`
	Targets   int `json:"targets"`
}

// targetStatus is one target of one geo record.
type targetStatus struct {
	Zone     string   `json:"zone"`
	Name     string   `json:"name"` // the geo record's owner
	PoP      string   `json:"pop"`
	State    string   `json:"state"` // own, PoP and override combined
	Probes   []string `json:"probes,omitempty"`
	Healthy  bool     `json:"healthy"` // every probe up (or none)
	Eligible bool     `json:"eligible"`
	// From the probe that decides: the down one, else the slowest.
	RTTMS      float64 `json:"rtt_ms,omitempty"`
	BaselineMS float64 `json:"baseline_ms,omitempty"`
	PenaltyMS  float64 `json:"penalty_ms,omitempty"`
	// SteeringPenaltyMS is the part of the penalty selection adds: whole
	// 5 ms steps, with hysteresis.
	SteeringPenaltyMS float64   `json:"steering_penalty_ms,omitempty"`
	LastError         string    `json:"last_error,omitempty"`
	LastChange        time.Time `json:"last_change,omitzero"`
}

// probeStatus is one probe and what it last found.
type probeStatus struct {
	ID                string    `json:"id"`
	Kind              string    `json:"kind"`
	Addr              string    `json:"addr"`
	Interval          string    `json:"interval"`
	Probed            bool      `json:"probed"`
	Healthy           bool      `json:"healthy"`
	RTTMS             float64   `json:"rtt_ms"`
	BaselineMS        float64   `json:"baseline_ms"`
	PenaltyMS         float64   `json:"penalty_ms"`
	SteeringPenaltyMS float64   `json:"steering_penalty_ms"`
	Checked           time.Time `json:"checked,omitzero"`
	LastChange        time.Time `json:"last_change,omitzero"`
	LastError         string    `json:"last_error,omitempty"`
	LastReason        string    `json:"last_reason,omitempty"`
}

// maxStatusTargets bounds the targets /status lists, so that a server with
// huge geo zones still answers it quickly.
const maxStatusTargets = 5000

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// buildStatus gathers the status of snap (nil before the first load) under
// the probe results health (nil: no probes) and the operators' runtime
// PoP states.
func buildStatus(snap *zones.Snapshot, health *healthprobe.Status, overrides map[string]zones.AdminState) statusJSON {
	st := statusJSON{Zones: []zoneStatus{}, Errors: map[string]string{}, PoPs: []popStatus{}, Targets: []targetStatus{}, Probes: []probeStatus{}}
	if snap == nil {
		return st
	}
	st.Generation, st.LoadedAt, st.Latency = snap.Generation(), snap.LoadedAt(), snap.Latency().Len()
	for file, err := range snap.FileErrors() {
		st.Errors[file] = err.Error()
	}
	for _, z := range snap.Zones() {
		st.Zones = append(st.Zones, zoneStatus{Origin: z.Origin(), File: z.File(), Serial: z.Serial(), Records: z.Records(),
			LoadedAt: z.LoadedAt(), Error: st.Errors[z.File()]})
	}

	result := func(id string) (healthprobe.Result, bool) {
		if id == "" {
			return healthprobe.Result{}, false
		}
		return health.Result(id)
	}
	pops := snap.PoPs()
	popIndex := map[string]int{}
	for _, name := range pops.Names() {
		p := pops.Get(name)
		ps := popStatus{Name: name, Lat: p.Point.Lat, Lon: p.Point.Lon, Country: p.Country, Continent: p.Continent,
			State: max(p.State, overrides[name]).String(), Probe: p.Probe, Healthy: true}
		if o, ok := overrides[name]; ok {
			ps.Override = o.String()
		}
		if r, ok := result(p.Probe); ok {
			ps.Healthy = r.Healthy
		}
		ps.Up = ps.Healthy && ps.State == zones.Active.String()
		popIndex[name] = len(st.PoPs)
		st.PoPs = append(st.PoPs, ps)
	}

	for _, z := range snap.Zones() {
		for _, g := range z.Geos() {
			for i := range g.Targets {
				t := &g.Targets[i]
				ts := targetStatus{Zone: z.Origin(), Name: g.Owner, PoP: t.Name(), Healthy: true,
					State: max(t.State, t.PoP.State, overrides[t.Name()]).String()}
				var decisive healthprobe.Result
				var steering time.Duration // what selection adds: the largest of the probes'
				found := false
				for _, id := range [2]string{t.PoP.Probe, t.Probe} {
					r, ok := result(id)
					if id != "" {
						ts.Probes = append(ts.Probes, id)
					}
					if !ok {
						continue
					}
					// The down probe decides; among equals, the slower.
					if !found || decisive.Healthy && (!r.Healthy || r.Penalty > decisive.Penalty) {
						decisive, found = r, true
					}
					ts.Healthy = ts.Healthy && r.Healthy
					steering = max(steering, r.SteeringPenalty())
				}
				if found {
					ts.RTTMS, ts.BaselineMS, ts.PenaltyMS = ms(decisive.RTT), ms(decisive.Baseline), ms(decisive.Penalty)
					ts.SteeringPenaltyMS = ms(steering)
					ts.LastError, ts.LastChange = decisive.LastError, decisive.LastChange
				}
				ts.Eligible = ts.Healthy && ts.State == zones.Active.String()
				if j, ok := popIndex[t.Name()]; ok {
					st.PoPs[j].Targets++
					if ts.Eligible {
						st.PoPs[j].TargetsUp++
					}
				}
				if len(st.Targets) < maxStatusTargets {
					st.Targets = append(st.Targets, ts)
				} else {
					st.TargetsLeftOut++
				}
			}
		}
	}

	for _, t := range snap.Probes() {
		ps := probeStatus{ID: t.ID, Kind: string(t.Kind), Addr: t.Addr, Interval: t.Interval.String(), Healthy: true}
		if r, ok := result(t.ID); ok {
			ps.Probed, ps.Healthy = r.Probed(), r.Healthy
			ps.RTTMS, ps.BaselineMS, ps.PenaltyMS = ms(r.RTT), ms(r.Baseline), ms(r.Penalty)
			ps.SteeringPenaltyMS = ms(r.SteeringPenalty())
			ps.Checked, ps.LastChange, ps.LastError, ps.LastReason = r.Checked, r.LastChange, r.LastError, r.LastReason
		}
		st.Probes = append(st.Probes, ps)
	}
	return st
}
