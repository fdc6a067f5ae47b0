// Package status reports what a running popdns serves and how its PoPs
// fare: the status model (Status, built with steer, which alone decides
// which PoPs and targets get clients), readiness, the status page with its
// world map, the admin API that sets runtime PoP states, and the HTTP
// endpoint that serves them with /healthz, /metrics and /explain. It reads
// the running server through the small interfaces declared in http.go and
// admin.go, and changes nothing but the PoP states the admin API sets.
package status

import (
	"time"

	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
)

// Status is what GET /status reports, and what the status page at GET /
// draws: the zones, the PoPs, every geo target and every probe.
type Status struct {
	Generation uint64            `json:"generation"`
	LoadedAt   time.Time         `json:"loaded_at"`
	Ready      bool              `json:"ready"`
	NotReady   string            `json:"not_ready,omitempty"` // why not, when not ready
	Zones      []Zone            `json:"zones"`
	Errors     map[string]string `json:"errors"` // file → why its latest version is not served
	PoPs       []PoP             `json:"pops"`
	Targets    []Target          `json:"targets"`
	// TargetsLeftOut counts geo targets not listed, past maxStatusTargets.
	TargetsLeftOut int     `json:"targets_left_out,omitempty"`
	Probes         []Probe `json:"probes"`
	Latency        int     `json:"latency_entries"`
}

// Zone is one zone served, and whether its file's latest version failed.
type Zone struct {
	Origin   string    `json:"origin"`
	File     string    `json:"file"`
	Serial   uint32    `json:"serial"`
	Records  int       `json:"records"`
	LoadedAt time.Time `json:"loaded_at"`       // when the version serving was loaded
	Error    string    `json:"error,omitempty"` // its file's latest version failed: this is the last good one
}

// PoP is one PoP: where it is, what the operators say and what its
// own probe finds.
type PoP struct {
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
	// clients, and all of them; TargetsUnhealthy those that do not
	// because a probe says down.
	TargetsUp        int `json:"targets_up"`
	TargetsUnhealthy int `json:"targets_unhealthy"`
	Targets          int `json:"targets"`
}

// Target is one target of one geo record.
type Target struct {
	Zone     string   `json:"zone"`
	Name     string   `json:"name"` // the geo record's owner
	PoP      string   `json:"pop"`
	State    string   `json:"state"` // own, PoP and override combined
	Probes   []string `json:"probes,omitempty"`
	Healthy  bool     `json:"healthy"` // every probe up (or none)
	Eligible bool     `json:"eligible"`
	// From the probe that decides: the down one, else the slowest. RTTMS
	// and the penalties are current and only shown while it is up;
	// LastRTTMS is a down probe's RTT from its last success.
	RTTMS      float64 `json:"rtt_ms,omitempty"`
	LastRTTMS  float64 `json:"last_rtt_ms,omitempty"`
	BaselineMS float64 `json:"baseline_ms,omitempty"`
	PenaltyMS  float64 `json:"penalty_ms,omitempty"`
	// SteeringPenaltyMS is the part of the penalty selection adds: whole
	// 5 ms steps, with hysteresis.
	SteeringPenaltyMS float64   `json:"steering_penalty_ms,omitempty"`
	LastError         string    `json:"last_error,omitempty"`
	LastChange        time.Time `json:"last_change,omitzero"`
}

// Probe is one probe and what it last found.
type Probe struct {
	ID                string    `json:"id"`
	Kind              string    `json:"kind"`
	Addr              string    `json:"addr"`
	Interval          string    `json:"interval"`
	Probed            bool      `json:"probed"`
	Healthy           bool      `json:"healthy"`
	RTTMS             float64   `json:"rtt_ms,omitempty"`      // absent while down: see LastRTTMS
	LastRTTMS         float64   `json:"last_rtt_ms,omitempty"` // a down probe's RTT at its last success
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

// Build gathers the status of snap (nil before the first load) under
// the probe results health (nil: no probes) and the operators' runtime
// PoP states. Which PoPs and targets get clients is steer's to say: the
// status only reports it.
func Build(snap *zones.Snapshot, health *healthprobe.Status, overrides *steer.Overrides, now func() time.Time) Status {
	st := Status{Zones: []Zone{}, Errors: map[string]string{}, PoPs: []PoP{}, Targets: []Target{}, Probes: []Probe{}}
	if snap == nil {
		return st
	}
	st.Generation, st.LoadedAt, st.Latency = snap.Generation(), snap.LoadedAt(), snap.Latency().Len()
	for file, err := range snap.FileErrors() {
		st.Errors[file] = err.Error()
	}
	for _, z := range snap.Zones() {
		st.Zones = append(st.Zones, Zone{Origin: z.Origin(), File: z.File(), Serial: z.Serial(), Records: z.Records(),
			LoadedAt: z.LoadedAt(), Error: st.Errors[z.File()]})
	}

	// Status ranks nothing, so the documented defaults serve as options;
	// the zero Options always provision.
	opt, _ := steer.Options{}.Provision()
	env := steer.NewEnv(opt, snap, health, overrides, now)
	inv := snap.PoPs()
	popIndex := map[string]int{}
	for _, name := range inv.Names() {
		p := inv.Get(name)
		ps := PoP{Name: name, Lat: p.Point.Lat, Lon: p.Point.Lon, Country: p.Country, Continent: p.Continent,
			State: env.PoPState(p).String(), Probe: p.Probe, Healthy: env.PoPHealthy(p)}
		if o := overrides.State(name); o != pops.Active {
			ps.Override = o.String()
		}
		popIndex[name] = len(st.PoPs)
		st.PoPs = append(st.PoPs, ps)
	}

	for _, z := range snap.Zones() {
		for _, g := range z.Geos() {
			for i := range g.Targets {
				t := &g.Targets[i]
				ts := Target{Zone: z.Origin(), Name: g.Owner, PoP: t.Name(), State: env.TargetState(t).String()}
				ts.Healthy, _ = env.TargetHealth(t)
				ts.Eligible = env.Eligible(t)
				describeTargetProbes(&ts, t, &env)
				if j, ok := popIndex[t.Name()]; ok {
					ps := &st.PoPs[j]
					ps.Targets++
					switch {
					case ts.Eligible:
						ps.TargetsUp++
					case !ts.Healthy:
						ps.TargetsUnhealthy++
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
	for i := range st.PoPs {
		ps := &st.PoPs[i]
		ps.Up = env.PoPUp(inv.Get(ps.Name), ps.TargetsUp, ps.Targets)
	}

	for _, t := range snap.Probes() {
		ps := Probe{ID: t.ID, Kind: string(t.Kind), Addr: t.Addr, Interval: t.Interval.String(), Healthy: true}
		if r, ok := env.ProbeResult(t.ID); ok {
			ps.Probed, ps.Healthy = r.Probed(), r.Healthy
			ps.BaselineMS = ms(r.Baseline)
			if r.Healthy {
				ps.RTTMS, ps.PenaltyMS = ms(r.RTT), ms(r.Penalty)
				ps.SteeringPenaltyMS = ms(r.SteeringPenalty())
			} else {
				ps.LastRTTMS = ms(r.RTT)
			}
			ps.Checked, ps.LastChange, ps.LastError, ps.LastReason = r.Checked, r.LastChange, r.LastError, r.LastReason
		}
		st.Probes = append(st.Probes, ps)
	}
	return st
}

// describeTargetProbes fills in what ts shows of t's probes: their ids,
// and the RTT, baseline and penalty of the probe that decides (a down one,
// else the slower), with the largest steering penalty, which is what
// selection adds. A down probe's RTT is from its last success: it is shown
// apart, never as current.
func describeTargetProbes(ts *Target, t *zones.GeoTarget, env *steer.Env) {
	var decisive healthprobe.Result
	var steering time.Duration
	found := false
	for _, id := range steer.Probes(t) {
		if id == "" {
			continue
		}
		ts.Probes = append(ts.Probes, id)
		r, ok := env.ProbeResult(id)
		if !ok {
			continue
		}
		if !found || decisive.Healthy && (!r.Healthy || r.Penalty > decisive.Penalty) {
			decisive, found = r, true
		}
		steering = max(steering, r.SteeringPenalty())
	}
	if !found {
		return
	}
	ts.BaselineMS = ms(decisive.Baseline)
	if decisive.Healthy {
		ts.RTTMS, ts.PenaltyMS, ts.SteeringPenaltyMS = ms(decisive.RTT), ms(decisive.Penalty), ms(steering)
	} else {
		ts.LastRTTMS = ms(decisive.RTT)
	}
	ts.LastError, ts.LastChange = decisive.LastError, decisive.LastChange
}
