//go:build !popdns_noembed

package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/pops"
)

// Three instances on one NATS server: what one writes, the others'
// watches see within 1 s; compare and set; delete; the audit trail.
func TestOverridesThreeInstances(t *testing.T) {
	srv := runServer(t, t.TempDir(), 0)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	var fl [3]*Fleet
	for i := range fl {
		fl[i] = openFleet(t, Config{Instance: fmt.Sprintf("ns%d", i+1), NATS: []string{srv.ClientURL()}})
	}
	s1 := fl[0].Overrides()
	w2, w3 := watch(t, fl[1].Overrides()), watch(t, fl[2].Overrides())
	for _, w := range []*watcher{w2, w3} {
		w.waitFor(t, 5*time.Second, "initial empty list", func(l []overrides.Override) bool { return len(l) == 0 })
	}

	// The PoP name needs escaping: the key must still be one token.
	const pop = "fra.de 1"
	o := overrides.Override{PoP: pop, State: pops.Drain, Who: "alice", Why: "maintenance", Set: time.Now().UTC().Truncate(time.Second)}
	start := time.Now()
	rev, err := s1.Put(ctx, o, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range []*watcher{w2, w3} {
		w.waitFor(t, time.Second, "drain on instance "+fmt.Sprint(i+2), hasPoP(pop, rev))
		t.Logf("drain written through ns1 seen by ns%d's watch after %v", i+2, time.Since(start).Round(time.Microsecond))
	}
	l, _ := w2.list()
	if got := l[0]; got.State != pops.Drain || got.StateName != "drain" || got.Who != "alice" || got.Why != "maintenance" || !got.Set.Equal(o.Set) || got.Revision != rev {
		t.Errorf("instance 2 sees %+v; want the drain by alice at revision %d", got, rev)
	}

	// Compare and set: a second create and a stale revision conflict.
	if _, err := fl[1].Overrides().Put(ctx, o, 0); !errors.Is(err, overrides.ErrConflict) {
		t.Errorf("create over an existing override: %v; want ErrConflict", err)
	}
	down := o
	down.State, down.Who, down.Why = pops.Down, "bob", "fibre cut"
	rev2, err := fl[2].Overrides().Put(ctx, down, rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Put(ctx, o, rev); !errors.Is(err, overrides.ErrConflict) {
		t.Errorf("update at a stale revision: %v; want ErrConflict", err)
	}
	if err := s1.Delete(ctx, pop, rev, "carol", "stale"); !errors.Is(err, overrides.ErrConflict) {
		t.Errorf("delete at a stale revision: %v; want ErrConflict", err)
	}

	// An expiry is the reader's business: the store keeps it, InForce
	// drops it once past.
	exp := overrides.Override{PoP: "ams", State: pops.Drain, Who: "dave", Set: time.Now().UTC(), Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}
	revAms, err := fl[1].Overrides().Put(ctx, exp, 0)
	if err != nil {
		t.Fatal(err)
	}
	w3.waitFor(t, time.Second, "ams with expiry", hasPoP("ams", revAms))
	list, err := s1.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].PoP != "ams" || !list[0].Expires.Equal(exp.Expires) || list[1].State != pops.Down || list[1].Revision != rev2 {
		t.Fatalf("List = %+v; want ams (expiring) and %s down at %d", list, pop, rev2)
	}
	if in := overrides.InForce(list, exp.Expires.Add(time.Second)); len(in) != 1 || in[pop] != pops.Down {
		t.Errorf("InForce after ams's expiry = %v; want only %s down", in, pop)
	}

	start = time.Now()
	if err := fl[2].Overrides().Delete(ctx, pop, rev2, "erin", "repaired"); err != nil {
		t.Fatal(err)
	}
	gone := func(l []overrides.Override) bool { return !hasPoP(pop, 0)(l) }
	w2.waitFor(t, time.Second, "delete on instance 2", gone)
	t.Logf("delete through ns3 seen by ns2's watch after %v", time.Since(start).Round(time.Microsecond))
	// Created again after the delete: a create, from revision 0.
	if _, err := s1.Put(ctx, o, 0); err != nil {
		t.Errorf("create after delete: %v", err)
	}

	hist, err := fl[1].Overrides().History(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ op, pop, who, why, state string }{
		{"set", pop, "alice", "maintenance", "drain"},
		{"set", pop, "bob", "fibre cut", "down"},
		{"set", "ams", "dave", "", "drain"},
		{"delete", pop, "erin", "repaired", "active"},
		{"set", pop, "alice", "maintenance", "drain"},
	}
	if len(hist) != len(want) {
		t.Fatalf("History has %d events, want %d: %+v", len(hist), len(want), hist)
	}
	for i, w := range want {
		e := hist[i]
		if e.Op != w.op || e.Override.PoP != w.pop || e.Override.Who != w.who || e.Override.Why != w.why || e.Override.StateName != w.state {
			t.Errorf("History[%d] = %s %+v; want %+v", i, e.Op, e.Override, w)
		}
		if i > 0 && e.At.Before(hist[i-1].At) {
			t.Errorf("History[%d] at %v, before the previous event", i, e.At)
		}
	}
	if last, err := s1.History(ctx, 2); err != nil || len(last) != 2 || last[0].Op != "delete" {
		t.Errorf("History(2) = %+v, %v; want the delete and the re-create", last, err)
	}

	// Close everything: no goroutine of ours or nats.go's is left.
	w2.stop()
	w3.stop()
	for _, f := range fl {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}
	checkGoroutines(t)
}

// Observations of two instances are both there, per probe.
func TestObservationsFresh(t *testing.T) {
	srv := runServer(t, t.TempDir(), 0)
	a := openFleet(t, Config{Instance: "ns1", Region: "eu", NATS: []string{srv.ClientURL()}})
	b := openFleet(t, Config{Instance: "ns2", Region: "us", NATS: []string{srv.ClientURL()}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got := make(chan map[string][]Observation, 16)
	go func() {
		_ = a.WatchObservations(ctx, func(m map[string][]Observation) { got <- m })
	}()
	now := time.Now().UTC()
	if err := a.Publish(ctx, "web.fra", Observation{Healthy: true, RTT: 12 * time.Millisecond, Checked: now}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "web.fra", Observation{Healthy: false, Checked: now}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case m := <-got:
			l := m["web.fra"]
			if len(l) < 2 {
				continue
			}
			want := []Observation{
				{Instance: "ns1", Region: "eu", Healthy: true, RTT: 12 * time.Millisecond, Checked: now},
				{Instance: "ns2", Region: "us", Checked: now},
			}
			for i := range want {
				if l[i].Instance != want[i].Instance || l[i].Region != want[i].Region || l[i].Healthy != want[i].Healthy || l[i].RTT != want[i].RTT || !l[i].Checked.Equal(want[i].Checked) {
					t.Errorf("observation %d = %+v; want %+v", i, l[i], want[i])
				}
			}
			if !a.obsPerMsgTTL {
				t.Error("the server supports per-message TTLs but the bucket does not use them")
			}
			return
		case <-ctx.Done():
			t.Fatal("both observations not seen within 10s")
		}
	}
}

// With NATS unreachable from the start, Open still returns, writes fail
// at once with ErrUnavailable, and Close leaves nothing behind.
func TestUnreachable(t *testing.T) {
	f, err := Open(t.Context(), Config{Instance: "lonely", NATS: []string{"nats://127.0.0.1:1"}, ReconnectWait: 50 * time.Millisecond}, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if f.Connected() {
		t.Error("connected to nothing")
	}
	start := time.Now()
	if _, err := f.Overrides().Put(t.Context(), overrides.Override{PoP: "fra", State: pops.Drain}, 0); !errors.Is(err, overrides.ErrUnavailable) {
		t.Errorf("Put = %v; want ErrUnavailable", err)
	}
	if err := f.Publish(t.Context(), "p", Observation{Healthy: true}); !errors.Is(err, overrides.ErrUnavailable) {
		t.Errorf("Publish = %v; want ErrUnavailable", err)
	}
	if _, err := f.Overrides().List(t.Context()); !errors.Is(err, overrides.ErrUnavailable) {
		t.Errorf("List = %v; want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("failing took %v", d)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := f.Overrides().Watch(ctx, func([]overrides.Override) { t.Error("Watch reported without a bucket") }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Watch = %v; want its context's end", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	checkGoroutines(t)
}

// Two fleets on one registry in turn (a reload): Close unregisters.
func TestMetricsReRegister(t *testing.T) {
	srv := runServer(t, t.TempDir(), 0)
	reg := prometheus.NewRegistry()
	cfg := Config{Instance: "ns1", NATS: []string{srv.ClientURL()}}
	for range 2 {
		f, err := Open(t.Context(), cfg, testLogger(t), reg)
		if err != nil {
			t.Fatal(err)
		}
		<-f.Ready()
		n, err := testutil.GatherAndCount(reg, "popdns_fleet_connected")
		if err != nil || n != 1 {
			t.Errorf("popdns_fleet_connected: %d series, %v", n, err)
		}
		if v := testutil.ToFloat64(f.m.connected); v != 1 {
			t.Errorf("popdns_fleet_connected = %v while connected", v)
		}
		f.Close()
	}
}

// Close ends the watches running on the fleet: they return nil.
func TestCloseEndsWatches(t *testing.T) {
	srv := runServer(t, t.TempDir(), 0)
	f := openFleet(t, Config{Instance: "ns1", NATS: []string{srv.ClientURL()}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	started := make(chan struct{}, 2)
	done := make(chan error, 2)
	go func() {
		done <- f.Overrides().Watch(ctx, func([]overrides.Override) { started <- struct{}{} })
	}()
	go func() {
		done <- f.WatchObservations(ctx, func(map[string][]Observation) { started <- struct{}{} })
	}()
	for range 2 {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("watches did not report within 10s")
		}
	}
	f.Close()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("watch ended by Close: %v; want nil", err)
			}
		case <-ctx.Done():
			t.Fatal("a watch did not return within 10s of Close")
		}
	}
	checkGoroutines(t)
}

// A watch abandoned with more entries pending than its channel holds
// (a resync of a big bucket) leaves no nats.go goroutine blocked.
func TestAbandonedWatchNoLeak(t *testing.T) {
	srv := runServer(t, t.TempDir(), 0)
	f := openFleet(t, Config{Instance: "ns1", NATS: []string{srv.ClientURL()}})
	for i := range 400 {
		if err := f.Publish(t.Context(), fmt.Sprintf("p%d", i), Observation{Healthy: true}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := f.obsKV.WatchAll(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(w.Updates()) < cap(w.Updates()) {
		if time.Now().After(deadline) {
			t.Fatalf("the watch's channel holds %d of %d after 5s", len(w.Updates()), cap(w.Updates()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopWatch(w)
	f.Close()
	checkGoroutines(t)
}

// One instance with its own embedded server: the buckets work, and
// Close shuts the server down (a second Open on the same store finds
// the override again).
func TestEmbeddedSingle(t *testing.T) {
	dir := t.TempDir()
	open := func() *Fleet {
		return openFleet(t, Config{Instance: "solo", Embedded: &Embedded{Listen: "127.0.0.1:0", StoreDir: dir}})
	}
	f := open()
	if _, err := f.Overrides().Put(t.Context(), overrides.Override{PoP: "fra", State: pops.Down, Who: "alice"}, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f = open()
	l, err := f.Overrides().List(t.Context())
	if err != nil || len(l) != 1 || l[0].State != pops.Down {
		t.Errorf("after a restart: %+v, %v; want fra down", l, err)
	}
	f.Close()
	checkGoroutines(t)
}

// An embedded server that cannot listen fails Open with the reason.
func TestEmbeddedPortInUse(t *testing.T) {
	srv := runServer(t, t.TempDir(), 0)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	addr := strings.TrimPrefix(srv.ClientURL(), "nats://")
	_, err := Open(ctx, Config{Instance: "x", Embedded: &Embedded{Listen: addr, StoreDir: t.TempDir()}}, testLogger(t), prometheus.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Open on a port in use: %v", err)
	}
}

// User and password reach the server; a wrong password leaves the
// fleet unconnected, writes failing.
func TestUserPassword(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		Username: "popdns", Password: "s3cret", NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("not ready")
	}
	good := openFleet(t, Config{Instance: "ns1", NATS: []string{s.ClientURL()}, User: "popdns", Password: "s3cret"})
	if _, err := good.Overrides().Put(t.Context(), overrides.Override{PoP: "fra", State: pops.Drain}, 0); err != nil {
		t.Errorf("with the password: %v", err)
	}
	bad, err := Open(t.Context(), Config{Instance: "ns2", NATS: []string{s.ClientURL()}, User: "popdns", Password: "wrong"}, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.Overrides().Put(t.Context(), overrides.Override{PoP: "ams", State: pops.Drain}, 0); !errors.Is(err, overrides.ErrUnavailable) || bad.Connected() {
		t.Errorf("with a wrong password: %v (connected %v); want ErrUnavailable", err, bad.Connected())
	}
}
