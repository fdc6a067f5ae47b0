package dnsserver

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnssec"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/latency/learn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// rtt is one learned measurement for the exploration tests.
type rtt struct {
	prefix, pop string
	ms          float64
}

// learnedOf is a learned-latency table of rtts measured now, one
// measurement each (weight 5), deciding from one, placed by testPlaces as
// the server's ingest places them.
func learnedOf(t testing.TB, rtts ...rtt) *learn.Snapshot {
	t.Helper()
	now := time.Now()
	agg := learn.NewAggregator(learn.Config{MinSamples: 1, HalfLife: time.Hour, CountHalfLife: time.Hour})
	locate := func(a netip.Addr) (netip.Prefix, uint32) {
		l := testPlaces.Locate(a)
		return l.Prefix, l.ASN
	}
	for _, r := range rtts {
		ms := []learn.Measurement{{Prefix: netip.MustParsePrefix(r.prefix), PoP: r.pop, RTTMS: r.ms, Weight: 5, Time: now}}
		if res, err := agg.Ingest(ms, now, locate); err != nil || res.Applied != 1 {
			t.Fatalf("ingest %+v: %+v, %v", r, res, err)
		}
	}
	return agg.Snapshot(now)
}

// newExploringServer is newGeoServer exploring pct percent of the answers
// that can, deciding with learned (nil: learning off). pct may exceed
// MaxExplorePct, which bounds the configuration only.
func newExploringServer(t testing.TB, pct float64, learned *learn.Snapshot) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(testConfig(Config{Listen: []string{"127.0.0.1:0"}, ExplorePct: min(pct, MaxExplorePct)}),
		Deps{Log: zerolog.Nop(), Metrics: reg, Locator: testPlaces})
	if err != nil {
		t.Fatal(err)
	}
	s.explore = udpfast.NewExplorer(pct)
	s.SetZones(newGeoServer(t).zones.Load())
	if learned != nil {
		s.SetLearned(learned)
	}
	return s, reg
}

// exploredTotal is popdns_learned_explored_total by PoP.
func exploredTotal(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "popdns_learned_explored_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] += m.GetCounter().GetValue()
		}
	}
	return out
}

// generalAnswer is the general path's answer's addresses to m from a
// Berlin resolver.
func generalAnswer(t testing.TB, s *Server, m *dns.Msg) []string {
	t.Helper()
	w := dnstest.NewUDP("81.2.69.53")
	s.ServeDNS(w, m)
	if w.Msg == nil {
		t.Fatal("no reply")
	}
	return addrs(w.Msg.Answer)
}

// TestExplore: which answer explores, on the general path and the fast
// path alike (share 100 explores every answer that can, so the two paths
// must give the same bytes), and which never does: share 0, learning off,
// a target drained or down, every target down.
func TestExplore(t *testing.T) {
	berlin := withECS("81.2.69.0", 24)
	measured := learnedOf(t, rtt{"81.2.69.0/24", "fra", 10}, rtt{"81.2.69.0/24", "iad", 90})
	tests := []struct {
		name    string
		pct     float64
		learned *learn.Snapshot
		qname   string
		want    []string
	}{
		{"off", 0, learnedOf(t), "www.geo.test.", []string{"192.0.2.1"}},
		{"learning off", 100, nil, "www.geo.test.", []string{"192.0.2.1"}},
		// Nothing measured: the second best (iad) is unmeasured.
		{"unmeasured", 100, learnedOf(t), "www.geo.test.", []string{"192.0.2.2"}},
		// Two answers: the explored one first, then the decision's first.
		{"two answers", 100, learnedOf(t), "two.geo.test.", []string{"192.0.2.2", "192.0.2.1"}},
		// fra and iad measured fresh in the /24: nrt, the best of the
		// rest from Berlin, is explored.
		{"measured", 100, measured, "www.geo.test.", []string{"192.0.2.6"}},
		{"measured, off", 0, measured, "www.geo.test.", []string{"192.0.2.1"}},
		// CNAME targets: the explored one's CNAME, followed in our zone.
		{"alias", 100, learnedOf(t), "cdn.geo.test.", []string{"CNAME iad.geo.test.", "192.0.2.22"}},
		// fra drained and iad down: sin alone is eligible, nothing to explore.
		{"drained", 100, learnedOf(t), "states.geo.test.", []string{"192.0.2.3"}},
		// Every target down: when_all_down decides, never exploration.
		{"all down", 100, learnedOf(t), "nearest.geo.test.", []string{"192.0.2.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, reg := newExploringServer(t, tt.pct, tt.learned)
			if got := generalAnswer(t, s, query(tt.qname, dns.TypeA, berlin)); !slices.Equal(got, tt.want) {
				t.Errorf("general path: %v, want %v", got, tt.want)
			}
			f := newFastPath(s)
			vs := variants(t, query(tt.qname, dns.TypeA, berlin))
			// Learnt from the general path: the first query, two of the
			// mixed cases (their keys differ) and, when exploring, the
			// first of the two other networks (shiftECS).
			if fast := checkSame(t, s, f, vs, fastSrc); fast < len(vs)-4 {
				t.Errorf("the fast path answered %d of %d", fast, len(vs))
			}
			explored := exploredTotal(t, reg)
			if tt.want[0] == "192.0.2.1" || tt.qname == "states.geo.test." {
				if len(explored) != 0 {
					t.Errorf("explored %v, want none", explored)
				}
				return
			}
			var n float64
			for _, c := range explored {
				n += c
			}
			// Every answer of both paths explored: one above, and
			// checkSame's on each path (its two other networks explore
			// PoPs of their own).
			if want := float64(1 + 2*len(vs)); n != want {
				t.Errorf("explored %v, want %v answers", explored, want)
			}
		})
	}
}

// TestExploreOnlyWhereItSends: a CNAME query of a record whose targets
// are addresses is NODATA whatever the order: it neither explores nor
// counts, on either path.
func TestExploreOnlyWhereItSends(t *testing.T) {
	s, reg := newExploringServer(t, 100, learnedOf(t))
	f := newFastPath(s)
	vs := variants(t, query("www.geo.test.", dns.TypeCNAME, withECS("81.2.69.0", 24)))
	checkSame(t, s, f, vs, fastSrc)
	if got := exploredTotal(t, reg); len(got) != 0 {
		t.Errorf("explored %v, want none", got)
	}
}

// TestExploreNotCached: an exploring answer is never kept as the client's
// decision: the shared cache holds the decision's own answer.
func TestExploreNotCached(t *testing.T) {
	s, _ := newExploringServer(t, 100, learnedOf(t))
	g := s.zones.Load().Match("www.geo.test.").Lookup("www.geo.test.", dns.TypeA).Node.Geo()
	client := netip.MustParseAddr("81.2.69.0")
	for range 3 {
		if got := generalAnswer(t, s, query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24))); got[0] != "192.0.2.2" {
			t.Fatalf("answered %v, want the explored 192.0.2.2", got)
		}
	}
	env := s.decisionEnv(s.zones.Load())
	cd := s.cache.get(cacheKey{geo: g, qtype: dns.TypeA, client: client}, env.Epoch)
	if cd == nil || g.Targets[cd.Ranked[0]].Name() != "fra" || !cd.HasExplore || g.Targets[cd.Explore].Name() != "iad" {
		t.Fatalf("cached decision %+v, want fra first and iad to explore", cd)
	}
}

// TestExploreShare: a share of 10 % explores about a tenth of the answers
// that can, on either path, and the metric counts each. The bounds are
// ten standard deviations of the binomial draw either side: a false
// failure is less likely than one in 10^20.
func TestExploreShare(t *testing.T) {
	const n, pct = 20000, 10
	lo, hi := n*pct/100-420, n*pct/100+420 // σ = √(n·0.1·0.9) ≈ 42
	count := func(reply []byte) int {
		var m dns.Msg
		if err := m.Unpack(reply); err != nil {
			t.Fatal(err)
		}
		switch got := addrs(m.Answer); {
		case slices.Equal(got, []string{"192.0.2.2"}):
			return 1
		case !slices.Equal(got, []string{"192.0.2.1"}):
			t.Fatalf("answered %v", got)
		}
		return 0
	}
	b, err := query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)).Pack()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("general", func(t *testing.T) {
		s, reg := newExploringServer(t, pct, learnedOf(t))
		explored := 0
		for range n {
			explored += count(generalUDP(s, b, fastSrc))
		}
		if explored < lo || explored > hi {
			t.Errorf("explored %d of %d, want %d to %d", explored, n, lo, hi)
		}
		if got := exploredTotal(t, reg)["iad"]; got != float64(explored) {
			t.Errorf("counted %v, explored %d", got, explored)
		}
		if got := s.Explored(); got["iad"] != uint64(explored) || len(got) != 1 {
			t.Errorf("Explored() %v, explored iad %d times", got, explored)
		}
		t.Logf("explored %d of %d", explored, n)
	})
	t.Run("fast", func(t *testing.T) {
		s, reg := newExploringServer(t, pct, learnedOf(t))
		f := newFastPath(s)
		explored, fast := 0, 0
		for range n {
			reply, isFast, handedOff := fastUDP(t, f, b, fastSrc)
			if handedOff {
				t.Fatal("handed off")
			}
			explored += count(reply)
			if isFast {
				fast++
			}
		}
		if explored < lo || explored > hi {
			t.Errorf("explored %d of %d, want %d to %d", explored, n, lo, hi)
		}
		t.Logf("explored %d of %d, %d answered by the fast path itself", explored, n, fast)
		if fast < n-2 {
			t.Errorf("the fast path answered %d of %d itself", fast, n)
		}
		if got := exploredTotal(t, reg)["iad"]; got != float64(explored) {
			t.Errorf("counted %v, explored %d", got, explored)
		}
	})
}

// TestExploreSigned: an exploring answer in a signed zone carries the
// signatures of its own RRset, which verify, on both paths.
func TestExploreSigned(t *testing.T) {
	fsys, keys := signedFiles(t, dnssec.AlgorithmEd25519)
	s := serveFiles(t, fsys, Config{})
	s.explore = udpfast.NewExplorer(100)
	s.SetLearned(learnedOf(t))
	f := newFastPath(s)
	for _, name := range []string{"geo.signed.test.", "two.signed.test."} {
		m := query(name, dns.TypeA, withEDNS(1232, true), withECS("81.2.69.0", 24))
		vs := variants(t, m)
		if fast := checkSame(t, s, f, vs, fastSrc); fast < len(vs)-3 {
			t.Errorf("%s: the fast path answered %d of %d", name, fast, len(vs))
		}
		w := dnstest.NewUDP("81.2.69.53")
		s.ServeDNS(w, m)
		if got := addrs(w.Msg.Answer); got[0] != "192.0.2.2" {
			t.Errorf("%s: answered %v, want iad's 192.0.2.2 explored first", name, got)
		}
		if verifySigned(t, w.Msg, keys) == 0 {
			t.Errorf("%s: nothing verified", name)
		}
	}
}

// TestFastPathExploreAllocs: exploring answers cost the fast path no
// allocation, whether every answer explores or a random half.
func TestFastPathExploreAllocs(t *testing.T) {
	for _, pct := range []float64{100, 50} {
		s, _ := newExploringServer(t, pct, learnedOf(t))
		f := newFastPath(s)
		out := make([]byte, 0, s.cfg.UDPSize)
		for _, m := range []*dns.Msg{
			query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)),
			query("two.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)),
			query("www.geo.test.", dns.TypeA),
		} {
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			for range 40 { // learn both replies: the decision's and the exploring one
				fastUDP(t, f, b, fastSrc)
			}
			now := time.Now()
			if n := testing.AllocsPerRun(200, func() { f.Answer(b, fastSrc.Addr(), out); f.Flush(now) }); n != 0 {
				t.Errorf("%v%%, %v: %.0f allocations per query, budget 0", pct, m.Question[0], n)
			}
		}
	}
}

// TestExploreConfig: the share is a percentage from 0 to 50.
func TestExploreConfig(t *testing.T) {
	for _, tt := range []struct {
		pct float64
		ok  bool
	}{{0, true}, {1, true}, {50, true}, {-1, false}, {50.5, false}, {100, false}} {
		_, err := Config{Listen: []string{"127.0.0.1:0"}, ExplorePct: tt.pct}.Provision()
		if (err == nil) != tt.ok {
			t.Errorf("ExplorePct %v: %v, want ok %v", tt.pct, err, tt.ok)
		}
	}
}

// BenchmarkFastPathExplore is a memoised geo answer with learning on, not
// exploring (0), exploring one in a hundred (1) and every one (100): what
// the draw and the exploring reply's lookup cost the fast path.
func BenchmarkFastPathExplore(b *testing.B) {
	for _, pct := range []float64{0, 1, 100} {
		b.Run(fmt.Sprint(pct), func(b *testing.B) {
			s, _ := newExploringServer(b, pct, learnedOf(b))
			f := newFastPath(s)
			pkt, err := query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)).Pack()
			if err != nil {
				b.Fatal(err)
			}
			for range 400 { // learn the decision's reply and the exploring one
				fastUDP(b, f, pkt, fastSrc)
			}
			out := make([]byte, 0, s.cfg.UDPSize)
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if _, res := f.Answer(pkt, fastSrc.Addr(), out); res != udpfast.Answered {
					b.Fatal("not answered by the fast path")
				}
				f.Flush(now)
			}
		})
	}
}
