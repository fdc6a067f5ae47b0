package dnsserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestProvisionTCPLimits(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		in                    Config
		wantMax, wantPrefix   int
		wantErrField, wantErr string
	}{
		{name: "20000 descriptors", in: Config{fileLimit: 20000}, wantMax: 15000, wantPrefix: 1500},
		{name: "1024 descriptors", in: Config{fileLimit: 1024}, wantMax: 768, wantPrefix: 76},
		{name: "few descriptors keep half", in: Config{fileLimit: 300}, wantMax: 150, wantPrefix: 15},
		{name: "many descriptors, memory caps", in: Config{fileLimit: 1 << 20}, wantMax: DefaultTCPMaxConnections, wantPrefix: DefaultTCPMaxConnections / 10},
		{name: "unknown limit", in: Config{fileLimit: -1}, wantMax: tcpLimitUnknown, wantPrefix: tcpLimitUnknown / 10},
		{name: "set by hand", in: Config{fileLimit: 20000, TCPMaxConnections: 50, TCPMaxConnectionsPerPrefix: 50}, wantMax: 50, wantPrefix: 50},
		{name: "by hand up to the minimum reserve", in: Config{fileLimit: 20000, TCPMaxConnections: 19744}, wantMax: 19744, wantPrefix: 1974},
		{name: "by hand past the minimum reserve", in: Config{fileLimit: 20000, TCPMaxConnections: 19745},
			wantErrField: "TCPMaxConnections", wantErr: "leaves fewer than 256 of the process's 20000 file descriptors"},
		{name: "per prefix over the cap", in: Config{fileLimit: 20000, TCPMaxConnections: 10, TCPMaxConnectionsPerPrefix: 11},
			wantErrField: "TCPMaxConnectionsPerPrefix", wantErr: "11 is more than the 10"},
		{name: "negative", in: Config{fileLimit: 20000, TCPMaxConnections: -1}, wantErrField: "TCPMaxConnections", wantErr: "negative"},
		{name: "v4 prefix", in: Config{fileLimit: 20000, TCPPrefixV4: 33}, wantErrField: "TCPPrefixV4", wantErr: "33 is not a prefix length"},
		{name: "v6 prefix", in: Config{fileLimit: 20000, TCPPrefixV6: -1}, wantErrField: "TCPPrefixV6", wantErr: "-1 is not a prefix length"},
		{name: "read timeout", in: Config{fileLimit: 20000, TCPReadTimeout: -time.Second}, wantErrField: "TCPReadTimeout", wantErr: "negative"},
		{name: "grace", in: Config{fileLimit: 20000, ShutdownGrace: -time.Second}, wantErrField: "ShutdownGrace", wantErr: "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Listen = []string{"127.0.0.1:0"}
			got, err := tc.in.Provision()
			if tc.wantErr != "" {
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Field != tc.wantErrField || !strings.Contains(ce.Problem, tc.wantErr) {
					t.Fatalf("error %v, want %s: …%s…", err, tc.wantErrField, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.TCPMaxConnections != tc.wantMax || got.TCPMaxConnectionsPerPrefix != tc.wantPrefix {
				t.Errorf("got %d, %d per prefix; want %d, %d", got.TCPMaxConnections, got.TCPMaxConnectionsPerPrefix, tc.wantMax, tc.wantPrefix)
			}
			if got.TCPReadTimeout != DefaultTCPReadTimeout || got.TCPPrefixV4 != 24 || got.TCPPrefixV6 != 56 || got.ShutdownGrace != DefaultShutdownGrace {
				t.Errorf("defaults: %+v", got)
			}
			again, err := got.Provision()
			if err != nil || again.TCPMaxConnections != got.TCPMaxConnections {
				t.Errorf("Provision is not idempotent: %v, %d", err, again.TCPMaxConnections)
			}
		})
	}
}

func TestFileLimitRead(t *testing.T) {
	if n := fileLimit(); n <= 0 {
		t.Skipf("no descriptor limit here (%d)", n)
	}
	var cfg Config
	cfg.provisionTCP(func(string, string, ...any) {})
	if cfg.fileLimit != fileLimit() || cfg.TCPMaxConnections <= 0 || cfg.TCPMaxConnections > cfg.fileLimit {
		t.Errorf("limit %d gave %d connections", cfg.fileLimit, cfg.TCPMaxConnections)
	}
}

// frame is m packed with its TCP length prefix.
func frame(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	p, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(p))), p...)
}

// readFrame reads one reply from c within limit.
func readFrame(c net.Conn, limit time.Duration) (*dns.Msg, error) {
	c.SetReadDeadline(time.Now().Add(limit))
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	return m, m.Unpack(buf)
}

// dialFrom connects to addr over TCP from the loopback address src.
func dialFrom(t testing.TB, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the server closes c within limit, reading
// and discarding anything it sends first.
func closedWithin(c net.Conn, limit time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func askTCP(t testing.TB, c net.Conn, id uint16) {
	t.Helper()
	q := query("www.example.test.", dns.TypeA)
	q.Id = id
	if _, err := c.Write(frame(t, q)); err != nil {
		t.Fatal(err)
	}
	r, err := readFrame(c, 2*time.Second)
	if err != nil || r.Id != id || len(r.Answer) != 1 {
		t.Fatalf("reply %v, %v", r, err)
	}
}

func TestTCPPipelinedInOrder(t *testing.T) {
	s := newTestServer(t, Config{})
	addr := startServer(t, s)[0]
	c := dialFrom(t, "127.0.0.1", addr)
	var batch []byte
	const n = 50
	for i := range n {
		q := query("www.example.test.", dns.TypeA)
		if i%5 == 4 {
			q = query("nope.example.test.", dns.TypeA)
		}
		q.Id = uint16(1000 + i)
		batch = append(batch, frame(t, q)...)
		if i == 10 {
			batch = append(batch, 0, 0) // an empty frame between: skipped
		}
	}
	if _, err := c.Write(batch); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r, err := readFrame(c, 2*time.Second)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		want := dns.RcodeSuccess
		if i%5 == 4 {
			want = dns.RcodeNameError
		}
		if r.Id != uint16(1000+i) || r.Rcode != want {
			t.Fatalf("reply %d: id %d rcode %d, want id %d rcode %d", i, r.Id, r.Rcode, 1000+i, want)
		}
	}
}

// TestTCPIdleTimeout: a connection that sends only empty frames, or
// responses, or junk shorter than a header, is closed once the idle
// timeout after its last query is over: none of them resets it.
func TestTCPIdleNotResetByNonQueries(t *testing.T) {
	const idle = 300 * time.Millisecond
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"empty frame", []byte{0, 0}},
		{"short junk", []byte{0, 3, 1, 2, 3}},
		{"a response", func() []byte {
			r := query("www.example.test.", dns.TypeA)
			r.Response = true
			return frame(t, r)
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, Config{TCPIdleTimeout: idle, TCPReadTimeout: time.Second})
			addr := startServer(t, s)[0]
			c := dialFrom(t, "127.0.0.1", addr)
			askTCP(t, c, 1)
			start := time.Now()
			tick := time.NewTicker(idle / 4)
			defer tick.Stop()
			closed := make(chan time.Duration, 1)
			go func() {
				closedWithin(c, 5*time.Second)
				closed <- time.Since(start)
			}()
			for {
				select {
				case took := <-closed:
					// The server's clock started as it answered, a little
					// before start.
					if took < idle/2 || took > idle+700*time.Millisecond {
						t.Errorf("closed after %v, want about %v", took, idle)
					}
					if n := metricValue(t, s.tcpMetrics.timedOut.WithLabelValues("idle")); n != 1 {
						t.Errorf("idle timeouts counted %v, want 1", n)
					}
					return
				case <-tick.C:
					c.Write(tc.frame)
				}
			}
		})
	}
}

// TestTCPIdleTimeoutRestartsWithQueries: a query answered moves the idle
// deadline.
func TestTCPIdleTimeoutRestartsWithQueries(t *testing.T) {
	const idle = 300 * time.Millisecond
	s := newTestServer(t, Config{TCPIdleTimeout: idle})
	addr := startServer(t, s)[0]
	c := dialFrom(t, "127.0.0.1", addr)
	tick := time.NewTicker(idle / 3)
	defer tick.Stop()
	for i := range 6 { // twice the idle timeout
		<-tick.C
		askTCP(t, c, uint16(i))
	}
	if n := metricValue(t, s.tcpMetrics.timedOut.WithLabelValues("idle")); n != 0 {
		t.Errorf("idle timeouts %v, want 0", n)
	}
}

// TestTCPTrickle: a query sent a byte at a time must still come whole
// within the read timeout, however soon each byte follows the last.
func TestTCPTrickle(t *testing.T) {
	const read = 300 * time.Millisecond
	s := newTestServer(t, Config{TCPIdleTimeout: 10 * time.Second, TCPReadTimeout: read})
	addr := startServer(t, s)[0]
	c := dialFrom(t, "127.0.0.1", addr)
	askTCP(t, c, 1)
	f := frame(t, query("www.example.test.", dns.TypeA))
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		closedWithin(c, 5*time.Second)
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(read / 5)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case took := <-closed:
			if took < read/2 || took > read+700*time.Millisecond {
				t.Errorf("closed after %v, want about %v", took, read)
			}
			if n := metricValue(t, s.tcpMetrics.timedOut.WithLabelValues("read")); n != 1 {
				t.Errorf("read timeouts %v, want 1", n)
			}
			return
		case <-tick.C:
			if i < len(f)-1 {
				c.Write(f[i : i+1])
			}
		}
	}
}

// TestTCPFirstQueryDeadline: a connection that sends nothing is closed
// after the read or the idle timeout, whichever is shorter.
func TestTCPFirstQueryDeadline(t *testing.T) {
	for _, tc := range []struct {
		name       string
		idle, read time.Duration
	}{
		{"read timeout shorter", 10 * time.Second, 200 * time.Millisecond},
		{"idle timeout shorter", 200 * time.Millisecond, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, Config{TCPIdleTimeout: tc.idle, TCPReadTimeout: tc.read})
			addr := startServer(t, s)[0]
			c := dialFrom(t, "127.0.0.1", addr)
			start := time.Now()
			if !closedWithin(c, 3*time.Second) {
				t.Fatal("a silent connection stayed open")
			}
			if took := time.Since(start); took > 1500*time.Millisecond {
				t.Errorf("closed after %v", took)
			}
		})
	}
}

// TestTCPConnectionLimits: over its network's limit a connection is
// accepted and closed at once, and counted; at the global limit a new one
// takes the place of the connection that has gone longest without a
// query, and those that asked since keep theirs.
func TestTCPConnectionLimits(t *testing.T) {
	s := newTestServer(t, Config{TCPMaxConnections: 3, TCPMaxConnectionsPerPrefix: 2})
	addr := startServer(t, s)[0]
	m := s.tcpMetrics
	oldest := dialFrom(t, "127.0.0.1", addr)
	askTCP(t, oldest, 1)
	second := dialFrom(t, "127.0.0.2", addr)
	askTCP(t, second, 2)
	// 127.0.0.0/24 has its two.
	if c := dialFrom(t, "127.0.0.3", addr); !closedWithin(c, 2*time.Second) {
		t.Error("a connection over its network's limit was left open")
	}
	if n := metricValue(t, m.refused.WithLabelValues("per_prefix")); n != 1 {
		t.Errorf("refused per_prefix: %v, want 1", n)
	}
	third := dialFrom(t, "127.0.1.1", addr) // another /24: the third in all
	askTCP(t, third, 3)
	askTCP(t, second, 4) // second and third have asked since oldest did
	if n := metricValue(t, m.open); n != 3 {
		t.Errorf("open %v, want 3", n)
	}
	// At the global limit: the new connection is served, oldest goes.
	askTCP(t, dialFrom(t, "127.0.2.1", addr), 5)
	if !closedWithin(oldest, 2*time.Second) {
		t.Error("the least active connection was not closed to make room")
	}
	askTCP(t, second, 6)
	askTCP(t, third, 7)
	if n := metricValue(t, m.evicted); n != 1 {
		t.Errorf("evicted %v, want 1", n)
	}
	if n := metricValue(t, m.accepted); n != 4 {
		t.Errorf("accepted %v, want 4", n)
	}
	if n := metricValue(t, m.refused.WithLabelValues("global")); n != 0 {
		t.Errorf("refused global: %v, want 0", n)
	}
	deadline := time.Now().Add(2 * time.Second)
	for metricValue(t, m.open) != 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // the evicted one's goroutine ends on its own time
	}
	if n := metricValue(t, m.open); n != 3 {
		t.Errorf("open %v, want 3", n)
	}
}

func TestTCPKeepalive(t *testing.T) {
	s := newTestServer(t, Config{TCPIdleTimeout: 7 * time.Second})
	addr := startServer(t, s)[0]
	keepalive := func(m *dns.Msg) {
		m.SetEdns0(1232, false)
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})
	}
	for _, tc := range []struct {
		name  string
		proto string
		opts  []func(*dns.Msg)
		want  uint16 // 0: no option in the reply
	}{
		{"tcp asked", "tcp", []func(*dns.Msg){keepalive}, 70},
		{"tcp not asked", "tcp", []func(*dns.Msg){withEDNS(1232, false)}, 0},
		{"udp asked: ignored", "udp", []func(*dns.Msg){keepalive}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := exchange(t, tc.proto, addr, query("www.example.test.", dns.TypeA, tc.opts...))
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Fatalf("reply %v", r)
			}
			var got uint16
			var seen bool
			if opt := r.IsEdns0(); opt != nil {
				for _, o := range opt.Option {
					if k, ok := o.(*dns.EDNS0_TCP_KEEPALIVE); ok {
						got, seen = k.Timeout, true
					}
				}
			}
			if got != tc.want || seen != (tc.want != 0) {
				t.Errorf("keepalive %d (present %v), want %d", got, seen, tc.want)
			}
		})
	}
}

// TestTCPFormErrAsMiekg: a frame acceptQuery rejects, or that does not
// decode, gets FORMERR echoing the ID, as miekg/dns's server answered.
func TestTCPFormErr(t *testing.T) {
	s := newTestServer(t, Config{})
	addr := startServer(t, s)[0]
	q := query("www.example.test.", dns.TypeA)
	q.Id = 77
	p, _ := q.Pack()
	twoQuestions := append([]byte(nil), p...)
	twoQuestions[5] = 2
	for name, packet := range map[string][]byte{"two questions": twoQuestions, "cut short": p[:len(p)-3]} {
		t.Run(name, func(t *testing.T) {
			r := new(dns.Msg)
			if err := r.Unpack(rawExchange(t, "tcp", addr, packet)); err != nil {
				t.Fatal(err)
			}
			if r.Id != 77 || r.Rcode != dns.RcodeFormatError || !r.Response {
				t.Errorf("reply %v", r)
			}
		})
	}
}

// TestShutdownAnswersQueuedUDP: queries queued in the UDP socket when the
// server is told to stop are answered, those the fast path answers and
// those it hands to the general path: here all of them were sent before
// Serve started, with its context already done.
func TestShutdownAnswersQueuedUDP(t *testing.T) {
	s := newTestServer(t, Config{ShutdownGrace: 5 * time.Second})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := s.Addrs()[0]
	udp, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	const n = 100 // well within the default receive buffer
	replies := make(chan int, 1)
	go func() {
		got := map[uint16]bool{}
		buf := make([]byte, 4096)
		udp.SetReadDeadline(time.Now().Add(10 * time.Second))
		for len(got) < n {
			k, err := udp.Read(buf)
			if err != nil {
				break
			}
			r := new(dns.Msg)
			if r.Unpack(buf[:k]) == nil {
				got[r.Id] = true
			}
		}
		replies <- len(got)
	}()
	for i := range n {
		q := query("www.example.test.", dns.TypeA)
		if i%4 == 3 {
			q.Question[0].Qclass = dns.ClassCHAOS // not the fast path's: handed off
		}
		q.Id = uint16(i)
		p, _ := q.Pack()
		if _, err := udp.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Serve(ctx) }()
	if err := dnstest.Receive(t, done, 10*time.Second, "Serve to return"); err != nil {
		t.Errorf("Serve: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v, past its grace period", took)
	}
	if got := dnstest.Receive(t, replies, 15*time.Second, "UDP replies"); got != n {
		t.Errorf("%d of %d queued queries answered", got, n)
	}
}

// TestShutdownAnswersPipelinedTCP: queries pipelined on an open
// connection when the server is told to stop are answered, then the
// connection closes.
func TestShutdownAnswersPipelinedTCP(t *testing.T) {
	s := newTestServer(t, Config{ShutdownGrace: 5 * time.Second, TCPIdleTimeout: time.Minute})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := s.Addrs()[0]
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	tcp := dialFrom(t, "127.0.0.1", addr)
	askTCP(t, tcp, 60000)
	// An idle connection, waiting in a read, is closed at once: shutdown
	// waits for neither its idle timeout nor the grace period.
	idle := dialFrom(t, "127.0.0.2", addr)
	askTCP(t, idle, 60001)
	const n = 2000
	var batch []byte
	for i := range n {
		q := query("www.example.test.", dns.TypeA)
		q.Id = uint16(i)
		batch = append(batch, frame(t, q)...)
	}
	// The replies are read only after the cancel: the server fills the
	// socket's buffers and waits to write, with most queries unread.
	if _, err := tcp.Write(batch); err != nil {
		t.Fatal(err)
	}
	cancel()
	got := 0
	for ; got < n; got++ {
		r, err := readFrame(tcp, 10*time.Second)
		if err != nil || r.Id != uint16(got) {
			break
		}
	}
	if got != n {
		t.Errorf("%d of %d pipelined queries answered", got, n)
	}
	if !closedWithin(tcp, 2*time.Second) {
		t.Error("connection left open after shutdown")
	}
	if !closedWithin(idle, 2*time.Second) {
		t.Error("idle connection left open after shutdown")
	}
	if err := dnstest.Receive(t, done, 2*time.Second, "Serve to return"); err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// metricValue reads a counter or a gauge.
func metricValue(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Gauge != nil {
		return m.GetGauge().GetValue()
	}
	return m.GetCounter().GetValue()
}

// FuzzTCPStream serves arbitrary bytes as one TCP connection's stream,
// which then ends. Property: the connection answers, in order, no more
// messages than the stream held whole frames of at least a header, each
// reply a whole DNS response with the ID of one of them, and serve
// returns once the stream is read; nothing panics. The connection is in
// memory (streamConn): a socket per input ran out of loopback ports.
func FuzzTCPStream(f *testing.F) {
	q := func(name string, qtype uint16, opts ...func(*dns.Msg)) []byte {
		return frame(f, query(name, qtype, opts...))
	}
	f.Add(q("www.example.test.", dns.TypeA))                                                 // one query
	f.Add(append(q("www.example.test.", dns.TypeA), q("big.example.test.", dns.TypeTXT)...)) // pipelined
	f.Add(append([]byte{0, 0, 0, 0}, q("www.example.test.", dns.TypeA)...))                  // empty frames first
	f.Add(q("www.example.test.", dns.TypeA)[:20])                                            // cut short
	f.Add([]byte{0xff, 0xff, 1, 2, 3})                                                       // a frame longer than sent
	f.Add([]byte{0, 12, 0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0})                              // a bare response header
	f.Add([]byte{0, 12, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0})                                 // two questions: FORMERR
	f.Add([]byte{0})                                                                         // half a length
	s := newTestServer(f, Config{})
	ts := newTCPServer(s)
	f.Fuzz(func(t *testing.T, stream []byte) {
		var ids []uint16 // of whole frames with a header, in order
		for rest := stream; len(rest) >= 2; {
			n := int(binary.BigEndian.Uint16(rest))
			if len(rest) < 2+n {
				break
			}
			if n >= 12 {
				ids = append(ids, binary.BigEndian.Uint16(rest[2:]))
			}
			rest = rest[2+n:]
		}
		c := &streamConn{in: bytes.NewReader(stream)}
		tc, refused := ts.admit(c, false)
		if tc == nil {
			t.Fatalf("refused: %s", refused)
		}
		tc.serve()
		out, next := c.out.Bytes(), 0
		for len(out) > 0 {
			if len(out) < 2 || len(out) < 2+int(binary.BigEndian.Uint16(out)) {
				t.Fatalf("a reply cut short: %x", out)
			}
			r := new(dns.Msg)
			if err := r.Unpack(out[2 : 2+int(binary.BigEndian.Uint16(out))]); err != nil {
				t.Fatalf("reply does not decode: %v", err)
			}
			out = out[2+int(binary.BigEndian.Uint16(out)):]
			for next < len(ids) && ids[next] != r.Id {
				next++
			}
			if next == len(ids) || !r.Response {
				t.Fatalf("reply %v: not a response to one of the frames %v, in order", r, ids)
			}
			next++
		}
	})
}

// streamConn is a TCP connection in memory: reads take in, then EOF;
// writes go to out.
type streamConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *streamConn) Read(b []byte) (int, error)  { return c.in.Read(b) }
func (c *streamConn) Write(b []byte) (int, error) { return c.out.Write(b) }
func (c *streamConn) Close() error                { return nil }
func (c *streamConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (c *streamConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// emfileListener fails every Accept as a process out of descriptors does,
// counting the calls, until it is closed.
type emfileListener struct {
	calls  atomic.Int32
	closed chan struct{}
}

func (l *emfileListener) Accept() (net.Conn, error) {
	l.calls.Add(1)
	select {
	case <-l.closed:
		return nil, net.ErrClosed
	default:
	}
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}
func (l *emfileListener) Close() error   { close(l.closed); return nil }
func (l *emfileListener) Addr() net.Addr { return &net.TCPAddr{} }

// TestTCPAcceptBacksOff: an Accept failing with EMFILE is retried after a
// pause that doubles (5 ms, 10 ms, …), not at once, and each failure is
// counted; shutdown ends the pause.
func TestTCPAcceptBacksOff(t *testing.T) {
	s := newTestServer(t, Config{})
	ts := newTCPServer(s)
	l := &emfileListener{closed: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- ts.serve(l) }()
	time.Sleep(300 * time.Millisecond) // pauses of 5+10+20+40+80 ms fit; a spinning loop makes thousands of calls
	calls := l.calls.Load()
	if calls < 3 || calls > 8 {
		t.Errorf("%d accepts in 300 ms, want the 5 or 6 that doubling pauses allow", calls)
	}
	if n := metricValue(t, ts.m.acceptErrors); n != float64(calls) {
		t.Errorf("accept errors counted %v, want %d", n, calls)
	}
	ts.shutdown(l)
	if err := dnstest.Receive(t, done, 2*time.Second, "the accept loop to end"); err != nil {
		t.Errorf("serve: %v", err)
	}
}

// TestTCPBufferFollowsWhatArrives: a frame's buffer grows with the bytes
// that came, not to the length its first two bytes declare, so a client
// that sends a length of 65535 and trickles holds little memory; a whole
// frame, however it is cut, is read intact, and the buffer shrinks back
// after it.
func TestTCPBufferFollowsWhatArrives(t *testing.T) {
	msg := make([]byte, 40000)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
	frame = append(frame, msg...)
	small := []byte{0, 3, 'a', 'b', 'c'}
	stream := append(append(append([]byte(nil), small...), frame...), small...)

	for _, chunk := range []int{1, 2, 100, 511, 512, 4096, len(stream)} {
		c := &tcpConn{buf: make([]byte, tcpBufSize)}
		var got [][]byte
		maxBuf := 0
		for off := 0; off < len(stream) || c.end > c.start; {
			if m, ok := c.nextFrame(); ok {
				got = append(got, append([]byte(nil), m...))
				continue
			}
			if off == len(stream) {
				break
			}
			c.makeRoom()
			n := copy(c.buf[c.end:], stream[off:min(off+chunk, len(stream))])
			if n == 0 {
				t.Fatalf("chunk %d: no room to read at offset %d (buffer %d, start %d, end %d)", chunk, off, len(c.buf), c.start, c.end)
			}
			c.end += n
			off += n
			maxBuf = max(maxBuf, len(c.buf))
			// Never more than twice what has arrived of the frame being
			// read, nor less than the smallest buffer.
			if have := c.end - c.start; len(c.buf) > max(tcpBufSize, 2*have) {
				t.Fatalf("chunk %d: a %d-byte buffer for %d bytes received", chunk, len(c.buf), have)
			}
		}
		if len(got) != 3 || string(got[0]) != "abc" || !bytes.Equal(got[1], msg) || string(got[2]) != "abc" {
			t.Fatalf("chunk %d: frames read wrong: %d of them", chunk, len(got))
		}
		c.makeRoom()
		if len(c.buf) != tcpBufSize || maxBuf < len(frame) {
			t.Errorf("chunk %d: buffer %d after the large frame (largest %d), want back to %d", chunk, len(c.buf), maxBuf, tcpBufSize)
		}
	}

	// Only the length: the buffer stays at its smallest.
	c := &tcpConn{buf: make([]byte, tcpBufSize)}
	c.makeRoom()
	c.end += copy(c.buf, []byte{0xff, 0xff})
	c.makeRoom()
	if len(c.buf) != tcpBufSize {
		t.Errorf("a declared length of 65535 with nothing after it grew the buffer to %d", len(c.buf))
	}
}

// failingWriteConn is a streamConn whose writes fail after the first.
type failingWriteConn struct {
	streamConn
	writes int
}

func (c *failingWriteConn) Write(b []byte) (int, error) {
	c.writes++
	if c.writes > 1 {
		return len(b) / 2, errors.New("write: broken pipe")
	}
	return c.streamConn.Write(b)
}

// TestTCPWriteFailureEndsConnection: a reply that cannot be written whole
// (a timeout, a reset) may have sent part of its frame, so the connection
// ends there: the queries pipelined after it are not answered into a
// corrupt stream.
func TestTCPWriteFailureEndsConnection(t *testing.T) {
	s := newTestServer(t, Config{})
	ts := newTCPServer(s)
	var stream []byte
	for range 4 {
		stream = append(stream, frame(t, query("www.example.test.", dns.TypeA))...)
	}
	c := &failingWriteConn{streamConn: streamConn{in: bytes.NewReader(stream)}}
	tc, refused := ts.admit(c, false)
	if tc == nil {
		t.Fatalf("refused: %s", refused)
	}
	tc.serve()
	if c.writes != 2 {
		t.Errorf("%d writes, want 2: the first answered, the second failed, no more after it", c.writes)
	}
}
