package status

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
)

var _ OverrideLister = (*overrides.FileStore)(nil)

type fakeFleet struct {
	connected atomic.Bool
	rule      string
}

func (f *fakeFleet) Connected() bool { return f.connected.Load() }
func (f *fakeFleet) Member() (instance, region, rule string, minObservers int) {
	return "dns-a", "eu", f.rule, 2
}

// fakeStore lists its overrides, or fails with err; lists counts the
// calls.
type fakeStore struct {
	list  []overrides.Override
	err   error
	lists atomic.Int32
}

func (s *fakeStore) List(ctx context.Context) ([]overrides.Override, error) {
	s.lists.Add(1)
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("List without a deadline")
	}
	return s.list, s.err
}

type fixedHealth struct{ st *healthprobe.Status }

func (h fixedHealth) Status() *healthprobe.Status { return h.st }
func (h fixedHealth) FirstRoundDone() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

var fleetNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// fleetOverrides: gru drained until an hour from now, syd's down expired
// a minute ago, fra's with no expiry.
func fleetOverrides() []overrides.Override {
	return []overrides.Override{
		{PoP: "syd", State: pops.Down, Who: "bob", Why: "fibre cut", Set: fleetNow.Add(-2 * time.Hour), Expires: fleetNow.Add(-time.Minute), Revision: 4},
		{PoP: "gru", State: pops.Drain, Who: "alice", Why: "maintenance <window>", Set: fleetNow.Add(-10 * time.Minute), Expires: fleetNow.Add(time.Hour), Revision: 7},
		{PoP: "fra", State: pops.Drain, Who: "carol", Set: fleetNow.Add(-time.Minute), Revision: 1},
	}
}

const wantOverridesJSON = `[` +
	`{"pop":"fra","state":"drain","who":"carol","set":"2026-12-01T11:59:00Z","expired":false},` +
	`{"pop":"gru","state":"drain","who":"alice","why":"maintenance \u003cwindow\u003e","set":"2026-12-01T11:50:00Z","expires":"2026-12-01T13:00:00Z","expired":false},` +
	`{"pop":"syd","state":"down","who":"bob","why":"fibre cut","set":"2026-12-01T10:00:00Z","expires":"2026-12-01T11:59:00Z","expired":true}]`

// fleetSnapshot serves statusZone: probes tcp://192.0.2.1:443 and
// tcp://192.0.2.11:443.
func fleetSnapshot(t *testing.T) *zones.Snapshot {
	t.Helper()
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
	return snap
}

// combinedHealth is what a fleet member's prober serves: pop-fra (a PoP
// probe, which the snapshot does not list) decided by 2 of 3 observers,
// tcp://192.0.2.1:443 fallen back to this instance's
// own verdict (one observer), tcp://192.0.2.11:443 regional, without
// this instance's own observation.
func combinedHealth() *healthprobe.Status {
	return healthprobe.NewStatus(1, 1, map[string]healthprobe.Result{
		"pop-fra": {Healthy: true, RTT: time.Millisecond, Checked: fleetNow,
			Quorum: healthprobe.Quorum{Rule: healthprobe.RuleMajority, Observers: 3, HealthyObservers: 2, Self: true}},
		"tcp://192.0.2.1:443": {Healthy: false, Checked: fleetNow, LastError: "connection refused",
			Quorum: healthprobe.Quorum{Rule: healthprobe.RuleMajority, Observers: 1, Fallback: true, Self: true}},
		"tcp://192.0.2.11:443": {Healthy: true, Checked: fleetNow,
			Quorum: healthprobe.Quorum{Rule: healthprobe.RuleRegional, Observers: 4, HealthyObservers: 3, Regions: 2, HealthyRegions: 2}},
	})
}

// TestStatusFleet: /status's fleet, overrides and quorums, alone and in
// a fleet, with NATS there and away.
func TestStatusFleet(t *testing.T) {
	storeErr := errors.New("store broken")
	tests := []struct {
		name  string
		fleet bool
		store bool
		// warm reads the status once with everything working before
		// NATS goes (disconnect) or the store breaks (breakStore).
		warm       bool
		disconnect bool
		breakStore bool
		// want is the JSON of each of these keys; absent: not in /status.
		want map[string]string
		// lists is how often the store is read, warm included.
		lists int32
	}{{
		name: "alone, no store",
		want: map[string]string{"fleet": "", "overrides": "", "overrides_stale": "", "overrides_error": ""},
	}, {
		name:  "alone, with a store",
		store: true,
		want:  map[string]string{"fleet": "", "overrides": wantOverridesJSON, "overrides_stale": ""},
		lists: 1,
	}, {
		name: "fleet, connected", fleet: true, store: true,
		want: map[string]string{
			"fleet":     `{"instance":"dns-a","region":"eu","rule":"fraction 0.18","min_observers":2,"connected":true}`,
			"overrides": wantOverridesJSON, "overrides_stale": "", "overrides_as_of": "",
		},
		lists: 1,
	}, {
		name: "fleet, NATS away after a read", fleet: true, store: true, warm: true, disconnect: true,
		want: map[string]string{
			"fleet":           `{"instance":"dns-a","region":"eu","rule":"fraction 0.18","min_observers":2,"connected":false}`,
			"overrides":       wantOverridesJSON,
			"overrides_stale": "true", "overrides_error": `"NATS cannot be reached"`,
			"overrides_as_of": `"2026-12-01T12:00:00Z"`,
		},
		lists: 1, // not asked while NATS is away
	}, {
		name: "fleet, NATS away from the start", fleet: true, store: true, disconnect: true,
		want: map[string]string{
			"overrides": `[]`, "overrides_stale": "true", "overrides_error": `"NATS cannot be reached"`,
			"overrides_as_of": "",
		},
	}, {
		name: "store fails after a read", store: true, warm: true, breakStore: true,
		want: map[string]string{
			"overrides": wantOverridesJSON, "overrides_stale": "true", "overrides_error": `"store broken"`,
			"overrides_as_of": `"2026-12-01T12:00:00Z"`,
		},
		lists: 2,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := &fakeServer{snap: fleetSnapshot(t)}
			srv.serving.Store(true)
			deps := Deps{Server: srv, Health: fixedHealth{combinedHealth()}, Now: func() time.Time { return fleetNow }}
			ff := &fakeFleet{rule: "fraction 0.18"}
			ff.connected.Store(true)
			store := &fakeStore{list: fleetOverrides()}
			if tc.fleet {
				deps.Fleet = ff
			}
			if tc.store {
				deps.Overrides = store
			}
			r := New(deps)
			if tc.warm {
				r.Status()
			}
			if tc.disconnect {
				ff.connected.Store(false)
			}
			if tc.breakStore {
				store.list, store.err = nil, storeErr
			}
			body, err := json.Marshal(r.Status())
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]json.RawMessage
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			for key, want := range tc.want {
				if g := string(got[key]); g != want {
					t.Errorf("%s: %s\nwant %s", key, g, want)
				}
			}
			if n := store.lists.Load(); n != tc.lists {
				t.Errorf("store read %d times; want %d", n, tc.lists)
			}
			// The probes' quorums are the health's, alone or not.
			var probes []struct {
				ID     string          `json:"id"`
				Quorum json.RawMessage `json:"quorum"`
			}
			if err := json.Unmarshal(got["probes"], &probes); err != nil {
				t.Fatal(err)
			}
			wantQuorum := map[string]string{
				"tcp://192.0.2.1:443":  `{"rule":"majority","observers":1,"healthy_observers":0,"fallback":true,"self":true}`,
				"tcp://192.0.2.11:443": `{"rule":"regional","observers":4,"healthy_observers":3,"regions":2,"healthy_regions":2,"fallback":false,"self":false}`,
			}
			if len(probes) != len(wantQuorum) {
				t.Fatalf("probes %s; want %d", got["probes"], len(wantQuorum))
			}
			for _, p := range probes {
				if string(p.Quorum) != wantQuorum[p.ID] {
					t.Errorf("probe %s quorum %s; want %s", p.ID, p.Quorum, wantQuorum[p.ID])
				}
			}
		})
	}
}

// TestStatusFleetLocalQuorum: in a fleet, a probe with the zero quorum
// (rule local, no observers yet) still says its rule; alone, it has none.
func TestStatusFleetLocalQuorum(t *testing.T) {
	health := healthprobe.NewStatus(1, 1, map[string]healthprobe.Result{"pop-fra": {Healthy: true, Checked: fleetNow}})
	for _, inFleet := range []bool{false, true} {
		srv := &fakeServer{snap: fleetSnapshot(t)}
		deps := Deps{Server: srv, Health: fixedHealth{health}, Now: func() time.Time { return fleetNow }}
		if inFleet {
			ff := &fakeFleet{rule: "local"}
			ff.connected.Store(true)
			deps.Fleet = ff
		}
		for _, p := range New(deps).Status().Probes {
			switch {
			case !inFleet && p.Quorum != nil:
				t.Errorf("alone: probe %s has quorum %+v", p.ID, *p.Quorum)
			case inFleet && (p.Quorum == nil || !reflect.DeepEqual(*p.Quorum, Quorum{Rule: "local"})):
				t.Errorf("in a fleet: probe %s has quorum %+v; want rule local, no observers", p.ID, p.Quorum)
			}
		}
	}
}

// TestStatusPageFleet: the page's fleet line, overrides table and
// observers column.
func TestStatusPageFleet(t *testing.T) {
	withQuorum := func(st Status) Status {
		st.Probes = []Probe{
			{ID: "pop-fra", Probed: true, Healthy: true, Quorum: &Quorum{Rule: "majority", Observers: 3, HealthyObservers: 2, Self: true}},
			{ID: "pop-sin", Probed: true, Quorum: &Quorum{Rule: "majority", Observers: 1, Fallback: true, Self: true}},
			{ID: "pop-gru", Probed: true, Healthy: true, Quorum: &Quorum{Rule: "regional", Observers: 4, HealthyObservers: 3, Regions: 2, HealthyRegions: 2}},
		}
		return st
	}
	ovs := []OverrideStatus{
		{PoP: "gru", State: "drain", Who: "alice", Why: "maintenance <window>", Set: statusPageNow.Add(-10 * time.Minute), Expires: statusPageNow.Add(time.Hour)},
		{PoP: "syd", State: "down", Who: "bob", Why: "fibre cut", Set: statusPageNow.Add(-2 * time.Hour), Expires: statusPageNow.Add(-time.Minute), Expired: true},
	}
	tests := []struct {
		name    string
		st      Status
		want    []string
		notWant []string
	}{{
		name:    "alone",
		st:      statusPageFixture(statusPageNow),
		notWant: []string{`class="fleet"`, "NATS", "overrides-title", "<th>observers</th>"},
	}, {
		name: "fleet connected",
		st: func() Status {
			st := withQuorum(statusPageFixture(statusPageNow))
			st.Fleet = &FleetStatus{Instance: "dns-a", Region: "eu", Rule: "majority", MinObservers: 2, Connected: true}
			st.Overrides = ovs
			return st
		}(),
		want: []string{
			"fleet instance <b>dns-a</b> in region <b>eu</b>",
			"health rule <b>majority</b>, at least 2 observers",
			`<span class="yes">NATS connected</span>`,
			`<h2 id="overrides-title">Overrides <small>2</small></h2>`,
			`<tr class="draining"><td class="name">gru</td><td>drain</td><td>alice</td><td class="long">maintenance &lt;window&gt;</td>`,
			`title="2026-11-22 11:50:00 UTC">10m ago</td>`, `<span title="2026-11-22 13:00:00 UTC">2026-11-22 13:00:00 UTC</span>`,
			`<tr class="expired"><td class="name">syd</td>`, `expired <span title="2026-11-22 11:59:00 UTC">`,
			"<th>observers</th>",
			`<td class="quorum">2/3 healthy</td>`,
			`<td class="quorum"><b title="fewer observers than min_observers: this instance's own verdict">local</b> <span class="note">(1 observer)</span></td>`,
			`<td class="quorum">3/4 healthy, regions 2/2 <span class="note">(not this instance)</span></td>`,
		},
		notWant: []string{"NOT CONNECTED", "overrides-stale", "No overrides."},
	}, {
		name: "NATS away, overrides as last read",
		st: func() Status {
			st := withQuorum(statusPageFixture(statusPageNow))
			st.Fleet = &FleetStatus{Instance: "dns-a", Rule: "fraction 0.18", MinObservers: 1}
			st.Overrides, st.OverridesStale, st.OverridesError = ovs[:1], true, "NATS cannot be reached"
			st.OverridesAsOf = statusPageNow.Add(-3 * time.Minute)
			return st
		}(),
		want: []string{
			`<span class="badge notready">NATS NOT CONNECTED</span>`,
			"health rule <b>fraction 0.18</b>, at least 1 observer</span>",
			`<p class="alarm overrides-stale">Cannot read the overrides: NATS cannot be reached. As read <span title="2026-11-22 11:57:00 UTC">3m ago</span>.</p>`,
			`<td class="name">gru</td>`,
		},
		notWant: []string{"NATS connected", "in region"},
	}, {
		name: "NATS away, nothing read",
		st: func() Status {
			st := statusPageFixture(statusPageNow)
			st.Fleet = &FleetStatus{Instance: "dns-a", Rule: "majority", MinObservers: 2}
			st.Overrides, st.OverridesStale, st.OverridesError = []OverrideStatus{}, true, "NATS cannot be reached"
			return st
		}(),
		want: []string{"NATS NOT CONNECTED", "None read yet: the list below may be incomplete.", "No overrides.",
			"<th>observers</th>", `<td class="quorum"><span class="none">none</span></td>`},
	}, {
		name: "alone with a store, no overrides",
		st: func() Status {
			st := statusPageFixture(statusPageNow)
			st.Overrides = []OverrideStatus{}
			return st
		}(),
		want:    []string{`<h2 id="overrides-title">Overrides <small>0</small></h2>`, "No overrides."},
		notWant: []string{`class="fleet"`, "overrides-stale", "<th>observers</th>"},
	}, {
		name: "each observer's verdict",
		st: func() Status {
			st := withQuorum(statusPageFixture(statusPageNow))
			st.Fleet = &FleetStatus{Instance: "ns3", Rule: "majority", MinObservers: 2, Connected: true}
			st.Probes[0].Quorum.Verdicts = []Verdict{{Instance: "ns1", Healthy: true}, {Instance: "ns2", Healthy: true},
				{Instance: "ns3"}}
			return st
		}(),
		want: []string{`<br><span class="note">ns1 up, ns2 up, ns3 <b>down</b></span>`},
	}, {
		name: "the browser test's fixture",
		st:   fleetPageFixture(statusPageNow),
		want: []string{"NATS NOT CONNECTED"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page := renderTestStatusPage(t, tc.st)
			checkMapSVG(t, page)
			for _, w := range tc.want {
				if !strings.Contains(page, w) {
					t.Errorf("page lacks %s", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(page, w) {
					t.Errorf("page has %s", w)
				}
			}
			if t.Failed() {
				t.Logf("page:\n%s", page)
			}
		})
	}
}

// fleetPageFixture is statusPageFixture on a fleet member cut off from
// NATS: its overrides as last read, stale; its probes decided by the
// fleet, sin's fallen back to its own verdict.
func fleetPageFixture(now time.Time) Status {
	st := statusPageFixture(now)
	st.Fleet = &FleetStatus{Instance: "dns-a", Region: "eu", Rule: "majority", MinObservers: 2}
	st.Overrides = []OverrideStatus{
		{PoP: "gru", State: "drain", Who: "alice", Why: "maintenance", Set: now.Add(-10 * time.Minute), Expires: now.Add(time.Hour)},
		{PoP: "syd", State: "down", Who: "bob", Why: "fibre cut", Set: now.Add(-2 * time.Hour), Expires: now.Add(-time.Minute), Expired: true},
	}
	st.OverridesStale, st.OverridesError, st.OverridesAsOf = true, "NATS cannot be reached", now.Add(-3*time.Minute)
	for i := range st.Probes {
		q := &Quorum{Rule: "majority", Observers: 3, HealthyObservers: 3, Self: true}
		if !st.Probes[i].Healthy {
			q.Observers, q.HealthyObservers, q.Fallback = 1, 0, true
		}
		st.Probes[i].Quorum = q
	}
	return st
}
