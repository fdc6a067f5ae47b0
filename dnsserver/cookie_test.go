package dnsserver

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnscookie"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/internal/rrl"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
)

// cookieNow is the fixed time of the cookie tests' servers, so that the
// fast path and the general path make the same cookie.
var cookieNow = time.Unix(1_700_000_000, 0)

var (
	testSecret  = dnscookie.Secret{0x10, 0x20, 0x30}
	otherSecret = dnscookie.Secret{0x99}
)

const clientCookie = "0102030405060708"

// newCookieServer is a test server with cookies under testSecret (and
// otherSecret as the previous one when rollover), at cookieNow.
func newCookieServer(t testing.TB, rollover bool) (*Server, *prometheus.Registry) {
	t.Helper()
	secrets := &dnscookie.Secrets{Current: testSecret}
	if rollover {
		secrets.Previous, secrets.HasPrevious = otherSecret, true
	}
	reg := prometheus.NewRegistry()
	s, err := New(testConfig(Config{Listen: []string{"127.0.0.1:0"}, Cookies: CookieConfig{Secrets: secrets}}),
		Deps{Log: zerolog.Nop(), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return cookieNow }
	s.SetZones(loadTestZones(t))
	return s, reg
}

// serverCookie is the server cookie secret gives clientCookie from ip at
// cookieNow+age, in hex.
func serverCookie(secret dnscookie.Secret, ip string, age time.Duration) string {
	var c [dnscookie.ServerLen]byte
	b, _ := hex.DecodeString(clientCookie)
	dnscookie.Make(&c, &secret, b, netip.MustParseAddr(ip), uint32(cookieNow.Add(-age).Unix()))
	return hex.EncodeToString(c[:])
}

func withCookie(data string) func(*dns.Msg) {
	return withOption(&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: data})
}

// replyCookie is the reply's COOKIE option data in hex, "" if none.
func replyCookie(t testing.TB, m *dns.Msg) string {
	t.Helper()
	opt := m.IsEdns0()
	if opt == nil {
		return ""
	}
	got := ""
	for i, o := range opt.Option {
		if c, ok := o.(*dns.EDNS0_COOKIE); ok {
			if i != len(opt.Option)-1 {
				t.Errorf("the COOKIE option is not the OPT record's last")
			}
			got = c.Cookie
		}
	}
	return got
}

func TestCookies(t *testing.T) {
	const client = "192.0.2.1"
	fresh := clientCookie + serverCookie(testSecret, client, 0)
	noQuestion := func(m *dns.Msg) { m.Question = nil }
	cases := []struct {
		name     string
		req      *dns.Msg
		tcp      bool
		rollover bool
		rcode    int
		reply    string // the reply's cookie: "" none, "new" a new one, else this
		outcome  string
	}{
		{"no cookie", query("www.example.test.", dns.TypeA, withEDNS(1232, false)), false, false, dns.RcodeSuccess, "", "none"},
		{"client cookie only", query("www.example.test.", dns.TypeA, withCookie(clientCookie)), false, false, dns.RcodeSuccess, "new", "client_only"},
		{"valid: echoed", query("www.example.test.", dns.TypeA, withCookie(fresh)), false, false, dns.RcodeSuccess, fresh, "valid"},
		{"valid over TCP: echoed", query("www.example.test.", dns.TypeA, withCookie(fresh)), true, false, dns.RcodeSuccess, fresh, "valid"},
		{"valid, 31 minutes old: refreshed", query("www.example.test.", dns.TypeA,
			withCookie(clientCookie+serverCookie(testSecret, client, 31*time.Minute))), false, false, dns.RcodeSuccess, "new", "valid"},
		{"previous secret: accepted, replaced", query("www.example.test.", dns.TypeA,
			withCookie(clientCookie+serverCookie(otherSecret, client, 0))), false, true, dns.RcodeSuccess, "new", "valid"},
		{"unknown secret: answered as client-only", query("www.example.test.", dns.TypeA,
			withCookie(clientCookie+serverCookie(otherSecret, client, 0))), false, false, dns.RcodeSuccess, "new", "invalid"},
		{"another client's cookie", query("www.example.test.", dns.TypeA,
			withCookie(clientCookie+serverCookie(testSecret, "192.0.2.2", 0))), false, false, dns.RcodeSuccess, "new", "invalid"},
		{"expired", query("www.example.test.", dns.TypeA,
			withCookie(clientCookie+serverCookie(testSecret, client, 61*time.Minute))), false, false, dns.RcodeSuccess, "new", "invalid"},
		{"a 32-octet server cookie of someone else's", query("www.example.test.", dns.TypeA,
			withCookie(clientCookie+fresh[16:]+fresh[16:])), false, false, dns.RcodeSuccess, "new", "invalid"},
		{"NXDOMAIN keeps the cookie", query("nope.example.test.", dns.TypeA, withCookie(fresh)), false, false, dns.RcodeNameError, fresh, "valid"},
		{"REFUSED keeps the cookie", query("elsewhere.invalid.", dns.TypeA, withCookie(clientCookie)), false, false, dns.RcodeRefused, "new", "client_only"},
		{"7 octets: FORMERR", query("www.example.test.", dns.TypeA, withCookie(clientCookie[:14])), false, false, dns.RcodeFormatError, "", "malformed"},
		{"12 octets: FORMERR", query("www.example.test.", dns.TypeA, withCookie(clientCookie+"01020304")), false, false, dns.RcodeFormatError, "", "malformed"},
		{"41 octets: FORMERR", query("www.example.test.", dns.TypeA, withCookie(clientCookie+fresh[16:]+fresh[16:]+"00")), false, false, dns.RcodeFormatError, "", "malformed"},
		{"two COOKIE options: FORMERR", query("www.example.test.", dns.TypeA, withCookie(clientCookie), withCookie(clientCookie)), false, false, dns.RcodeFormatError, "", "malformed"},
		{"no question, client cookie: NOERROR", query(".", dns.TypeA, withCookie(clientCookie), noQuestion), false, false, dns.RcodeSuccess, "new", "client_only"},
		{"no question, valid cookie: NOERROR", query(".", dns.TypeA, withCookie(fresh), noQuestion), false, false, dns.RcodeSuccess, fresh, "valid"},
		{"no question, invalid cookie: BADCOOKIE", query(".", dns.TypeA, withCookie(clientCookie+serverCookie(otherSecret, client, 0)), noQuestion), false, false, dns.RcodeBadCookie, "new", "invalid"},
		{"no question, no cookie: FORMERR", query(".", dns.TypeA, withEDNS(1232, false), noQuestion), false, false, dns.RcodeFormatError, "", "none"},
		{"no question, EDNS version 1: BADVERS first", query(".", dns.TypeA, withCookie(fresh), noQuestion,
			func(m *dns.Msg) { m.IsEdns0().SetVersion(1) }), false, false, dns.RcodeBadVers, fresh, "valid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, reg := newCookieServer(t, c.rollover)
			w := dnstest.NewUDP(client)
			if c.tcp {
				w = dnstest.NewTCP(client)
			}
			s.ServeDNS(w, c.req)
			var resp dns.Msg
			if err := resp.Unpack(w.Wire); err != nil {
				t.Fatalf("reply: %v", err)
			}
			if resp.Rcode != c.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[c.rcode])
			}
			got := replyCookie(t, &resp)
			switch c.reply {
			case "new":
				want := clientCookie + serverCookie(testSecret, client, 0)
				if got != want {
					t.Errorf("reply cookie %q, want a new one %q", got, want)
				}
			default:
				if got != c.reply {
					t.Errorf("reply cookie %q, want %q", got, c.reply)
				}
			}
			if n := counterValue(s.metrics.cookies.WithLabelValues(c.outcome)); n != 1 {
				t.Errorf("popdns_dns_cookies_total{outcome=%q} = %v, want 1", c.outcome, n)
			}
			if n := cookieSeries(t, reg); n != 1 {
				t.Errorf("%d cookie series, want 1", n)
			}
		})
	}
}

func TestCookiesOff(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Cookies: CookieConfig{Off: true}}, Deps{Log: zerolog.Nop(), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	s.SetZones(loadTestZones(t))
	for _, cookie := range []string{clientCookie, clientCookie[:14]} {
		w := dnstest.NewUDP("192.0.2.1")
		s.ServeDNS(w, query("www.example.test.", dns.TypeA, withCookie(cookie)))
		var resp dns.Msg
		if err := resp.Unpack(w.Wire); err != nil {
			t.Fatal(err)
		}
		if resp.Rcode != dns.RcodeSuccess || replyCookie(t, &resp) != "" {
			t.Errorf("cookies off, COOKIE %s: %s with cookie %q, want NOERROR and none", cookie,
				dns.RcodeToString[resp.Rcode], replyCookie(t, &resp))
		}
	}
	if n := cookieSeries(t, reg); n != 0 {
		t.Errorf("cookies counted while off")
	}
}

func TestCookieSecretsReload(t *testing.T) {
	s, _ := newCookieServer(t, false)
	ask := func(cookie string) string {
		w := dnstest.NewUDP("192.0.2.1")
		s.ServeDNS(w, query("www.example.test.", dns.TypeA, withCookie(cookie)))
		var resp dns.Msg
		resp.Unpack(w.Wire)
		return replyCookie(t, &resp)
	}
	old := clientCookie + serverCookie(testSecret, "192.0.2.1", 0)
	// Rolled over: the old cookie is still accepted, and replaced.
	s.SetCookieSecrets(&dnscookie.Secrets{Current: otherSecret, Previous: testSecret, HasPrevious: true})
	if got, want := ask(old), clientCookie+serverCookie(otherSecret, "192.0.2.1", 0); got != want {
		t.Errorf("after the rollover: %s, want %s", got, want)
	}
	s.SetCookieSecrets(nil) // a configuration without a secret file keeps the secrets
	if got, want := ask(clientCookie), clientCookie+serverCookie(otherSecret, "192.0.2.1", 0); got != want {
		t.Errorf("after SetCookieSecrets(nil): %s, want %s", got, want)
	}
}

func TestBadCookieReply(t *testing.T) {
	s, _ := newCookieServer(t, false)
	src := netip.MustParseAddr("192.0.2.1")
	if m := s.badCookieReply(query("www.example.test.", dns.TypeA, withEDNS(1232, false)), src); m != nil {
		t.Errorf("BADCOOKIE for a query without a cookie: %v", m)
	}
	req := query("www.example.test.", dns.TypeA, withCookie(clientCookie), withOption(&dns.EDNS0_NSID{Code: dns.EDNS0NSID}))
	m := s.badCookieReply(req, src)
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var resp dns.Msg
	if err := resp.Unpack(wire); err != nil {
		t.Fatal(err)
	}
	if resp.Rcode != dns.RcodeBadCookie || len(resp.Answer)+len(resp.Ns) != 0 || len(resp.Extra) != 1 || resp.Id != req.Id {
		t.Errorf("badCookieReply: %v", &resp)
	}
	if got, want := replyCookie(t, &resp), clientCookie+serverCookie(testSecret, "192.0.2.1", 0); got != want {
		t.Errorf("cookie %s, want %s", got, want)
	}
	// The fast path's makes the same bytes for the same query.
	f := newFastPath(s)
	packet, _ := req.Pack()
	out := make([]byte, 0, 512)
	f.Answer(packet, src, out)
	if got := f.BadCookie(packet, out); !bytes.Equal(got, wire) {
		t.Errorf("fast path's BADCOOKIE\n%x\nwant\n%x", got, wire)
	}
}

// cookieQueries are queries of the fast path's shapes with each kind of
// cookie from fastSrc.
func cookieQueries() []*dns.Msg {
	client := fastSrc.Addr().String()
	var out []*dns.Msg
	for _, ck := range []string{
		clientCookie,
		clientCookie + serverCookie(testSecret, client, 0),
		clientCookie + serverCookie(testSecret, client, 40*time.Minute),
		clientCookie + serverCookie(otherSecret, client, 0),
		clientCookie + serverCookie(testSecret, client, 2*time.Hour),
		"1112131415161718" + serverCookie(testSecret, client, 0), // another client cookie: invalid
	} {
		for _, name := range []string{"www.example.test.", "nope.example.test.", "big.example.test.", "elsewhere.invalid."} {
			out = append(out,
				query(name, dns.TypeA, withCookie(ck)),
				query(name, dns.TypeTXT, withEDNS(4096, true), withCookie(ck)),
				query(name, dns.TypeA, withECS("81.2.69.0", 24), withCookie(ck)),
				query(name, dns.TypeA, withCookie(ck), withOption(&dns.EDNS0_NSID{Code: dns.EDNS0NSID}), withECS("2a00:1450::", 32)))
		}
	}
	return out
}

func TestFastPathCookiesMatchGeneralPath(t *testing.T) {
	s, _ := newCookieServer(t, true)
	f := newFastPath(s)
	fast, all := 0, 0
	for _, m := range cookieQueries() {
		vs := variants(t, m)
		all += len(vs)
		fast += checkSame(t, s, f, vs, fastSrc)
	}
	// Each shape's first query teaches the fast path; it answers the rest,
	// but for replies too large for the client.
	t.Logf("the fast path answered %d of %d", fast, all)
	if fast < all/2 {
		t.Errorf("the fast path answered %d of %d queries with cookies", fast, all)
	}
	// Malformed options are handed to the general path, which FORMERRs.
	for _, ck := range []string{clientCookie[:14], clientCookie + "0102", clientCookie + clientCookie + clientCookie + clientCookie + clientCookie + "00"} {
		p, _ := query("www.example.test.", dns.TypeA, withCookie(ck)).Pack()
		if _, fast, handedOff := fastUDP(t, f, p, fastSrc); fast || !handedOff {
			t.Errorf("COOKIE %s: answered by the fast path", ck)
		}
	}
	p, _ := query("www.example.test.", dns.TypeA, withCookie(clientCookie), withCookie(clientCookie)).Pack()
	if _, fast, handedOff := fastUDP(t, f, p, fastSrc); fast || !handedOff {
		t.Errorf("two COOKIE options: answered by the fast path")
	}
}

func TestFastPathCookieAllocations(t *testing.T) {
	s, _ := newCookieServer(t, true)
	f := newFastPath(s)
	client := fastSrc.Addr().String()
	out := make([]byte, 0, maxUDPSize)
	for _, ck := range []string{clientCookie, clientCookie + serverCookie(testSecret, client, 0),
		clientCookie + serverCookie(otherSecret, client, 0), clientCookie + serverCookie(testSecret, client, 40*time.Minute)} {
		b, _ := query("www.example.test.", dns.TypeA, withCookie(ck)).Pack()
		fastUDP(t, f, b, fastSrc) // learn
		if _, res := f.Answer(b, fastSrc.Addr(), out); res != udpfast.Answered {
			t.Fatalf("cookie %s: not answered by the fast path once learnt", ck)
		}
		now := time.Now()
		if n := testing.AllocsPerRun(200, func() { f.Answer(b, fastSrc.Addr(), out); f.Flush(now) }); n != 0 {
			t.Errorf("cookie %s: %.0f allocations per query, budget 0", ck, n)
		}
		if n := testing.AllocsPerRun(200, func() { f.Answer(b, fastSrc.Addr(), out); f.BadCookie(b, out); f.Flush(now) }); n != 0 {
			t.Errorf("cookie %s: BADCOOKIE: %.0f allocations per query, budget 0", ck, n)
		}
	}
}

// TestServeCookies asks a running server over UDP (the fast path, once a
// shape is learnt) and TCP (the general path): the first query of a client
// gets a server cookie, and the client's next queries are valid with it.
func TestServeCookies(t *testing.T) {
	s, reg := newCookieServer(t, false)
	s.now = time.Now
	addr := startServer(t, s)[0]
	for _, proto := range []string{"udp", "tcp"} {
		r := exchange(t, proto, addr, query("www.example.test.", dns.TypeA, withCookie(clientCookie)))
		got := replyCookie(t, r)
		if len(got) != 2*dnscookie.ReplyLen || got[:16] != clientCookie || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
			t.Fatalf("%s, client cookie: %s, cookie %q", proto, dns.RcodeToString[r.Rcode], got)
		}
		for i := range 5 {
			r := exchange(t, proto, addr, query("www.example.test.", dns.TypeA, withCookie(got)))
			if echoed := replyCookie(t, r); r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 || echoed != got {
				t.Fatalf("%s, resent %d: %s, cookie %q, want %q echoed", proto, i, dns.RcodeToString[r.Rcode], echoed, got)
			}
		}
	}
	// A query with no question fetches a cookie.
	r := exchange(t, "udp", addr, query(".", dns.TypeA, withCookie(clientCookie), func(m *dns.Msg) { m.Question = nil }))
	if r.Rcode != dns.RcodeSuccess || len(replyCookie(t, r)) != 2*dnscookie.ReplyLen {
		t.Errorf("QDCOUNT 0: %s, cookie %q", dns.RcodeToString[r.Rcode], replyCookie(t, r))
	}
	// A malformed one is FORMERR over both transports.
	for _, proto := range []string{"udp", "tcp"} {
		if r := exchange(t, proto, addr, query("www.example.test.", dns.TypeA, withCookie(clientCookie+"01"))); r.Rcode != dns.RcodeFormatError {
			t.Errorf("%s, 9-octet cookie: %s, want FORMERR", proto, dns.RcodeToString[r.Rcode])
		}
	}
	// The fast path counts a batch once its replies are sent.
	deadline := time.Now().Add(2 * time.Second)
	for outcome, want := range map[string]float64{"client_only": 3, "valid": 10, "malformed": 2} {
		n := counterValue(s.metrics.cookies.WithLabelValues(outcome))
		for ; n != want && time.Now().Before(deadline); n = counterValue(s.metrics.cookies.WithLabelValues(outcome)) {
			time.Sleep(5 * time.Millisecond)
		}
		if n != want {
			t.Errorf("popdns_dns_cookies_total{outcome=%q} = %v, want %v", outcome, n, want)
		}
	}
	if n := cookieSeries(t, reg); n != 3 {
		t.Errorf("%d cookie series, want 3", n)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// cookieSeries counts the series of popdns_dns_cookies_total.
func cookieSeries(t testing.TB, reg prometheus.Gatherer) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "popdns_dns_cookies_total" {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// TestCookiesExemptFromRRL: a query with a valid server cookie proves its
// source, so the rate limiter lets every one through on both paths, where
// the same source's queries with a client cookie alone are limited, and
// charged to the account of the reply (learnt with the valid cookie's).
func TestCookiesExemptFromRRL(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, RateLimit: strictRRL,
		Cookies: CookieConfig{Secrets: &dnscookie.Secrets{Current: testSecret}}}, Deps{Log: zerolog.Nop(), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return cookieNow }
	s.SetZones(loadTestZones(t))
	f := newFastPath(s)
	valid, _ := query("www.example.test.", dns.TypeA, withCookie(clientCookie+serverCookie(testSecret, fastSrc.Addr().String(), 0))).Pack()
	clientOnly, _ := query("www.example.test.", dns.TypeA, withCookie(clientCookie)).Pack()
	full := func(b []byte) bool {
		var m dns.Msg
		return b != nil && m.Unpack(b) == nil && !m.Truncated && len(m.Answer) > 0
	}
	fastUDP(t, f, valid, fastSrc) // learnt
	for i := range 8 {
		if b, fast, _ := fastUDP(t, f, valid, fastSrc); !fast || !full(b) {
			t.Fatalf("valid cookie, fast path, query %d: fast %v, full answer %v", i, fast, full(b))
		}
		if b := generalUDP(s, valid, fastSrc); !full(b) {
			t.Fatalf("valid cookie, general path, query %d: no full answer", i)
		}
	}
	answered := 0
	var slips [][]byte
	for range 8 {
		if b, fast, _ := fastUDP(t, f, clientOnly, fastSrc); !fast {
			t.Fatal("client cookie: not answered by the fast path")
		} else if full(b) {
			answered++
		} else if b != nil {
			slips = append(slips, b)
		}
	}
	if answered != 1 { // the burst
		t.Errorf("client cookie: %d of 8 full answers, want 1 (the burst)", answered)
	}
	// A limited query with a client cookie slips as BADCOOKIE with the
	// server cookie that exempts it, not as TC=1, on both paths alike; the
	// query sent again with that cookie is answered in full.
	if b := generalUDP(s, clientOnly, fastSrc); b != nil {
		slips = append(slips, b)
	}
	if len(slips) != 4 {
		t.Fatalf("client cookie: %d slipped replies of 8 limited, want 4 (slip 2)", len(slips))
	}
	want := clientCookie + serverCookie(testSecret, fastSrc.Addr().String(), 0)
	for i, b := range slips {
		var m dns.Msg
		if err := m.Unpack(b); err != nil {
			t.Fatal(err)
		}
		if m.Rcode != dns.RcodeBadCookie || m.Truncated || len(m.Answer) != 0 || replyCookie(t, &m) != want {
			t.Fatalf("slipped reply %d (the last from the general path) is not BADCOOKIE with cookie %s:\n%v", i, want, &m)
		}
		if i > 0 && !bytes.Equal(b, slips[0]) {
			t.Errorf("slipped reply %d differs from the first:\n%x\n%x", i, b, slips[0])
		}
	}
	again, _ := query("www.example.test.", dns.TypeA, withCookie(want)).Pack()
	if b, _, _ := fastUDP(t, f, again, fastSrc); !full(b) {
		t.Error("the query sent again with the server cookie of BADCOOKIE is not answered in full")
	}
	if n := testutilCounter(t, s.metrics.rrlN[rrl.Drop][rrl.Answer]); n != 4 {
		t.Errorf("%v drops counted in the answer class, want 4", n)
	}
}
