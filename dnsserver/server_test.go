package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/steer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// startServer runs s on its configured loopback addresses until the test ends.
func startServer(t *testing.T, s *Server) []string {
	t.Helper()
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := dnstest.Receive(t, done, 10*time.Second, "Serve to return"); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s.Addrs()
}

func exchange(t *testing.T, net, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: net, Timeout: 2 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s exchange with %s: %v", net, addr, err)
	}
	return r
}

func TestServeUDPAndTCP(t *testing.T) {
	cfg := Config{Listen: []string{"127.0.0.1:0"}}
	if l, err := net.Listen("tcp", "[::1]:0"); err == nil {
		l.Close()
		cfg.Listen = append(cfg.Listen, "[::1]:0")
	}
	s := newTestServer(t, cfg)
	addrs := startServer(t, s)
	if len(addrs) != len(cfg.Listen) {
		t.Fatalf("bound %v for %v", addrs, cfg.Listen)
	}
	for _, addr := range addrs {
		for _, proto := range []string{"udp", "tcp"} {
			t.Run(proto+" "+addr, func(t *testing.T) {
				r := exchange(t, proto, addr, query("WWW.example.test.", dns.TypeA))
				if !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.10" {
					t.Errorf("reply %v", r)
				}
				if r.Question[0].Name != "WWW.example.test." {
					t.Errorf("question %q not echoed as asked", r.Question[0].Name)
				}
			})
		}
	}
}

func TestTruncatedOverUDPFullOverTCP(t *testing.T) {
	addr := startServer(t, newTestServer(t, Config{}))[0]
	for _, tc := range []struct {
		name string
		req  *dns.Msg
	}{
		{"no EDNS", query("big.example.test.", dns.TypeTXT)},
		{"EDNS 4096", query("big.example.test.", dns.TypeTXT, withEDNS(4096, false))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			udp := exchange(t, "udp", addr, tc.req)
			if !udp.Truncated || len(udp.Answer) != 0 {
				t.Errorf("UDP: TC %v with %d answers, want TC and none", udp.Truncated, len(udp.Answer))
			}
			tcp := exchange(t, "tcp", addr, tc.req)
			if tcp.Truncated || len(tcp.Answer) != 40 {
				t.Errorf("TCP: TC %v with %d answers, want the whole RRset of 40", tcp.Truncated, len(tcp.Answer))
			}
		})
	}
}

// TestTCPPipelining sends several queries on one connection before reading
// any reply (RFC 7766 §6.2.1.1) and expects every one answered.
func TestTCPPipelining(t *testing.T) {
	addr := startServer(t, newTestServer(t, Config{}))[0]
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	names := []string{"www.example.test.", "mail.example.test.", "nope.example.test.", "sip.example.test."}
	want := map[uint16]string{}
	var batch []byte
	for i, name := range names {
		m := query(name, dns.TypeA)
		m.Id = uint16(1000 + i)
		want[m.Id] = name
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		batch = binary.BigEndian.AppendUint16(batch, uint16(len(b)))
		batch = append(batch, b...)
	}
	if _, err := conn.Write(batch); err != nil {
		t.Fatal(err)
	}
	for range names {
		var l [2]byte
		if _, err := io.ReadFull(conn, l[:]); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(conn, b); err != nil {
			t.Fatal(err)
		}
		var r dns.Msg
		if err := r.Unpack(b); err != nil {
			t.Fatal(err)
		}
		name, ok := want[r.Id]
		if !ok || r.Question[0].Name != name {
			t.Fatalf("reply id %d for %q does not match a query", r.Id, r.Question[0].Name)
		}
		delete(want, r.Id)
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	addr := startServer(t, newTestServer(t, Config{TCPIdleTimeout: 100 * time.Millisecond}))[0]
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// One query, so that the connection is past its first read (which
	// miekg/dns bounds by the read timeout), then silence.
	b, err := query("www.example.test.", dns.TypeA).Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(binary.BigEndian.AppendUint16(nil, uint16(len(b)))); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, binary.BigEndian.Uint16(l[:]))); err != nil {
		t.Fatal(err)
	}
	// The server must close the idle connection on its own, well before
	// the deadline: after 100 ms.
	idleSince := time.Now()
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("idle connection still open after 5 s with a 100 ms idle timeout")
	}
	if err == nil {
		t.Fatal("read data from an idle connection")
	}
	if waited := time.Since(idleSince); waited > 2*time.Second {
		t.Errorf("closed after %v idle, want about 100 ms (before the 2 s read timeout)", waited)
	}
}

// TestGarbageIsSurvived sends undecodable packets and checks that the
// server answers FORMERR or nothing, and keeps serving.
func TestGarbageIsSurvived(t *testing.T) {
	addr := startServer(t, newTestServer(t, Config{}))[0]
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	valid, _ := query("www.example.test.", dns.TypeA).Pack()
	packets := [][]byte{
		{},         // empty
		{0x12},     // shorter than a header
		valid[:15], // question cut off
		append(append([]byte{}, valid[:12]...), 0xff, 0xff, 0xff),                      // bad name
		{0xab, 0xcd, 0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}, // pointer loop
	}
	for _, p := range packets {
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	// Whatever came back for the garbage must be FORMERR; the valid query
	// sent last must be answered.
	if _, err := conn.Write(valid); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 65535)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no answer to a valid query after garbage: %v", err)
		}
		var r dns.Msg
		if err := r.Unpack(buf[:n]); err != nil {
			t.Fatalf("server sent an undecodable reply: %v", err)
		}
		if r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			return
		}
		if r.Rcode != dns.RcodeFormatError {
			t.Fatalf("reply to garbage has rcode %s, want FORMERR", dns.RcodeToString[r.Rcode])
		}
	}
}

func TestListenErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s := newTestServer(t, Config{Listen: []string{busy.Addr().String()}})
	if err := s.Listen(); err == nil {
		t.Errorf("Listen(%q) succeeded", busy.Addr())
	}
}

func TestConfigProvision(t *testing.T) {
	tests := []struct {
		name  string
		in    Config
		field string // "" when valid
	}{
		{"defaults", Config{Listen: []string{"127.0.0.1:53"}}, ""},
		{"no listen address", Config{}, "Listen"},
		{"no port", Config{Listen: []string{"no-port"}}, "Listen"},
		{"host name", Config{Listen: []string{"localhost:53"}}, "Listen"},
		{"bad port", Config{Listen: []string{"127.0.0.1:70000"}}, "Listen"},
		{"small UDP size", Config{Listen: []string{":53"}, UDPSize: 100}, "UDPSize"},
		{"negative idle timeout", Config{Listen: []string{":53"}, TCPIdleTimeout: -time.Second}, "TCPIdleTimeout"},
		{"negative max queries", Config{Listen: []string{":53"}, TCPMaxQueries: -1}, "TCPMaxQueries"},
		{"steering", Config{Listen: []string{":53"}, Steering: steer.Options{PathInflation: 0.5}}, "Steering.PathInflation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.Provision()
			if tc.field != "" {
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Field != tc.field {
					t.Fatalf("error %v, want one for %s", err, tc.field)
				}
				if _, err := New(tc.in, Deps{Log: zerolog.Nop(), Metrics: prometheus.NewRegistry()}); err == nil {
					t.Errorf("New accepted what Provision refused")
				}
				return
			}
			if err != nil || got.UDPSize != DefaultUDPSize || got.TCPIdleTimeout != DefaultTCPIdleTimeout || got.Steering.PathInflation != steer.DefaultPathInflation {
				t.Fatalf("Provision() = %+v, %v", got, err)
			}
			if again, err := got.Provision(); err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("provisioning twice gave %+v, %v", again, err)
			}
		})
	}
}

func TestSetZonesSwapsAtomically(t *testing.T) {
	s := newTestServer(t, Config{})
	addr := startServer(t, s)[0]
	first := s.Zones()
	s.SetZones(loadTestZones(t))
	if s.Zones() == first {
		t.Fatal("SetZones did not replace the snapshot")
	}
	if r := exchange(t, "udp", addr, query("www.example.test.", dns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("after swap: %v", r)
	}
}

// TestServeUDPWildcard serves on a wildcard address, where the fast path
// sets each reply's source address from the query's packet info, and
// checks that fast, learnt and handed-off answers all arrive.
func TestServeUDPWildcard(t *testing.T) {
	for _, tc := range []struct{ listen, dial string }{{"0.0.0.0:0", "127.0.0.1"}, {"[::]:0", "::1"}} {
		t.Run(tc.listen, func(t *testing.T) {
			if l, err := net.ListenPacket("udp", tc.listen); err != nil {
				t.Skipf("cannot listen on %s: %v", tc.listen, err)
			} else {
				l.Close()
			}
			s := newTestServer(t, Config{Listen: []string{tc.listen}})
			_, port, _ := net.SplitHostPort(startServer(t, s)[0])
			addr := net.JoinHostPort(tc.dial, port)
			for range 3 { // learnt, then from the fast path
				if r := exchange(t, "udp", addr, query("WwW.example.test.", dns.TypeA)); len(r.Answer) != 1 {
					t.Fatalf("reply %v", r)
				}
			}
			notify := query("example.test.", dns.TypeSOA)
			notify.Opcode = dns.OpcodeNotify // handed off to miekg/dns's server
			if r := exchange(t, "udp", addr, notify); r.Rcode != dns.RcodeNotImplemented {
				t.Errorf("NOTIFY got %s, want NOTIMP", dns.RcodeToString[r.Rcode])
			}
		})
	}
}

// TestUDPBurstsAndLulls alternates bursts, which the reader takes in long
// batches with its socket out of the epoll set, and single queries after
// a pause, which it must be woken for: a reader that waited without its
// socket in the set, or that missed a wake-up, leaves a query unanswered.
func TestUDPBurstsAndLulls(t *testing.T) {
	addr := startServer(t, newTestServer(t, Config{}))[0]
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	id := uint16(0)
	send := func(n int) map[uint16]bool {
		want := make(map[uint16]bool, n)
		for range n {
			id++
			q := query("www.example.test.", dns.TypeA)
			q.Id = id
			b, err := q.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write(b); err != nil {
				t.Fatal(err)
			}
			want[id] = true
		}
		return want
	}
	receive := func(want map[uint16]bool) {
		t.Helper()
		if err := conn.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65535)
		for len(want) > 0 {
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("%d queries unanswered: %v", len(want), err)
			}
			var r dns.Msg
			if err := r.Unpack(buf[:n]); err != nil || len(r.Answer) != 1 {
				t.Fatalf("reply %v (%v)", &r, err)
			}
			delete(want, r.Id)
		}
	}
	for round := range 20 {
		// 100 queries and their replies take about 100 KiB of either
		// socket's buffer, half of Linux's default: none is dropped.
		receive(send(100))
		for range 3 {
			// The pause is the point: the reader must have gone to wait
			// before the query comes.
			time.Sleep(time.Duration(round%4) * time.Millisecond)
			receive(send(1))
		}
	}
}
