package healthprobe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
)

// resetListener accepts TCP connections and resets each at once.
func resetListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*net.TCPConn).SetLinger(0) // close sends RST
			// Read the request first so the client is waiting on a reply.
			_, _ = c.Read(make([]byte, 512))
			_ = c.Close()
		}
	}()
	return ln.Addr().String()
}

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// dnsServer runs a miekg/dns server on 127.0.0.1:0/udp that answers
// NOERROR for ok. and SERVFAIL for anything else.
func dnsServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Name != "ok." {
			m.Rcode = dns.RcodeServerFailure
		}
		_ = w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: mux, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	dnstest.Receive(t, started, 5*time.Second, "the DNS server to start")
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestProbes(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("all good")) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/hang", func(_ http.ResponseWriter, r *http.Request) {
		// Until the probe gives up; bounded, so that a probe that never
		// does cannot keep the server's Close waiting for ever.
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	})
	mux.HandleFunc("/host", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(r.Host)) })
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	tlsSrv := httptest.NewTLSServer(mux)
	t.Cleanup(tlsSrv.Close)
	httpAddr := hs.Listener.Addr().String()
	tlsAddr := tlsSrv.Listener.Addr().String()
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tcpLn.Close() }) // the kernel completes handshakes in the backlog
	dnsAddr := dnsServer(t)
	closed := closedPort(t)
	reset := resetListener(t)

	tests := []struct {
		name   string
		target Target
		reason string // "" means success
	}{
		{"http 200", Target{Kind: KindHTTP, Addr: httpAddr, Path: "/ok"}, ""},
		{"http body ok", Target{Kind: KindHTTP, Addr: httpAddr, Path: "/ok", BodyContains: "good"}, ""},
		{"http host header", Target{Kind: KindHTTP, Addr: httpAddr, Path: "/host", Host: "pop1.example", BodyContains: "pop1.example"}, ""},
		{"http 5xx", Target{Kind: KindHTTP, Addr: httpAddr, Path: "/fail"}, ReasonStatus},
		{"http expect 503", Target{Kind: KindHTTP, Addr: httpAddr, Path: "/fail", ExpectStatus: []int{503}}, ""},
		{"http expect 204 got 200", Target{Kind: KindHTTP, Addr: httpAddr, Path: "/ok", ExpectStatus: []int{204}}, ReasonStatus},
		{"http wrong body", Target{Kind: KindHTTP, Addr: httpAddr, Path: "/ok", BodyContains: "nope"}, ReasonBody},
		{"http hang", Target{Kind: KindHTTP, Addr: httpAddr, Path: "/hang", Timeout: 100 * time.Millisecond}, ReasonTimeout},
		{"http refused", Target{Kind: KindHTTP, Addr: closed}, ReasonRefused},
		{"http reset", Target{Kind: KindHTTP, Addr: reset}, ReasonReset},
		{"https skip verify", Target{Kind: KindHTTPS, Addr: tlsAddr, Path: "/ok", InsecureSkipVerify: true}, ""},
		{"https untrusted", Target{Kind: KindHTTPS, Addr: tlsAddr, Path: "/ok"}, ReasonOther},
		{"tcp accept", Target{Kind: KindTCP, Addr: tcpLn.Addr().String()}, ""},
		{"tcp refused", Target{Kind: KindTCP, Addr: closed}, ReasonRefused},
		{"dns noerror", Target{Kind: KindDNS, Addr: dnsAddr, QName: "ok"}, ""},
		{"dns servfail", Target{Kind: KindDNS, Addr: dnsAddr, QName: "broken."}, ReasonDNSRcode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.target.ID = "t"
			if tc.target.Timeout == 0 {
				tc.target.Timeout = 2 * time.Second
			}
			tg, err := tc.target.Validate()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), tg.Timeout)
			defer cancel()
			rtt, err := probe(ctx, tg)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("probe: %v", err)
				}
				if rtt <= 0 {
					t.Errorf("rtt = %v, want > 0", rtt)
				}
				return
			}
			if err == nil {
				t.Fatalf("probe succeeded, want %s", tc.reason)
			}
			var pe *ProbeError
			if !errors.As(err, &pe) {
				t.Errorf("error %v is not a *ProbeError", err)
			}
			if got := classify(err); got != tc.reason {
				t.Errorf("reason = %s (%v), want %s", got, err, tc.reason)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{context.DeadlineExceeded, ReasonTimeout},
		{&net.OpError{Op: "dial", Err: errors.New("x")}, ReasonOther},
		{&ProbeError{ReasonBody, errors.New("x")}, ReasonBody},
		{errors.New("boom"), ReasonOther},
	}
	for _, tc := range tests {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
