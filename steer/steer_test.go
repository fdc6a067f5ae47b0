package steer

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
)

var testPoPs = []pops.PoP{
	{Name: "fra", Point: geo.Point{Lat: 50.11, Lon: 8.68}, Country: "DE", Continent: "EU", Probe: "pop-fra"},
	{Name: "iad", Point: geo.Point{Lat: 38.95, Lon: -77.45}, Country: "US", Continent: "NA"},
	{Name: "sin", Point: geo.Point{Lat: 1.35, Lon: 103.82}, Country: "SG", Continent: "AS"},
}

const testZone = `
origin: steer.test.
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
          sin: { a: 192.0.2.3 }
  v6only:
    - geo:
        targets:
          fra: { aaaa: 2001:db8::1 }
  rules:
    - geo:
        targets:
          fra: { a: 192.0.2.1 }
          iad: { a: 192.0.2.2 }
        rules:
          - { cidr: [81.2.69.0/24], only: [iad] }
  pinned:
    - geo:
        when_all_down: servfail
        targets:
          fra: { a: 192.0.2.1, state: drain }
`

const fraProbe = "tcp://192.0.2.1:443"

func loadTest(t *testing.T) *zones.Snapshot {
	t.Helper()
	inv, err := pops.New(testPoPs...)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(fstest.MapFS{"steer.test.yaml": {Data: []byte(testZone)}}, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func geoOf(t testing.TB, snap *zones.Snapshot, name string) *zones.Geo {
	t.Helper()
	m := snap.Match(name).Lookup(name, dns.TypeA)
	if m.Node == nil || m.Node.Geo() == nil {
		t.Fatalf("%s is not a geo record", name)
	}
	return m.Node.Geo()
}

func provisioned(t testing.TB, o Options) Options {
	t.Helper()
	o, err := o.Provision()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// berlin is placed near fra, the subnet a rule of "rules" names.
var berlin = geo.Location{Found: true, HasPoint: true, Point: geo.Point{Lat: 52.52, Lon: 13.40}, Country: "DE",
	Continent: "EU", Prefix: netip.MustParsePrefix("81.2.69.0/24")}

func TestRank(t *testing.T) {
	snap := loadTest(t)
	up, down := healthprobe.Result{Healthy: true}, healthprobe.Result{}
	slow := healthprobe.Result{Healthy: true, Penalty: 500 * time.Millisecond}
	client := netip.MustParseAddr("81.2.69.10")
	tests := []struct {
		name      string
		owner     string
		qtype     uint16
		loc       geo.Location
		results   map[string]healthprobe.Result // nil: no probes
		overrides map[string]pops.AdminState
		weight    *float64
		want      []string // the answered targets' PoPs, best first
		nodata    bool
		servfail  bool
		allDown   bool
		scope     int
	}{
		{name: "nearest", owner: "www.steer.test.", loc: berlin, want: []string{"fra"}, scope: 24},
		{name: "unknown location: record order", owner: "www.steer.test.", want: []string{"fra"}},
		{name: "target probe down", owner: "www.steer.test.", loc: berlin,
			results: map[string]healthprobe.Result{fraProbe: down, "pop-fra": up}, want: []string{"iad"}, scope: 24},
		{name: "PoP probe down", owner: "www.steer.test.", loc: berlin,
			results: map[string]healthprobe.Result{fraProbe: up, "pop-fra": down}, want: []string{"iad"}, scope: 24},
		{name: "operator drains fra", owner: "www.steer.test.", loc: berlin,
			overrides: map[string]pops.AdminState{"fra": pops.Drain}, want: []string{"iad"}, scope: 24},
		{name: "penalty moves clients", owner: "www.steer.test.", loc: berlin,
			results: map[string]healthprobe.Result{fraProbe: slow}, want: []string{"iad"}, scope: 24},
		{name: "weight 0 ignores penalties", owner: "www.steer.test.", loc: berlin, weight: new(0.0),
			results: map[string]healthprobe.Result{fraProbe: slow}, want: []string{"fra"}, scope: 24},
		{name: "no target of the type: nodata", owner: "v6only.steer.test.", qtype: dns.TypeA, loc: berlin, nodata: true},
		{name: "rule pins the network", owner: "rules.steer.test.", loc: berlin, want: []string{"iad"}, scope: 24},
		{name: "all down, servfail policy", owner: "pinned.steer.test.", loc: berlin, servfail: true, allDown: true, scope: 24},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var health *healthprobe.Status
			if tc.results != nil {
				health = healthprobe.NewStatus(1, 1, tc.results)
			}
			var ov *Overrides
			if tc.overrides != nil {
				ov = ov.Next(tc.overrides)
			}
			env := NewEnv(provisioned(t, Options{PenaltyWeight: tc.weight}), snap, health, ov, time.Now)
			qtype := tc.qtype
			if qtype == 0 {
				qtype = dns.TypeA
			}
			g := geoOf(t, snap, tc.owner)
			var cands Candidates
			d := Rank(g, qtype, client, tc.loc, &env, &cands)
			var got []string
			for _, idx := range d.Answered() {
				got = append(got, g.Targets[idx].Name())
			}
			if !equal(got, tc.want) || d.NoData != tc.nodata || d.Servfail != tc.servfail || d.AllDown != tc.allDown || d.Scope != tc.scope {
				t.Errorf("answered %v nodata %v servfail %v allDown %v scope %d; want %v %v %v %v %d",
					got, d.NoData, d.Servfail, d.AllDown, d.Scope, tc.want, tc.nodata, tc.servfail, tc.allDown, tc.scope)
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEnvRules: the state, health and eligibility rules that the status
// model reads, on one target and its PoP.
func TestEnvRules(t *testing.T) {
	snap := loadTest(t)
	g := geoOf(t, snap, "www.steer.test.")
	fra := &g.Targets[0]
	up, down := healthprobe.Result{Healthy: true}, healthprobe.Result{}
	tests := []struct {
		name      string
		results   map[string]healthprobe.Result
		overrides map[string]pops.AdminState
		state     pops.AdminState
		popUp     bool
		healthy   bool
		eligible  bool
	}{
		{"no probes", nil, nil, pops.Active, true, true, true},
		{"not yet probed counts as up", map[string]healthprobe.Result{}, nil, pops.Active, true, true, true},
		{"own probe down", map[string]healthprobe.Result{fraProbe: down, "pop-fra": up}, nil, pops.Active, true, false, false},
		{"PoP probe down", map[string]healthprobe.Result{fraProbe: up, "pop-fra": down}, nil, pops.Active, false, false, false},
		{"drained by an operator", nil, map[string]pops.AdminState{"fra": pops.Drain}, pops.Drain, true, true, false},
		{"down beats drain", nil, map[string]pops.AdminState{"fra": pops.Down}, pops.Down, true, true, false},
		{"an active override changes nothing", nil, map[string]pops.AdminState{"fra": pops.Active}, pops.Active, true, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var health *healthprobe.Status
			if tc.results != nil {
				health = healthprobe.NewStatus(1, 1, tc.results)
			}
			var ov *Overrides
			if tc.overrides != nil {
				ov = ov.Next(tc.overrides)
			}
			env := NewEnv(provisioned(t, Options{}), snap, health, ov, time.Now)
			healthy, _ := env.TargetHealth(fra)
			if st := env.TargetState(fra); st != tc.state || env.PoPHealthy(fra.PoP) != tc.popUp || healthy != tc.healthy || env.Eligible(fra) != tc.eligible {
				t.Errorf("state %v popUp %v healthy %v eligible %v; want %v %v %v %v",
					st, env.PoPHealthy(fra.PoP), healthy, env.Eligible(fra), tc.state, tc.popUp, tc.healthy, tc.eligible)
			}
		})
	}
}

func TestEpoch(t *testing.T) {
	snap := loadTest(t)
	opt := provisioned(t, Options{})
	h1 := healthprobe.NewStatus(1, 1, nil)
	var ov *Overrides
	ov2 := ov.Next(map[string]pops.AdminState{"fra": pops.Drain})
	base := NewEnv(opt, snap, h1, nil, time.Now).Epoch
	withOv := NewEnv(opt, snap, h1, ov2, time.Now).Epoch
	if !withOv.Newer(base) || base.Newer(withOv) {
		t.Errorf("an override's epoch %+v is not newer than %+v", withOv, base)
	}
	soft := base
	soft.Steering, soft.Bucket = 9, 9
	if soft.Strict() != base.Strict() {
		t.Errorf("penalties and ages changed the strict epoch")
	}
	partly := base
	partly.Health++
	other := base
	other.Overrides++
	if partly.Newer(other) || other.Newer(partly) {
		t.Errorf("epochs each partly newer compare as newer")
	}
	// Without a latency table, entries cannot age: the clock is not read.
	NewEnv(Options{LatencyMaxAge: time.Hour}, snap, nil, nil, func() time.Time {
		t.Error("clock read without a latency table")
		return time.Time{}
	})
}

func TestProvision(t *testing.T) {
	tests := []struct {
		name  string
		in    Options
		field string // "" when valid
	}{
		{"defaults", Options{}, ""},
		{"inflation below 1", Options{PathInflation: 0.5}, "PathInflation"},
		{"negative max age", Options{LatencyMaxAge: -time.Second}, "LatencyMaxAge"},
		{"negative weight", Options{PenaltyWeight: new(-1.0)}, "PenaltyWeight"},
		{"weight 0 is valid", Options{PenaltyWeight: new(0.0)}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := tc.in.Provision()
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				again, err := o.Provision()
				if err != nil || again != o {
					t.Errorf("provisioning twice changed %+v to %+v (%v)", o, again, err)
				}
				return
			}
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Field != tc.field {
				t.Errorf("error %v, want one for %s", err, tc.field)
			}
		})
	}
	o, _ := Options{}.Provision()
	if o.PathInflation != DefaultPathInflation || o.penaltyWeight() != 1 {
		t.Errorf("defaults %+v", o)
	}
	// Every bad field is reported, not only the first.
	_, err := Options{PathInflation: 0.5, LatencyMaxAge: -1, PenaltyWeight: new(-1.0)}.Provision()
	if j, ok := err.(interface{ Unwrap() []error }); !ok || len(j.Unwrap()) != 3 {
		t.Errorf("three bad fields gave %v, want three errors", err)
	}
}

// TestRankAllocs: ranking is on the query path and must not allocate.
func TestRankAllocs(t *testing.T) {
	snap := loadTest(t)
	env := NewEnv(provisioned(t, Options{}), snap, healthprobe.NewStatus(1, 1, map[string]healthprobe.Result{fraProbe: {Healthy: true}}), nil, time.Now)
	g := geoOf(t, snap, "www.steer.test.")
	client := netip.MustParseAddr("81.2.69.10")
	var cands Candidates
	if n := testing.AllocsPerRun(100, func() { Rank(g, dns.TypeA, client, berlin, &env, &cands) }); n != 0 {
		t.Errorf("Rank allocates %v times per call", n)
	}
}

func BenchmarkRank(b *testing.B) {
	inv, _ := pops.New(testPoPs...)
	snap, err := zones.Load(fstest.MapFS{"steer.test.yaml": {Data: []byte(testZone)}}, inv, nil)
	if err != nil {
		b.Fatal(err)
	}
	opt, _ := Options{}.Provision()
	env := NewEnv(opt, snap, nil, nil, time.Now)
	g := snap.Match("www.steer.test.").Lookup("www.steer.test.", dns.TypeA).Node.Geo()
	client := netip.MustParseAddr("81.2.69.10")
	var cands Candidates
	b.ReportAllocs()
	for b.Loop() {
		Rank(g, dns.TypeA, client, berlin, &env, &cands)
	}
}

func TestPoPUp(t *testing.T) {
	snap := loadTest(t)
	fra := snap.PoPs().Get("fra")
	up, down := healthprobe.Result{Healthy: true}, healthprobe.Result{}
	tests := []struct {
		name              string
		popProbe          healthprobe.Result
		override          pops.AdminState
		eligible, targets int
		want              bool
	}{
		{"active, probe up, a target eligible", up, pops.Active, 1, 2, true},
		{"no target eligible", up, pops.Active, 0, 2, false},
		{"no targets at all: judged on its own", up, pops.Active, 0, 0, true},
		{"its probe down", down, pops.Active, 2, 2, false},
		{"drained", up, pops.Drain, 2, 2, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ov *Overrides
			ov = ov.Next(map[string]pops.AdminState{"fra": tc.override})
			env := NewEnv(provisioned(t, Options{}), snap, healthprobe.NewStatus(1, 1, map[string]healthprobe.Result{"pop-fra": tc.popProbe}), ov, time.Now)
			if got := env.PoPUp(fra, tc.eligible, tc.targets); got != tc.want {
				t.Errorf("PoPUp = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEligiblePoPs(t *testing.T) {
	snap := loadTest(t)
	down := healthprobe.Result{}
	tests := []struct {
		name      string
		record    string
		results   map[string]healthprobe.Result
		overrides map[string]pops.AdminState
		want      []string
	}{
		{"all eligible", "www.steer.test.", nil, nil, []string{"fra", "iad", "sin"}},
		{"drained and down", "www.steer.test.", nil, map[string]pops.AdminState{"fra": pops.Drain, "sin": pops.Down}, []string{"iad"}},
		{"probe down", "www.steer.test.", map[string]healthprobe.Result{"pop-fra": down}, nil, []string{"iad", "sin"}},
		{"target drained in its zone", "pinned.steer.test.", nil, nil, nil},
		{"none left", "rules.steer.test.", nil, map[string]pops.AdminState{"fra": pops.Down, "iad": pops.Drain}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var health *healthprobe.Status
			if tc.results != nil {
				health = healthprobe.NewStatus(1, 1, tc.results)
			}
			var ov *Overrides
			env := NewEnv(provisioned(t, Options{}), snap, health, ov.Next(tc.overrides), time.Now)
			if got := env.EligiblePoPs(geoOf(t, snap, tc.record)); !slices.Equal(got, tc.want) {
				t.Errorf("EligiblePoPs = %v, want %v", got, tc.want)
			}
		})
	}
}
