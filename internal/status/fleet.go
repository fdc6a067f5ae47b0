package status

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/overrides"
)

// Fleet is the fleet this instance is part of, as the status reads it:
// *fleet.Fleet. Its methods return plain values so that the status does
// not depend on the fleet's package.
type Fleet interface {
	// Connected reports whether NATS is reachable now.
	Connected() bool
	// Member is this instance's name and region, the health rule the
	// fleet applies (as cluster.health spells it, with its fraction) and
	// min_observers.
	Member() (instance, region, rule string, minObservers int)
}

// Observations are the fleet's fresh observations, by probe ID:
// *fleet.Health.
type Observations interface {
	Observations() map[string][]healthprobe.Observation
}

// Verdict is one instance's observation of a probe, as the fleet shares
// it.
type Verdict struct {
	Instance string    `json:"instance"`
	Region   string    `json:"region,omitempty"`
	Healthy  bool      `json:"healthy"`
	RTTMS    float64   `json:"rtt_ms"`
	Checked  time.Time `json:"checked"`
}

// OverrideLister lists the operators' overrides: an overrides.Store. A
// fleet's List fails while NATS is away.
type OverrideLister interface {
	List(ctx context.Context) ([]overrides.Override, error)
}

// FleetStatus is this instance's place in its fleet.
type FleetStatus struct {
	Instance     string `json:"instance"`
	Region       string `json:"region,omitempty"`
	Rule         string `json:"rule"`
	MinObservers int    `json:"min_observers"`
	// Connected is false while NATS cannot be reached: the overrides and
	// the other instances' observations are then those last received.
	Connected bool `json:"connected"`
}

// OverrideStatus is one operator's override of a PoP's state.
type OverrideStatus struct {
	PoP     string    `json:"pop"`
	State   string    `json:"state"`
	Who     string    `json:"who"`
	Why     string    `json:"why,omitempty"`
	Set     time.Time `json:"set"`
	Expires time.Time `json:"expires,omitzero"`
	// Expired: it no longer applies, though the store still holds it.
	Expired bool `json:"expired"`
}

// Quorum is how the fleet reached a probe's verdict: see
// healthprobe.Quorum.
type Quorum struct {
	Rule             string `json:"rule"`
	Observers        int    `json:"observers"`
	HealthyObservers int    `json:"healthy_observers"`
	Regions          int    `json:"regions,omitempty"`
	HealthyRegions   int    `json:"healthy_regions,omitempty"`
	// Fallback: too few observers, so the verdict is this instance's own.
	Fallback bool `json:"fallback"`
	// Self: this instance's own observation was among those counted.
	Self bool `json:"self"`
	// Verdicts are the fresh observations, each instance's, sorted by
	// instance.
	Verdicts []Verdict `json:"verdicts,omitempty"`
}

func quorumOf(q healthprobe.Quorum) *Quorum {
	return &Quorum{Rule: q.Rule.String(), Observers: q.Observers, HealthyObservers: q.HealthyObservers,
		Regions: q.Regions, HealthyRegions: q.HealthyRegions, Fallback: q.Fallback, Self: q.Self}
}

// overridesTimeout bounds a status's read of the overrides: a store that
// does not answer must not hold up /status (the fleet's own timeout is
// 2 s by default).
const overridesTimeout = 500 * time.Millisecond

// overridesCache keeps the last list of overrides read, to show while
// the store cannot be read.
type overridesCache struct {
	mu   sync.Mutex // guards the fields below
	list []overrides.Override
	at   time.Time // when list was read; zero: never
}

// addFleet fills in st's fleet and overrides, from r's Fleet and
// Overrides when it has them.
func (r *Reporter) addFleet(ctx context.Context, st *Status) {
	now := r.now()
	connected := true
	if r.fleet != nil {
		connected = r.fleet.Connected()
		fs := &FleetStatus{Connected: connected}
		fs.Instance, fs.Region, fs.Rule, fs.MinObservers = r.fleet.Member()
		st.Fleet = fs
		// A combined status always carries a quorum; the zero one is the
		// local rule with no observers yet.
		var obs map[string][]healthprobe.Observation
		if r.observations != nil {
			obs = r.observations.Observations()
		}
		for i := range st.Probes {
			if st.Probes[i].Quorum == nil {
				st.Probes[i].Quorum = &Quorum{Rule: healthprobe.RuleLocal.String()}
			}
			for _, o := range obs[st.Probes[i].ID] {
				st.Probes[i].Quorum.Verdicts = append(st.Probes[i].Quorum.Verdicts, Verdict{Instance: o.Instance,
					Region: o.Region, Healthy: o.Healthy, RTTMS: ms(o.RTT), Checked: o.Checked})
			}
		}
	}
	if r.ovStore == nil {
		return
	}
	list, err := []overrides.Override(nil), error(nil)
	if !connected {
		// Not asked: while NATS is away a read waits for its timeout.
		err = errNATSAway
	} else {
		ctx, cancel := context.WithTimeout(ctx, overridesTimeout)
		list, err = r.ovStore.List(ctx)
		cancel()
	}
	r.ovCache.mu.Lock()
	if err == nil {
		r.ovCache.list, r.ovCache.at = list, now
	} else {
		list = r.ovCache.list
		st.OverridesStale = true
		st.OverridesError = err.Error()
		st.OverridesAsOf = r.ovCache.at
	}
	r.ovCache.mu.Unlock()
	st.Overrides = make([]OverrideStatus, 0, len(list))
	for _, o := range overrides.Sorted(list) {
		st.Overrides = append(st.Overrides, OverrideStatus{PoP: o.PoP, State: o.State.String(), Who: o.Who, Why: o.Why,
			Set: o.Set, Expires: o.Expires, Expired: o.Expired(now)})
	}
}

var errNATSAway = errors.New("NATS cannot be reached")
