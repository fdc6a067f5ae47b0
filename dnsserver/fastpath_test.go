package dnsserver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var fastSrc = netip.MustParseAddrPort("192.0.2.1:40000")

// maxUDPSize holds any reply of the test servers over UDP.
const maxUDPSize = dns.MaxMsgSize

// newFastPath is one reader's fast path over s, as Serve makes it.
func newFastPath(s *Server) *udpfast.Path { return udpfast.New(fastHost{s}, s.fastConfig()) }

// generalUDP is the general path's reply to packet over UDP from src:
// screened for malformed ECS, decoded by miekg/dns and answered by
// ServeDNS, as the server does for a query its screen accepts. nil: no
// reply, or miekg/dns would answer it itself (the fast path hands those
// off).
func generalUDP(s *Server, packet []byte, src netip.AddrPort) []byte {
	packet = screenECS(packet)
	if len(packet) < 12 {
		return nil
	}
	h := dns.Header{Bits: binary.BigEndian.Uint16(packet[2:]), Qdcount: binary.BigEndian.Uint16(packet[4:]),
		Ancount: binary.BigEndian.Uint16(packet[6:]), Nscount: binary.BigEndian.Uint16(packet[8:]),
		Arcount: binary.BigEndian.Uint16(packet[10:])}
	if acceptQuery(h) != dns.MsgAccept {
		return nil
	}
	req := new(dns.Msg)
	if req.Unpack(packet) != nil {
		return nil
	}
	w := &dnstest.Recorder{Local: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}, Remote: net.UDPAddrFromAddrPort(src)}
	s.ServeDNS(w, req)
	if w.Writes == 0 {
		return nil
	}
	return w.Wire
}

// fastUDP is what a reader does with packet, as a batch of one: the fast
// path's reply, or the general path's when the fast path learns from it.
// handedOff reports a packet left to miekg/dns's server.
func fastUDP(t testing.TB, f *udpfast.Path, packet []byte, src netip.AddrPort) (reply []byte, fast, handedOff bool) {
	t.Helper()
	defer f.Flush(time.Now())
	out, res := f.Answer(packet, src.Addr().Unmap(), make([]byte, 0, maxUDPSize))
	switch res {
	case udpfast.Answered:
		return out, true, false
	case udpfast.HandOff:
		return nil, false, true
	case udpfast.Dropped:
		return nil, true, false
	}
	b, ok := f.Learn(packet, src, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53})
	if !ok {
		return nil, false, true
	}
	return append([]byte(nil), b...), false, false
}

// variants are queries of one shape that differ where the fast path
// patches: the ID, the question's case, and the ECS address.
func variants(t testing.TB, m *dns.Msg) [][]byte {
	t.Helper()
	var out [][]byte
	pack := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	pack(m)
	for i, mut := range []func(*dns.Msg){
		func(c *dns.Msg) {},
		func(c *dns.Msg) { c.Question[0].Name = mixCase(c.Question[0].Name, 0x5555) },
		func(c *dns.Msg) { c.Question[0].Name = mixCase(c.Question[0].Name, ^uint64(0)) },
		func(c *dns.Msg) { c.Question[0].Name = mixCase(c.Question[0].Name, 1) },
		func(c *dns.Msg) { shiftECS(c, 1) },
		func(c *dns.Msg) { shiftECS(c, 7) },
	} {
		c := m.Copy()
		c.Id = uint16(1000 + i)
		mut(c)
		pack(c)
	}
	return out
}

// mixCase upper-cases the letters of name picked by mask, in turn.
func mixCase(name string, mask uint64) string {
	b := []byte(name)
	n := 0
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			if mask&(1<<(n%64)) != 0 {
				b[i] = c - 'a' + 'A'
			}
			n++
		}
	}
	return string(b)
}

// shiftECS moves an ECS option to another network of the same length.
func shiftECS(m *dns.Msg, by byte) {
	opt := m.IsEdns0()
	if opt == nil {
		return
	}
	for _, o := range opt.Option {
		e, ok := o.(*dns.EDNS0_SUBNET)
		if !ok || e.SourceNetmask < 8 {
			continue
		}
		a := append(net.IP(nil), e.Address...)
		if v4 := a.To4(); v4 != nil {
			a = v4
		}
		a[0] += by
		p, _ := netip.AddrFromSlice(a)
		pfx, _ := p.Prefix(int(e.SourceNetmask))
		e.Address = pfx.Addr().AsSlice()
	}
}

// checkSame answers every variant through the fast path and the general
// path and requires the same bytes; it returns how many the fast path
// answered itself.
func checkSame(t *testing.T, s *Server, f *udpfast.Path, packets [][]byte, src netip.AddrPort) int {
	t.Helper()
	fast := 0
	for _, p := range packets {
		got, isFast, handedOff := fastUDP(t, f, p, src)
		if handedOff {
			continue // miekg/dns's server answers it, as without the fast path
		}
		want := generalUDP(s, p, src)
		if !bytes.Equal(got, want) {
			var g, w dns.Msg
			g.Unpack(got)
			w.Unpack(want)
			t.Fatalf("fast path (answered itself: %v) differs from the general path for\n%x\nfast:\n%x\n%v\ngeneral:\n%x\n%v", isFast, p, got, &g, want, &w)
		}
		if isFast {
			fast++
		}
	}
	return fast
}

// staticNames are names of the static test zones that cover each kind of
// answer: data, NODATA, NXDOMAIN, CNAME chains and loops, wildcards,
// referrals, additional data, truncation, other zones.
var staticNames = []string{"example.test.", "www.example.test.", "short.example.test.", "nope.example.test.",
	"b.c.example.test.", "c.example.test.", "x.www.example.test.", "alias.example.test.", "chain1.example.test.",
	"loop1.example.test.", "away.example.test.", "dangling.example.test.", "intodeleg.example.test.",
	"_sip._udp.example.test.", "x.wild.example.test.", "a.b.wild.example.test.", "x.wildmx.example.test.",
	"x.wildcname.example.test.", "exists.wild.example.test.", "svc.example.test.", "self.example.test.",
	"sub.example.test.", "host.sub.example.test.", "big.example.test.", "www.other.test.", "elsewhere.invalid.", "."}

var staticTypes = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeNS, dns.TypeSOA, dns.TypeCNAME,
	dns.TypeSRV, dns.TypeHTTPS, dns.TypeDS, dns.TypeANY, dns.TypeCAA, 0, 65000}

func TestFastPathMatchesGeneralPath(t *testing.T) {
	s := newTestServer(t, Config{NSID: "fast"})
	f := newFastPath(s)
	for _, name := range staticNames {
		for _, qt := range staticTypes {
			for _, m := range []*dns.Msg{query(name, qt), withOpts(query(name, qt), withEDNS(1232, true)),
				withOpts(query(name, qt), withEDNS(4096, false)), withOpts(query(name, qt), withECS("81.2.69.0", 24)),
				withOpts(query(name, qt), withOption(&dns.EDNS0_NSID{Code: dns.EDNS0NSID})),
				withOpts(query(name, qt), func(m *dns.Msg) { m.RecursionDesired, m.CheckingDisabled = true, true })} {
				checkSame(t, s, f, variants(t, m), fastSrc)
			}
		}
	}
	// The plain shapes must be answered by the fast path itself, once learnt.
	for _, m := range []*dns.Msg{
		query("www.example.test.", dns.TypeA),
		query("www.example.test.", dns.TypeA, withEDNS(1232, false)),
		query("nope.example.test.", dns.TypeA, withEDNS(1232, true)),
		query("x.wild.example.test.", dns.TypeTXT),
		query("host.sub.example.test.", dns.TypeA),
		query("example.test.", dns.TypeMX, withECS("81.2.69.0", 24)),
	} {
		vs := variants(t, m)
		if got := checkSame(t, s, f, vs, fastSrc); got < len(vs)-2 {
			t.Errorf("%v: fast path answered %d of %d", m.Question[0], got, len(vs))
		}
	}
}

func withOpts(m *dns.Msg, opts ...func(*dns.Msg)) *dns.Msg {
	c := m.Copy()
	for _, o := range opts {
		o(c)
	}
	return c
}

func TestFastPathMatchesGeneralPathGeo(t *testing.T) {
	s := newGeoServer(t)
	f := newFastPath(s)
	src := netip.MustParseAddrPort("126.5.5.5:5353") // Tokyo
	names := []string{"www", "two", "ruled", "states", "nearest", "all", "fallback", "servfail", "cdn", "nodata6"}
	subnets := []struct {
		addr string
		bits uint8
	}{{"81.2.69.0", 24}, {"24.48.1.0", 24}, {"10.1.2.0", 24}, {"203.0.113.0", 26}, {"0.0.0.0", 0},
		{"2a00:1450::", 32}, {"192.0.2.64", 26}, {"198.51.100.0", 26}, {"1.2.3.0", 24}}
	for _, name := range names {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeANY, dns.TypeCNAME, dns.TypeTXT} {
			checkSame(t, s, f, variants(t, query(name+".geo.test.", qt)), src)
			for _, sn := range subnets {
				checkSame(t, s, f, variants(t, query(name+".geo.test.", qt, withECS(sn.addr, sn.bits))), src)
			}
		}
	}
	// Answered by the fast path itself once learnt, all-down decisions
	// too: when every probe fails, answering must stay as cheap.
	for _, name := range []string{"www", "nearest", "all", "fallback", "servfail"} {
		vs := variants(t, query(name+".geo.test.", dns.TypeA, withECS("81.2.69.0", 24)))
		if got := checkSame(t, s, f, vs, src); got < len(vs)-2 {
			t.Errorf("%s with ECS: fast path answered %d of %d", name, got, len(vs))
		}
	}
}

// TestFastPathCountsAsGeneralPath checks that the fast path's metrics are
// the general path's.
func TestFastPathCountsAsGeneralPath(t *testing.T) {
	queries := []*dns.Msg{
		query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)),
		query("www.geo.test.", dns.TypeA, withECS("24.48.1.0", 24)),
		query("www.geo.test.", dns.TypeA, withECS("10.1.2.0", 24)),
		query("www.geo.test.", dns.TypeTXT, withECS("81.2.69.0", 24)),
		query("www.geo.test.", dns.TypeA),
		query("fallback.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)), // when_all_down decides, and counts
		query("servfail.geo.test.", dns.TypeA),
		query("alldown.geo.test.", dns.TypeA, withECS("24.48.1.0", 24)),
		query("nope.geo.test.", dns.TypeA),
		query("elsewhere.invalid.", dns.TypeA),
		query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24), withCookie(clientCookie)),
		query("www.geo.test.", dns.TypeA, withCookie(clientCookie+"0100000000000000ffffffffffffffff")), // invalid
	}
	const general, perPacket, batched = 0, 1, 2
	dump := func(how int) map[string]string {
		reg := prometheus.NewRegistry()
		s := newGeoServer(t)
		m, err := newMetrics(reg, s.traffic)
		if err != nil {
			t.Fatal(err)
		}
		s.metrics = m
		f := newFastPath(s)
		src := netip.MustParseAddrPort("126.5.5.5:5353")
		buf := make([]byte, 0, s.cfg.UDPSize)
		for range 3 {
			for _, q := range queries {
				b, _ := q.Pack()
				switch how {
				case general:
					s.ServeDNS(dnstest.NewUDP("126.5.5.5"), q)
				case perPacket:
					fastUDP(t, f, b, src)
				case batched: // as a reader does: flush once the batch is answered
					if _, res := f.Answer(b, src.Addr(), buf); res == udpfast.ToLearn {
						f.Learn(b, src, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53})
					}
				}
			}
			f.Flush(time.Now())
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				key := mf.GetName() + labels(m)
				switch {
				case m.Counter != nil:
					m.Counter.CreatedTimestamp = nil
					out[key] = m.Counter.String()
				case m.Histogram != nil:
					m.Histogram.CreatedTimestamp = nil
					out[key] = m.Histogram.String()
					if mf.GetName() == "popdns_dns_request_duration_seconds" {
						out[key] = (&dto.Histogram{SampleCount: m.Histogram.SampleCount}).String()
					}
				}
			}
		}
		// The catchment by country, which only /status shows.
		s.traffic.Sample(time.Now())
		for _, c := range s.traffic.Report().Countries {
			out["catchment "+c.Code] = fmt.Sprint(c.PoPs)
		}
		return out
	}
	want := dump(general)
	if want["catchment DE"] == "" || want["catchment JP"] == "" {
		t.Errorf("general path: no catchment for DE and JP: %v", want)
	}
	// Three rounds of one query each for the all-down names.
	for _, policy := range []string{"fallback", "servfail", "nearest"} {
		if k := "popdns_geo_all_down_total{policy=" + policy + ",}"; want[k] != "value:3" {
			t.Errorf("general path: %s = %q, want value:3", k, want[k])
		}
	}
	const hit, miss, memo = "popdns_geo_decision_cache_requests_total{result=hit,}",
		"popdns_geo_decision_cache_requests_total{result=miss,}", "popdns_geo_decision_cache_requests_total{result=memo,}"
	decisions := func(m map[string]string) (h, n, mm int) {
		fmt.Sscanf(m[hit], "value:%d", &h)
		fmt.Sscanf(m[miss], "value:%d", &n)
		fmt.Sscanf(m[memo], "value:%d", &mm)
		return h, n, mm
	}
	wantHits, wantMisses, wantMemo := decisions(want)
	if wantHits == 0 || wantMisses == 0 || wantMemo != 0 {
		t.Errorf("general path: %d hits, %d misses, %d memo: want both hits and misses, no memo", wantHits, wantMisses, wantMemo)
	}
	for _, how := range []int{perPacket, batched} {
		got := dump(how)
		// Every decision ranked is a miss on either path, once: one the
		// fast path ranks for a reply it has not learnt yet counts as its
		// miss, and the general path answering it then counts a hit (a
		// second lookup). The memo answers only on the fast path.
		hits, misses, memos := decisions(got)
		if misses != wantMisses || hits+memos+misses < wantHits+wantMisses {
			t.Errorf("fast path (batched: %v): %d hits, %d misses, %d memo; general path %d, %d",
				how == batched, hits, misses, memos, wantHits, wantMisses)
		}
		t.Logf("fast path (batched: %v): %d hits, %d misses, %d memo; general path %d hits, %d misses", how == batched, hits, misses, memos, wantHits, wantMisses)
		if how == batched && memos == 0 {
			t.Errorf("fast path (batched): no memo lookups (%d hits, %d misses)", hits, misses)
		}
		delete(got, hit)
		delete(got, miss)
		delete(got, memo)
		for k, v := range want {
			if k == hit || k == miss || k == memo {
				continue
			}
			if got[k] != v {
				t.Errorf("%s (fast path, batched: %v): fast path %q, general path %q", k, how == batched, got[k], v)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: only the fast path has it", k)
			}
		}
	}
}

func labels(m *dto.Metric) string {
	s := "{"
	for _, l := range m.GetLabel() {
		s += l.GetName() + "=" + l.GetValue() + ","
	}
	return s + "}"
}

// FuzzFastPath sends a query and variants of it (another ID, case, ECS
// network, source) through the fast path and the general path, and
// requires byte-identical replies whenever the fast path answers.
func FuzzFastPath(f *testing.F) {
	seed := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(seed(query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24))), uint64(0x15), byte(3), byte(1))                            // geo, ECS
	f.Add(seed(query("www.geo.test.", dns.TypeAAAA, withECS("2a00:1450::", 32))), uint64(0), byte(9), byte(2))                          // IPv6 ECS
	f.Add(seed(query("ruled.geo.test.", dns.TypeA, withECS("203.0.113.0", 26))), uint64(0xff), byte(1), byte(0))                        // CIDR rule
	f.Add(seed(query("two.geo.test.", dns.TypeA, withEDNS(512, true))), uint64(2), byte(0), byte(3))                                    // two answers, DO
	f.Add(seed(query("www.example.test.", dns.TypeA)), uint64(0x2a), byte(0), byte(0))                                                  // static
	f.Add(seed(query("big.example.test.", dns.TypeTXT, withEDNS(4096, false))), uint64(0), byte(0), byte(0))                            // large
	f.Add(seed(query("x.wild.example.test.", dns.TypeTXT)), uint64(0x3), byte(0), byte(0))                                              // wildcard
	f.Add(seed(query("host.sub.example.test.", dns.TypeA)), uint64(0x3), byte(0), byte(0))                                              // referral
	f.Add(seed(query("chain1.example.test.", dns.TypeA)), uint64(0x3), byte(0), byte(0))                                                // CNAME chain
	f.Add(seed(query("nope.example.test.", dns.TypeA, withECS("1.2.3.0", 24))), uint64(0x3), byte(5), byte(0))                          // NXDOMAIN, ECS
	f.Add(seed(query("www.geo.test.", dns.TypeA, rawECS(1, 22, 0, 81, 2, 68))), uint64(0x3), byte(4), byte(0))                          // ECS /22
	f.Add(seed(query("www.geo.test.", dns.TypeA, rawECS(1, 24, 0, 81, 2, 69, 0))), uint64(0), byte(1), byte(0))                         // ADDRESS too long: FORMERR
	f.Add(seed(query("www.geo.test.", dns.TypeA, rawECS(1, 24, 16, 81, 2, 69))), uint64(0), byte(1), byte(0))                           // SCOPE not 0: FORMERR
	f.Add(seed(query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24), withCookie(clientCookie))), uint64(1), byte(1), byte(0))     // client cookie
	f.Add(seed(query("www.example.test.", dns.TypeA, withCookie(clientCookie+clientCookie+clientCookie))), uint64(1), byte(1), byte(1)) // invalid server cookie
	f.Add(seed(query("www.example.test.", dns.TypeA, withCookie(clientCookie+"01"))), uint64(1), byte(1), byte(1))                      // malformed: FORMERR
	s := newGeoServer(f)
	s.SetZones(loadMergedZones(f))
	s.now = func() time.Time { return cookieNow } // both paths make the same cookie
	fp := newFastPath(s)
	srcs := []netip.AddrPort{fastSrc, netip.MustParseAddrPort("126.5.5.5:1"), netip.MustParseAddrPort("[2a00:1450::1]:2"), netip.MustParseAddrPort("81.2.69.7:3")}
	f.Fuzz(func(t *testing.T, packet []byte, caseMask uint64, ecsShift, srcIdx byte) {
		src := srcs[int(srcIdx)%len(srcs)]
		checkSame(t, s, fp, [][]byte{packet}, src)
		if len(packet) < 12 {
			return
		}
		q, ok := udpfast.ParseShape(packet)
		if !ok {
			return
		}
		// A variant of the same shape: another ID, case, ECS network and
		// cookie.
		v := append([]byte(nil), packet...)
		binary.BigEndian.PutUint16(v, ^q.ID)
		for i, n := 13, 0; i < q.NameEnd; i++ {
			if c := v[i] | 0x20; 'a' <= c && c <= 'z' {
				if caseMask&(1<<(n%64)) != 0 {
					v[i] ^= 0x20
				}
				n++
			}
		}
		if q.ECS && q.ECSRawLen > 0 {
			v[q.ECSRaw] += ecsShift
			// Keep the bits beyond the prefix clear.
			if rem := q.ECSSource % 8; rem != 0 {
				v[q.ECSRaw+q.ECSRawLen-1] &= byte(0xff << (8 - rem))
			}
		}
		if q.Cookie {
			// Another client cookie, or another (so invalid) server cookie.
			v[q.CookieOff+int(ecsShift)%q.CookieLen] ^= 0x5a
		}
		checkSame(t, s, fp, [][]byte{v, packet, v}, src)
	})
}

// loadMergedZones loads the static test zones and the geo test zone into
// one snapshot.
func loadMergedZones(t testing.TB) *zones.Snapshot {
	t.Helper()
	pops, err := pops.New(sixPoPs...)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"geo.test.yaml": {Data: []byte(geoZone), ModTime: time.Unix(1e9, 0)}}
	for name, data := range testZones {
		fsys[name] = &fstest.MapFile{Data: []byte(data), ModTime: time.Unix(1_700_000_000, 0)}
	}
	snap, err := zones.Load(fsys, pops, nil)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// TestFastPathAllocs holds the fast path to no allocation per query once
// it has learnt the reply.
func TestFastPathAllocs(t *testing.T) {
	s := newGeoServer(t)
	s.SetZones(loadMergedZones(t))
	f := newFastPath(s)
	out := make([]byte, 0, s.cfg.UDPSize)
	for _, m := range []*dns.Msg{
		query("static.example.test.", dns.TypeA),
		query("www.example.test.", dns.TypeA, withEDNS(1232, false)),
		query("nope.example.test.", dns.TypeA, withEDNS(1232, true)),
		query("x.wild.example.test.", dns.TypeTXT),
		query("www.geo.test.", dns.TypeA),
		query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)),
		query("www.geo.test.", dns.TypeAAAA, withECS("2a00:1450::", 32)),
		query("WwW.GeO.tEsT.", dns.TypeA, withECS("24.48.1.0", 24)),
	} {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		fastUDP(t, f, b, fastSrc)
		if _, res := f.Answer(b, fastSrc.Addr(), out); res != udpfast.Answered {
			t.Errorf("%v: not answered by the fast path once learnt", m.Question[0])
			continue
		}
		now := time.Now()
		if n := testing.AllocsPerRun(200, func() { f.Answer(b, fastSrc.Addr(), out); f.Flush(now) }); n != 0 {
			t.Errorf("%v: %.0f allocations per query, budget 0", m.Question[0], n)
		}
	}
}

// TestFastPathMemoFollowsHealth checks that a reader's memo of decisions
// never outlives the epoch it was made in: after a probe flips, the fast
// path answers the new decision, for every kind of client key (IPv4
// network, IPv6 network, IPv6 address with host bits, which is not
// memoised), and keeps answering it itself.
func TestFastPathMemoFollowsHealth(t *testing.T) {
	s, h := newProbedServer(t, nil)
	f := newFastPath(s)
	const fraProbe = "tcp://192.0.2.1:443"
	clients := []struct {
		name string
		q    *dns.Msg
	}{
		{"IPv4 /24", query("www.probed.test.", dns.TypeA, withECS("81.2.69.0", 24))},
		{"IPv6 /48", query("www.probed.test.", dns.TypeA, withECS("2a00:1450:4001::", 48))},
		{"IPv6 /128", query("www.probed.test.", dns.TypeA, withECS("2a00:1450:4001::77", 128))},
	}
	src := netip.MustParseAddrPort("192.0.2.200:5300")
	answerOf := func(t *testing.T, q *dns.Msg) (string, bool) {
		t.Helper()
		b, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		reply, fast, handedOff := fastUDP(t, f, b, src)
		if handedOff {
			t.Fatal("handed off")
		}
		if want := generalUDP(s, b, src); !bytes.Equal(reply, want) {
			t.Fatalf("fast path (answered itself: %v) differs from the general path", fast)
		}
		var m dns.Msg
		if err := m.Unpack(reply); err != nil {
			t.Fatal(err)
		}
		got := addrs(m.Answer)
		if len(got) != 1 {
			t.Fatalf("answer %v", got)
		}
		return got[0], fast
	}
	steps := []struct {
		fraUp bool
		want  string
	}{{true, "192.0.2.1"}, {false, "192.0.2.2"}, {true, "192.0.2.1"}, {false, "192.0.2.2"}}
	for i, step := range steps {
		h.set(0, map[string]healthprobe.Result{fraProbe: {Healthy: step.fraUp}})
		for _, c := range clients {
			fastAnswers := 0
			for range 3 {
				got, fast := answerOf(t, c.q)
				if got != step.want {
					t.Fatalf("step %d (fra up: %v), %s: answered %s, want %s: a decision outlived its epoch", i, step.fraUp, c.name, got, step.want)
				}
				if fast {
					fastAnswers++
				}
			}
			if fastAnswers < 2 {
				t.Errorf("step %d, %s: the fast path answered %d of 3", i, c.name, fastAnswers)
			}
		}
	}
	if v4, v6 := f.Memoised(); v4 != 1 || v6 != 1 {
		t.Errorf("memoised %d IPv4 and %d IPv6 networks, want one of each (the /128 is not memoised)", v4, v6)
	}
}

// TestFastPathAppliesPenaltiesGradually: when only a probe's penalty moves,
// a reader re-decides at most udpfast.RefreshesPerBatch memoised clients per batch
// and answers the others as decided until their turn; when health moves,
// every client gets the new decision at once.
func TestFastPathAppliesPenaltiesGradually(t *testing.T) {
	s, h := newProbedServer(t, nil)
	f := newFastPath(s)
	const fraProbe = "tcp://192.0.2.1:443"
	const clients = 3*udpfast.RefreshesPerBatch + 1
	src := netip.MustParseAddrPort("192.0.2.200:5300")
	local := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	packets := make([][]byte, clients)
	for i := range packets {
		b, err := query("www.probed.test.", dns.TypeA, withECS(fmt.Sprintf("64.0.%d.0", i), 24)).Pack() // Berlin
		if err != nil {
			t.Fatal(err)
		}
		packets[i] = b
	}
	// batch answers every client in one batch, as a reader does, and
	// returns each answer and whether the general path made it.
	batch := func() (answers []string, learnt int) {
		buf := make([]byte, 0, s.cfg.UDPSize)
		for _, p := range packets {
			reply, res := f.Answer(p, src.Addr(), buf)
			if res == udpfast.ToLearn {
				learnt++
				var ok bool
				if reply, ok = f.Learn(p, src, local); !ok {
					t.Fatal("handed off")
				}
			}
			var m dns.Msg
			if err := m.Unpack(reply); err != nil {
				t.Fatal(err)
			}
			answers = append(answers, addrs(m.Answer)[0])
		}
		f.Flush(time.Now())
		return answers, learnt
	}
	count := func(answers []string, addr string) int {
		n := 0
		for _, a := range answers {
			if a == addr {
				n++
			}
		}
		return n
	}
	publish := func(results map[string]healthprobe.Result, healthMoved bool) {
		old := h.status.Load()
		st := healthprobe.NewStatus(old.Generation+1, old.Steering+1, results)
		if !healthMoved {
			st.Health = old.Health
		}
		h.status.Store(st)
	}
	h.set(1, map[string]healthprobe.Result{fraProbe: {Healthy: true}})
	batch()
	if answers, learnt := batch(); count(answers, "192.0.2.1") != clients || learnt != 0 {
		t.Fatalf("fra up: %v, %d learnt; want fra for all, from the memo", answers, learnt)
	}

	// fra slows: its penalty moves the Berlin clients to iad, a few per batch.
	publish(map[string]healthprobe.Result{fraProbe: {Healthy: true, Penalty: 150 * time.Millisecond}}, false)
	moved := 0
	for round := 1; moved < clients; round++ {
		answers, _ := batch()
		now := count(answers, "192.0.2.2")
		if now+count(answers, "192.0.2.1") != clients {
			t.Fatalf("round %d: %v", round, answers)
		}
		if now-moved > udpfast.RefreshesPerBatch || now < moved {
			t.Fatalf("round %d: %d clients on iad after %d: at most %d may move per batch", round, now, moved, udpfast.RefreshesPerBatch)
		}
		if now == moved {
			t.Fatalf("round %d: no client moved", round)
		}
		moved = now
	}

	// fra goes down: health applies at once, even to clients it did not
	// move; and back up with its penalty gone, at once too.
	publish(map[string]healthprobe.Result{fraProbe: {Healthy: false}}, true)
	if answers, _ := batch(); count(answers, "192.0.2.2") != clients {
		t.Fatalf("fra down: %v, want iad for all in the first batch", answers)
	}
	publish(map[string]healthprobe.Result{fraProbe: {Healthy: true}}, true)
	if answers, _ := batch(); count(answers, "192.0.2.1") != clients {
		t.Fatalf("fra up again: %v, want fra for all in the first batch", answers)
	}
}
