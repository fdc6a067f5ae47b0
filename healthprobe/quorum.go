package healthprobe

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// Observation is one instance's published view of one probe, as a fleet
// transport delivers it: the instance's Result reduced to what the other
// instances need to decide the same way. It is a plain value; the JSON
// form is what a transport may carry (durations in nanoseconds).
//
// RTT, Baseline and Penalty travel together because RTTs from different
// vantage points are not comparable (ns1-fra sees a Frankfurt PoP at 2 ms,
// ns2-sjc at 150 ms): only each observer's excess over its own baseline
// says whether the PoP got slower.
type Observation struct {
	Instance string        `json:"instance"`         // the observer's cluster.instance; never empty
	Region   string        `json:"region,omitempty"` // the observer's cluster.region; may be empty
	Healthy  bool          `json:"healthy"`          // its verdict after its own rise/fall hysteresis
	RTT      time.Duration `json:"rtt_ns"`           // its smoothed RTT (Result.RTT)
	Baseline time.Duration `json:"baseline_ns"`      // its own baseline (Result.Baseline)
	// Penalty is the observer's SteeringPenalty: its RTT above its own
	// baseline, in PenaltySteps, with its hysteresis already applied.
	Penalty time.Duration `json:"penalty_ns"`
	Checked time.Time     `json:"checked"` // when the observer's last probe finished; zero: never probed
}

// ObservationOf is what instance (in region) publishes for its Result r,
// and false when r has not been probed yet: a verdict that is only the
// "not yet probed counts as healthy" default is no observation.
func ObservationOf(instance, region string, r Result) (Observation, bool) {
	if !r.Probed() {
		return Observation{}, false
	}
	return Observation{Instance: instance, Region: region, Healthy: r.Healthy, RTT: r.RTT,
		Baseline: r.Baseline, Penalty: r.SteeringPenalty(), Checked: r.Checked}, true
}

// valid reports whether o can be counted: a probed observation of a
// named instance with no negative duration. Anything else comes from a
// broken or foreign publisher and is ignored rather than trusted.
func (o Observation) valid() bool {
	return o.Instance != "" && !o.Checked.IsZero() && o.RTT >= 0 && o.Baseline >= 0 && o.Penalty >= 0
}

// RuleKind is how a fleet turns its observers' verdicts into one.
type RuleKind uint8

// The rules of cluster.health. Local is the zero value.
const (
	// RuleLocal: each instance uses its own probes (no fleet).
	RuleLocal RuleKind = iota
	// RuleMajority: healthy when more than half of the observers say so;
	// a tie (2 of 4) is unhealthy.
	RuleMajority
	// RuleFraction: healthy when more than Fraction of the observers say
	// so (Route 53 uses 0.18: more than 18 %). 0.5 is RuleMajority.
	RuleFraction
	// RuleRegional: healthy in more than half of the regions, a region
	// being healthy when more than half of its observers say so.
	RuleRegional
)

var ruleNames = [...]string{RuleLocal: "local", RuleMajority: "majority", RuleFraction: "fraction", RuleRegional: "regional"}

// String is the rule's name as cluster.health spells it.
func (k RuleKind) String() string {
	if int(k) < len(ruleNames) {
		return ruleNames[k]
	}
	return "rule(" + strconv.Itoa(int(k)) + ")"
}

// Rule is the fleet's health rule. The zero value is RuleLocal with no
// age limit. Build one with ParseRule; a Rule that ParseRule would reject
// counts as RuleLocal in Combine.
type Rule struct {
	Kind RuleKind
	// Fraction is the share of observers that must say healthy, strictly
	// exceeded, in (0, 1); RuleFraction only. Combine compares in parts
	// per million (Fraction rounded to 6 decimals) so that the boundary
	// is exact: 0.18 of 50 observers is 9, and 9 healthy is not enough.
	Fraction float64
	// MaxAge, when positive, ignores observations whose Checked is older
	// than now-MaxAge. The transport's per-key TTL already drops
	// instances that stop publishing; MaxAge also drops an instance that
	// keeps publishing a verdict its stuck prober no longer renews. Set it
	// to a few probe intervals; 0 trusts the transport.
	MaxAge time.Duration
}

// ParseRule returns the rule cluster.health names, with fraction
// (cluster.fraction) for "fraction"; fraction must be 0 (unset) for the
// other rules. The errors name the field and the values allowed.
func ParseRule(name string, fraction float64) (Rule, error) {
	var r Rule
	switch name {
	case "local", "":
		r.Kind = RuleLocal
	case "majority":
		r.Kind = RuleMajority
	case "regional":
		r.Kind = RuleRegional
	case "fraction":
		r.Kind, r.Fraction = RuleFraction, fraction
	default:
		return Rule{}, fmt.Errorf("health: %q is not a rule: local, majority, fraction or regional", name)
	}
	if r.Kind != RuleFraction && fraction != 0 {
		return Rule{}, fmt.Errorf("fraction: %g applies only to health: fraction, not %s", fraction, r.Kind)
	}
	if err := r.validate(); err != nil {
		return Rule{}, err
	}
	return r, nil
}

// errFraction is the range of Rule.Fraction.
var errFraction = errors.New("must be more than 0 and less than 1 (healthy when more than this share of observers says so; Route 53 uses 0.18)")

func (r Rule) validate() error {
	if r.Kind > RuleRegional {
		return fmt.Errorf("health: unknown rule %d", r.Kind)
	}
	if r.MaxAge < 0 {
		return fmt.Errorf("health: max age %s is negative", r.MaxAge)
	}
	if r.Kind == RuleFraction {
		f := r.Fraction
		if math.IsNaN(f) || f <= 0 || f >= 1 || r.ppm() <= 0 || r.ppm() >= ppmOne {
			return fmt.Errorf("fraction: %g %w", f, errFraction)
		}
	}
	return nil
}

const ppmOne = 1_000_000

// ppm is Fraction in parts per million.
func (r Rule) ppm() int64 { return int64(math.Round(r.Fraction * ppmOne)) }

// String is the rule as /status shows it: "majority", "fraction 0.18".
func (r Rule) String() string {
	if r.Kind == RuleFraction {
		return "fraction " + strconv.FormatFloat(r.Fraction, 'g', -1, 64)
	}
	return r.Kind.String()
}

// Quorum says how Combine reached a probe's Result. It is the zero value
// in a Prober's own Status.
type Quorum struct {
	Rule RuleKind // the rule applied
	// Observers counts the fresh, valid observations of distinct
	// instances; HealthyObservers those that said healthy.
	Observers, HealthyObservers int
	// Regions and HealthyRegions count the observers' regions and those
	// where more than half said healthy (RuleRegional only).
	Regions, HealthyRegions int
	// Fallback: fewer than min_observers observed, so the Result is this
	// instance's own, hysteresis and all.
	Fallback bool
	// Self: this instance's own observation was among those counted (it
	// is not when it has not been published yet, or NATS is away).
	Self bool
}

// Divergence lists, sorted, the probes whose local verdict differs from
// the fleet's: what the divergence gauge counts.
type Divergence []string

// Combine returns the Status this instance serves under rule: for every
// probe of local, the verdict of the observers in fleet (keyed by probe
// ID) when at least minObservers distinct instances observed it, else
// local's own Result marked Quorum.Fallback. Every instance that holds
// the same observations computes the same Healthy, RTT, Baseline, Penalty
// and Checked whatever their order, so every instance answers a client
// the same way.
//
// self is this instance's name. Its own observation counts only as
// published in fleet: substituting local's fresher Result for it would
// make this instance disagree with its peers for as long as a publish
// takes.
//
// For each probe, the observations are deduplicated by instance (the
// newest Checked wins), and the invalid ones (no instance, never probed,
// a negative duration) and, with rule.MaxAge, those older than
// now-rule.MaxAge are dropped. minObservers below 1 counts as 1. IDs in
// fleet that local does not have are ignored: this instance does not
// serve them.
//
// RTT, Baseline and Penalty are those of one observer, so that Penalty
// stays that observer's excess over its own baseline: the lower median,
// by (Penalty, RTT, Instance), of the observers that said healthy, or of
// all observers when none did (so that a record whose targets are all
// down and that fails open still ranks them by latency). Its Penalty is
// already that observer's SteeringPenalty, which steer adds. LastChange,
// LastError and LastReason stay local's: they describe this instance's
// own probe.
//
// Under RuleLocal the results are local's, but Quorum counts the
// observers and Divergence compares local with what RuleMajority would
// decide, so that the gauge shows what a fleet rule would change. A
// local probe not probed yet never diverges.
//
// The returned Status is new (local is not modified) and its Generation,
// Steering and Health are zero: call Follow before publishing it. A nil
// local (no probes) returns nil.
func Combine(local *Status, fleet map[string][]Observation, rule Rule, minObservers int, self string, now time.Time) (*Status, Divergence) {
	if local == nil {
		return nil, nil
	}
	if rule.validate() != nil {
		rule = Rule{}
	}
	minObservers = max(minObservers, 1)
	out := &Status{Results: make(map[string]Result, len(local.Results)), superseded: make(chan struct{})}
	var div Divergence
	for id, own := range local.Results {
		obs := fresh(fleet[id], rule.MaxAge, now)
		verdict := rule
		if rule.Kind == RuleLocal {
			verdict.Kind = RuleMajority
		}
		q, healthy := decide(obs, verdict.Kind, verdict.ppm())
		q.Rule = rule.Kind
		q.Self = slices.ContainsFunc(obs, func(o Observation) bool { return o.Instance == self })
		quorate := q.Observers >= minObservers
		if quorate && own.Probed() && own.Healthy != healthy {
			div = append(div, id)
		}
		if rule.Kind == RuleLocal || !quorate {
			r := own
			q.Fallback = rule.Kind != RuleLocal
			r.Quorum = q
			out.Results[id] = r
			continue
		}
		r := Result{Healthy: healthy, LastChange: own.LastChange, LastError: own.LastError,
			LastReason: own.LastReason, Quorum: q}
		if m, ok := medianObserver(obs); ok {
			r.RTT, r.Baseline, r.Penalty = m.RTT, m.Baseline, m.Penalty
		}
		for _, o := range obs {
			if o.Checked.After(r.Checked) {
				r.Checked = o.Checked
			}
		}
		out.Results[id] = r
	}
	slices.Sort(div)
	return out, div
}

// fresh returns the valid observations of distinct instances in obs,
// sorted by instance, the newest of each instance kept, those older than
// now-maxAge dropped when maxAge > 0. The sort key covers every field, so
// the result does not depend on obs's order.
func fresh(obs []Observation, maxAge time.Duration, now time.Time) []Observation {
	out := make([]Observation, 0, len(obs))
	for _, o := range obs {
		if o.valid() && (maxAge <= 0 || !o.Checked.Before(now.Add(-maxAge))) {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b Observation) int {
		return cmp.Or(cmp.Compare(a.Instance, b.Instance), b.Checked.Compare(a.Checked),
			cmp.Compare(a.Region, b.Region), cmpBool(a.Healthy, b.Healthy),
			cmp.Compare(a.RTT, b.RTT), cmp.Compare(a.Baseline, b.Baseline), cmp.Compare(a.Penalty, b.Penalty))
	})
	return slices.CompactFunc(out, func(a, b Observation) bool { return a.Instance == b.Instance })
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// decide counts obs and applies kind (never RuleLocal) to them; ppm is
// the fraction for RuleFraction.
func decide(obs []Observation, kind RuleKind, ppm int64) (q Quorum, healthy bool) {
	q.Observers = len(obs)
	for _, o := range obs {
		if o.Healthy {
			q.HealthyObservers++
		}
	}
	switch kind {
	case RuleFraction:
		healthy = int64(q.HealthyObservers)*ppmOne > ppm*int64(q.Observers)
	case RuleRegional:
		type tally struct{ n, up int }
		regions := map[string]tally{}
		for _, o := range obs {
			t := regions[o.Region]
			t.n++
			if o.Healthy {
				t.up++
			}
			regions[o.Region] = t
		}
		q.Regions = len(regions)
		for _, t := range regions {
			if 2*t.up > t.n {
				q.HealthyRegions++
			}
		}
		healthy = 2*q.HealthyRegions > q.Regions
	default:
		healthy = 2*q.HealthyObservers > q.Observers
	}
	return q, healthy
}

// medianObserver is the lower median by (Penalty, RTT, Instance) of the
// healthy observers in obs, or of all when none is healthy; false when obs
// is empty.
func medianObserver(obs []Observation) (Observation, bool) {
	pool := make([]Observation, 0, len(obs))
	for _, o := range obs {
		if o.Healthy {
			pool = append(pool, o)
		}
	}
	if len(pool) == 0 {
		pool = append(pool, obs...)
	}
	if len(pool) == 0 {
		return Observation{}, false
	}
	slices.SortFunc(pool, func(a, b Observation) int {
		return cmp.Or(cmp.Compare(a.Penalty, b.Penalty), cmp.Compare(a.RTT, b.RTT), cmp.Compare(a.Instance, b.Instance))
	})
	return pool[(len(pool)-1)/2], true
}

// Follow numbers s, which Combine returned and nobody has read yet, as
// the successor of prev, the Status published before it (a Prober's or an
// earlier Combine's; nil for none): Generation one more than prev's, and
// Steering and Health one more than prev's when what selection reads
// changed, so that caches keyed on them see every change and never a
// number going back. It does not modify prev.
func (s *Status) Follow(prev *Status) {
	if prev == nil {
		s.Generation, s.Steering, s.Health = 1, 1, 1
		return
	}
	s.Generation, s.Steering, s.Health = prev.Generation+1, prev.Steering, prev.Health
	health, steering := prev.Changes(s)
	if steering {
		s.Steering++
	}
	if health {
		s.Health++
	}
}
