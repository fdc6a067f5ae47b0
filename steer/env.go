package steer

import (
	"slices"
	"time"

	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/latency"
	"github.com/popdns/popdns/latency/learn"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
)

// Env is everything a decision reads besides the record and the client:
// the options, the snapshot's latency table, the probes' results, the
// operators' overrides and the time. Build it with [NewEnv]; its fields
// are immutable values shared with other readers and must not be changed.
type Env struct {
	Options   Options
	Latency   *latency.Table      // nil: no table
	Health    *healthprobe.Status // nil: no probes, every target healthy
	Overrides *Overrides          // nil: none
	// Learned is the learned-latency table; nil when learning is off.
	// Set it with [Env.WithLearned].
	Learned *learn.Snapshot
	// Now is the time latency entries are aged against; zero when
	// entries do not age (no table, or LatencyMaxAge 0).
	Now time.Time
	// Epoch identifies the inputs above: a decision made under one Env
	// holds for every Env of the same Epoch.
	Epoch Epoch
}

// NewEnv gathers what a decision made now reads. opt must have been
// provisioned ([Options.Provision]); health and overrides may be nil.
// clock is called only when latency entries can age, so that the common
// case costs no clock read.
func NewEnv(opt Options, snap *zones.Snapshot, health *healthprobe.Status, overrides *Overrides, clock func() time.Time) Env {
	env := Env{Options: opt, Health: health, Overrides: overrides}
	if snap != nil {
		env.Latency = snap.Latency()
		env.Epoch.Generation = snap.Generation()
	}
	if health != nil {
		env.Epoch.Health, env.Epoch.Steering = health.Health, health.Steering
	}
	if overrides != nil {
		env.Epoch.Overrides = overrides.generation
	}
	if env.Latency != nil && opt.LatencyMaxAge > 0 {
		env.Now = clock()
		// Entries age out over time: decisions are good for a minute.
		env.Epoch.Bucket = env.Now.Unix() / 60
	}
	return env
}

// WithLearned returns env deciding with the learned-latency table snap
// too (nil: none), its generation in the Epoch.
func (env Env) WithLearned(snap *learn.Snapshot) Env {
	env.Learned = snap
	env.Epoch.Learned = snap.Generation()
	return env
}

// Epoch is what makes a decision stale when it changes. Each part only
// grows.
type Epoch struct {
	Generation uint64 // of the zones snapshot (zones, PoPs, latency table)
	Health     uint64 // of the probes' status: health alone
	Steering   uint64 // of the probes' status: health and penalties
	Overrides  uint64 // of the operators' runtime PoP states
	Bucket     int64  // time bucket, when latency entries can age out; else 0
	Learned    uint64 // of the learned-latency table; 0: none
}

// Strict is the part of e that must apply at once: zones, health and
// operators' states. The rest, probe penalties, latency ages and the
// learned table, move gradually (a few ms of RTT, an entry a minute
// older, a smoothed mean a publish interval on), so a cache may keep
// answering a decision made before they moved while it re-decides a few
// clients at a time.
func (e Epoch) Strict() Epoch {
	e.Steering, e.Bucket, e.Learned = 0, 0, 0
	return e
}

// Newer reports whether e is later than than: no part of it is older and
// one is newer. Of two readers racing, the one that read later state wins;
// epochs that are each partly newer (read in between two changes) are
// neither newer than the other.
func (e Epoch) Newer(than Epoch) bool {
	return e != than && e.Generation >= than.Generation && e.Health >= than.Health &&
		e.Steering >= than.Steering && e.Overrides >= than.Overrides && e.Bucket >= than.Bucket &&
		e.Learned >= than.Learned
}

// Overrides are the operators' runtime admin states of PoPs, by name: one
// immutable value per change. A nil *Overrides has none.
type Overrides struct {
	generation uint64
	states     map[string]pops.AdminState
}

// Next returns the overrides that replace o (which may be nil) with
// states; active states are left out, since they override nothing. It
// keeps its own copy of states.
func (o *Overrides) Next(states map[string]pops.AdminState) *Overrides {
	own := make(map[string]pops.AdminState, len(states))
	for name, st := range states {
		if st != pops.Active {
			own[name] = st
		}
	}
	next := &Overrides{states: own, generation: 1}
	if o != nil {
		next.generation = o.generation + 1
	}
	return next
}

// State is the override of the PoP named pop; Active when there is none.
func (o *Overrides) State(pop string) pops.AdminState {
	if o == nil {
		return pops.Active
	}
	return o.states[pop]
}

// States returns a copy of the overrides by PoP name.
func (o *Overrides) States() map[string]pops.AdminState {
	out := map[string]pops.AdminState{}
	if o != nil {
		for name, st := range o.states {
			out[name] = st
		}
	}
	return out
}

// PoPState is the admin state of p: the configuration's and the operators'
// override, the strongest winning (down over drain over active).
func (env *Env) PoPState(p *pops.PoP) pops.AdminState {
	return max(p.State, env.Overrides.State(p.Name))
}

// TargetState is t's admin state: its own, its PoP's, and the operators'
// overrides of its PoP and of this target alone (zones.TargetKey), the
// strongest winning.
func (env *Env) TargetState(t *zones.GeoTarget) pops.AdminState {
	st := max(t.State, env.PoPState(t.PoP))
	if env.Overrides != nil && len(env.Overrides.states) > 0 {
		st = max(st, env.Overrides.State(t.Key()))
	}
	return st
}

// Probes are the probes whose results count for t: its PoP's and its own,
// "" where there is none.
func Probes(t *zones.GeoTarget) [2]string { return [2]string{t.PoP.Probe, t.Probe} }

// ProbeResult is the result of probe id, and false when there is none: no
// probe, no probes at all, or not yet probed. A probe without a result
// never makes a target unhealthy, so that a new probe cannot blackhole a
// name.
func (env *Env) ProbeResult(id string) (healthprobe.Result, bool) {
	if id == "" || env.Health == nil {
		return healthprobe.Result{}, false
	}
	return env.Health.Result(id)
}

// PoPHealthy reports whether p's own probe says up (true without one).
func (env *Env) PoPHealthy(p *pops.PoP) bool {
	r, ok := env.ProbeResult(p.Probe)
	return !ok || r.Healthy
}

// TargetHealth reports whether t's probes, its PoP's and its own, both say
// up, and the larger of their steering penalties in milliseconds (before
// the penalty weight): both usually measure one path, so they are not
// added.
func (env *Env) TargetHealth(t *zones.GeoTarget) (healthy bool, penaltyMS float64) {
	healthy = true
	for _, id := range Probes(t) {
		r, ok := env.ProbeResult(id)
		if !ok {
			continue
		}
		healthy = healthy && r.Healthy
		penaltyMS = max(penaltyMS, float64(r.SteeringPenalty())/float64(time.Millisecond))
	}
	return healthy, penaltyMS
}

// PoPUp reports whether p gets clients, given how many of the geo targets
// at it are eligible (targetsEligible) of how many there are: it must be
// active and its own probe up, and one of its targets must be eligible.
// A PoP that no record names is judged on its own.
func (env *Env) PoPUp(p *pops.PoP, targetsEligible, targets int) bool {
	return eligible(env.PoPState(p), env.PoPHealthy(p)) && (targets == 0 || targetsEligible > 0)
}

// Eligible reports whether t gets clients while some target of its record
// does: active and healthy. When none is, the record's when_all_down
// policy decides ([Rank]).
func (env *Env) Eligible(t *zones.GeoTarget) bool {
	healthy, _ := env.TargetHealth(t)
	return eligible(env.TargetState(t), healthy)
}

// eligible is the one rule of who gets clients, for Eligible and Rank,
// which has the state and health at hand already.
func eligible(state pops.AdminState, healthy bool) bool { return healthy && state == pops.Active }

// EligiblePoPs returns the names of the PoPs with a target of g that is
// [Env.Eligible], in target order, each once: how many PoPs could answer
// g as health and admin states stand (the admin API's min_active rule
// counts them). Rules that pin some clients to fewer targets are not
// taken into account.
func (env *Env) EligiblePoPs(g *zones.Geo) []string {
	var names []string
	for i := range g.Targets {
		t := &g.Targets[i]
		if env.Eligible(t) && !slices.Contains(names, t.PoP.Name) {
			names = append(names, t.PoP.Name)
		}
	}
	return names
}
