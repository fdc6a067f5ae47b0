package healthprobe

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// ob is an observation by instance in region, checked at t0, whose
// penalty is ms milliseconds above a 10 ms baseline.
func ob(instance, region string, healthy bool, ms int) Observation {
	p := time.Duration(ms) * time.Millisecond
	return Observation{Instance: instance, Region: region, Healthy: healthy,
		RTT: 10*time.Millisecond + p, Baseline: 10 * time.Millisecond, Penalty: p, Checked: t0}
}

// votes is n observations in region "eu", the first up of them healthy.
func votes(up, n int) []Observation {
	out := make([]Observation, n)
	for i := range out {
		out[i] = ob(fmt.Sprintf("ns%02d", i), "eu", i < up, 0)
	}
	return out
}

// localStatus is a Prober-like status holding probe "p" with the given
// verdict, probed at t0.
func localStatus(healthy bool) *Status {
	return NewStatus(7, 7, map[string]Result{"p": {Healthy: healthy, RTT: 99 * time.Millisecond,
		Checked: t0, LastChange: t0.Add(-time.Hour), LastError: "local error"}})
}

func mustRule(t *testing.T, name string, f float64) Rule {
	t.Helper()
	r, err := ParseRule(name, f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCombineRules(t *testing.T) {
	eu, us, ap := "eu", "us", "ap"
	tests := []struct {
		name     string
		rule     string
		fraction float64
		min      int
		local    bool // this instance's own verdict
		obs      []Observation
		want     bool
		fallback bool
		diverges bool
	}{
		{"majority 3 of 3", "majority", 0, 2, true, votes(3, 3), true, false, false},
		{"majority 2 of 3: one broken path does not mark down", "majority", 0, 2, false, votes(2, 3), true, false, true},
		{"majority 1 of 3", "majority", 0, 2, true, votes(1, 3), false, false, true},
		{"majority tie 2 of 4 is down", "majority", 0, 2, true, votes(2, 4), false, false, true},
		{"majority 3 of 4", "majority", 0, 2, true, votes(3, 4), true, false, false},
		{"majority 0 of 2", "majority", 0, 2, false, votes(0, 2), false, false, false},
		{"fraction 0.18: 1 of 8 (12.5 %) is down", "fraction", 0.18, 2, true, votes(1, 8), false, false, true},
		{"fraction 0.18: 2 of 8 (25 %) is up", "fraction", 0.18, 2, false, votes(2, 8), true, false, true},
		{"fraction 0.18: exactly 18 % (9 of 50) is down", "fraction", 0.18, 2, true, votes(9, 50), false, false, true},
		{"fraction 0.18: 10 of 50 is up", "fraction", 0.18, 2, true, votes(10, 50), true, false, false},
		{"fraction 0.5 is majority: tie 2 of 4 is down", "fraction", 0.5, 2, true, votes(2, 4), false, false, true},
		{"fraction 0.49: tie 2 of 4 is up", "fraction", 0.49, 2, true, votes(2, 4), true, false, false},
		{"regional: 2 of 3 regions", "regional", 0, 2, true, []Observation{
			ob("a", eu, true, 0), ob("b", eu, true, 0), ob("c", eu, false, 0),
			ob("d", us, false, 0), ob("e", us, false, 0),
			ob("f", ap, true, 0)}, true, false, false},
		{"regional: one region's many observers do not outvote two regions", "regional", 0, 2, true, []Observation{
			ob("a", eu, true, 0), ob("b", eu, true, 0), ob("c", eu, true, 0), ob("d", eu, true, 0),
			ob("e", us, false, 0), ob("f", ap, false, 0)}, false, false, true},
		{"regional: a region's tie is down, so 1 of 2 regions is down", "regional", 0, 2, true, []Observation{
			ob("a", eu, true, 0), ob("b", eu, false, 0), ob("c", us, true, 0)}, false, false, true},
		{"regional: observers with no region form one region", "regional", 0, 2, false, []Observation{
			ob("a", "", true, 0), ob("b", "", true, 0), ob("c", us, false, 0), ob("d", ap, true, 0)}, true, false, true},
		{"below min_observers: local up kept", "majority", 0, 2, true, votes(0, 1), true, true, false},
		{"below min_observers: local down kept", "majority", 0, 3, false, votes(2, 2), false, true, false},
		{"no observers: local kept", "regional", 0, 1, false, nil, false, true, false},
		{"min_observers 0 counts as 1", "majority", 0, 0, false, nil, false, true, false},
		{"local rule: own verdict, divergence against majority", "local", 0, 2, false, votes(3, 3), false, false, true},
		{"local rule: agreeing", "local", 0, 2, true, votes(3, 3), true, false, false},
		{"local rule: too few observers, no divergence", "local", 0, 2, false, votes(1, 1), false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rule := mustRule(t, tc.rule, tc.fraction)
			local := localStatus(tc.local)
			got, div := Combine(local, map[string][]Observation{"p": tc.obs}, rule, tc.min, "ns00", t0)
			r := got.Results["p"]
			if r.Healthy != tc.want {
				t.Errorf("Healthy = %t, want %t (quorum %+v)", r.Healthy, tc.want, r.Quorum)
			}
			if r.Quorum.Fallback != tc.fallback {
				t.Errorf("Fallback = %t, want %t", r.Quorum.Fallback, tc.fallback)
			}
			if r.Quorum.Rule != rule.Kind {
				t.Errorf("Quorum.Rule = %s, want %s", r.Quorum.Rule, rule.Kind)
			}
			if r.Quorum.Observers != len(tc.obs) {
				t.Errorf("Observers = %d, want %d", r.Quorum.Observers, len(tc.obs))
			}
			if wantDiv := tc.diverges; (len(div) == 1) != wantDiv {
				t.Errorf("Divergence = %v, want diverged %t", div, wantDiv)
			}
			if own := local.Results["p"]; (tc.fallback || rule.Kind == RuleLocal) && r.RTT != own.RTT {
				t.Errorf("fallback RTT = %s, want local's %s", r.RTT, own.RTT)
			}
			if !tc.fallback && rule.Kind != RuleLocal && r.RTT != 10*time.Millisecond {
				t.Errorf("combined RTT = %s, want the observers' 10ms", r.RTT)
			}
			if r.LastError != "local error" {
				t.Errorf("LastError = %q, want local's", r.LastError)
			}
			if local.Results["p"].Quorum != (Quorum{}) || local.Generation != 7 {
				t.Error("Combine modified local")
			}
		})
	}
}

func TestCombineRegionalCounts(t *testing.T) {
	obs := []Observation{ob("a", "eu", true, 0), ob("b", "eu", false, 0), ob("c", "us", true, 0), ob("d", "ap", true, 0)}
	got, _ := Combine(localStatus(true), map[string][]Observation{"p": obs}, mustRule(t, "regional", 0), 2, "c", t0)
	want := Quorum{Rule: RuleRegional, Observers: 4, HealthyObservers: 3, Regions: 3, HealthyRegions: 2, Self: true}
	if q := got.Results["p"].Quorum; q != want {
		t.Errorf("Quorum = %+v, want %+v", q, want)
	}
}

func TestCombineFiltering(t *testing.T) {
	old := ob("old", "eu", false, 0)
	old.Checked = t0.Add(-time.Minute)
	dupOld := ob("b", "eu", false, 0)
	dupOld.Checked = t0.Add(-time.Second)
	future := ob("skewed", "eu", true, 0)
	future.Checked = t0.Add(time.Minute)
	unprobed := ob("new", "eu", false, 0)
	unprobed.Checked = time.Time{}
	negative := ob("neg", "eu", false, 0)
	negative.RTT = -1
	anonymous := ob("", "eu", false, 0)

	tests := []struct {
		name      string
		maxAge    time.Duration
		obs       []Observation
		observers int
		healthy   bool
	}{
		{"max age drops the stale", 30 * time.Second, []Observation{old, ob("a", "eu", true, 0), ob("b", "eu", true, 0)}, 2, true},
		{"no max age trusts the transport", 0, []Observation{old, ob("a", "eu", true, 0), ob("b", "eu", true, 0)}, 3, true},
		{"an observation exactly max age old counts", time.Minute, []Observation{old, ob("a", "eu", false, 0)}, 2, false},
		{"a clock ahead of ours still counts", time.Second, []Observation{future, ob("a", "eu", true, 0)}, 2, true},
		{"an instance counts once, its newest", 0, []Observation{dupOld, ob("a", "eu", true, 0), ob("b", "eu", true, 0), dupOld}, 2, true},
		{"never probed, negative, anonymous are ignored", 0,
			[]Observation{unprobed, negative, anonymous, ob("a", "eu", true, 0), ob("b", "eu", true, 0)}, 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rule := mustRule(t, "majority", 0)
			rule.MaxAge = tc.maxAge
			got, _ := Combine(localStatus(!tc.healthy), map[string][]Observation{"p": tc.obs}, rule, 2, "x", t0)
			r := got.Results["p"]
			if r.Quorum.Observers != tc.observers || r.Healthy != tc.healthy || r.Quorum.Fallback {
				t.Errorf("got %d observers, healthy %t (quorum %+v); want %d, %t", r.Quorum.Observers, r.Healthy, r.Quorum, tc.observers, tc.healthy)
			}
		})
	}
}

func TestCombineProbeSets(t *testing.T) {
	local := NewStatus(1, 1, map[string]Result{
		"fleet":  {Healthy: true, Checked: t0},
		"alone":  {Healthy: false, Checked: t0},
		"new":    {Healthy: true}, // not probed yet here
		"absent": {Healthy: true, Checked: t0},
	})
	fleet := map[string][]Observation{
		"fleet":   votes(0, 3),
		"alone":   votes(1, 1),
		"new":     votes(0, 3),
		"unknown": votes(3, 3),
	}
	got, div := Combine(local, fleet, mustRule(t, "majority", 0), 2, "ns00", t0)
	if _, ok := got.Results["unknown"]; ok || len(got.Results) != 4 {
		t.Errorf("results %v: want exactly local's probes", slices.Sorted(mapKeys(got.Results)))
	}
	if got.Results["fleet"].Healthy || got.Results["new"].Healthy {
		t.Error("fleet's down verdict not applied")
	}
	if !got.Results["absent"].Quorum.Fallback || !got.Results["absent"].Healthy {
		t.Error("a probe no one observed does not keep the local verdict")
	}
	if want := (Divergence{"fleet"}); !reflect.DeepEqual(div, want) {
		t.Errorf("Divergence = %v, want %v (a probe not probed here never diverges)", div, want)
	}
	if !got.Results["new"].Quorum.Self {
		t.Error("Self not set though ns00 observed")
	}
	if s, d := Combine(nil, fleet, mustRule(t, "majority", 0), 1, "x", t0); s != nil || d != nil {
		t.Error("nil local (no probes) does not give nil")
	}
}

func mapKeys[M ~map[K]V, K comparable, V any](m M) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestCombineLatency(t *testing.T) {
	tests := []struct {
		name    string
		obs     []Observation
		penalty time.Duration // of the chosen observer; its RTT is 10 ms more
	}{
		{"median of three healthy", []Observation{ob("a", "eu", true, 40), ob("b", "eu", true, 5), ob("c", "eu", true, 200)}, 40 * time.Millisecond},
		{"lower median of four", []Observation{ob("a", "eu", true, 40), ob("b", "eu", true, 5), ob("c", "eu", true, 200), ob("d", "eu", true, 10)}, 10 * time.Millisecond},
		{"the unhealthy do not count", []Observation{ob("a", "eu", true, 5), ob("b", "eu", false, 0), ob("c", "eu", true, 15), ob("d", "eu", false, 0)}, 5 * time.Millisecond},
		{"all unhealthy: median of all", []Observation{ob("a", "eu", false, 50), ob("b", "eu", false, 20), ob("c", "eu", false, 30)}, 30 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := Combine(localStatus(true), map[string][]Observation{"p": tc.obs}, mustRule(t, "fraction", 0.1), 1, "", t0)
			r := got.Results["p"]
			if r.Penalty != tc.penalty || r.RTT != 10*time.Millisecond+tc.penalty || r.Baseline != 10*time.Millisecond {
				t.Errorf("RTT/Baseline/Penalty = %s/%s/%s, want the observer with penalty %s", r.RTT, r.Baseline, r.Penalty, tc.penalty)
			}
			if r.SteeringPenalty() != tc.penalty {
				t.Errorf("SteeringPenalty = %s, want %s", r.SteeringPenalty(), tc.penalty)
			}
		})
	}
}

func TestCombineChecked(t *testing.T) {
	a, b := ob("a", "eu", true, 0), ob("b", "eu", true, 0)
	b.Checked = t0.Add(3 * time.Second)
	got, _ := Combine(localStatus(true), map[string][]Observation{"p": {a, b}}, mustRule(t, "majority", 0), 2, "", t0)
	if c := got.Results["p"].Checked; !c.Equal(b.Checked) {
		t.Errorf("Checked = %v, want the newest observation's %v", c, b.Checked)
	}
}

func TestObservationOf(t *testing.T) {
	if _, ok := ObservationOf("a", "eu", Result{Healthy: true}); ok {
		t.Error("an unprobed result is published")
	}
	tr := NewTracker(2, 3)
	for i := range 12 {
		tr.Observe(t0.Add(time.Duration(i)*time.Second), time.Duration(10+i*4)*time.Millisecond, nil)
	}
	r := tr.Result()
	o, ok := ObservationOf("a", "eu", r)
	if !ok || o.Instance != "a" || o.Region != "eu" || !o.Healthy || o.RTT != r.RTT || o.Baseline != r.Baseline ||
		o.Penalty != r.SteeringPenalty() || !o.Checked.Equal(r.Checked) {
		t.Errorf("ObservationOf = %+v from %+v", o, r)
	}
	if o.Penalty%PenaltyStep != 0 {
		t.Errorf("Penalty %s is not a steering penalty", o.Penalty)
	}
}

func TestParseRule(t *testing.T) {
	tests := []struct {
		name     string
		fraction float64
		want     Rule
		err      string
	}{
		{"local", 0, Rule{Kind: RuleLocal}, ""},
		{"", 0, Rule{Kind: RuleLocal}, ""},
		{"majority", 0, Rule{Kind: RuleMajority}, ""},
		{"regional", 0, Rule{Kind: RuleRegional}, ""},
		{"fraction", 0.18, Rule{Kind: RuleFraction, Fraction: 0.18}, ""},
		{"fraction", 0, Rule{}, "fraction: 0 must be more than 0 and less than 1"},
		{"fraction", 1, Rule{}, "fraction: 1 must be more than 0"},
		{"fraction", -0.1, Rule{}, "fraction: -0.1 must be"},
		{"fraction", 1e-9, Rule{}, "fraction: 1e-09 must be"},
		{"fraction", 0.9999999, Rule{}, "fraction: 0.9999999 must be"},
		{"majority", 0.3, Rule{}, "fraction: 0.3 applies only to health: fraction, not majority"},
		{"Majority", 0, Rule{}, `health: "Majority" is not a rule: local, majority, fraction or regional`},
		{"quorum", 0, Rule{}, `health: "quorum" is not a rule`},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%g", tc.name, tc.fraction), func(t *testing.T) {
			got, err := ParseRule(tc.name, tc.fraction)
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q...", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseRule = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	if err := (Rule{Kind: RuleFraction, Fraction: 2}).validate(); !errors.Is(err, errFraction) {
		t.Errorf("validate = %v, want errFraction", err)
	}
	for r, want := range map[Rule]string{{}: "local", {Kind: RuleFraction, Fraction: 0.18}: "fraction 0.18", {Kind: 9}: "rule(9)"} {
		if r.String() != want {
			t.Errorf("%#v.String() = %q, want %q", r, r.String(), want)
		}
	}
}

// An invalid Rule, which ParseRule would never return, counts as local.
func TestCombineInvalidRule(t *testing.T) {
	for _, rule := range []Rule{{Kind: 9}, {Kind: RuleFraction, Fraction: 1.5}, {Kind: RuleMajority, MaxAge: -1}} {
		got, _ := Combine(localStatus(false), map[string][]Observation{"p": votes(3, 3)}, rule, 1, "", t0)
		if r := got.Results["p"]; r.Healthy || r.Quorum.Rule != RuleLocal {
			t.Errorf("%+v: %+v, want local's verdict", rule, r)
		}
	}
}

func TestFollow(t *testing.T) {
	prev := localStatus(true) // Generation, Steering, Health 7
	same, _ := Combine(prev, nil, Rule{}, 1, "", t0)
	same.Follow(prev)
	if same.Generation != 8 || same.Steering != 7 || same.Health != 7 {
		t.Errorf("unchanged: %d/%d/%d, want 8/7/7", same.Generation, same.Steering, same.Health)
	}
	down, _ := Combine(prev, map[string][]Observation{"p": votes(0, 3)}, mustRule(t, "majority", 0), 1, "", t0)
	down.Follow(same)
	if down.Generation != 9 || down.Steering != 8 || down.Health != 8 {
		t.Errorf("health change: %d/%d/%d, want 9/8/8", down.Generation, down.Steering, down.Health)
	}
	slow, _ := Combine(prev, map[string][]Observation{"p": {ob("a", "eu", true, 50)}}, mustRule(t, "majority", 0), 1, "", t0)
	slow.Follow(down)
	slower, _ := Combine(prev, map[string][]Observation{"p": {ob("a", "eu", true, 80)}}, mustRule(t, "majority", 0), 1, "", t0)
	slower.Follow(slow)
	if slower.Steering != slow.Steering+1 || slower.Health != slow.Health {
		t.Errorf("penalty change: steering %d→%d health %d→%d, want steering only", slow.Steering, slower.Steering, slow.Health, slower.Health)
	}
	var first Status
	first.Follow(nil)
	if first.Generation != 1 || first.Steering != 1 || first.Health != 1 {
		t.Errorf("first: %+v", first)
	}
}

// fleetFrom builds, from fuzz bytes, a local status and observations of
// three probes: each 4 bytes are one observation (probe, instance,
// region, verdict and penalty), so that duplicates, regions and ties come
// up often.
func fleetFrom(data []byte) (*Status, map[string][]Observation) {
	ids := []string{"p0", "p1", "p2"}
	local := map[string]Result{}
	for i, id := range ids {
		local[id] = Result{Healthy: i%2 == 0, Checked: t0, RTT: time.Millisecond}
	}
	fleet := map[string][]Observation{}
	for ; len(data) >= 4; data = data[4:] {
		id := ids[int(data[0])%(len(ids)+1)%len(ids)]
		if data[0] == 255 {
			id = "unknown"
		}
		o := Observation{
			Instance: string(rune('a' + data[1]%7)),
			Region:   []string{"", "eu", "us"}[data[2]%3],
			Healthy:  data[3]&1 == 1,
			RTT:      time.Duration(data[3]>>1) * time.Millisecond,
			Baseline: time.Duration(data[2]>>2) * time.Millisecond,
			Penalty:  time.Duration(data[3]>>4) * PenaltyStep,
			Checked:  t0.Add(-time.Duration(data[1]>>3) * time.Second),
		}
		if data[2] == 254 {
			o.Checked = time.Time{}
		}
		fleet[id] = append(fleet[id], o)
	}
	return NewStatus(1, 1, local), fleet
}

// checkCombine runs Combine on fleet and on shuffled copies of it under
// every rule and fails unless the results are identical and counted right.
func checkCombine(t *testing.T, local *Status, fleet map[string][]Observation, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, rule := range []Rule{{}, {Kind: RuleMajority}, {Kind: RuleFraction, Fraction: 0.18}, {Kind: RuleRegional}, {Kind: RuleMajority, MaxAge: 10 * time.Second}} {
		for _, minObs := range []int{0, 1, 2, 4} {
			want, wantDiv := Combine(local, fleet, rule, minObs, "a", t0)
			for range 3 {
				shuffled := map[string][]Observation{}
				for id, obs := range fleet {
					obs = slices.Clone(obs)
					rng.Shuffle(len(obs), func(i, j int) { obs[i], obs[j] = obs[j], obs[i] })
					shuffled[id] = obs
				}
				got, gotDiv := Combine(local, shuffled, rule, minObs, "a", t0)
				if !reflect.DeepEqual(got.Results, want.Results) || !slices.Equal(gotDiv, wantDiv) {
					t.Fatalf("rule %v min %d: order changed the result:\n%+v %v\n%+v %v", rule, minObs, want.Results, wantDiv, got.Results, gotDiv)
				}
			}
			for id, r := range want.Results {
				distinct := map[string]bool{}
				for _, o := range fleet[id] {
					if o.valid() {
						distinct[o.Instance] = true
					}
				}
				q := r.Quorum
				if q.Observers > len(distinct) || q.HealthyObservers > q.Observers || q.HealthyRegions > q.Regions {
					t.Fatalf("rule %v %s: impossible counts %+v for %d instances", rule, id, q, len(distinct))
				}
				if q.Fallback != (rule.Kind != RuleLocal && q.Observers < max(minObs, 1)) {
					t.Fatalf("rule %v min %d %s: Fallback %t with %d observers", rule, minObs, id, q.Fallback, q.Observers)
				}
				if rule.Kind == RuleLocal || q.Fallback {
					if r.Healthy != local.Results[id].Healthy {
						t.Fatalf("rule %v %s: local verdict not kept", rule, id)
					}
				} else if rule.Kind == RuleMajority && r.Healthy != (2*q.HealthyObservers > q.Observers) {
					t.Fatalf("majority %s: healthy %t with %d of %d", id, r.Healthy, q.HealthyObservers, q.Observers)
				}
			}
			if !slices.IsSorted(wantDiv) {
				t.Fatalf("Divergence %v not sorted", wantDiv)
			}
		}
	}
}

func TestCombineOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	for i := range 200 {
		data := make([]byte, 4*rng.IntN(24))
		for j := range data {
			data[j] = byte(rng.UintN(256))
		}
		local, fleet := fleetFrom(data)
		checkCombine(t, local, fleet, uint64(i))
	}
}

func FuzzCombine(f *testing.F) {
	f.Add([]byte{})                                   // no observations: all fallback
	f.Add([]byte{0, 0, 1, 1, 0, 1, 1, 0, 0, 2, 2, 1}) // p0: three instances, two regions, a tie per region
	f.Add([]byte{1, 3, 0, 255, 1, 3, 0, 0})           // one instance twice, same time, differing verdicts
	f.Add([]byte{255, 0, 0, 1, 2, 9, 254, 1})         // an unknown probe and a never-probed observation
	f.Fuzz(func(t *testing.T, data []byte) {
		local, fleet := fleetFrom(data)
		checkCombine(t, local, fleet, uint64(len(data)))
	})
}

// The JSON form is what a transport carries; one without the latency
// fields (an older publisher) decodes to no penalty, not an error.
func TestObservationJSON(t *testing.T) {
	o := ob("ns1-fra", "eu", true, 15)
	data, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"instance":"ns1-fra","region":"eu","healthy":true,"rtt_ns":25000000,"baseline_ns":10000000,"penalty_ns":15000000,"checked":"2026-12-01T12:00:00Z"}`
	if string(data) != want {
		t.Errorf("JSON = %s, want %s", data, want)
	}
	var back Observation
	if err := json.Unmarshal(data, &back); err != nil || back != o {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, o)
	}
	var old Observation
	if err := json.Unmarshal([]byte(`{"instance":"a","healthy":false,"rtt_ns":5,"checked":"2026-12-01T12:00:00Z"}`), &old); err != nil || !old.valid() || old.Penalty != 0 {
		t.Errorf("older form = %+v, %v", old, err)
	}
}
