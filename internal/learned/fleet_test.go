//go:build !popdns_noembed

package learned

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/popdns/popdns/internal/fleet"
	"github.com/popdns/popdns/latency/learn"
)

// natsServer starts a NATS server with JetStream storing in dir on
// 127.0.0.1:port (0: any free port).
func natsServer(t *testing.T, dir string, port int) *server.Server {
	t.Helper()
	if port == 0 {
		port = server.RANDOM_PORT
	}
	s, err := server.NewServer(&server.Options{ServerName: "test", Host: "127.0.0.1", Port: port,
		JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready within 10s")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// member is one instance: its fleet membership and its running Service.
type member struct {
	name   string
	fl     *fleet.Fleet
	svc    *Service
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// join opens a fleet member named name on url and runs a Service with
// state in dir ("" for none); buffer bounds its outbox (0: default).
func join(t *testing.T, name, url, dir string, buffer int) *member {
	t.Helper()
	reg := prometheus.NewRegistry()
	fl, err := fleet.Open(t.Context(), fleet.Config{Instance: name, NATS: []string{url}, ReconnectWait: 100 * time.Millisecond},
		testLog(t, name), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fl.Close() })
	select {
	case <-fl.Ready():
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: fleet not ready within 20s", name)
	}
	return start(t, name, fl, dir, buffer, reg)
}

func start(t *testing.T, name string, fl *fleet.Fleet, dir string, buffer int, reg *prometheus.Registry) *member {
	t.Helper()
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	log := testLog(t, name)
	svc := New(Config{StateDir: dir, FleetBuffer: buffer, MaxAge: time.Hour, SaveInterval: time.Hour},
		Deps{Log: log, Metrics: reg, Fleet: fl.LatencyStream(fleet.LatencyStreamConfig{MaxAge: time.Hour})})
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{name: name, fl: fl, svc: svc, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- svc.Run(ctx) }()
	t.Cleanup(m.stop)
	return m
}

func testLog(t *testing.T, name string) zerolog.Logger {
	if testing.Verbose() {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel).With().Str("instance", name).Logger()
	}
	return zerolog.Nop()
}

// stop ends the Service's Run (which saves) and waits for it.
func (m *member) stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		panic(m.name + ": Run did not return within 10s of its context's end")
	}
	m.cancel = nil
}

// ingest adds a batch through the HTTP source and checks it was taken.
func (m *member) ingest(t *testing.T, batch string) {
	t.Helper()
	rep, err := m.svc.Ingest([]byte(batch), learn.FormatAuto, SourceHTTP)
	if err != nil || rep.Rejected != 0 {
		t.Fatalf("%s: ingest: %+v, %v", m.name, rep, err)
	}
}

func (m *member) info() FleetInfo { return *m.svc.Info().Fleet }

// waitUntil polls cond every 10 ms up to d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

// table is the member's learned table as `popdns latency export` prints
// it, less the comment line with the snapshot's time.
func (m *member) table(t *testing.T, at time.Time) string {
	t.Helper()
	var buf bytes.Buffer
	if err := m.svc.agg.Snapshot(at).WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	// Sorted: a cell's PoPs come in the order each table first met
	// them, which differs between instances.
	lines := strings.Split(buf.String(), "\n")[1:]
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// sameTable fails unless a and b hold the same entries with RTTs equal
// within floating-point noise.
func sameTable(t *testing.T, a, b *member, cells []string, popNames []string) {
	t.Helper()
	// Both at one instant: a sample count decays with the snapshot's
	// time.
	at := time.Now()
	ta, tb := a.table(t, at), b.table(t, at)
	if ta != tb {
		t.Errorf("%s's table:\n%s\n%s's:\n%s", a.name, ta, b.name, tb)
	}
	if n := strings.Count(ta, "\n") - 1; n != 4 {
		t.Errorf("%s's table has %d entries that decide, want all 4 (the comparison would prove little):\n%s", a.name, n, ta)
	}
	if la, lb := a.svc.agg.Len(), b.svc.agg.Len(); la != lb {
		t.Errorf("%s holds %d entries, %s %d", a.name, la, b.name, lb)
	}
	sa, sb := a.svc.agg.Snapshot(at), b.svc.agg.Snapshot(at)
	for _, c := range cells {
		cl := learn.ClientOf(netip.MustParseAddr(c), netip.Prefix{}, 0)
		for _, pop := range popNames {
			ea, oka := sa.Lookup(cl, pop)
			eb, okb := sb.Lookup(cl, pop)
			if oka != okb || math.Abs(ea.RTTMS-eb.RTTMS) > 1e-9*ea.RTTMS || math.Abs(ea.Samples-eb.Samples) > 1e-9*ea.Samples {
				t.Errorf("%s to %s: %s %+v (%v), %s %+v (%v)", c, pop, a.name, ea, oka, b.name, eb, okb)
			}
		}
	}
}

// batch is n measurements of 192.0.2.0/24 and 198.51.100.0/24 to fra and
// iad around rtt ms, stamped now (the stream carries the time).
func batch(n int, rtt float64) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"prefix": "%s", "pop": "%s", "rtt_ms": %g}`+"\n",
			[]string{"192.0.2.0/24", "198.51.100.0/24"}[i%2], []string{"fra", "iad"}[i/2%2], rtt+float64(i%5))
	}
	return b.String()
}

var cells, popNames = []string{"192.0.2.1", "198.51.100.1"}, []string{"fra", "iad"}

// Two instances each take measurements of the same cells: each
// publishes its own, ingests the other's and skips its own read back,
// and both end with the same table.
func TestFleetConverge(t *testing.T) {
	srv := natsServer(t, t.TempDir(), 0)
	a := join(t, "ns1", srv.ClientURL(), t.TempDir(), 0)
	b := join(t, "ns2", srv.ClientURL(), t.TempDir(), 0)
	a.ingest(t, batch(20, 10))
	b.ingest(t, batch(12, 14))
	a.ingest(t, batch(8, 11))
	waitUntil(t, 10*time.Second, "both took in the other's", func() bool {
		ia, ib := a.info(), b.info()
		return ia.Received == 12 && ib.Received == 28 && ia.SkippedOwn == 28 && ib.SkippedOwn == 12
	})
	sameTable(t, a, b, cells, popNames)
	ia, ib := a.info(), b.info()
	if ia.Published != 28 || ib.Published != 12 || ia.Buffered != 0 || ia.Dropped != 0 || ia.Rejected != 0 || ia.Sequence != 3 || ib.Sequence != 3 {
		t.Errorf("ns1 %+v, ns2 %+v", ia, ib)
	}
	if got := testutil.ToFloat64(a.svc.fleet.metrics.WithLabelValues("received")); got != 12 {
		t.Errorf("ns1's received counter %v, want 12", got)
	}
	if got := testutil.ToFloat64(b.svc.measurements.WithLabelValues(SourceFleet, "accepted")); got != 28 {
		t.Errorf("ns2's fleet accepted counter %v, want 28", got)
	}
}

// An instance that joins later catches up from the stream, then follows
// it live.
func TestFleetLateJoiner(t *testing.T) {
	srv := natsServer(t, t.TempDir(), 0)
	a := join(t, "ns1", srv.ClientURL(), "", 0)
	a.ingest(t, batch(30, 20))
	waitUntil(t, 10*time.Second, "published", func() bool { return a.info().Published == 30 })
	c := join(t, "ns3", srv.ClientURL(), t.TempDir(), 0)
	waitUntil(t, 10*time.Second, "the late joiner caught up", func() bool { return c.info().Received == 30 })
	if c.info().ResumedFrom != 1 {
		t.Errorf("a fresh instance resumed from %d, want the stream's start", c.info().ResumedFrom)
	}
	a.ingest(t, batch(6, 25))
	waitUntil(t, 10*time.Second, "then live", func() bool { return c.info().Received == 36 })
	sameTable(t, a, c, cells, popNames)
}

// A restart resumes after the sequence saved with the state file: the
// peers' measurements taken before it are not counted again, those
// published while it was down are.
func TestFleetRestartNoDoubleCount(t *testing.T) {
	srv := natsServer(t, t.TempDir(), 0)
	a := join(t, "ns1", srv.ClientURL(), t.TempDir(), 0)
	dirB := t.TempDir()
	b := join(t, "ns2", srv.ClientURL(), dirB, 0)
	a.ingest(t, batch(10, 10))
	b.ingest(t, batch(4, 30))
	waitUntil(t, 10*time.Second, "exchanged", func() bool {
		return b.info().Received == 10 && a.info().Received == 4 && b.info().Sequence == 2
	})
	b.stop() // saves the table and the sequence
	before := b.info().Sequence
	a.ingest(t, batch(6, 12))
	waitUntil(t, 10*time.Second, "published while ns2 is down", func() bool { return a.info().Published == 16 })

	b2 := start(t, "ns2", b.fl, dirB, 0, nil)
	if got := b2.info().ResumedFrom; got != before+1 {
		t.Errorf("restarted ns2 resumes from %d, want %d (after the saved sequence)", got, before+1)
	}
	waitUntil(t, 10*time.Second, "ns2 took in what it missed", func() bool { return b2.info().Received == 6 })
	sameTable(t, a, b2, cells, popNames)
	// Nothing older comes again: a while on, still 6.
	a.ingest(t, batch(2, 12))
	waitUntil(t, 10*time.Second, "and the next", func() bool { return b2.info().Received == 8 })
	if i := b2.info(); i.SkippedOwn != 0 || i.Received != 8 {
		t.Errorf("restarted ns2: %+v; want 8 received and none of its own read again", i)
	}
	sameTable(t, a, b2, cells, popNames)

	// Restarted twice, with nothing new in between: the second start
	// resumes where the first did, not from the stream's start (which
	// would count every peer's batch twice).
	b2.stop()
	b3 := start(t, "ns2", b.fl, dirB, 0, nil)
	b3.stop()
	b4 := start(t, "ns2", b.fl, dirB, 0, nil)
	if got, want := b4.info().ResumedFrom, b2.info().Sequence+1; got != want {
		t.Errorf("started again with nothing new: resumes from %d, want %d", got, want)
	}
	a.ingest(t, batch(1, 12))
	waitUntil(t, 10*time.Second, "the next after two restarts", func() bool { return b4.info().Received >= 1 })
	if i := b4.info(); i.Received != 1 {
		t.Errorf("after two restarts: %+v; want only the 1 new measurement received", i)
	}
	sameTable(t, a, b4, cells, popNames)
}

// Where a restart resumes, from the state directory's files.
func TestResumeFrom(t *testing.T) {
	saved := t0.Add(-time.Minute)
	agg := learn.NewAggregator(learn.Config{})
	if _, err := agg.Ingest([]learn.Measurement{{Prefix: netip.MustParsePrefix("192.0.2.0/24"), PoP: "fra", RTTMS: 10, Weight: 1}}, saved, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		state   bool
		cursors []fleetCursor // nil: no cursor file
		loaded  bool
		want    uint64
	}{
		{"nothing saved", false, nil, true, 1},
		{"saved outside a fleet", true, nil, true, 1},
		{"the load failed", true, []fleetCursor{{saved, 7}}, false, 1},
		{"its cursor", true, []fleetCursor{{saved.Add(-time.Hour), 3}, {saved, 7}}, true, 8},
		{"cursor written, state not renamed", true, []fleetCursor{{saved, 7}, {saved.Add(time.Minute), 9}}, true, 8},
		{"no cursor of its own", true, []fleetCursor{{saved.Add(-time.Hour), 3}}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.state {
				if err := agg.Save(dir, saved); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range tc.cursors {
				if err := saveCursor(dir, c.Saved, c.Seq); err != nil {
					t.Fatal(err)
				}
			}
			if got, why := resumeFrom(dir, tc.loaded); got != tc.want {
				t.Errorf("from %d (%s), want %d", got, why, tc.want)
			}
		})
	}
}

// NATS down: ingest neither blocks nor fails, the batches wait in the
// bounded buffer (the oldest dropped, counted, when it is full), and go
// out once NATS is back, where the peer takes them in.
func TestFleetNATSDown(t *testing.T) {
	storeDir := t.TempDir()
	srv := natsServer(t, storeDir, 0)
	port := srv.Addr().(*net.TCPAddr).Port
	a := join(t, "ns1", srv.ClientURL(), "", 4<<10)
	b := join(t, "ns2", srv.ClientURL(), "", 0)
	a.ingest(t, batch(4, 10))
	waitUntil(t, 10*time.Second, "before the outage", func() bool { return b.info().Received == 4 })

	srv.Shutdown()
	srv.WaitForShutdown()
	waitUntil(t, 10*time.Second, "disconnected", func() bool { return !a.fl.Connected() })
	// About 2.6 KB each: the 4 KiB buffer keeps one batch.
	for i := range 3 {
		start := time.Now()
		a.ingest(t, batch(40, 15+float64(i)))
		if d := time.Since(start); d > time.Second {
			t.Errorf("ingest while NATS is down took %v", d)
		}
	}
	waitUntil(t, 10*time.Second, "the oldest dropped, the publish error shown", func() bool {
		i := a.info()
		return i.Dropped == 80 && i.Buffered == 1 && i.Error != ""
	})
	if got := testutil.ToFloat64(a.svc.fleet.metrics.WithLabelValues("dropped")); got != 80 {
		t.Errorf("dropped counter %v, want 80", got)
	}
	if a.svc.agg.Len() == 0 || a.svc.Info().Entries != a.svc.agg.Len() {
		t.Error("learned nothing locally while NATS was down")
	}

	natsServer(t, storeDir, port)
	waitUntil(t, 20*time.Second, "the buffered batch reached ns2", func() bool { return b.info().Received == 44 })
	if i := a.info(); i.Buffered != 0 || i.Error != "" || i.Published != 44 {
		t.Errorf("after the outage ns1 %+v", i)
	}
}

// A peer's batch is checked as strictly as any: its bad lines are
// counted, never fatal, and a batch that is not ours at all changes
// nothing.
func TestIngestPeer(t *testing.T) {
	s := New(Config{MaxAge: time.Hour}, Deps{Log: zerolog.Nop(), Now: func() time.Time { return t0 },
		Fleet: nopFleet{}, KnownPoP: func(name string) bool { return name == "fra" }})
	ts := t0.Add(-time.Minute).Format(time.RFC3339Nano)
	s.ingestPeer(1, "ns9", []byte(fleetCSVHeader+"192.0.2.0/24,fra,10,"+ts+",1,\n192.0.2.0/24,zzz,10,"+ts+",1,\n192.0.2.0/24,fra,-1,"+ts+",1,\n"))
	s.ingestPeer(2, "ns9", []byte("garbage\x00,\n"))
	s.ingestPeer(2, "ns9", []byte(fleetCSVHeader+"192.0.2.0/24,fra,10,"+ts+",1,\n")) // a redelivery
	s.ingestPeer(3, "ns0", []byte(fleetCSVHeader+"192.0.2.0/24,fra,10,"+ts+",1,\n")) // its own
	i := *s.Info().Fleet
	if i.Received != 1 || i.Rejected != 3 || i.SkippedOwn != 1 || i.Sequence != 3 {
		t.Errorf("%+v; want 1 received, 3 rejected, 1 skipped, at sequence 3", i)
	}
}

// What is published reads back as the measurements taken, times and
// weights exact, in chunks within the message size limit.
func TestEncodeFleet(t *testing.T) {
	var ms []learn.Measurement
	for i := range 20_000 {
		ms = append(ms, learn.Measurement{Prefix: netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)), PoP: "fra",
			RTTMS: 1 + float64(i)/7, Weight: 1 + float64(i%3)/3, Time: t0.Add(-time.Duration(i) * time.Millisecond), Source: "rum"})
	}
	ms[0].Time = time.Time{} // stamped now
	out := encodeFleet(ms, t0)
	if len(out) < 2 {
		t.Fatalf("%d chunks; want the batch split", len(out))
	}
	var got []learn.Measurement
	for _, b := range out {
		if len(b.data) > fleetChunk || len(b.data) > fleet.LatencyMaxMsgSize {
			t.Errorf("a chunk of %d bytes", len(b.data))
		}
		pb, err := learn.ParseBatch(b.data, learn.ParseOptions{Format: learn.FormatCSV, Now: t0})
		if err != nil || pb.Rejected != 0 || len(pb.Measurements) != b.count {
			t.Fatalf("chunk: %v, %+v", err, pb)
		}
		got = append(got, pb.Measurements...)
	}
	ms[0].Time = t0
	if len(got) != len(ms) {
		t.Fatalf("%d measurements back, want %d", len(got), len(ms))
	}
	for i := range ms {
		if g, w := got[i], ms[i]; g.Prefix != w.Prefix || g.PoP != w.PoP || g.RTTMS != w.RTTMS || g.Weight != w.Weight || !g.Time.Equal(w.Time) || g.Source != w.Source {
			t.Fatalf("measurement %d: %+v, want %+v", i, g, w)
		}
	}
}

// gateFleet fails every publish until open, then takes them.
type gateFleet struct {
	nopFleet
	open      atomic.Bool
	published atomic.Int64
}

func (g *gateFleet) Publish(_ context.Context, _ string, _ []byte, n int) error {
	if !g.open.Load() {
		return errors.New("store unavailable")
	}
	g.published.Add(int64(n))
	return nil
}

// A clean stop publishes what is still queued (while NATS answers), so
// that the peers do not lose it.
func TestFleetFlushAtStop(t *testing.T) {
	g := &gateFleet{}
	s := New(Config{}, Deps{Log: zerolog.Nop(), Fleet: g})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	if _, err := s.Ingest([]byte(batch(6, 10)), learn.FormatAuto, SourceHTTP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "a failed publish", func() bool { return s.Info().Fleet.Error != "" })
	// The publisher now waits a second to try again; the stop comes
	// first, and the last attempt finds NATS back.
	g.open.Store(true)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s")
	}
	if n := g.published.Load(); n != 6 || s.Info().Fleet.Buffered != 0 {
		t.Errorf("published %d at the stop, %+v; want all 6", n, s.Info().Fleet)
	}
}
