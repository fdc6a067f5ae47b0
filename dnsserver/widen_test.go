package dnsserver

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/internal/traffic"
	"github.com/popdns/popdns/latency/learn"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

func TestWidenStore(t *testing.T) {
	g1, g2 := &zones.Geo{}, &zones.Geo{}
	e1 := steer.Epoch{Generation: 1}
	e2 := steer.Epoch{Generation: 2}
	eHealth := steer.Epoch{Generation: 1, Health: 1}
	d16, d20, d40 := &udpfast.Decision{Scope: 16}, &udpfast.Decision{Scope: 20}, &udpfast.Decision{Scope: 40}
	type op struct {
		g     *zones.Geo
		qtype uint16
		p     string
		e     steer.Epoch
		db    uint64
		cd    *udpfast.Decision
	}
	type probe struct {
		g      *zones.Geo
		qtype  uint16
		client string
		e      steer.Epoch
		db     uint64
		want   *udpfast.Decision
	}
	for _, tc := range []struct {
		name   string
		ops    []op
		probes []probe
	}{
		{"inside and outside",
			[]op{{g1, dns.TypeA, "198.18.0.0/16", e1, 1, d16}},
			[]probe{
				{g1, dns.TypeA, "198.18.200.0", e1, 1, d16},
				{g1, dns.TypeA, "198.19.0.0", e1, 1, nil},    // outside
				{g1, dns.TypeAAAA, "198.18.1.0", e1, 1, nil}, // another type
				{g2, dns.TypeA, "198.18.1.0", e1, 1, nil},    // another record
				{g1, dns.TypeA, "198.18.1.0", e2, 1, nil},    // another epoch
				{g1, dns.TypeA, "198.18.1.0", e1, 2, nil},    // another database
				{g1, dns.TypeA, "::ffff:198.18.1.0", e1, 1, nil},
			}},
		{"two lengths",
			[]op{{g1, dns.TypeA, "198.18.0.0/16", e1, 1, d16}, {g1, dns.TypeA, "10.1.16.0/20", e1, 1, d20},
				{g1, dns.TypeA, "2001:db8::/40", e1, 1, d40}},
			[]probe{
				{g1, dns.TypeA, "198.18.3.0", e1, 1, d16},
				{g1, dns.TypeA, "10.1.31.255", e1, 1, d20},
				{g1, dns.TypeA, "10.1.32.0", e1, 1, nil},
				{g1, dns.TypeAAAA, "2001:db8:ff::", e1, 1, nil}, // AAAA stored nothing
				{g1, dns.TypeA, "2001:db8:ff::", e1, 1, d40},
				{g1, dns.TypeA, "2001:db8:100::", e1, 1, nil},
			}},
		{"a newer epoch drops the older one",
			[]op{{g1, dns.TypeA, "198.18.0.0/16", e1, 1, d16}, {g1, dns.TypeA, "10.1.16.0/20", eHealth, 1, d20}},
			[]probe{
				{g1, dns.TypeA, "198.18.3.0", e1, 1, nil},
				{g1, dns.TypeA, "198.18.3.0", eHealth, 1, nil},
				{g1, dns.TypeA, "10.1.16.1", eHealth, 1, d20},
			}},
		{"an older epoch is dropped",
			[]op{{g1, dns.TypeA, "10.1.16.0/20", eHealth, 1, d20}, {g1, dns.TypeA, "198.18.0.0/16", e1, 1, d16}},
			[]probe{
				{g1, dns.TypeA, "198.18.3.0", e1, 1, nil},
				{g1, dns.TypeA, "10.1.16.1", eHealth, 1, d20},
			}},
		{"a newer database drops the older one",
			[]op{{g1, dns.TypeA, "198.18.0.0/16", e1, 1, d16}, {g1, dns.TypeA, "10.1.16.0/20", e1, 2, d20}},
			[]probe{
				{g1, dns.TypeA, "198.18.3.0", e1, 1, nil},
				{g1, dns.TypeA, "198.18.3.0", e1, 2, nil},
				{g1, dns.TypeA, "10.1.16.1", e1, 2, d20},
			}},
		{"an older database is dropped",
			[]op{{g1, dns.TypeA, "10.1.16.0/20", e1, 2, d20}, {g1, dns.TypeA, "198.18.0.0/16", e1, 1, d16}},
			[]probe{
				{g1, dns.TypeA, "198.18.3.0", e1, 1, nil},
				{g1, dns.TypeA, "10.1.16.1", e1, 2, d20},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st widenStore
			for _, o := range tc.ops {
				st.insert(widenKey{geo: o.g, qtype: o.qtype, p: netip.MustParsePrefix(o.p)}, o.e, o.db, o.cd)
			}
			for _, p := range tc.probes {
				if got := st.lookup(p.g, p.qtype, netip.MustParseAddr(p.client), p.e, p.db); got != p.want {
					t.Errorf("lookup %s in %+v db %d: %v, want %v", p.client, p.e, p.db, got, p.want)
				}
			}
		})
	}
}

// TestWidenStoreBounded checks that the store holds at most widenCap
// prefixes, starting over when full, and that a lookup does not allocate.
func TestWidenStoreBounded(t *testing.T) {
	var st widenStore
	g, e := &zones.Geo{}, steer.Epoch{Generation: 1}
	cd := &udpfast.Decision{Scope: 22}
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 14), byte(i >> 6), byte(i << 2)}) }
	for i := range widenCap + 10 {
		p := netip.PrefixFrom(addr(i), 30)
		st.insert(widenKey{geo: g, qtype: dns.TypeA, p: p}, e, 1, cd)
		if n := st.len(); n > widenCap {
			t.Fatalf("%d prefixes after %d inserts, cap %d", n, i+1, widenCap)
		}
	}
	if n := st.len(); n != 10 {
		t.Errorf("%d prefixes after starting over, want 10", n)
	}
	last := addr(widenCap + 9)
	if st.lookup(g, dns.TypeA, last, e, 1) != cd {
		t.Fatalf("the last prefix inserted is not found")
	}
	if n := testing.AllocsPerRun(100, func() { st.lookup(g, dns.TypeA, last, e, 1) }); n != 0 {
		t.Errorf("lookup: %.0f allocations, want 0", n)
	}
}

// TestWidenStoreConcurrent races inserts of advancing epochs against
// lookups: a lookup finds only a decision proven in the epoch it asks for
// (Place carries the epoch here). Run it with -race.
func TestWidenStoreConcurrent(t *testing.T) {
	var st widenStore
	g := &zones.Geo{}
	const epochs, perEpoch = 50, 200
	decisions := make([]*udpfast.Decision, epochs+1)
	for i := range decisions {
		decisions[i] = &udpfast.Decision{Place: traffic.Place(i)}
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for gen := 1; gen <= epochs; gen++ {
				e := steer.Epoch{Generation: uint64(gen)}
				for i := range perEpoch {
					a := netip.AddrFrom4([4]byte{10, byte(w), byte(i), 0})
					st.insert(widenKey{geo: g, qtype: dns.TypeA, p: netip.PrefixFrom(a, 24)}, e, 1, decisions[gen])
					if cd := st.lookup(g, dns.TypeA, a.Next(), e, 1); cd != nil && cd != decisions[gen] {
						t.Errorf("epoch %d: found the decision of epoch %d", gen, cd.Place)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if n := st.len(); n == 0 || n > 4*perEpoch {
		t.Errorf("%d prefixes at the end, want 1 to %d (the last epoch's)", n, 4*perEpoch)
	}
}

// newWidenServer serves the geo test zone with the real Locator over the
// generated test databases, which Widen needs (steer.Locator).
func newWidenServer(t *testing.T, wc WidenConfig) (*Server, *prometheus.Registry) {
	t.Helper()
	loc := testLocator(t)
	reg := prometheus.NewRegistry()
	s, err := New(testConfig(Config{Listen: []string{"127.0.0.1:0"}, Widen: wc}),
		Deps{Log: zerolog.Nop(), Metrics: reg, Locator: loc})
	if err != nil {
		t.Fatal(err)
	}
	s.SetZones(loadGeoZone(t))
	return s, reg
}

// testLocator locates with the generated test databases until the test
// ends.
func testLocator(t *testing.T) *geo.Locator {
	t.Helper()
	loc := geo.NewLocator(testDB(t), zerolog.Nop())
	t.Cleanup(func() { loc.Close() })
	return loc
}

func testDB(t *testing.T) *geo.DB {
	t.Helper()
	db, err := geo.Open("../testdata/geo/city.mmdb", "../testdata/geo/asn.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func loadGeoZone(t *testing.T) *zones.Snapshot {
	t.Helper()
	p, err := pops.New(sixPoPs...)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(fstest.MapFS{"geo.test.yaml": {Data: []byte(geoZone), ModTime: time.Unix(1e9, 0)}}, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// rankScope is the scope Rank gives client now, and its first answer.
func rankScope(t *testing.T, s *Server, name string, client string) (int, string) {
	t.Helper()
	snap := s.Zones()
	node := snap.Match(name).Lookup(name, dns.TypeA).Node
	g := node.Geo()
	env := s.decisionEnv(snap)
	a := netip.MustParseAddr(client)
	var cands steer.Candidates
	d := steer.Rank(g, dns.TypeA, a, s.locate(a), &env, &cands)
	return d.Scope, g.Targets[d.Ranked[0]].A[0].(*dns.A).A.String()
}

type scoped struct {
	answer string
	scope  int
}

func askScope(t *testing.T, proto, addr, client string) scoped {
	t.Helper()
	r := exchange(t, proto, addr, query("www.geo.test.", dns.TypeA, withECS(client, 24)))
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("%s %s: %v", proto, client, r)
	}
	e := replyECS(t, r)
	if e == nil {
		t.Fatalf("%s %s: no ECS in the reply", proto, client)
	}
	return scoped{addrs(r.Answer)[0], int(e.SourceScope)}
}

// waitFor waits, at most 10 s, until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("%s: not within 10 s", what)
		case <-tick.C:
		}
	}
}

// TestWidenEndToEnd runs the server on loopback sockets with the test
// databases: a client is answered with Rank's scope, then, once the
// widener ran, with the widened one over UDP (the fast path's memo
// included) and TCP; a client inside the widened prefix gets it at once,
// one outside its own; after a drain and after a reload, answers are
// Rank's again until widened anew, never the stale wide scope.
func TestWidenEndToEnd(t *testing.T) {
	s, reg := newWidenServer(t, WidenConfig{})
	addr := startServer(t, s)[0]
	// The decisions made before the worker runs are not handed to it.
	waitFor(t, "the widener's worker starts", s.widen.running.Load)
	const x, inside, outside = "198.18.1.0", "198.18.200.0", "198.19.5.0" // London, London, Mumbai
	rank, first := rankScope(t, s, "www.geo.test.", x)
	if rank <= 16 {
		t.Fatalf("Rank's scope for %s is /%d: the test database no longer splits 198.18.0.0/16", x, rank)
	}
	before := s.widen.done.Load()
	if got := askScope(t, "udp", addr, x); got != (scoped{first, rank}) {
		t.Fatalf("first UDP answer for %s: %v, want %v (Rank's)", x, got, scoped{first, rank})
	}
	waitFor(t, "a widening finishes", func() bool { return s.widen.done.Load() > before })
	wide := s.widen.store.lookup(s.Zones().Match("www.geo.test.").Lookup("www.geo.test.", dns.TypeA).Node.Geo(),
		dns.TypeA, netip.MustParseAddr(x), s.decisionEnv(s.Zones()).Epoch, s.widen.dbGen())
	if wide == nil || wide.Scope >= rank {
		t.Fatalf("after widening, the store has %v for %s (Rank's scope /%d)", wide, x, rank)
	}
	t.Logf("%s: Rank's scope /%d, widened /%d", x, rank, wide.Scope)
	want := scoped{first, wide.Scope}
	for _, proto := range []string{"udp", "udp", "udp", "tcp"} { // the fast path answers the later UDP ones
		if got := askScope(t, proto, addr, x); got != want {
			t.Errorf("%s answer for %s after widening: %v, want %v", proto, x, got, want)
		}
	}
	for _, proto := range []string{"udp", "udp", "tcp"} {
		if got := askScope(t, proto, addr, inside); got != want {
			t.Errorf("%s answer for %s, inside the widened prefix: %v, want %v", proto, inside, got, want)
		}
	}
	oRank, oFirst := rankScope(t, s, "www.geo.test.", outside)
	if got := askScope(t, "tcp", addr, outside); got != (scoped{oFirst, oRank}) {
		t.Errorf("answer for %s, outside: %v, want %v (its own, Rank's)", outside, got, scoped{oFirst, oRank})
	}
	if n := testutil.ToFloat64(s.metrics.decisionMemo); n == 0 {
		t.Logf("no answer came from a UDP reader's memo (no fast path here?)")
	}

	// A drain moves the epoch: the widened prefix is gone with it.
	s.SetPoPStates(map[string]pops.AdminState{"fra": pops.Drain})
	dRank, dFirst := rankScope(t, s, "www.geo.test.", inside)
	if dFirst == first {
		t.Fatalf("draining fra did not change the answer for %s (%s)", inside, dFirst)
	}
	for _, proto := range []string{"udp", "tcp"} {
		got := askScope(t, proto, addr, inside)
		if got.answer != dFirst || got.scope < dRank && !widenedFor(s, inside, got.scope) {
			t.Errorf("%s answer for %s after the drain: %v, want %s with Rank's scope /%d", proto, inside, got, dFirst, dRank)
		}
	}
	s.SetPoPStates(map[string]pops.AdminState{"fra": pops.Active})

	// A reload likewise: a client the old prefix held is ranked again.
	s.SetZones(loadGeoZone(t))
	const inside2 = "198.18.129.0"
	r2, f2 := rankScope(t, s, "www.geo.test.", inside2)
	if got := askScope(t, "udp", addr, inside2); got != (scoped{f2, r2}) {
		t.Errorf("answer for %s after a reload: %v, want %v (Rank's, not the old widened /%d)", inside2, got, scoped{f2, r2}, wide.Scope)
	}
	if n := testutil.ToFloat64(s.widen.m.done); n < 1 {
		t.Errorf("popdns_geo_ecs_widen_total{result=done} = %v", n)
	}
	if _, err := reg.Gather(); err != nil {
		t.Error(err)
	}
}

// widenedFor reports whether the store holds a prefix of bits for client
// in the current epoch: an answer that wide was proven, not left over.
func widenedFor(s *Server, client string, bits int) bool {
	g := s.Zones().Match("www.geo.test.").Lookup("www.geo.test.", dns.TypeA).Node.Geo()
	cd := s.widen.store.lookup(g, dns.TypeA, netip.MustParseAddr(client), s.decisionEnv(s.Zones()).Epoch, s.widen.dbGen())
	return cd != nil && cd.Scope == bits
}

// TestFastPathAllocsWidening checks that the fast path stays free of
// allocations for decisions being widened: memoised while no widening
// finishes, and asked of the shared cache again when one does.
func TestFastPathAllocsWidening(t *testing.T) {
	s, _ := newWidenServer(t, WidenConfig{})
	s.widen.running.Store(true) // no worker: decisions wait in the queue, Widening
	f := newFastPath(s)
	out := make([]byte, 0, s.cfg.UDPSize)
	for _, m := range []*dns.Msg{
		query("www.geo.test.", dns.TypeA, withECS("198.18.1.0", 24)),
		query("www.geo.test.", dns.TypeAAAA, withECS("2001:db8:1::", 48)),
	} {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		fastUDP(t, f, b, fastSrc)
		if _, res := f.Answer(b, fastSrc.Addr(), out); res != udpfast.Answered {
			t.Fatalf("%v: not answered by the fast path once learnt", m.Question[0])
		}
		now := time.Now()
		if n := testing.AllocsPerRun(200, func() { f.Answer(b, fastSrc.Addr(), out); f.Flush(now) }); n != 0 {
			t.Errorf("%v, memoised while being widened: %.0f allocations per query, budget 0", m.Question[0], n)
		}
		if n := testing.AllocsPerRun(200, func() { s.widen.done.Add(1); f.Answer(b, fastSrc.Addr(), out); f.Flush(now) }); n != 0 {
			t.Errorf("%v, asked again as widenings finish: %.0f allocations per query, budget 0", m.Question[0], n)
		}
	}
	if len(s.widen.jobs) == 0 {
		t.Error("no decision was handed to the widener")
	}
}

// BenchmarkFastPathWiden measures the fast path over 1000 ECS networks of
// the test databases with the real Locator, widening off, on once every
// decision is widened (the memo settled), and on with every decision
// still waiting to be widened (each memo hit checks the widenings count).
// Compare the cases in one run, by cpu-ns/op.
func BenchmarkFastPathWiden(b *testing.B) {
	for _, tc := range []struct {
		name    string
		off     bool
		drained bool
	}{{"off", true, false}, {"on_widened", false, true}, {"on_waiting", false, false}} {
		b.Run(tc.name, func(b *testing.B) {
			db, err := geo.Open("../testdata/geo/city.mmdb", "../testdata/geo/asn.mmdb")
			if err != nil {
				b.Fatal(err)
			}
			loc := geo.NewLocator(db, zerolog.Nop())
			b.Cleanup(func() { loc.Close() })
			s, err := New(testConfig(Config{Listen: []string{"127.0.0.1:0"}, Widen: WidenConfig{Off: tc.off}}),
				Deps{Log: zerolog.Nop(), Metrics: prometheus.NewRegistry(), Locator: loc})
			if err != nil {
				b.Fatal(err)
			}
			s.SetZones(loadMergedZones(b))
			s.widen.running.Store(!tc.off)
			f := newFastPath(s)
			var packets [][]byte
			for _, m := range ecsQueries(1000, "www.geo.test.") {
				p, err := m.Pack()
				if err != nil {
					b.Fatal(err)
				}
				packets = append(packets, p)
			}
			out := make([]byte, 0, s.cfg.UDPSize)
			var cands steer.Candidates
			for range 2 { // learn, then memoise (or queue for widening)
				for _, p := range packets {
					if _, res := f.Answer(p, fastSrc.Addr(), out); res != udpfast.Answered {
						fastUDP(b, f, p, fastSrc)
					}
					if tc.drained {
						for len(s.widen.jobs) > 0 {
							j := <-s.widen.jobs
							s.widen.widen(&j, &cands)
							s.widen.done.Add(1)
						}
					}
				}
			}
			b.ReportAllocs()
			i, slow := 0, 0
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu := threadCPU()
			start := time.Now()
			for b.Loop() {
				if _, res := f.Answer(packets[i%len(packets)], fastSrc.Addr(), out); res != udpfast.Answered {
					slow++
				}
				i++
				if i%64 == 0 {
					f.Flush(start)
					start = time.Now()
				}
			}
			b.ReportMetric(float64(slow)/float64(i), "slow/op")
			b.ReportMetric(float64(threadCPU()-cpu)/float64(i), "cpu-ns/op")
		})
	}
}

// TestPacer checks the widener's pace on a fake clock: a tenth of a
// second's worth at once, then one widening per interval, so that n
// widenings take (n − burst)/perSecond seconds.
func TestPacer(t *testing.T) {
	for _, tc := range []struct {
		perSecond, n int
		units        int           // each widening's, 1 when 0
		want         time.Duration // the fake time all n take
	}{
		{10, 30, 0, 2900 * time.Millisecond},
		{500, 50, 0, 0},
		{500, 550, 0, time.Second},
		{1, 3, 0, 2 * time.Second},
		// A widening that looked up 16 units' worth of networks costs
		// as much as 16: the CPU bound holds whatever the budget.
		{500, 40, 16, 1150 * time.Millisecond}, // (39×16 − 49 of burst) × 2 ms
	} {
		now := time.Unix(1e9, 0)
		start := now
		p := newPacer(tc.perSecond, func() time.Time { return now })
		for range tc.n {
			if d := p.wait(); d > 0 {
				now = now.Add(d)
			}
			p.ran(max(tc.units, 1))
		}
		if got := now.Sub(start); got != tc.want {
			t.Errorf("%d widenings at %d/s took %v, want %v", tc.n, tc.perSecond, got, tc.want)
		}
	}
}

// TestWidenFlood sends decisions for 1000 new client networks while the
// worker is busy (here: not draining): the queue holds widenQueue of
// them, the rest are dropped and counted, and their decisions keep Rank's
// scope without waiting to be widened.
func TestWidenFlood(t *testing.T) {
	s, _ := newWidenServer(t, WidenConfig{})
	s.widen.running.Store(true)
	snap := s.Zones()
	g := snap.Match("www.geo.test.").Lookup("www.geo.test.", dns.TypeA).Node.Geo()
	env := s.decisionEnv(snap)
	var cands steer.Candidates
	const n = 1000
	waiting := 0
	for i := range n {
		client := netip.AddrFrom4([4]byte{198, 18 + byte(i>>8&1), byte(i), 0})
		_, cd := s.decide(&env, g, dns.TypeA, client, false, s.locate(client), &cands, true)
		if cd.Widening {
			waiting++
		}
		if got := s.cache.get(cacheKey{geo: g, qtype: dns.TypeA, client: client}, env.Epoch); got != cd {
			t.Fatalf("%s: the cache holds %+v, decide returned %+v", client, got, cd)
		}
	}
	if len(s.widen.jobs) != widenQueue || waiting != widenQueue {
		t.Errorf("%d decisions queued, %d waiting to be widened; want %d", len(s.widen.jobs), waiting, widenQueue)
	}
	if got := testutil.ToFloat64(s.widen.m.dropped); got != n-widenQueue {
		t.Errorf("dropped %v, want %d", got, n-widenQueue)
	}
}

// TestWidenDropsOnGeoIPSwap checks that widened prefixes hold for one
// GeoIP database: after a swap (here without a zones reload, as when the
// prober refuses a reload's probes), a client inside a widened prefix is
// ranked again, and a widening proven under the old database is dropped.
func TestWidenDropsOnGeoIPSwap(t *testing.T) {
	loc := testLocator(t)
	s, err := New(testConfig(Config{Listen: []string{"127.0.0.1:0"}}),
		Deps{Log: zerolog.Nop(), Metrics: prometheus.NewRegistry(), Locator: loc})
	if err != nil {
		t.Fatal(err)
	}
	s.SetZones(loadGeoZone(t))
	s.widen.running.Store(true)
	snap := s.Zones()
	g := snap.Match("www.geo.test.").Lookup("www.geo.test.", dns.TypeA).Node.Geo()
	env := s.decisionEnv(snap)
	var cands steer.Candidates
	decide := func(a string) *udpfast.Decision {
		client := netip.MustParseAddr(a)
		_, cd := s.decide(&env, g, dns.TypeA, client, false, s.locate(client), &cands, true)
		return cd
	}
	drain := func() {
		for len(s.widen.jobs) > 0 {
			j := <-s.widen.jobs
			s.widen.widen(&j, &cands)
		}
	}
	x, inside := "198.18.1.0", "198.18.200.0"
	rank := decide(x).Scope
	drain()
	if cd := decide(inside); cd.Scope >= rank || cd.Widening {
		t.Fatalf("%s inside the widened prefix: %+v, want a scope wider than /%d", inside, cd, rank)
	}
	loc.Swap(testDB(t))
	inRank := decide("198.18.129.0")
	if !inRank.Widening || inRank.Scope <= 16 {
		t.Errorf("after a GeoIP swap, a client inside the old widened prefix got %+v, want Rank's scope, being widened", inRank)
	}

	<-s.widen.jobs // 198.18.129.0's

	// A widening of a decision made before the swap, run after it, is
	// dropped.
	stale := decide("198.18.66.0")
	j := <-s.widen.jobs
	if j.client != netip.MustParseAddr("198.18.66.0") {
		t.Fatalf("the queue holds %s", j.client)
	}
	j.db--
	s.widen.widen(&j, &cands)
	if s.widen.store.lookup(g, dns.TypeA, netip.MustParseAddr("198.18.66.0"), env.Epoch, s.widen.dbGen()) != nil {
		t.Errorf("a widening of a decision made under the old database was kept")
	}
	if got := testutil.ToFloat64(s.widen.m.stale); got != 1 || stale.Scope <= 16 {
		t.Errorf("stale %v, want 1 (decision %+v)", got, stale)
	}
}

// TestWidenStoreLetsGo checks that a lookup in a newer epoch or database
// drops the older prefixes, and with them the old snapshot's records they
// name, while one in an older epoch leaves them.
func TestWidenStoreLetsGo(t *testing.T) {
	g := &zones.Geo{}
	p := netip.MustParsePrefix("198.18.0.0/16")
	a := netip.MustParseAddr("198.18.1.0")
	for _, tc := range []struct {
		name  string
		e     steer.Epoch
		db    uint64
		kept  bool
		found bool
	}{
		{"same", steer.Epoch{Generation: 2}, 2, true, true},
		{"newer epoch", steer.Epoch{Generation: 3}, 2, false, false},
		{"newer database", steer.Epoch{Generation: 2}, 3, false, false},
		{"older epoch", steer.Epoch{Generation: 1}, 2, true, false},
		{"older database", steer.Epoch{Generation: 2}, 1, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st widenStore
			st.insert(widenKey{geo: g, qtype: dns.TypeA, p: p}, steer.Epoch{Generation: 2}, 2, &udpfast.Decision{Scope: 16})
			found := st.lookup(g, dns.TypeA, a, tc.e, tc.db) != nil
			if kept := st.cur.Load() != nil; found != tc.found || kept != tc.kept {
				t.Errorf("found %v, kept %v; want %v, %v", found, kept, tc.found, tc.kept)
			}
		})
	}
}

// BenchmarkWidenStoreMiss is what the store adds to a decision-cache
// miss that it cannot answer: a lookup with 16 prefix lengths stored.
func BenchmarkWidenStoreMiss(b *testing.B) {
	var st widenStore
	g, e := &zones.Geo{}, steer.Epoch{Generation: 1}
	for bits := 8; bits < 24; bits++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(bits), 0, 0}), bits).Masked()
		st.insert(widenKey{geo: g, qtype: dns.TypeA, p: p}, e, 1, &udpfast.Decision{Scope: bits})
	}
	a := netip.MustParseAddr("192.0.2.0")
	b.ReportAllocs()
	for b.Loop() {
		if st.lookup(g, dns.TypeA, a, e, 1) != nil {
			b.Fatal("found")
		}
	}
}

// TestWidenStoreBruteForce checks lookups against the brute force: random
// prefixes of both families and every length are stored, and a random
// address finds a decision iff some stored prefix holds it, and then one
// of such a prefix.
func TestWidenStoreBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 7))
	randAddr := func(v6 bool) netip.Addr {
		if v6 {
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.IntN(4)) // few distinct bytes, so that prefixes overlap
			}
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte{byte(rng.IntN(4)), byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
	}
	var st widenStore
	g, e := &zones.Geo{}, steer.Epoch{Generation: 1}
	stored := map[netip.Prefix]*udpfast.Decision{}
	for range 2000 {
		v6 := rng.IntN(2) == 0
		a := randAddr(v6)
		p, _ := a.Prefix(rng.IntN(a.BitLen() + 1))
		cd := &udpfast.Decision{Scope: p.Bits()}
		st.insert(widenKey{geo: g, qtype: dns.TypeA, p: netip.PrefixFrom(a, p.Bits())}, e, 1, cd) // unmasked: insert masks
		stored[p] = cd
	}
	for range 20000 {
		a := randAddr(rng.IntN(2) == 0)
		got := st.lookup(g, dns.TypeA, a, e, 1)
		var holds []netip.Prefix
		for p := range stored {
			if p.Contains(a) {
				holds = append(holds, p)
			}
		}
		switch {
		case got == nil && len(holds) > 0:
			t.Fatalf("%s: nothing found, but %v hold it", a, holds)
		case got != nil && !slices.ContainsFunc(holds, func(p netip.Prefix) bool { return stored[p] == got }):
			t.Fatalf("%s: found /%d, which holds no prefix of %v", a, got.Scope, holds)
		}
	}
}

// TestWidenSkips checks which decisions are not handed to the widener:
// those of a record with spread (its choice hashes the client network at
// the scope), those that depend on no client, and any while no worker
// runs or widening is off.
func TestWidenSkips(t *testing.T) {
	client := netip.MustParseAddr("198.18.1.0")
	for _, tc := range []struct {
		name    string
		off     bool
		running bool
		record  string
		qtype   uint16
		want    bool
	}{
		{"nearest", false, true, "www.geo.test.", dns.TypeA, true},
		{"spread", false, true, "spread.geo.test.", dns.TypeA, false},
		{"no target has the type", false, true, "two.geo.test.", dns.TypeAAAA, false},
		{"no worker", false, false, "www.geo.test.", dns.TypeA, false},
		{"off", true, true, "www.geo.test.", dns.TypeA, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newWidenServer(t, WidenConfig{Off: tc.off})
			s.widen.running.Store(tc.running)
			snap := s.Zones()
			g := snap.Match(tc.record).Lookup(tc.record, tc.qtype).Node.Geo()
			env := s.decisionEnv(snap)
			var cands steer.Candidates
			_, cd := s.decide(&env, g, tc.qtype, client, false, s.locate(client), &cands, true)
			if queued := len(s.widen.jobs) == 1; cd.Widening != tc.want || queued != tc.want {
				t.Errorf("widening %v, queued %v; want %v", cd.Widening, queued, tc.want)
			}
		})
	}
}

// TestWidenedDecisionNotExplored: a client answered from a prefix widened
// for another gets that one's answer and scope, but not its exploration
// target, which was chosen by the other's ranking (a rule of its own
// could exclude that PoP): only a client's own decision explores.
func TestWidenedDecisionNotExplored(t *testing.T) {
	s, _ := newWidenServer(t, WidenConfig{})
	s.widen.running.Store(true)
	s.SetLearned(learn.NewAggregator(learn.Config{}).Snapshot(time.Now())) // learning on, nothing learned
	snap := s.Zones()
	g := snap.Match("www.geo.test.").Lookup("www.geo.test.", dns.TypeA).Node.Geo()
	env := s.decisionEnv(snap)
	var cands steer.Candidates
	decide := func(a string) *udpfast.Decision {
		client := netip.MustParseAddr(a)
		_, cd := s.decide(&env, g, dns.TypeA, client, false, s.locate(client), &cands, true)
		return cd
	}
	x, inside := "198.18.1.0", "198.18.200.0"
	own := decide(x)
	if !own.HasExplore {
		t.Fatalf("%s's own decision: %+v, want an exploration target (learning is on)", x, own)
	}
	for len(s.widen.jobs) > 0 {
		j := <-s.widen.jobs
		s.widen.widen(&j, &cands)
	}
	if cd := decide(inside); cd.Scope >= own.Scope || cd.HasExplore {
		t.Errorf("%s from the prefix widened for %s: %+v, want a wider scope than /%d and no exploration target", inside, x, cd, own.Scope)
	}
}
