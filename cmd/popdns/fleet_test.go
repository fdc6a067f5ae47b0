package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/pops"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// geoDir writes a directory for an instance serving zone (geo.test.) with
// the test GeoIP database, and returns it.
func geoDir(t *testing.T, zone string) string {
	t.Helper()
	city, err := os.ReadFile("../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, dir, "city.mmdb", string(city))
	writeFile(t, dir, "zones/geo.test.yaml", zone)
	return dir
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestFleetOverrides runs three instances as a fleet: the first embeds
// the NATS server, the others connect to it. A drain written through one
// instance changes the answers of the other two within a second; an
// expiry lifts it everywhere by itself; a restarted instance applies it
// from the bucket.
func TestFleetOverrides(t *testing.T) {
	natsAddr := freeAddr(t)
	start := func(name string, cluster string) (*runningApp, string) {
		dir := geoDir(t, geoZone)
		return startApp(t, writeFile(t, dir, "popdns.yaml", geoConfig+"cluster:\n  instance: "+name+"\n"+cluster)), dir
	}
	ns1, _ := start("ns1", fmt.Sprintf("  nats_embedded: { listen: %s, store_dir: %s }\n", natsAddr, filepath.Join(t.TempDir(), "nats")))
	peer := fmt.Sprintf("  nats: nats://%s\n", natsAddr)
	ns2, _ := start("ns2", peer)
	ns3, ns3dir := start("ns3", peer)
	instances := []*runningApp{ns1, ns2, ns3}
	// 192.0.2.64/26 is Ashburn in the test database: iad, unless drained.
	const client, iad, fra = "192.0.2.64/26", "192.0.2.2", "192.0.2.1"
	for _, r := range instances {
		r.eventually(t, "www.geo.test.", client, iad)
	}

	// within waits for every instance in rs to answer want, and reports
	// how long the slowest took.
	within := func(what string, limit time.Duration, want string, rs ...*runningApp) time.Duration {
		t.Helper()
		begin := time.Now()
		for _, r := range rs {
			for r.answer(t, "www.geo.test.", client) != want {
				if time.Since(begin) > limit {
					t.Fatalf("%s: an instance still answers otherwise than %s after %s", what, want, limit)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		took := time.Since(begin)
		t.Logf("%s: every instance answered %s after %s", what, want, took.Round(time.Millisecond))
		return took
	}

	ctx := context.Background()
	drain := overrides.Override{PoP: "iad", State: pops.Drain, StateName: "drain", Who: "test", Why: "fleet test",
		Set: time.Now()}
	if _, err := ns2.overrides.Put(ctx, drain, 0); err != nil {
		t.Fatalf("drain through ns2: %v", err)
	}
	if err := ns2.applier.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	within("drain written through ns2", time.Second, fra, ns1, ns2, ns3)

	// ns3 restarted: it applies the drain from the bucket.
	ns3.stop()
	ns3 = startApp(t, filepath.Join(ns3dir, "popdns.yaml"))
	if got := ns3.answer(t, "www.geo.test.", client); got != fra {
		t.Errorf("ns3 after a restart answers %s, want %s: the drain from the bucket", got, fra)
	}

	// Undrain through ns1, then a drain that expires by itself.
	list, err := ns1.overrides.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("list through ns1: %v %v", list, err)
	}
	if err := ns1.overrides.Delete(ctx, "iad", list[0].Revision, "test", "done"); err != nil {
		t.Fatal(err)
	}
	within("undrain written through ns1", time.Second, iad, ns1, ns2, ns3)
	list, _ = ns1.overrides.List(ctx)
	rev := uint64(0)
	for _, o := range list {
		if o.PoP == "iad" {
			rev = o.Revision
		}
	}
	short := drain
	short.Expires = time.Now().Add(1500 * time.Millisecond)
	if _, err := ns1.overrides.Put(ctx, short, rev); err != nil {
		t.Fatalf("a drain for 1.5 s: %v", err)
	}
	within("a drain for 1.5 s", time.Second, fra, ns1, ns2, ns3)
	within("its expiry", 3*time.Second, iad, ns1, ns2, ns3)
	hist, err := ns3.overrides.History(ctx, 10)
	if err != nil || len(hist) < 3 {
		t.Errorf("history through ns3: %d events, %v; want the drain, the undrain and the short drain", len(hist), err)
	}
}

// TestFleetHealth: iad's health endpoint is up, but one of three
// instances probes it at a closed port (its path to iad is broken). Under
// majority every instance keeps sending Ashburn's clients to iad, and the
// one that cannot reach it says it diverges; under local that one alone
// sends them to fra.
func TestFleetHealth(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed := freeAddr(t)
	const client, iad, fra = "192.0.2.64/26", "192.0.2.2", "192.0.2.1"
	for _, tc := range []struct {
		rule     string
		ns3Wants string
	}{
		{"majority", iad},
		{"local", fra},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			natsAddr := freeAddr(t)
			start := func(name, probeAddr, cluster string) *runningApp {
				dir := geoDir(t, geoZone)
				cfg := fmt.Sprintf(`zones: zones
geoip: { city: city.mmdb }
probes: { interval: 1s, timeout: 900ms, rise: 1, fall: 2, jitter: 0s }
pops:
  fra: { lat: 50.11, lon: 8.68 }
  iad: { lat: 38.95, lon: -77.45, probe: { id: iad-health, tcp: "%s" } }
cluster:
  instance: %s
  health: %s
  min_observers: 2
  observation_ttl: 3s
%s`, probeAddr, name, tc.rule, cluster)
				return startApp(t, writeFile(t, dir, "popdns.yaml", cfg))
			}
			peer := fmt.Sprintf("  nats: nats://%s\n", natsAddr)
			ns1 := start("ns1", up.Addr().String(), fmt.Sprintf("  nats_embedded: { listen: %s, store_dir: %s }\n", natsAddr, filepath.Join(t.TempDir(), "nats")))
			ns2 := start("ns2", up.Addr().String(), peer)
			ns3 := start("ns3", closed, peer)
			begin := time.Now()
			// The fleet's verdict waits on every instance's first
			// probe rounds reaching NATS: on a loaded machine (-race,
			// three servers and NATS on two cores) more than the 5 s a
			// reload gets.
			for _, r := range []*runningApp{ns1, ns2} {
				r.eventuallyWithin(t, 15*time.Second, "www.geo.test.", client, iad)
			}
			ns3.eventuallyWithin(t, 15*time.Second, "www.geo.test.", client, tc.ns3Wants)
			// It must stay so once every instance has published: the
			// fleet's verdict, not a moment before the first round.
			deadline := time.Now().Add(4 * time.Second)
			for time.Now().Before(deadline) {
				st, ok := ns3.fleetHealth.Status().Result("iad-health")
				if ok && st.Quorum.Observers == 3 {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			st, _ := ns3.fleetHealth.Status().Result("iad-health")
			if st.Quorum.Observers != 3 {
				t.Fatalf("ns3 sees %d observers of iad-health after %s, want 3", st.Quorum.Observers, time.Since(begin).Round(time.Millisecond))
			}
			for name, r := range map[string]*runningApp{"ns1": ns1, "ns2": ns2} {
				if got := r.answer(t, "www.geo.test.", client); got != iad {
					t.Errorf("%s answers %s, want iad's %s", name, got, iad)
				}
			}
			if got := ns3.answer(t, "www.geo.test.", client); got != tc.ns3Wants {
				t.Errorf("ns3 answers %s under %s, want %s", got, tc.rule, tc.ns3Wants)
			}
			t.Logf("%s: three observers of iad-health after %s; ns3 answers %s", tc.rule, time.Since(begin).Round(time.Millisecond), tc.ns3Wants)
			// ns3's status lists every observer's verdict.
			var verdicts []string
			for _, p := range ns3.status.Status().Probes {
				if p.ID == "iad-health" && p.Quorum != nil {
					for _, v := range p.Quorum.Verdicts {
						verdicts = append(verdicts, fmt.Sprintf("%s:%v", v.Instance, v.Healthy))
					}
				}
			}
			if got := strings.Join(verdicts, " "); got != "ns1:true ns2:true ns3:false" {
				t.Errorf("ns3's status lists the verdicts %q, want ns1 and ns2 up, ns3 down", got)
			}
			if got := testutil.ToFloat64(ns3.fleetHealth.Divergent()); got != 1 {
				t.Errorf("ns3's divergence gauge %v, want 1: its own verdict on iad-health differs from the fleet's", got)
			}
		})
	}
}

// runNATS runs a NATS server with JetStream on 127.0.0.1:port (0: any),
// keeping its data in dir, until stopped or the test ends.
func runNATS(t *testing.T, dir string, port int) *natsserver.Server {
	t.Helper()
	if port == 0 {
		port = natsserver.RANDOM_PORT
	}
	s, err := natsserver.NewServer(&natsserver.Options{ServerName: "test", Host: "127.0.0.1", Port: port,
		JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready within 10 s")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// TestFleetWithoutNATS: two instances on an external NATS server. With
// NATS gone they keep answering with the overrides they had, a write
// fails at once and says why, and once NATS is back a change made through
// one reaches the other.
func TestFleetWithoutNATS(t *testing.T) {
	natsDir := t.TempDir()
	ns := runNATS(t, natsDir, 0)
	port := ns.Addr().(*net.TCPAddr).Port
	start := func(name string) *runningApp {
		dir := geoDir(t, geoZone)
		return startApp(t, writeFile(t, dir, "popdns.yaml", geoConfig+fmt.Sprintf(
			"cluster:\n  instance: %s\n  nats: nats://127.0.0.1:%d\n  timeout: 1s\n", name, port)))
	}
	ns1, ns2 := start("ns1"), start("ns2")
	const client, iad, fra = "192.0.2.64/26", "192.0.2.2", "192.0.2.1"
	ctx := context.Background()
	drain := overrides.Override{PoP: "iad", State: pops.Drain, StateName: "drain", Who: "test", Set: time.Now()}
	if _, err := ns1.overrides.Put(ctx, drain, 0); err != nil {
		t.Fatal(err)
	}
	ns1.eventually(t, "www.geo.test.", client, fra)
	ns2.eventually(t, "www.geo.test.", client, fra)

	ns.Shutdown()
	ns.WaitForShutdown()
	for name, r := range map[string]*runningApp{"ns1": ns1, "ns2": ns2} {
		if got := r.answer(t, "www.geo.test.", client); got != fra {
			t.Errorf("%s with NATS gone answers %s, want the drained answer %s", name, got, fra)
		}
	}
	begin := time.Now()
	_, err := ns1.overrides.Put(ctx, overrides.Override{PoP: "fra", State: pops.Drain, StateName: "drain", Who: "test", Set: time.Now()}, 0)
	if !errors.Is(err, overrides.ErrUnavailable) || time.Since(begin) > 3*time.Second {
		t.Errorf("a write with NATS gone: %v after %s; want ErrUnavailable at once", err, time.Since(begin))
	}

	runNATS(t, natsDir, port) // back, with its data
	begin = time.Now()
	deadline := begin.Add(10 * time.Second)
	for {
		list, err := ns2.overrides.List(ctx)
		if err == nil && len(list) == 1 {
			if err := ns2.overrides.Delete(ctx, "iad", list[0].Revision, "test", "NATS is back"); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("NATS back, but ns2 could not undrain within 10 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ns1.eventually(t, "www.geo.test.", client, iad)
	t.Logf("NATS back: an undrain through ns2 reached ns1 %s after the restart", time.Since(begin).Round(time.Millisecond))
}

// TestTargetOverride: an override may name one geo record's target at a
// PoP (pop@owner): it drains that record's iad, and leaves the PoP's other
// records alone.
func TestTargetOverride(t *testing.T) {
	dir := geoDir(t, geoZone+`  api:
    - geo:
        targets:
          fra: { a: 192.0.2.11 }
          iad: { a: 192.0.2.12 }
`)
	r := startApp(t, writeFile(t, dir, "popdns.yaml", geoConfig))
	const client = "192.0.2.64/26" // Ashburn: iad
	r.eventually(t, "www.geo.test.", client, "192.0.2.2")
	r.eventually(t, "api.geo.test.", client, "192.0.2.12")
	ctx := context.Background()
	o := overrides.Override{PoP: "iad@www.geo.test.", State: pops.Drain, StateName: "drain", Who: "test", Set: time.Now()}
	if _, err := r.overrides.Put(ctx, o, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.applier.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.answer(t, "www.geo.test.", client); got != "192.0.2.1" {
		t.Errorf("www with its iad target drained: %s, want fra's 192.0.2.1", got)
	}
	if got := r.answer(t, "api.geo.test.", client); got != "192.0.2.12" {
		t.Errorf("api, whose iad target is not drained: %s, want iad's 192.0.2.12", got)
	}
}
