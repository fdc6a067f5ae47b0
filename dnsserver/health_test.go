package dnsserver

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// fakeHealth is a HealthSource whose Status the test sets.
type fakeHealth struct {
	status atomic.Pointer[healthprobe.Status]
}

func (f *fakeHealth) Status() *healthprobe.Status { return f.status.Load() }

// set publishes results; a steering generation of 0 takes the next one.
func (f *fakeHealth) set(steering uint64, results map[string]healthprobe.Result) {
	old := f.status.Load()
	gen := uint64(1)
	if old != nil {
		gen = old.Generation + 1
		if steering == 0 {
			steering = old.Steering + 1
		}
	}
	f.status.Store(healthprobe.NewStatus(gen, steering, results))
}

// serve answers req as if sent from source over UDP.
func serve(t *testing.T, s *Server, req *dns.Msg, source string) *dns.Msg {
	t.Helper()
	w := dnstest.NewUDP(source)
	s.ServeDNS(w, req.Copy())
	if w.Msg == nil {
		t.Fatal("no reply")
	}
	return w.Msg
}

const probedZone = `
origin: probed.test.
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
          iad: { a: 192.0.2.2, probe: { tcp: "192.0.2.2:443" } }
          sin: { a: 192.0.2.3 }
`

func newProbedServer(t *testing.T, weight *float64) (*Server, *fakeHealth) {
	t.Helper()
	popList := slices.Clone(sixPoPs)
	popList[0].Probe = "pop-fra" // fra's PoP probe, beside the target's own
	pops, err := pops.New(popList...)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(fstest.MapFS{"probed.test.yaml": {Data: []byte(probedZone)}}, pops, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHealth{}
	s, err := New(testConfig(Config{Listen: []string{"127.0.0.1:0"}, Steering: steer.Options{PenaltyWeight: weight}}),
		Deps{Log: zerolog.Nop(), Metrics: prometheus.NewRegistry(), Locator: testPlaces, Health: h})
	if err != nil {
		t.Fatal(err)
	}
	s.SetZones(snap)
	return s, h
}

func TestHealthSteersAnswers(t *testing.T) {
	up := healthprobe.Result{Healthy: true}
	down := healthprobe.Result{}
	slow := func(ms int) healthprobe.Result {
		return healthprobe.Result{Healthy: true, Penalty: time.Duration(ms) * time.Millisecond}
	}
	const fraProbe, iadProbe = "tcp://192.0.2.1:443", "tcp://192.0.2.2:443"
	berlin := query("www.probed.test.", dns.TypeA, withECS("81.2.69.0", 24))
	tests := []struct {
		name    string
		weight  *float64                      // nil: the default
		results map[string]healthprobe.Result // nil: no status at all
		want    string
	}{
		{"no probe results yet: all healthy", nil, nil, "192.0.2.1"},
		{"all up", nil, map[string]healthprobe.Result{fraProbe: up, iadProbe: up, "pop-fra": up}, "192.0.2.1"},
		{"target probe down", nil, map[string]healthprobe.Result{fraProbe: down, iadProbe: up, "pop-fra": up}, "192.0.2.2"},
		{"PoP probe down", nil, map[string]healthprobe.Result{fraProbe: up, iadProbe: up, "pop-fra": down}, "192.0.2.2"},
		{"a probe not yet in the status counts as up", nil, map[string]healthprobe.Result{iadProbe: up}, "192.0.2.1"},
		{"nearest two down: the third", nil, map[string]healthprobe.Result{fraProbe: down, iadProbe: down}, "192.0.2.3"},
		{"all down: nearest anyway", nil, map[string]healthprobe.Result{fraProbe: down, iadProbe: down, "pop-fra": up}, "192.0.2.3"},
		{"small penalty: fra still nearest", nil, map[string]healthprobe.Result{fraProbe: slow(40)}, "192.0.2.1"},
		{"large penalty: clients move", nil, map[string]healthprobe.Result{fraProbe: slow(150)}, "192.0.2.2"},
		{"the larger of target and PoP penalty counts", nil, map[string]healthprobe.Result{fraProbe: slow(10), "pop-fra": slow(150)}, "192.0.2.2"},
		{"penalty below one step is noise", nil, map[string]healthprobe.Result{fraProbe: {Healthy: true, Penalty: 4 * time.Millisecond}}, "192.0.2.1"},
		{"weight scales the penalty down", new(0.1), map[string]healthprobe.Result{fraProbe: slow(150)}, "192.0.2.1"},
		{"weight 0 ignores it", new(0.0), map[string]healthprobe.Result{fraProbe: slow(5000)}, "192.0.2.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, h := newProbedServer(t, tc.weight)
			if tc.results != nil {
				h.set(1, tc.results)
			}
			m := serve(t, s, berlin, "192.0.2.200")
			if got := addrs(m.Answer); len(got) != 1 || got[0] != tc.want {
				t.Errorf("answer %v, want %s", got, tc.want)
			}
		})
	}
}

// berlinAnswer is the one address www.probed.test answers a Berlin client.
func berlinAnswer(t *testing.T, s *Server) string {
	t.Helper()
	berlin := query("www.probed.test.", dns.TypeA, withECS("81.2.69.0", 24))
	got := addrs(serve(t, s, berlin, "192.0.2.200").Answer)
	if len(got) != 1 {
		t.Fatalf("answer %v", got)
	}
	return got[0]
}

func TestHealthChangeInvalidatesCachedDecisions(t *testing.T) {
	s, h := newProbedServer(t, nil)
	const fraProbe = "tcp://192.0.2.1:443"
	answer := func() string { return berlinAnswer(t, s) }
	h.set(1, map[string]healthprobe.Result{fraProbe: {Healthy: true}})
	if got := answer(); got != "192.0.2.1" {
		t.Fatalf("healthy fra: %s", got)
	}
	h.set(0, map[string]healthprobe.Result{fraProbe: {}}) // down, steering moves
	if got := answer(); got != "192.0.2.2" {
		t.Errorf("after fra went down: %s, want iad; a cached decision outlived the health change", got)
	}
	h.set(0, map[string]healthprobe.Result{fraProbe: {Healthy: true}})
	if got := answer(); got != "192.0.2.1" {
		t.Errorf("after fra came back: %s, want fra", got)
	}
}

func TestPoPStateOverrides(t *testing.T) {
	s, _ := newProbedServer(t, nil)
	answer := func() string { return berlinAnswer(t, s) }
	if got := answer(); got != "192.0.2.1" {
		t.Fatalf("before any override: %s", got)
	}
	s.SetPoPStates(map[string]pops.AdminState{"fra": pops.Drain})
	if got := answer(); got != "192.0.2.2" {
		t.Errorf("fra drained: %s, want iad", got)
	}
	if st := s.PoPStates(); st["fra"] != pops.Drain || len(st) != 1 {
		t.Errorf("PoPStates = %v", st)
	}
	s.SetPoPStates(map[string]pops.AdminState{"fra": pops.Active, "iad": pops.Down})
	if got := answer(); got != "192.0.2.1" {
		t.Errorf("fra active again: %s, want fra", got)
	}
	s.SetPoPStates(map[string]pops.AdminState{"fra": pops.Down, "iad": pops.Down})
	if got := answer(); got != "192.0.2.3" {
		t.Errorf("fra and iad down: %s, want sin", got)
	}
	if st := s.PoPStates(); len(st) != 2 {
		t.Errorf("PoPStates = %v", st)
	}
}

func TestExplainShowsProbes(t *testing.T) {
	s, h := newProbedServer(t, new(2.0))
	const fraProbe = "tcp://192.0.2.1:443"
	h.set(1, map[string]healthprobe.Result{fraProbe: {Healthy: true, Penalty: 12 * time.Millisecond}, "pop-fra": {Healthy: true}})
	ex, err := s.Explain(ExplainRequest{Name: "www.probed.test.", Type: dns.TypeA, ECS: netip.MustParsePrefix("81.2.69.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	c := ex.Decisions[0].Candidates[0]
	if c.PoP != "fra" || c.PenaltyMS != 20 || !slices.Equal(c.Probes, []string{"pop-fra", fraProbe}) || !c.Healthy {
		t.Errorf("fra explained as %+v: want penalty 2 × 10 ms (12 rounded down to the 5 ms step) and both probes", c)
	}
}
