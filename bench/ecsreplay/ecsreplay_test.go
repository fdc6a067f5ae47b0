package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/oschwald/maxminddb-golang/v2"
)

const testZone, testName = "example.test.", "www.example.test."

// fakeAuth is an authoritative server for testZone on 127.0.0.1: www's A
// depends on the client subnet's first answerBits bits, and the reply's
// ECS scope is scopeBits (which may be wider than correct, to make a
// resolver cache wrong answers). A scopeBits of -1 leaves ECS out.
type fakeAuth struct {
	answerBits, scopeBits int
}

// answerFor is the address fakeAuth answers for the network of a.
func (f fakeAuth) answerFor(a netip.Addr) string {
	p, _ := a.Prefix(f.answerBits)
	b := p.Addr().As4()
	return fmt.Sprintf("192.0.2.%d", (int(b[0])*7+int(b[1])*13+int(b[2])*17)%6*10+10)
}

func (f fakeAuth) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	q := r.Question[0]
	switch {
	case q.Qtype == dns.TypeSOA && q.Name == testZone:
		rr, _ := dns.NewRR(testZone + " 300 IN SOA ns1." + testZone + " hostmaster." + testZone + " 1 7200 3600 1209600 300")
		m.Answer = append(m.Answer, rr)
	case q.Qtype == dns.TypeA && strings.EqualFold(q.Name, testName):
		client := netip.MustParseAddr("127.0.0.1")
		var e *ecsOpt
		if e = ecsOf(r); e != nil {
			client = e.addr
		}
		rr, _ := dns.NewRR(testName + " 86400 IN A " + f.answerFor(client))
		m.Answer = append(m.Answer, rr)
		if opt := r.IsEdns0(); opt != nil {
			m.SetEdns0(1232, false)
			if e != nil && f.scopeBits >= 0 {
				m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
					SourceNetmask: e.source, SourceScope: uint8(f.scopeBits), Address: e.addr.AsSlice()})
			}
		}
	}
	_ = w.WriteMsg(m)
}

// startFake runs f on UDP 127.0.0.1 until the test ends.
func startFake(t *testing.T, f fakeAuth) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: f, NotifyStartedFunc: func() { close(started) }}
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("fake server did not start within 5 s")
	}
	t.Cleanup(func() {
		_ = srv.Shutdown()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("fake server did not stop within 5 s")
		}
	})
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestWeight24(t *testing.T) {
	for _, c := range []struct {
		bits int
		want float64
	}{{8, maxWeight24}, {16, 256}, {17, 128}, {24, 1}, {26, 0.25}, {32, 1.0 / 256}} {
		if got := weight24(c.bits); got != c.want {
			t.Errorf("weight24(%d) = %g, want %g", c.bits, got, c.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	s := []int{10, 12, 14, 16, 18, 20, 22, 23, 24, 24}
	for _, c := range []struct{ p, want int }{{10, 10}, {50, 18}, {90, 24}, {100, 24}, {0, 10}} {
		if got := percentile(s, c.p); got != c.want {
			t.Errorf("percentile(%d) = %d, want %d", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != -1 {
		t.Errorf("percentile(nil) = %d, want -1", got)
	}
}

func TestIdealCache(t *testing.T) {
	p := netip.MustParsePrefix
	ans := func(addrs string, scope int) answer { return answer{OK: true, Addrs: addrs, Scope: scope} }
	cases := []struct {
		name          string
		subnets       []netip.Prefix
		truth         []answer
		upstream, bad int
	}{
		{"each /24 its own scope", []netip.Prefix{p("1.2.3.0/24"), p("1.2.4.0/24")},
			[]answer{ans("a", 24), ans("a", 24)}, 2, 0},
		{"a /16 scope covers the next /24", []netip.Prefix{p("1.2.3.0/24"), p("1.2.4.0/24"), p("1.3.0.0/24")},
			[]answer{ans("a", 16), ans("a", 16), ans("b", 16)}, 2, 0},
		{"too wide a scope serves a wrong answer", []netip.Prefix{p("1.2.3.0/24"), p("1.2.4.0/24")},
			[]answer{ans("a", 16), ans("b", 24)}, 1, 1},
		{"a scope longer than the source is cached at /24", []netip.Prefix{p("1.2.3.0/24"), p("1.2.3.0/24")},
			[]answer{ans("a", 25), ans("a", 25)}, 1, 0},
		{"no ECS in the reply is cached for everyone", []netip.Prefix{p("1.2.3.0/24"), p("9.9.9.0/24")},
			[]answer{ans("a", -1), ans("b", -1)}, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up, bad := idealCache(c.subnets, c.truth)
			if up != c.upstream || bad != c.bad {
				t.Errorf("idealCache: %d upstream, %d wrong; want %d, %d", up, bad, c.upstream, c.bad)
			}
		})
	}
}

func TestSampleSubnets(t *testing.T) {
	db, err := maxminddb.Open("../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, st, err := sampleSubnets(db, 60, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 60 || st.Networks == 0 {
		t.Fatalf("%d subnets from %d networks, want 60", len(got), st.Networks)
	}
	seen := map[netip.Prefix]bool{}
	noPoint := netip.MustParsePrefix("198.19.192.0/19") // country only
	for _, s := range got {
		if s.Bits() != 24 || s.Masked() != s || seen[s] {
			t.Errorf("%s: not a distinct masked /24", s)
		}
		seen[s] = true
		if noPoint.Contains(s.Addr()) {
			t.Errorf("%s lies in %s, which has no coordinates", s, noPoint)
		}
	}
	again, _, err := sampleSubnets(db, 60, 7)
	if err != nil || !slices.Equal(got, again) {
		t.Errorf("the same seed gave another sample (%v)", err)
	}
	if other, _, _ := sampleSubnets(db, 60, 8); slices.Equal(got, other) {
		t.Error("another seed gave the same sample")
	}
	if _, _, err := sampleSubnets(db, 1_000_000, 7); err == nil {
		t.Error("a sample larger than the database: no error")
	}
}

// TestProxyCounts sends queries through the proxy to a fake backend and
// checks what it counts and that replies come back.
func TestProxyCounts(t *testing.T) {
	backend := startFake(t, fakeAuth{answerBits: 24, scopeBits: 24})
	px, err := newProxy(backend, testName)
	if err != nil {
		t.Fatal(err)
	}
	go px.Run()
	defer px.Close()
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	send := func(m *dns.Msg) *dns.Msg {
		t.Helper()
		r, _, err := c.Exchange(m, px.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	soa := new(dns.Msg)
	soa.SetQuestion(testZone, dns.TypeSOA)
	send(soa)
	if got := px.Reset(); got.Queries != 1 || got.Geo != 0 {
		t.Errorf("after a SOA query: %+v, want 1 query, 0 geo", got)
	}
	a, b := netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("198.51.100.0/24")
	for _, s := range []netip.Prefix{a, b, a} {
		r := send(ecsQuery(testName, s, false))
		if e := ecsOf(r); len(r.Answer) != 1 || e == nil || e.scope != 24 {
			t.Errorf("reply through the proxy for %s: %v", s, r)
		}
	}
	plain := new(dns.Msg)
	plain.SetQuestion(testName, dns.TypeA)
	send(plain)
	got := px.Reset()
	if got.Queries != 4 || got.Geo != 4 || got.GeoNoECS != 1 || got.Lost != 0 ||
		got.Subnets[a] != 2 || got.Subnets[b] != 1 || len(got.Subnets) != 2 {
		t.Errorf("counted %+v; want 4 geo queries, 1 without ECS, %s twice and %s once", got, a, b)
	}
	if _, err := newProxy(netip.MustParseAddrPort("192.0.2.1:53"), testName); err == nil {
		t.Error("a proxy to a non-loopback backend: no error")
	}
}

// TestAskAll asks a fake backend directly: answers in order, rate-bounded.
func TestAskAll(t *testing.T) {
	f := fakeAuth{answerBits: 16, scopeBits: 16}
	addr := startFake(t, f)
	var subnets []netip.Prefix
	for i := range 40 {
		subnets = append(subnets, netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(i), byte(i * 3), 0}), 24))
	}
	t0 := time.Now()
	got, err := askAll(context.Background(), &asker{server: addr, timeout: 2 * time.Second, tries: 2}, testName, subnets, 400, 4)
	if err != nil {
		t.Fatal(err)
	}
	// 40 queries at 400 a second take 0.1 s at least (less one step).
	if d := time.Since(t0); d < 80*time.Millisecond {
		t.Errorf("40 queries at 400/s took %s", d)
	}
	for i, s := range subnets {
		if !got[i].OK || got[i].Addrs != f.answerFor(s.Addr()) || got[i].Scope != 16 {
			t.Errorf("%s: %+v, want %s scope 16", s, got[i], f.answerFor(s.Addr()))
		}
	}
	if _, err := askAll(context.Background(), &asker{server: netip.MustParseAddrPort("192.0.2.1:53"), tries: 1}, testName, subnets, 10, 1); err == nil {
		t.Error("asking a non-loopback address: no error")
	}
}

func TestParseFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"-backends", "popdns,bind"}, `unknown backend "bind"`},
		{[]string{"-backends", ""}, "none given"},
		{[]string{"-n", "0"}, "want at least 1"},
		{[]string{"-rate", "0"}, "at least 1"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		_, err := parseFlags(c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%v: error %v, want one saying %q", c.args, err, c.err)
		}
	}
	o, err := parseFlags([]string{"-backends", "gdnsd, popdns"}, io.Discard)
	if err != nil || !slices.Equal(o.Backends, []string{"gdnsd", "popdns"}) || o.N != 100000 {
		t.Errorf("parseFlags: %+v, %v", o, err)
	}
}

// FuzzProxyCount: the proxy reads whatever Unbound sends it; no datagram
// may panic it, and each is counted once.
func FuzzProxyCount(f *testing.F) {
	q, _ := ecsQuery(testName, netip.MustParsePrefix("203.0.113.0/24"), true).Pack()
	f.Add(q)                // a geo query with ECS
	f.Add(q[:len(q)-3])     // cut inside the ECS option
	f.Add([]byte{})         // empty
	f.Add(make([]byte, 12)) // a header with no question
	f.Fuzz(func(t *testing.T, b []byte) {
		p := &proxy{geoName: testName, counts: upstream{Subnets: map[netip.Prefix]int{}}}
		p.count(b)
		if c := p.Reset(); c.Queries != 1 || c.Geo > 1 {
			t.Errorf("one datagram counted as %+v", c)
		}
	})
}
