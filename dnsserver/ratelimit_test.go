package dnsserver

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/internal/rrl"
)

func intp(n int) *int { return &n }

// strictRRL limits every account to one reply, then slips every second
// one; nothing is exempt.
var strictRRL = rrl.Config{ResponsesPerSecond: 1, Burst: 1, Slip: intp(2), Exempt: []netip.Prefix{}}

func TestRRLAccounts(t *testing.T) {
	s := newTestServer(t, Config{RateLimit: strictRRL})
	zone := rrl.NameHash("example.test.", 0)
	tests := []struct {
		req  *dns.Msg
		want rrl.Account
	}{
		{query("WWW.example.test.", dns.TypeA), rrl.Account{Class: rrl.Answer, Name: rrl.NameHash("www.example.test.", dns.TypeA)}},
		{query("nope.example.test.", dns.TypeA), rrl.Account{Class: rrl.NXDomain, Name: zone}},
		{query("www.example.test.", dns.TypeMX), rrl.Account{Class: rrl.NoData, Name: zone}},
		{query("host.sub.example.test.", dns.TypeA), rrl.Account{Class: rrl.Referral, Name: zone}},
		{query("www.not-ours.", dns.TypeA), rrl.Account{Class: rrl.Error}},
		// Refused before its zone is looked up: with every reply of no zone.
		{query("example.test.", dns.TypeAXFR), rrl.Account{Class: rrl.Error}},
	}
	src := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5300}
	for _, tt := range tests {
		resp, out := s.respondTo(tt.req, parseEDNS(tt.req), src, false, udpfast.ExploreDraw, nil)
		if got := rrlAccount(tt.req, resp, &out); got != tt.want {
			t.Errorf("%v: account %+v, want %+v", tt.req.Question[0], got, tt.want)
		}
	}
}

// TestRRLBothPaths sends the same queries through the general path and
// the fast path of one server from one source: both charge the same
// accounts, slip every second limited reply as the same bytes, and drop
// the others.
func TestRRLBothPaths(t *testing.T) {
	for _, m := range []*dns.Msg{
		query("www.example.test.", dns.TypeA),
		query("www.example.test.", dns.TypeA, withEDNS(1232, true)),
		query("nope.example.test.", dns.TypeA),
		query("host.sub.example.test.", dns.TypeA),
	} {
		t.Run(m.Question[0].String(), func(t *testing.T) {
			s := newTestServer(t, Config{RateLimit: strictRRL})
			f := newFastPath(s)
			p, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			// The first reply, through the general path, teaches the fast
			// path; the source's next ones are over the limit.
			if reply, fast, _ := fastUDP(t, f, p, fastSrc); fast || reply == nil {
				t.Fatalf("first reply: fast %v, %v", fast, reply)
			}
			var slips [2][]byte
			for i, path := range []string{"general", "fast"} {
				var replies [][]byte
				for range 4 {
					var b []byte
					if path == "general" {
						b = generalUDP(s, p, fastSrc)
					} else {
						var fast bool
						if b, fast, _ = fastUDP(t, f, p, fastSrc); !fast {
							t.Fatalf("the fast path did not answer")
						}
					}
					replies = append(replies, b)
				}
				// Each path sees the account's slip count go on: the
				// general path gets its 1st to 4th limited replies, the
				// fast path its 5th to 8th.
				for j, b := range replies {
					if slipped := (j+1)%2 == 0; slipped != (b != nil) {
						t.Fatalf("%s path, limited reply %d: %x, want slipped %v", path, j+1, b, slipped)
					}
				}
				slips[i] = replies[1]
			}
			if !bytes.Equal(slips[0], slips[1]) {
				t.Errorf("slipped replies differ:\ngeneral %x\nfast    %x", slips[0], slips[1])
			}
			r := new(dns.Msg)
			if err := r.Unpack(slips[1]); err != nil {
				t.Fatal(err)
			}
			// An OPT record, bare, exactly when the query had one (RFC
			// 6891 §7).
			wantExtra := 0
			if q := m.IsEdns0(); q != nil {
				wantExtra = 1
				if o := r.IsEdns0(); o == nil || len(o.Option) != 0 || o.Do() != q.Do() || o.UDPSize() != DefaultUDPSize {
					t.Errorf("slipped reply's OPT record is not bare, with the DO bit echoed and our size: %v", o)
				}
			}
			if !r.Truncated || r.Id != m.Id || len(r.Question) != 1 || r.Question[0] != m.Question[0] ||
				len(r.Answer)+len(r.Ns) != 0 || len(r.Extra) != wantExtra {
				t.Errorf("slipped reply is not header, question, TC and an OPT record if the query had one:\n%v", r)
			}
			if len(slips[1]) > len(p) {
				t.Errorf("a slipped reply of %d bytes amplifies a query of %d", len(slips[1]), len(p))
			}
			var acct rrl.Account
			resp, out := s.respondTo(m, parseEDNS(m), net.UDPAddrFromAddrPort(fastSrc), false, udpfast.ExploreDraw, nil)
			acct = rrlAccount(m, resp, &out)
			slipped := testutilCounter(t, s.metrics.rrlN[rrl.Slip][acct.Class])
			dropped := testutilCounter(t, s.metrics.rrlN[rrl.Drop][acct.Class])
			if slipped != 4 || dropped != 4 {
				t.Errorf("%s: %v slipped and %v dropped counted, want 4 and 4", acct.Class, slipped, dropped)
			}
		})
	}
}

// TestRRLOtherSourcesAndTCP: one source over its limit does not limit
// another network, nor its own queries over TCP.
func TestRRLOtherSourcesAndTCP(t *testing.T) {
	s := newTestServer(t, Config{RateLimit: strictRRL})
	p, _ := query("www.example.test.", dns.TypeA).Pack()
	generalUDP(s, p, fastSrc)
	if generalUDP(s, p, fastSrc) != nil {
		t.Fatal("second reply not limited")
	}
	if generalUDP(s, p, netip.MustParseAddrPort("192.0.3.1:5300")) == nil {
		t.Error("another /24 was limited with the first")
	}
	if generalUDP(s, p, netip.MustParseAddrPort("[2001:db8::1]:5300")) == nil {
		t.Error("an IPv6 network was limited with the first")
	}
	req := query("www.example.test.", dns.TypeA)
	for range 5 {
		w := dnstest.NewTCP(fastSrc.Addr().String())
		s.ServeDNS(w, req)
		if w.Writes != 1 || w.Msg == nil || len(w.Msg.Answer) != 1 {
			t.Fatalf("TCP query was limited: %d writes, %v", w.Writes, w.Msg)
		}
	}
}

func TestRRLLogOnlyAndOff(t *testing.T) {
	p, _ := query("www.example.test.", dns.TypeA).Pack()
	logOnly := strictRRL
	logOnly.LogOnly = true
	for _, tc := range []struct {
		name   string
		cfg    rrl.Config
		logged float64
	}{{"log only", logOnly, 9}, {"off", rrl.Config{Off: true}, 0}} {
		s := newTestServer(t, Config{RateLimit: tc.cfg})
		f := newFastPath(s)
		for i := range 10 {
			var b []byte
			if i%2 == 0 {
				b = generalUDP(s, p, fastSrc)
			} else {
				b, _, _ = fastUDP(t, f, p, fastSrc)
			}
			r := new(dns.Msg)
			if b == nil || r.Unpack(b) != nil || r.Truncated || len(r.Answer) != 1 {
				t.Fatalf("%s: reply %d not answered in full: %x", tc.name, i, b)
			}
		}
		if got := testutilCounter(t, s.metrics.rrlN[rrl.Logged][rrl.Answer]); got != tc.logged {
			t.Errorf("%s: %v logged, want %v", tc.name, got, tc.logged)
		}
	}
}

// TestFastPathAllocsRRL holds the fast path to no allocation with rate
// limiting on, whether it answers, slips or drops.
func TestFastPathAllocsRRL(t *testing.T) {
	for _, cfg := range []rrl.Config{
		{ResponsesPerSecond: 1e9, Exempt: []netip.Prefix{}}, // always passes
		strictRRL, // slips and drops
	} {
		s := newTestServer(t, Config{RateLimit: cfg})
		f := newFastPath(s)
		b, _ := query("www.example.test.", dns.TypeA, withEDNS(1232, false)).Pack()
		fastUDP(t, f, b, fastSrc)
		out := make([]byte, 0, s.cfg.UDPSize)
		now := time.Now()
		if n := testing.AllocsPerRun(200, func() { f.Answer(b, fastSrc.Addr(), out); f.Flush(now) }); n != 0 {
			t.Errorf("rate %d: %.0f allocations per query, budget 0", cfg.ResponsesPerSecond, n)
		}
		if _, res := f.Answer(b, fastSrc.Addr(), out); cfg.ResponsesPerSecond == 1 && res == udpfast.ToLearn {
			t.Errorf("a limited query went to the general path")
		}
	}
}

func TestRRLConfigErrors(t *testing.T) {
	_, err := Config{Listen: []string{"127.0.0.1:0"}, RateLimit: rrl.Config{Slip: intp(-1), IPv6Prefix: 200}}.Provision()
	fields := map[string]bool{}
	for _, e := range unjoin(err) {
		var ce *ConfigError
		if errors.As(e, &ce) {
			fields[ce.Field] = true
		}
	}
	if !fields["RateLimit.Slip"] || !fields["RateLimit.IPv6Prefix"] {
		t.Errorf("errors %v, want RateLimit.Slip and RateLimit.IPv6Prefix", err)
	}
}

// TestRRLOverUDP floods the real server over UDP from one loopback source
// (exemptions off) and counts what comes back: the burst in full, then
// every second limited reply truncated and the rest dropped, as counted
// in the metrics; another network and TCP are answered meanwhile. With
// the query log off the flood is answered by the fast path, with it on
// by the general path.
func TestRRLOverUDP(t *testing.T) {
	for _, queryLog := range []bool{false, true} {
		name := map[bool]string{false: "fast path", true: "general path"}[queryLog]
		t.Run(name, func(t *testing.T) {
			const n, burst = 100, 10
			s := newTestServer(t, Config{QueryLog: queryLog,
				RateLimit: rrl.Config{ResponsesPerSecond: burst, Burst: burst, Exempt: []netip.Prefix{}}})
			addr := startServer(t, s)[0]
			full, tc := floodUDP(t, "127.0.0.1", addr, n)
			dropped := n - full - tc
			t.Logf("%d queries: %d answered, %d truncated, %d dropped", n, full, tc, dropped)
			// The flood takes well under a second: the burst, and what the
			// rate refills meanwhile.
			if full < burst || full > 2*burst {
				t.Errorf("%d answered in full, want the burst of %d and not much more", full, burst)
			}
			if limited := n - full; tc < limited/2-1 || tc > limited/2+1 {
				t.Errorf("%d truncated of %d limited, want every second one", tc, limited)
			}
			slipped := testutilCounter(t, s.metrics.rrlN[rrl.Slip][rrl.Answer])
			droppedN := testutilCounter(t, s.metrics.rrlN[rrl.Drop][rrl.Answer])
			if int(slipped) != tc || int(droppedN) != dropped {
				t.Errorf("metrics count %v slipped and %v dropped, the client saw %d and %d", slipped, droppedN, tc, dropped)
			}
			// Another /24 is answered, and so is the flooded one over TCP.
			if full, _ := floodUDP(t, "127.0.1.1", addr, 1); full != 1 {
				t.Errorf("a query from another network was limited")
			}
			for range 5 {
				if r := exchange(t, "tcp", addr, query("www.example.test.", dns.TypeA)); r.Truncated || len(r.Answer) != 1 {
					t.Errorf("TCP reply limited: %v", r)
				}
			}
		})
	}
}

// floodUDP sends n queries for www.example.test from local (port 0) to
// addr at once and counts the replies that come back in full and
// truncated; it waits 500 ms after the last reply (loopback replies take
// microseconds) before it counts the rest as dropped.
func floodUDP(t *testing.T, local, addr string, n int) (full, tc int) {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(local)}, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := query("www.example.test.", dns.TypeA)
	for i := range n {
		m.Id = uint16(i)
		p, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 65535)
	for full+tc < n {
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		k, err := c.Read(buf)
		if err != nil {
			break // a timeout: the rest were dropped
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:k]); err != nil {
			t.Fatalf("bad reply: %v", err)
		}
		switch {
		case r.Truncated && len(r.Answer) == 0:
			tc++
		case !r.Truncated && len(r.Answer) == 1:
			full++
		default:
			t.Fatalf("unexpected reply %v", r)
		}
	}
	return full, tc
}
