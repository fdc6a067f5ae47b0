//go:build slow && !popdns_noembed

package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/pops"
)

// waitUntil polls cond every 20 ms for up to d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// putRetry writes until the store takes it (a server recovering, a
// cluster electing a leader), up to d.
func putRetry(t *testing.T, s overrides.Store, o overrides.Override, d time.Duration) (uint64, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		rev, err := s.Put(ctx, o, 0)
		cancel()
		if err == nil {
			return rev, time.Since(start)
		}
		if !errors.Is(err, overrides.ErrUnavailable) || time.Since(start) > d {
			t.Fatalf("Put %s: %v after %v", o.PoP, err, time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// NATS killed: watchers keep their last list, writes fail fast; NATS
// back on the same port and store: a write made by a peer that
// reconnected first reaches the slower one by its resync.
func TestNATSRestart(t *testing.T) {
	dir := t.TempDir()
	srv := runServer(t, dir, 0)
	port := srv.Addr().(*net.TCPAddr).Port
	url := srv.ClientURL()
	a := openFleet(t, Config{Instance: "ns1", NATS: []string{url}, ReconnectWait: 1500 * time.Millisecond})
	b := openFleet(t, Config{Instance: "ns2", NATS: []string{url}, ReconnectWait: 100 * time.Millisecond})
	wa := watch(t, a.Overrides())
	drain := overrides.Override{PoP: "fra", State: pops.Drain, Who: "alice", Set: time.Now().UTC()}
	rev, err := b.Overrides().Put(t.Context(), drain, 0)
	if err != nil {
		t.Fatal(err)
	}
	wa.waitFor(t, time.Second, "fra before the outage", hasPoP("fra", rev))

	srv.Shutdown()
	srv.WaitForShutdown()
	waitUntil(t, 10*time.Second, "both disconnected", func() bool { return !a.Connected() && !b.Connected() })
	if v := testutil.ToFloat64(a.m.connected); v != 0 {
		t.Errorf("popdns_fleet_connected = %v while disconnected", v)
	}
	_, callsBefore := wa.list()
	start := time.Now()
	_, err = a.Overrides().Put(t.Context(), overrides.Override{PoP: "ams", State: pops.Down}, 0)
	d := time.Since(start)
	if !errors.Is(err, overrides.ErrUnavailable) || d > 2*time.Second {
		t.Errorf("Put while NATS is down: %v after %v; want ErrUnavailable within 2s", err, d)
	}
	t.Logf("Put while NATS is down failed after %v: %v", d.Round(time.Microsecond), err)
	if l, calls := wa.list(); calls != callsBefore || !hasPoP("fra", rev)(l) {
		t.Errorf("during the outage the watcher got %d more lists, now %+v; want the last one kept", calls-callsBefore, l)
	}

	restarted := time.Now()
	runServer(t, dir, port)
	waitUntil(t, 10*time.Second, "ns2 reconnected", b.Connected)
	ams := overrides.Override{PoP: "ams", State: pops.Down, Who: "bob", Set: time.Now().UTC()}
	revAms, took := putRetry(t, b.Overrides(), ams, 10*time.Second)
	t.Logf("NATS restarted; ns2 wrote after %v (its write retried for %v); ns1 connected then: %v",
		time.Since(restarted).Round(time.Millisecond), took.Round(time.Millisecond), a.Connected())
	seen := wa.waitFor(t, 10*time.Second, "ams on ns1 after the restart", hasPoP("ams", revAms))
	t.Logf("ns1's watch had ams %v after ns2's write (%v after the restart)", seen.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	if l, _ := wa.list(); !hasPoP("fra", rev)(l) || len(l) != 2 {
		t.Errorf("after the resync: %+v; want fra and ams", l)
	}
	if n := testutil.ToFloat64(a.m.reconnects); n < 1 {
		t.Errorf("popdns_fleet_reconnects_total = %v after a reconnection", n)
	}
	// Writes work again from the slower instance too.
	if _, took := putRetry(t, a.Overrides(), overrides.Override{PoP: "lhr", State: pops.Drain}, 10*time.Second); took > 5*time.Second {
		t.Errorf("ns1 could write again only after %v", took)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Three instances each embedding a NATS server, routed into a cluster:
// the buckets have three replicas, and with one instance gone the other
// two still write and see overrides.
func TestEmbeddedCluster(t *testing.T) {
	var ports [3]int
	for i := range ports {
		ports[i] = freePort(t)
	}
	var fl [3]*Fleet
	for i := range fl {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("127.0.0.1:%d", p))
			}
		}
		// Opened together: the first cannot make its buckets before
		// the cluster has a quorum.
		f, err := Open(t.Context(), Config{
			Instance:      fmt.Sprintf("n%d", i+1),
			ReconnectWait: 100 * time.Millisecond,
			Embedded: &Embedded{
				Listen:        "127.0.0.1:0",
				ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]),
				Routes:        routes,
				StoreDir:      t.TempDir(),
			},
		}, testLogger(t), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		fl[i] = f
	}
	start := time.Now()
	for i, f := range fl {
		select {
		case <-f.Ready():
		case <-time.After(30 * time.Second):
			t.Fatalf("n%d: buckets not ready within 30s", i+1)
		}
	}
	t.Logf("cluster formed and buckets ready after %v", time.Since(start).Round(time.Millisecond))
	st, err := fl[0].ovKV.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; r != 3 {
		t.Errorf("overrides bucket has %d replicas; want 3", r)
	}

	w2, w3 := watch(t, fl[1].Overrides()), watch(t, fl[2].Overrides())
	start = time.Now()
	rev, _ := putRetry(t, fl[0].Overrides(), overrides.Override{PoP: "fra", State: pops.Drain, Who: "alice"}, 10*time.Second)
	w2.waitFor(t, time.Second, "fra on n2", hasPoP("fra", rev))
	w3.waitFor(t, time.Second, "fra on n3", hasPoP("fra", rev))
	t.Logf("cluster: drain through n1 seen by n2 and n3 after %v", time.Since(start).Round(time.Microsecond))

	// Kill the server holding n2's watch's consumer if that is not
	// n2's own: the watch must notice (stallCheck) rather than wait for
	// nats.go's heartbeats.
	w3.stop()
	victim := 2
	if host := consumerHost(t, fl[1]); host != "n2" {
		victim = map[string]int{"n1": 0, "n3": 2}[host]
		t.Logf("n2's watch is served by %s: killing it", host)
	}
	writer := fl[2-victim] // n1 or n3, whichever lives
	fl[victim].Close()     // its server goes with it
	killed := time.Now()
	revAms, took := putRetry(t, writer.Overrides(), overrides.Override{PoP: "ams", State: pops.Down, Who: "bob"}, 15*time.Second)
	seen := w2.waitFor(t, 5*time.Second, "ams on n2 with a server gone", hasPoP("ams", revAms))
	t.Logf("n%d killed: n%d's write took %v (retrying), n2 saw it %v later; %v after the kill",
		victim+1, 3-victim, took.Round(time.Millisecond), seen.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	// A fresh read may wait for the cluster to settle.
	var l []overrides.Override
	waitUntil(t, 10*time.Second, "n2's List", func() bool {
		l, err = fl[1].Overrides().List(t.Context())
		return err == nil
	})
	if len(l) != 2 {
		t.Errorf("n2 List = %+v; want fra and ams", l)
	}

	// The other survivor gone too: n2 alone has no quorum. Writes fail
	// within the timeout; the watch keeps what it had.
	writer.Close()
	_, calls := w2.list()
	start = time.Now()
	_, err = fl[1].Overrides().Put(t.Context(), overrides.Override{PoP: "lhr", State: pops.Drain}, 0)
	d := time.Since(start)
	t.Logf("n2 alone (no quorum): Put failed after %v: %v", d.Round(time.Millisecond), err)
	if !errors.Is(err, overrides.ErrUnavailable) || d > 2500*time.Millisecond {
		t.Errorf("Put without quorum: %v after %v; want ErrUnavailable within the 2s timeout", err, d)
	}
	if l, c := w2.list(); c != calls || len(l) != 2 {
		t.Errorf("without quorum n2's watch got %d more lists, now %+v; want fra and ams kept", c-calls, l)
	}

	w2.stop()
	for _, f := range fl {
		f.Close()
	}
	checkGoroutines(t)
}

// consumerHost names the server that holds the only consumer of f's
// overrides bucket.
func consumerHost(t *testing.T, f *Fleet) string {
	t.Helper()
	st, err := f.js.Stream(t.Context(), "KV_"+OverridesBucket)
	if err != nil {
		t.Fatal(err)
	}
	// The stopped watches' consumers go away asynchronously.
	var hosts []string
	waitUntil(t, 5*time.Second, "one consumer left", func() bool {
		hosts = nil
		l := st.ListConsumers(t.Context())
		for ci := range l.Info() {
			if ci.Cluster != nil {
				hosts = append(hosts, ci.Cluster.Leader)
			}
		}
		return l.Err() == nil && len(hosts) == 1
	})
	return hosts[0]
}

// An instance that stops publishing drops out by itself after the TTL;
// the one that keeps publishing stays.
func TestObservationsExpire(t *testing.T) {
	srv := runServer(t, t.TempDir(), 0)
	const ttl = time.Second
	a := openFleet(t, Config{Instance: "ns1", NATS: []string{srv.ClientURL()}, ObservationTTL: ttl})
	b := openFleet(t, Config{Instance: "ns2", NATS: []string{srv.ClientURL()}, ObservationTTL: ttl})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	got := make(chan []Observation, 64)
	done := make(chan error, 1)
	go func() {
		done <- a.WatchObservations(ctx, func(m map[string][]Observation) { got <- m["web"] })
	}()
	publish := func(f *Fleet) {
		if err := f.Publish(ctx, "web", Observation{Healthy: true, Checked: time.Now()}); err != nil {
			t.Error(err)
		}
	}
	publish(a)
	publish(b)
	lastB := time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	both := false
	for {
		select {
		case l := <-got:
			switch {
			case len(l) == 2:
				both = true
			case both && len(l) == 1 && l[0].Instance == "ns1":
				d := time.Since(lastB)
				t.Logf("ns2 stopped publishing; its observation was gone from ns1's watch after %v (TTL %v)", d.Round(time.Millisecond), ttl)
				// lastB is taken after the write returned: allow the
				// round trip.
				if d < ttl-100*time.Millisecond {
					t.Errorf("gone after %v, before the TTL", d)
				}
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Errorf("WatchObservations = %v; want context.Canceled", err)
				}
				return
			case both:
				t.Fatalf("observations %+v; want ns1 to stay", l)
			}
		case <-tick.C:
			publish(a)
		case <-ctx.Done():
			t.Fatal("ns2's observation did not expire within 15s")
		}
	}
}
