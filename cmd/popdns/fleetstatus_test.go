package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/fleet"
	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/internal/status"
	"github.com/popdns/popdns/pops"
)

// What run.go hands the status.
var (
	_ status.Fleet          = (*fleet.Fleet)(nil)
	_ status.OverrideLister = overrides.Store(nil)
)

// TestFleetStatus: a fleet member's status names it, its rule and NATS
// connected, and lists the fleet's overrides with who, why and expiry;
// with NATS gone it says NATS is not connected and still lists them, as
// last read, marked stale.
func TestFleetStatus(t *testing.T) {
	city, err := os.ReadFile("../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	ns := runNATS(t, t.TempDir(), 0)
	port := ns.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	writeFile(t, dir, "city.mmdb", string(city))
	writeFile(t, dir, "zones/geo.test.yaml", geoZone)
	r := startApp(t, writeFile(t, dir, "popdns.yaml", geoConfig+fmt.Sprintf(
		"cluster:\n  instance: ns1\n  region: eu\n  health: fraction\n  fraction: 0.18\n  min_observers: 1\n"+
			"  nats: nats://127.0.0.1:%d\n  timeout: 1s\n", port)))
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	drain := overrides.Override{PoP: "iad", State: pops.Drain, StateName: "drain", Who: "alice", Why: "maintenance",
		Set: time.Now().UTC().Truncate(time.Second), Expires: expires}
	if _, err := r.overrides.Put(context.Background(), drain, 0); err != nil {
		t.Fatal(err)
	}

	st := r.status.Status()
	want := status.FleetStatus{Instance: "ns1", Region: "eu", Rule: "fraction 0.18", MinObservers: 1, Connected: true}
	if st.Fleet == nil || *st.Fleet != want {
		t.Fatalf("fleet %+v; want %+v", st.Fleet, want)
	}
	checkIAD := func(st status.Status) {
		t.Helper()
		if len(st.Overrides) != 1 {
			t.Fatalf("overrides %+v; want iad's", st.Overrides)
		}
		o := st.Overrides[0]
		if o.PoP != "iad" || o.State != "drain" || o.Who != "alice" || o.Why != "maintenance" || !o.Expires.Equal(expires) || o.Expired {
			t.Errorf("override %+v; want iad drained by alice for maintenance until %s", o, expires)
		}
	}
	checkIAD(st)
	if st.OverridesStale {
		t.Errorf("overrides stale with NATS up: %s", st.OverridesError)
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	deadline := time.Now().Add(10 * time.Second)
	for st = r.status.Status(); st.Fleet.Connected; st = r.status.Status() {
		if time.Now().After(deadline) {
			t.Fatal("NATS shut down 10 s ago, and the status still says connected")
		}
		time.Sleep(20 * time.Millisecond)
	}
	begin := time.Now()
	st = r.status.Status()
	if took := time.Since(begin); took > 200*time.Millisecond {
		t.Errorf("the status took %s with NATS gone", took)
	}
	if !st.OverridesStale || st.OverridesError == "" || st.OverridesAsOf.IsZero() {
		t.Errorf("with NATS gone: stale %v, error %q, as of %s; want stale, a reason and when last read",
			st.OverridesStale, st.OverridesError, st.OverridesAsOf)
	}
	checkIAD(st)
}
