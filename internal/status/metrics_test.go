package status

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

// metricsServer is a server whose snapshot and overrides a test sets.
type metricsServer struct {
	snap *zones.Snapshot
	ov   *steer.Overrides
}

func (s *metricsServer) Zones() *zones.Snapshot      { return s.snap }
func (s *metricsServer) Overrides() *steer.Overrides { return s.ov }
func (s *metricsServer) Serving() bool               { return true }

type metricsHealth struct {
	st   *healthprobe.Status
	done chan struct{}
}

func (h metricsHealth) Status() *healthprobe.Status     { return h.st }
func (h metricsHealth) FirstRoundDone() <-chan struct{} { return h.done }

// TestCollector: the PoP and target gauges say what the status page
// says, under each combination of probes and overrides; a PoP or target
// the configuration no longer names has no series.
func TestCollector(t *testing.T) {
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
	up := healthprobe.Result{Healthy: true, RTT: time.Millisecond, Checked: checked}
	down := healthprobe.Result{RTT: time.Millisecond, Checked: checked, LastError: "refused"}
	allUp := map[string]healthprobe.Result{"pop-fra": up, "tcp://192.0.2.1:443": up, "tcp://192.0.2.11:443": up}

	tests := []struct {
		name      string
		results   map[string]healthprobe.Result
		overrides map[string]pops.AdminState
		want      string // the pop_* and target_* series, in the text format's order
	}{
		{"all up", allUp, nil, `
popdns_pop_healthy{pop="fra"} 1
popdns_pop_healthy{pop="iad"} 1
popdns_pop_state{pop="fra",state="active"} 1
popdns_pop_state{pop="fra",state="down"} 0
popdns_pop_state{pop="fra",state="drain"} 0
popdns_pop_state{pop="iad",state="active"} 1
popdns_pop_state{pop="iad",state="down"} 0
popdns_pop_state{pop="iad",state="drain"} 0
popdns_pop_targets{pop="fra"} 2
popdns_pop_targets{pop="iad"} 2
popdns_pop_targets_unhealthy{pop="fra"} 0
popdns_pop_targets_unhealthy{pop="iad"} 0
popdns_pop_targets_up{pop="fra"} 2
popdns_pop_targets_up{pop="iad"} 1
popdns_pop_up{pop="fra"} 1
popdns_pop_up{pop="iad"} 1
popdns_target_healthy{pop="fra",record="api.status.test.",zone="status.test."} 1
popdns_target_healthy{pop="fra",record="www.status.test.",zone="status.test."} 1
popdns_target_healthy{pop="iad",record="api.status.test.",zone="status.test."} 1
popdns_target_healthy{pop="iad",record="www.status.test.",zone="status.test."} 1
popdns_target_state{pop="fra",record="api.status.test.",state="active",zone="status.test."} 1
popdns_target_state{pop="fra",record="api.status.test.",state="down",zone="status.test."} 0
popdns_target_state{pop="fra",record="api.status.test.",state="drain",zone="status.test."} 0
popdns_target_state{pop="fra",record="www.status.test.",state="active",zone="status.test."} 1
popdns_target_state{pop="fra",record="www.status.test.",state="down",zone="status.test."} 0
popdns_target_state{pop="fra",record="www.status.test.",state="drain",zone="status.test."} 0
popdns_target_state{pop="iad",record="api.status.test.",state="active",zone="status.test."} 0
popdns_target_state{pop="iad",record="api.status.test.",state="down",zone="status.test."} 0
popdns_target_state{pop="iad",record="api.status.test.",state="drain",zone="status.test."} 1
popdns_target_state{pop="iad",record="www.status.test.",state="active",zone="status.test."} 1
popdns_target_state{pop="iad",record="www.status.test.",state="down",zone="status.test."} 0
popdns_target_state{pop="iad",record="www.status.test.",state="drain",zone="status.test."} 0
popdns_target_up{pop="fra",record="api.status.test.",zone="status.test."} 1
popdns_target_up{pop="fra",record="www.status.test.",zone="status.test."} 1
popdns_target_up{pop="iad",record="api.status.test.",zone="status.test."} 0
popdns_target_up{pop="iad",record="www.status.test.",zone="status.test."} 1
`},
		// fra's own probe is up, but both its targets are down: it gets
		// no clients, as the status page says.
		{"fra's targets down", map[string]healthprobe.Result{"pop-fra": up, "tcp://192.0.2.1:443": down, "tcp://192.0.2.11:443": down}, nil, `
popdns_pop_healthy{pop="fra"} 1
popdns_pop_up{pop="fra"} 0
popdns_pop_targets_up{pop="fra"} 0
popdns_pop_targets_unhealthy{pop="fra"} 2
popdns_target_healthy{pop="fra",record="api.status.test.",zone="status.test."} 0
popdns_target_up{pop="fra",record="www.status.test.",zone="status.test."} 0
`},
		// Taking every target at fra out one by one is no failure: none
		// counts as unhealthy, whatever its probe says (PopdnsPoPDown
		// stays quiet), though fra gets no clients.
		{"fra's targets drained", map[string]healthprobe.Result{"pop-fra": up, "tcp://192.0.2.1:443": down, "tcp://192.0.2.11:443": up},
			map[string]pops.AdminState{zones.TargetKey("fra", "www.status.test."): pops.Drain, zones.TargetKey("fra", "api.status.test."): pops.Down}, `
popdns_pop_state{pop="fra",state="active"} 1
popdns_pop_healthy{pop="fra"} 1
popdns_pop_up{pop="fra"} 0
popdns_pop_targets{pop="fra"} 2
popdns_pop_targets_up{pop="fra"} 0
popdns_pop_targets_unhealthy{pop="fra"} 0
popdns_target_state{pop="fra",record="www.status.test.",state="drain",zone="status.test."} 1
popdns_target_up{pop="fra",record="www.status.test.",zone="status.test."} 0
`},
		{"fra's probe down", map[string]healthprobe.Result{"pop-fra": down, "tcp://192.0.2.1:443": up, "tcp://192.0.2.11:443": up}, nil, `
popdns_pop_healthy{pop="fra"} 0
popdns_pop_up{pop="fra"} 0
popdns_target_up{pop="fra",record="www.status.test.",zone="status.test."} 0
`},
		{"iad drained by an operator", allUp, map[string]pops.AdminState{"iad": pops.Drain}, `
popdns_pop_state{pop="iad",state="active"} 0
popdns_pop_state{pop="iad",state="drain"} 1
popdns_pop_up{pop="iad"} 0
popdns_target_state{pop="iad",record="www.status.test.",state="drain",zone="status.test."} 1
popdns_target_up{pop="iad",record="www.status.test.",zone="status.test."} 0
`},
		{"fra down by an operator", allUp, map[string]pops.AdminState{"fra": pops.Down}, `
popdns_pop_state{pop="fra",state="down"} 1
popdns_pop_healthy{pop="fra"} 1
popdns_pop_up{pop="fra"} 0
popdns_target_up{pop="fra",record="api.status.test.",zone="status.test."} 0
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := &metricsServer{snap: snap}
			if tc.overrides != nil {
				srv.ov = srv.ov.Next(tc.overrides)
			}
			rep := New(Deps{Server: srv, Health: metricsHealth{st: healthprobe.NewStatus(1, 1, tc.results), done: make(chan struct{})}})
			got := collected(t, rep)
			for _, line := range strings.Split(strings.TrimSpace(tc.want), "\n") {
				if !got[line] {
					t.Errorf("missing %s", line)
				}
			}
			// Every PoP has its 8 series, every target 5.
			if n := testutil.CollectAndCount(rep.Collector(), "popdns_pop_up", "popdns_pop_healthy", "popdns_pop_state",
				"popdns_pop_targets", "popdns_pop_targets_up", "popdns_pop_targets_unhealthy"); n != 2*8 {
				t.Errorf("%d PoP series, want 16", n)
			}
			if n := testutil.CollectAndCount(rep.Collector(), "popdns_target_up", "popdns_target_healthy", "popdns_target_state"); n != 4*5 {
				t.Errorf("%d target series, want 20", n)
			}
		})
	}

	t.Run("lint", func(t *testing.T) {
		rep := New(Deps{Server: &metricsServer{snap: snap}, Health: metricsHealth{st: healthprobe.NewStatus(1, 1, allUp), done: make(chan struct{})}})
		if problems, err := testutil.CollectAndLint(rep.Collector()); err != nil || len(problems) > 0 {
			t.Errorf("lint: %v %v", problems, err)
		}
	})

	t.Run("follows the snapshot", func(t *testing.T) {
		srv := &metricsServer{}
		h := metricsHealth{st: healthprobe.NewStatus(1, 1, allUp), done: make(chan struct{})}
		rep := New(Deps{Server: srv, Health: h})
		got := collected(t, rep)
		if !got["popdns_ready 0"] || !got["popdns_target_series_omitted 0"] || len(got) != 2 {
			t.Errorf("before the first load: %v, want popdns_ready 0 and nothing omitted only", got)
		}
		srv.snap = snap
		close(h.done)
		go rep.Run(t.Context())
		select {
		case <-rep.ProbesSettled():
		case <-time.After(5 * time.Second):
			t.Fatal("readiness did not settle")
		}
		if got := collected(t, rep); !got["popdns_ready 1"] || !got[`popdns_pop_up{pop="iad"} 1`] {
			t.Errorf("loaded: %v, want ready and iad up", got)
		}
		// iad gone from the inventory and the zone: its series go too.
		fraOnly, err := pops.New(pops.PoP{Name: "fra", Point: geo.Point{Lat: 50.11, Lon: 8.68}})
		if err != nil {
			t.Fatal(err)
		}
		zone := strings.NewReplacer("          iad: { a: 192.0.2.2 }\n", "", "          iad: { a: 192.0.2.12, state: drain }\n", "").Replace(statusZone)
		if srv.snap, err = zones.Load(fstest.MapFS{"status.test.yaml": {Data: []byte(zone)}}, fraOnly, nil); err != nil {
			t.Fatal(err)
		}
		for line := range collected(t, rep) {
			if strings.Contains(line, `pop="iad"`) {
				t.Errorf("iad still has %s", line)
			}
		}
	})
}

// TestCollectorBoundsTargets: past MaxMetricTargets geo targets get no
// series and are counted instead; the PoPs still count them all. The
// bound takes whole records: r0 has three targets and the others two, so
// the record at the bound would straddle it, and is left out whole.
func TestCollectorBoundsTargets(t *testing.T) {
	inv, err := pops.New(pops.PoP{Name: "fra", Point: geo.Point{Lat: 50.11, Lon: 8.68}},
		pops.PoP{Name: "iad", Point: geo.Point{Lat: 38.95, Lon: -77.45}},
		pops.PoP{Name: "lhr", Point: geo.Point{Lat: 51.47, Lon: -0.45}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("origin: big.test.\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 60\n    - ns: ns1\n  ns1:\n    - a: 192.0.2.53\n")
	b.WriteString("  r0:\n    - geo:\n        targets:\n          fra: { a: 192.0.2.1 }\n          iad: { a: 192.0.2.2 }\n          lhr: { a: 192.0.2.3 }\n")
	const records = MaxMetricTargets/2 + 10 // after r0, two targets each
	for i := 1; i < records; i++ {
		fmt.Fprintf(&b, "  r%d:\n    - geo:\n        targets:\n          fra: { a: 192.0.2.1 }\n          iad: { a: 192.0.2.2 }\n", i)
	}
	snap, err := zones.Load(fstest.MapFS{"big.test.yaml": {Data: []byte(b.String())}}, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep := New(Deps{Server: &metricsServer{snap: snap}, Health: metricsHealth{st: healthprobe.NewStatus(1, 1, nil), done: make(chan struct{})}})
	const exported = MaxMetricTargets - 1 // r0's 3 and 4998 records of 2; the next would make 10,001
	if n := testutil.CollectAndCount(rep.Collector(), "popdns_target_up"); n != exported {
		t.Errorf("%d popdns_target_up series, want %d", n, exported)
	}
	got := collected(t, rep)
	if want := fmt.Sprintf("popdns_target_series_omitted %d", 3+2*(records-1)-exported); !got[want] {
		t.Errorf("no %q", want)
	}
	perRecord := map[string]int{}
	for line := range got {
		if rest, ok := strings.CutPrefix(line, "popdns_target_up{"); ok {
			_, rec, _ := strings.Cut(rest, `record="`)
			rec, _, _ = strings.Cut(rec, `"`)
			perRecord[rec]++
		}
	}
	for rec, n := range perRecord {
		if want := map[bool]int{true: 3, false: 2}[rec == "r0.big.test."]; n != want {
			t.Errorf("record %s has %d popdns_target_up series, want all its %d targets'", rec, n, want)
		}
	}
	if !got[`popdns_pop_up{pop="fra"} 1`] || !got[fmt.Sprintf(`popdns_pop_targets{pop="fra"} %d`, records)] {
		t.Error("fra not up, or not counting every target at it")
	}
}

// collected is every series rep's collector exports, as text lines. The
// pedantic registry also checks that Describe covers what Collect sends.
func collected(t *testing.T, rep *Reporter) map[string]bool {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(rep.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(b.String(), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines[l] = true
		}
	}
	return lines
}
