package dnsserver

import (
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnscookie"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/internal/rrl"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

var benchQueries = []struct {
	name string
	req  *dns.Msg
}{
	{"static_A", query("www.example.test.", dns.TypeA)},
	{"static_A_EDNS", query("www.example.test.", dns.TypeA, withEDNS(1232, false))},
	{"NXDOMAIN", query("nope.example.test.", dns.TypeA)},
	{"wildcard", query("x.wild.example.test.", dns.TypeTXT)},
	{"CNAME_chain", query("chain1.example.test.", dns.TypeA)},
	{"referral", query("host.sub.example.test.", dns.TypeA)},
	{"MX_additional", query("example.test.", dns.TypeMX)},
}

// BenchmarkServeDNS measures the answer path from a decoded query to a
// packed reply (the Recorder packs it, as the real writer would).
func BenchmarkServeDNS(b *testing.B) {
	s := newTestServer(b, Config{})
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			w := &packWriter{Recorder: *dnstest.NewUDP("192.0.2.1")}
			for b.Loop() {
				s.ServeDNS(w, q.req)
			}
		})
	}
}

// TestAllocBudget holds the allocations of the general answer path (without
// packing) to what they are today, so a change that adds some shows up.
// The UDP fast path has its own budget of zero (TestFastPathAllocs).
func TestAllocBudget(t *testing.T) {
	s := newTestServer(t, Config{})
	budget := map[string]float64{
		"static_A": 5, "static_A_EDNS": 7, "NXDOMAIN": 5, "wildcard": 7,
		"CNAME_chain": 7, "referral": 6, "MX_additional": 6,
	}
	client := dnstest.NewUDP("192.0.2.1").RemoteAddr()
	for _, q := range benchQueries {
		t.Run(q.name, func(t *testing.T) {
			got := testing.AllocsPerRun(200, func() {
				resp, out := s.respondTo(q.req, parseEDNS(q.req), client, false, udpfast.ExploreDraw, nil)
				fit(resp, 512, out.cut)
			})
			t.Logf("%.0f allocations per query", got)
			if got > budget[q.name] {
				t.Errorf("%.0f allocations per query, budget %.0f", got, budget[q.name])
			}
		})
	}
}

// benchGeoServer serves the geo test zone with the real Locator over the
// generated test databases (testdata/geo), so lookups cost what they cost.
func benchGeoServer(b *testing.B) *Server {
	b.Helper()
	db, err := geo.Open("../testdata/geo/city.mmdb", "../testdata/geo/asn.mmdb")
	if err != nil {
		b.Fatal(err)
	}
	loc := geo.NewLocator(db, zerolog.Nop())
	b.Cleanup(func() { loc.Close() })
	s := newGeoServer(b)
	s.locator = loc
	return s
}

// ecsQueries makes n queries for name with ECS from distinct /24s spread
// over the networks of the test database (and beyond it).
func ecsQueries(n int, name string) []*dns.Msg {
	out := make([]*dns.Msg, n)
	for i := range out {
		var a string
		switch i % 3 {
		case 0:
			a = netip.AddrFrom4([4]byte{198, 18 + byte(i>>8&1), byte(i), 0}).String()
		case 1:
			a = netip.AddrFrom4([4]byte{192, 0, 2, byte(i%4) * 64}).String()
		default:
			a = netip.AddrFrom4([4]byte{byte(1 + i%200), byte(i >> 3), byte(i), 0}).String()
		}
		out[i] = query(name, dns.TypeA, withECS(a, 24))
	}
	return out
}

// BenchmarkGeoAnswer measures a geo answer with ECS, from a decoded query to
// a packed reply, cycling through many client networks.
func BenchmarkGeoAnswer(b *testing.B) {
	for _, tc := range []struct {
		name     string
		networks int
	}{{"1_network", 1}, {"1000_networks", 1000}, {"100000_networks", 100000}} {
		b.Run(tc.name, func(b *testing.B) {
			s := benchGeoServer(b)
			qs := ecsQueries(tc.networks, "www.geo.test.")
			w := &packWriter{Recorder: *dnstest.NewUDP("192.0.2.1")}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s.ServeDNS(w, qs[i%len(qs)])
				i++
			}
		})
	}
}

// packWriter packs each reply into a reused buffer and keeps nothing: the
// cost a real writer adds, without the test Recorder's decoding.
type packWriter struct {
	dnstest.Recorder
	buf []byte
}

func (w *packWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.PackBuffer(w.buf)
	w.buf = b[:0]
	return err
}

// BenchmarkGeoAnswerGeoLite answers with ECS from real networks of the
// GeoLite2 City database (skipped without it: README.md, "Running the
// tests", says how to fetch it), cycling through more networks than the
// decision cache holds and through fewer.
func BenchmarkGeoAnswerGeoLite(b *testing.B) {
	dir := os.Getenv("POPDNS_GEOLITE_DIR")
	if dir == "" {
		dir = "../testdata/geo/real"
	}
	db, err := geo.Open(filepath.Join(dir, "GeoLite2-City.mmdb"), "")
	if err != nil {
		b.Skipf("no GeoLite2 City database in %s (README.md, \"Running the tests\", says how to fetch it): %v", dir, err)
	}
	loc := geo.NewLocator(db, zerolog.Nop())
	b.Cleanup(func() { loc.Close() })
	// Real client networks: random addresses the database places, as /24s.
	r := rand.New(rand.NewPCG(7, 7))
	var nets []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for len(nets) < 100_000 {
		a := netip.AddrFrom4([4]byte{byte(1 + r.IntN(223)), byte(r.IntN(256)), byte(r.IntN(256)), 0})
		if l := loc.Locate(a); l.HasPoint && udpfast.PublicAddr(a) {
			p := netip.PrefixFrom(a, 24)
			if !seen[p] {
				seen[p] = true
				nets = append(nets, p)
			}
		}
	}
	for _, n := range []int{1000, 100_000} {
		b.Run(strconv.Itoa(n)+"_networks", func(b *testing.B) {
			s := newGeoServer(b)
			s.locator = loc
			qs := make([]*dns.Msg, n)
			for i := range qs {
				qs[i] = query("www.geo.test.", dns.TypeA, withECS(nets[i].Addr().String(), 24))
			}
			w := &packWriter{Recorder: *dnstest.NewUDP("192.0.2.1")}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s.ServeDNS(w, qs[i%len(qs)])
				i++
			}
		})
	}
}

// BenchmarkFastPath measures the UDP fast path from a packed query to a
// packed reply, once it has learnt the reply: what a reader does per
// datagram besides the system calls.
func BenchmarkFastPath(b *testing.B) {
	s := newGeoServer(b)
	s.SetZones(loadMergedZones(b))
	s.now = func() time.Time { return cookieNow }
	ecs := ecsQueries(1000, "www.geo.test.")
	// A resolver's cookie, as it sends it back: valid, made by s for fastSrc.
	valid := validCookie(s, fastSrc.Addr())
	ecsCookie := make([]*dns.Msg, len(ecs))
	for i, m := range ecs {
		ecsCookie[i] = withOpts(m, withCookie(valid))
	}
	for _, tc := range []struct {
		name string
		reqs []*dns.Msg
	}{
		{"static_A", []*dns.Msg{query("static.example.test.", dns.TypeA)}},
		{"static_A_EDNS", []*dns.Msg{query("www.example.test.", dns.TypeA, withEDNS(1232, false))}},
		{"static_A_EDNS_client_cookie", []*dns.Msg{query("www.example.test.", dns.TypeA, withCookie(clientCookie))}},
		{"static_A_EDNS_valid_cookie", []*dns.Msg{query("www.example.test.", dns.TypeA, withCookie(valid))}},
		{"NXDOMAIN", []*dns.Msg{query("nope.example.test.", dns.TypeA)}},
		{"geo_A", []*dns.Msg{query("www.geo.test.", dns.TypeA)}},
		{"geo_A_ECS_1000_networks", ecs},
		{"geo_A_ECS_1000_networks_valid_cookie", ecsCookie},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f := newFastPath(s)
			packets := make([][]byte, len(tc.reqs))
			for i, m := range tc.reqs {
				p, err := m.Pack()
				if err != nil {
					b.Fatal(err)
				}
				packets[i] = p
				fastUDP(b, f, p, fastSrc) // learn
			}
			out := make([]byte, 0, s.cfg.UDPSize)
			b.ReportAllocs()
			i, slow := 0, 0
			// cpu-ns/op, the thread's CPU time, holds where ns/op swings
			// with the machine's other load: compare cases by it.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu := threadCPU()
			start := time.Now()
			for b.Loop() {
				if _, res := f.Answer(packets[i%len(packets)], fastSrc.Addr(), out); res != udpfast.Answered {
					slow++
				}
				i++
				if i%64 == 0 { // a reader's batch
					f.Flush(start)
					start = time.Now()
				}
			}
			b.ReportMetric(float64(slow)/float64(i), "slow/op")
			b.ReportMetric(float64(threadCPU()-cpu)/float64(i), "cpu-ns/op")
		})
	}
}

// validCookie is the COOKIE option data a client at src sends back to s:
// clientCookie and the server cookie s gave it.
func validCookie(s *Server, src netip.Addr) string {
	c, _ := hex.DecodeString(clientCookie)
	var sc [dnscookie.ServerLen]byte
	dnscookie.Make(&sc, &s.cookies.Load().Current, c, src, s.cookieTime())
	return clientCookie + hex.EncodeToString(sc[:])
}

// BenchmarkFastPathRRL measures what rate limiting adds to the fast path:
// the same replies with it off, on and passing (the common case: every
// account under its rate), and on and limiting every reply (a flood,
// slip 2: half truncated, half dropped). Sources cycle over 4096 /24s, so
// the buckets are not all in cache. Compare off and on in one run.
func BenchmarkFastPathRRL(b *testing.B) {
	srcs := make([]netip.Addr, 4096)
	for i := range srcs {
		srcs[i] = netip.AddrFrom4([4]byte{198, byte(i >> 8), byte(i), 1})
	}
	for _, q := range []struct {
		name string
		req  *dns.Msg
	}{
		{"static_A", query("www.example.test.", dns.TypeA)},
		{"NXDOMAIN", query("nope.example.test.", dns.TypeA)},
		{"geo_A", query("www.geo.test.", dns.TypeA)},
	} {
		for _, mode := range []struct {
			name string
			cfg  rrl.Config
		}{
			{"off", rrl.Config{Off: true}},
			{"on", rrl.Config{ResponsesPerSecond: 1e9, Exempt: []netip.Prefix{}}},
			{"limiting", rrl.Config{ResponsesPerSecond: 1, Burst: 1, Exempt: []netip.Prefix{}}},
		} {
			b.Run(q.name+"/"+mode.name, func(b *testing.B) {
				s, err := New(Config{Listen: []string{"127.0.0.1:0"}, RateLimit: mode.cfg},
					Deps{Log: zerolog.Nop(), Metrics: prometheus.NewRegistry(), Locator: testPlaces})
				if err != nil {
					b.Fatal(err)
				}
				s.SetZones(loadMergedZones(b))
				f := newFastPath(s)
				p, err := q.req.Pack()
				if err != nil {
					b.Fatal(err)
				}
				for _, src := range srcs { // learn, and memoise each client's decision
					fastUDP(b, f, p, netip.AddrPortFrom(src, 5300))
				}
				out := make([]byte, 0, s.cfg.UDPSize)
				b.ReportAllocs()
				i, slow := 0, 0
				start := time.Now()
				f.Begin(start)
				for b.Loop() {
					if _, res := f.Answer(p, srcs[i%len(srcs)], out); res == udpfast.ToLearn || res == udpfast.HandOff {
						slow++
					}
					i++
					if i%64 == 0 { // a reader's batch
						f.Flush(start)
						start = time.Now()
						f.Begin(start)
					}
				}
				b.ReportMetric(float64(slow)/float64(i), "slow/op")
			})
		}
	}
}

// BenchmarkFastPathRRLRatio runs the fast path with rate limiting off and
// on (passing) side by side, a batch of 64 queries of each in turn, and
// reports the ratio of their times: on a machine shared with other work,
// interleaving keeps the noise out of the ratio, which separate runs of
// BenchmarkFastPathRRL are not spared. From one source (as a load
// generator on one address) the account's bucket stays in cache; from
// 4096 /24s most checks miss the cache, as on a server with many clients.
func BenchmarkFastPathRRLRatio(b *testing.B) {
	for _, q := range []struct {
		name    string
		req     *dns.Msg
		sources int
	}{
		{"static_A/1_source", query("www.example.test.", dns.TypeA), 1},
		{"static_A/4096_sources", query("www.example.test.", dns.TypeA), 4096},
		{"geo_A/1_source", query("www.geo.test.", dns.TypeA), 1},
		{"geo_A/4096_sources", query("www.geo.test.", dns.TypeA), 4096},
	} {
		srcs := make([]netip.Addr, q.sources)
		for i := range srcs {
			srcs[i] = netip.AddrFrom4([4]byte{198, byte(i >> 8), byte(i), 1})
		}
		b.Run(q.name, func(b *testing.B) {
			p, err := q.req.Pack()
			if err != nil {
				b.Fatal(err)
			}
			var paths [2]*udpfast.Path
			for i, cfg := range []rrl.Config{{Off: true}, {ResponsesPerSecond: 1e9, Exempt: []netip.Prefix{}}} {
				s, err := New(Config{Listen: []string{"127.0.0.1:0"}, RateLimit: cfg},
					Deps{Log: zerolog.Nop(), Metrics: prometheus.NewRegistry(), Locator: testPlaces})
				if err != nil {
					b.Fatal(err)
				}
				s.SetZones(loadMergedZones(b))
				paths[i] = newFastPath(s)
				for _, src := range srcs {
					fastUDP(b, paths[i], p, netip.AddrPortFrom(src, 5300))
				}
			}
			out := make([]byte, 0, 1232)
			var took [2]time.Duration
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				for i, f := range paths {
					start := time.Now()
					f.Begin(start)
					for j := range 64 {
						if _, res := f.Answer(p, srcs[(n+j)%len(srcs)], out); res != udpfast.Answered {
							b.Fatal("not answered by the fast path")
						}
					}
					f.Flush(start)
					took[i] += time.Since(start)
				}
				n += 64
			}
			b.ReportMetric(float64(took[0])/float64(n), "ns/query-off")
			b.ReportMetric(float64(took[1])/float64(n), "ns/query-on")
			b.ReportMetric(float64(took[1])/float64(took[0]), "on/off")
		})
	}
}

// BenchmarkFastPathCookieRatio answers the same question through the fast
// path without a cookie and with one (a client cookie alone, and a valid
// server cookie sent back), a batch of 64 of each in turn, and reports the
// ratio of their thread CPU times: interleaved, the machine's other load
// stays out of the ratio.
func BenchmarkFastPathCookieRatio(b *testing.B) {
	s := newGeoServer(b)
	s.SetZones(loadMergedZones(b))
	s.now = func() time.Time { return cookieNow }
	valid := validCookie(s, fastSrc.Addr())
	for _, q := range []struct {
		name string
		opts []func(*dns.Msg)
	}{
		{"static_A", nil},
		{"geo_A_ECS", []func(*dns.Msg){withECS("81.2.69.0", 24)}},
	} {
		name := "www.example.test."
		if q.name != "static_A" {
			name = "www.geo.test."
		}
		var packets [3][]byte
		none := withEDNS(1232, false)
		if q.opts != nil {
			none = func(*dns.Msg) {} // ECS brought the OPT record
		}
		for i, ck := range []func(*dns.Msg){none, withCookie(clientCookie), withCookie(valid)} {
			p, err := query(name, dns.TypeA, append(append([]func(*dns.Msg){}, q.opts...), ck)...).Pack()
			if err != nil {
				b.Fatal(err)
			}
			packets[i] = p
		}
		b.Run(q.name, func(b *testing.B) {
			f := newFastPath(s)
			for _, p := range packets {
				fastUDP(b, f, p, fastSrc) // learn
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			out := make([]byte, 0, s.cfg.UDPSize)
			var took [3]time.Duration
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				for i, p := range packets {
					cpu, start := threadCPU(), time.Now()
					for range 64 {
						if _, res := f.Answer(p, fastSrc.Addr(), out); res != udpfast.Answered {
							b.Fatal("not answered by the fast path")
						}
					}
					f.Flush(start)
					took[i] += threadCPU() - cpu
				}
				n += 64
			}
			b.ReportMetric(float64(took[0])/float64(n), "cpu-ns/query-none")
			b.ReportMetric(float64(took[1])/float64(n), "cpu-ns/query-client")
			b.ReportMetric(float64(took[2])/float64(n), "cpu-ns/query-valid")
			b.ReportMetric(float64(took[1])/float64(took[0]), "client/none")
			b.ReportMetric(float64(took[2])/float64(took[0]), "valid/none")
		})
	}
}
