package dnsserver

import (
	"encoding/hex"
	"testing"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
)

func TestNSID(t *testing.T) {
	s := newTestServer(t, Config{NSID: "fra-1"})
	for _, tc := range []struct {
		name string
		req  *dns.Msg
		want string // "" means no NSID option
	}{
		{"asked", query("www.example.test.", dns.TypeA, withOption(&dns.EDNS0_NSID{Code: dns.EDNS0NSID})), "fra-1"},
		{"not asked", query("www.example.test.", dns.TypeA, withEDNS(1232, false)), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := dnstest.NewUDP("192.0.2.1")
			s.ServeDNS(w, tc.req)
			opt := w.Msg.IsEdns0()
			if opt == nil {
				t.Fatal("no OPT in reply")
			}
			got := ""
			for _, o := range opt.Option {
				if n, ok := o.(*dns.EDNS0_NSID); ok {
					b, err := hex.DecodeString(n.Nsid)
					if err != nil {
						t.Fatal(err)
					}
					got = string(b)
				}
			}
			if got != tc.want {
				t.Errorf("NSID %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("not configured", func(t *testing.T) {
		w := dnstest.NewUDP("192.0.2.1")
		newTestServer(t, Config{}).ServeDNS(w, query("www.example.test.", dns.TypeA, withOption(&dns.EDNS0_NSID{Code: dns.EDNS0NSID})))
		if opts := w.Msg.IsEdns0().Option; len(opts) != 0 {
			t.Errorf("options %v without a configured NSID", opts)
		}
	})
}

func TestDOBitEchoed(t *testing.T) {
	s := newTestServer(t, Config{})
	for _, do := range []bool{false, true} {
		w := dnstest.NewUDP("192.0.2.1")
		s.ServeDNS(w, query("www.example.test.", dns.TypeA, withEDNS(1232, do)))
		if got := w.Msg.IsEdns0().Do(); got != do {
			t.Errorf("DO %v in reply to DO %v", got, do)
		}
	}
}

func TestSizeLimit(t *testing.T) {
	s := newTestServer(t, Config{})
	for _, tc := range []struct {
		name string
		e    ednsRequest
		tcp  bool
		want int
	}{
		{"no EDNS over UDP", ednsRequest{}, false, 512},
		{"client smaller than us", ednsRequest{present: true, udpSize: 800}, false, 800},
		{"client larger than us", ednsRequest{present: true, udpSize: 4096}, false, DefaultUDPSize},
		{"client below the minimum", ednsRequest{present: true, udpSize: 100}, false, 512},
		{"TCP", ednsRequest{present: true, udpSize: 512}, true, 65535},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.sizeLimit(tc.e, tc.tcp); got != tc.want {
				t.Errorf("sizeLimit = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestAcceptQuery(t *testing.T) {
	const qr, notify = 1 << 15, dns.OpcodeNotify << 11
	for _, tc := range []struct {
		name string
		h    dns.Header
		want dns.MsgAcceptAction
	}{
		{"query", dns.Header{Qdcount: 1, Arcount: 1}, dns.MsgAccept},
		{"response", dns.Header{Bits: qr, Qdcount: 1}, dns.MsgIgnore},
		{"notify reaches the handler for NOTIMP", dns.Header{Bits: notify, Qdcount: 1, Ancount: 1}, dns.MsgAccept},
		{"no question reaches the handler for FORMERR", dns.Header{}, dns.MsgAccept},
		{"two questions", dns.Header{Qdcount: 2}, dns.MsgReject},
		{"answers in a query", dns.Header{Qdcount: 1, Ancount: 2}, dns.MsgReject},
		{"authority in a query", dns.Header{Qdcount: 1, Nscount: 2}, dns.MsgReject},
		{"many additional", dns.Header{Qdcount: 1, Arcount: 3}, dns.MsgReject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := acceptQuery(tc.h); got != tc.want {
				t.Errorf("acceptQuery = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestResponsesAreNotAnswered(t *testing.T) {
	s := newTestServer(t, Config{})
	w := dnstest.NewUDP("192.0.2.1")
	s.ServeDNS(w, query("www.example.test.", dns.TypeA, func(m *dns.Msg) { m.Response = true }))
	if w.Writes != 0 {
		t.Errorf("answered a response: %v", w.Msg)
	}
}

func TestPanicAnswersServfail(t *testing.T) {
	s := newTestServer(t, Config{})
	w := dnstest.NewUDP("192.0.2.1")
	w.PanicOnWrite = true
	s.ServeDNS(w, query("www.example.test.", dns.TypeA, withEDNS(1232, false)))
	if w.Writes != 1 || w.Msg.Rcode != dns.RcodeServerFailure || w.Msg.IsEdns0() == nil {
		t.Fatalf("after a panic: %d replies, last %v; want one SERVFAIL with an OPT", w.Writes, w.Msg)
	}
	if got := testutilCounter(t, s.metrics.requests.WithLabelValues("udp", "none", "A", "SERVFAIL")); got != 1 {
		t.Errorf("requests_total{rcode=SERVFAIL} = %v, want 1", got)
	}
	if got := testutilCounter(t, s.metrics.panics); got != 1 {
		t.Errorf("panics_total = %v, want 1", got)
	}
	// The server goes on answering.
	w2 := dnstest.NewUDP("192.0.2.1")
	s.ServeDNS(w2, query("www.example.test.", dns.TypeA))
	if w2.Msg == nil || w2.Msg.Rcode != dns.RcodeSuccess {
		t.Errorf("after a panic the next query got %v", w2.Msg)
	}
}

func TestFit(t *testing.T) {
	extras := func(n int) []dns.RR {
		var rrs []dns.RR
		for i := range n {
			rrs = append(rrs, dnstest.RRs(t, "host.example.test. 300 IN AAAA 2001:db8::"+string(rune('a'+i%6)))...)
		}
		return rrs
	}
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	for _, tc := range []struct {
		name    string
		answers int
		extras  int
		cut     string // the referral's zone cut, "" for other replies
		limit   int
		wantTC  bool
		wantAll bool // every additional record kept
	}{
		{"fits", 1, 2, "", 512, false, true},
		{"additional dropped quietly", 1, 40, "", 512, false, false},
		{"in-domain glue dropped sets TC", 0, 40, "example.test.", 512, true, false},
		{"sibling glue dropped quietly", 0, 40, "sib.example.test.", 512, false, false},
		{"answer too big empties and sets TC", 40, 0, "", 512, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := query("host.example.test.", dns.TypeAAAA)
			m.Response = true
			m.Answer = extras(tc.answers)
			m.Extra = append(extras(tc.extras), opt)
			fit(m, tc.limit, tc.cut)
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > tc.limit {
				t.Errorf("packed %d bytes, limit %d", len(b), tc.limit)
			}
			if m.Truncated != tc.wantTC {
				t.Errorf("TC %v, want %v", m.Truncated, tc.wantTC)
			}
			if m.IsEdns0() == nil {
				t.Error("OPT dropped")
			}
			kept := len(m.Extra) - 1
			if all := kept == tc.extras; all != tc.wantAll {
				t.Errorf("kept %d of %d additional records", kept, tc.extras)
			}
			if kept < tc.extras && (!m.Truncated || tc.cut != "") {
				// As many as fit are kept: one more would not fit.
				more := m.Copy()
				more.Extra = append(extras(kept+1), opt)
				if more.Len() <= tc.limit {
					t.Errorf("kept %d additional records, but %d fit in %d bytes", kept, kept+1, tc.limit)
				}
			}
		})
	}
}
