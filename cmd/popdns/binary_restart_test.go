//go:build slow

package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/reuseport"
)

// TestBinaryRestart restarts popdns under load as an operator upgrading
// it does: process A serves; B starts with the same addresses (its own
// NSID tells its answers apart), takes them over once its zones are
// loaded, and A, sent SIGTERM, answers what its sockets hold and exits.
// Loads of 2,000 queries a second over UDP (a new socket, so a new source
// port, per query) and over TCP (half on ten kept connections, half on a
// new connection per query, which goes through the listeners' accept
// queues) run throughout; every query waits up to a second for its
// answer, and none may go unanswered.
func TestBinaryRestart(t *testing.T) {
	if !reuseport.Supported() {
		t.Skip("no SO_REUSEPORT steering here")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "popdns")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, sub := range []string{"zones", "geo"} {
		if err := os.CopyFS(filepath.Join(dir, sub), os.DirFS(filepath.Join("demo", sub))); err != nil {
			t.Fatal(err)
		}
	}
	dnsAddr, httpAddr := restartAddr(t), restartAddr(t)
	for _, id := range []string{"a", "b"} {
		cfg := fmt.Sprintf(`listen: [%q]
http: %q
zones: zones
state_dir: state
nsid: %q
log: { level: info, format: console }
pops:
  fra: { lat: 50.11, lon: 8.68, country: DE, continent: EU }
  iad: { lat: 38.95, lon: -77.45, country: US, continent: NA }
  sin: { lat: 1.35, lon: 103.82, country: SG, continent: AS }
  gru: { lat: -23.43, lon: -46.47, country: BR, continent: SA }
  syd: { lat: -33.94, lon: 151.18, country: AU, continent: OC }
  nrt: { lat: 35.77, lon: 140.39, country: JP, continent: AS }
geoip: { city: geo/city.mmdb, asn: geo/asn.mmdb }
`, dnsAddr, httpAddr, id)
		if err := os.WriteFile(filepath.Join(dir, id+".yaml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	a := startRestartProc(ctx, t, bin, dir, "a")
	a.waitLine(t, 20*time.Second, "popdns serving")

	rcvbufErrors := udpRcvbufErrors()
	load := newRestartLoad(dnsAddr)
	stopLoad := load.run(ctx)
	pause(t, ctx, time.Second)

	events := func(what string) { t.Logf("%v: %s", time.Since(load.start).Round(time.Millisecond), what) }
	b := startRestartProc(ctx, t, bin, dir, "b")
	events("B started")
	takeover := time.Now()
	b.waitLine(t, 20*time.Second, "took the DNS addresses over", "popdns serving")
	waitReady(t, ctx, httpAddr)
	t.Logf("B took over %v after it started", time.Since(takeover).Round(time.Millisecond))

	events("B ready")
	term := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := a.wait(t, 15*time.Second); err != nil {
		t.Errorf("A exited: %v", err)
	}
	events("A exited")
	t.Logf("A exited %v after SIGTERM", time.Since(term).Round(time.Millisecond))
	pause(t, ctx, time.Second)
	stopLoad()

	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := b.wait(t, 15*time.Second); err != nil {
		t.Errorf("B exited: %v", err)
	}
	// The whole system's count (other processes' too): a datagram
	// dropped because a socket's receive buffer was full.
	t.Logf("UDP receive buffer overflows during the test: %d", udpRcvbufErrors()-rcvbufErrors)
	for _, st := range []*loadStats{&load.udp, &load.tcp} {
		t.Logf("%s; %.0f queries a second over %v", st, float64(st.sent.Load())/load.took.Seconds(), load.took.Round(time.Millisecond))
		if lost := st.sent.Load() - st.answered.Load(); lost != 0 || st.bad.Load() != 0 {
			t.Errorf("%s: %d of %d queries lost, %d bad answers; the lost were sent at %v", st.name, lost, st.sent.Load(), st.bad.Load(), st.lostAt)
		}
		if st.byA.Load() == 0 || st.byB.Load() == 0 {
			t.Errorf("%s: answers from A %d, from B %d; want both", st.name, st.byA.Load(), st.byB.Load())
		}
	}
	if t.Failed() {
		for _, p := range []*proc{a, b} {
			p.mu.Lock()
			t.Logf("%s logged:\n%s", p.cmd.Args[2], strings.Join(p.log, "\n"))
			p.mu.Unlock()
		}
	}
}

// udpRcvbufErrors is Udp RcvbufErrors of /proc/net/snmp, or 0.
func udpRcvbufErrors() int {
	b, _ := os.ReadFile("/proc/net/snmp")
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "Udp: ") {
			continue
		}
		if names == nil {
			names = strings.Fields(line)
			continue
		}
		for i, v := range strings.Fields(line) {
			if i < len(names) && names[i] == "RcvbufErrors" {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
	}
	return 0
}

// restartAddr is a loopback address whose port was free for UDP and TCP.
func restartAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return ""
}

func pause(t *testing.T, ctx context.Context, d time.Duration) {
	t.Helper()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		t.Fatal("test timed out")
	}
}

// waitReady waits until /readyz at addr answers 200.
func waitReady(t *testing.T, ctx context.Context, addr string) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("/readyz at %s never ready: %v", addr, err)
		}
	}
}

// proc is a popdns process whose log lines a test waits for.
type proc struct {
	mu    sync.Mutex // mu guards log
	log   []string   // every line logged, for a failure to show
	cmd   *exec.Cmd
	lines chan string
	done  chan error
}

func startRestartProc(ctx context.Context, t *testing.T, bin, dir, id string) *proc {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "-config", id+".yaml")
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 1000), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log = append(p.log, sc.Text())
			p.mu.Unlock()
			select {
			case p.lines <- id + ": " + sc.Text():
			default:
			}
		}
		io.Copy(io.Discard, stderr)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return p
}

// waitLine waits for a log line containing each of want, in any order.
func (p *proc) waitLine(t *testing.T, limit time.Duration, want ...string) {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	s := strings.Join(want, `" and "`)
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, "ERR") || strings.Contains(l, "WRN") {
				t.Log(l)
			}
			want = slices.DeleteFunc(want, func(w string) bool { return strings.Contains(l, w) })
			if len(want) == 0 {
				return
			}
		case err := <-p.done:
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Fatalf("popdns exited (%v) before logging %q:\n%s", err, s, strings.Join(p.log, "\n"))
		case <-timer.C:
			t.Fatalf("popdns logged no %q within %v", s, limit)
		}
	}
}

// wait waits for the process to exit and returns how it did.
func (p *proc) wait(t *testing.T, limit time.Duration) error {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, "ERR") || strings.Contains(l, "WRN") {
				t.Log(l)
			}
		case err := <-p.done:
			return err
		case <-timer.C:
			return fmt.Errorf("still running %v after SIGTERM", limit)
		}
	}
}

// loadStats counts one transport's queries.
type loadStats struct {
	name                string
	sent, answered, bad atomic.Int64
	byA, byB, retried   atomic.Int64
	maxLatency          atomic.Int64 // nanoseconds
	firstErrMu          sync.Mutex   // firstErrMu guards the fields below
	firstErr            error
	lostAt              []time.Duration // when each lost query was sent, from the start of the load
}

func (s *loadStats) String() string {
	sent, answered := s.sent.Load(), s.answered.Load()
	return fmt.Sprintf("%s: sent %d, answered %d (A %d, B %d), lost %d, bad %d, retried on a new connection %d, max latency %v, first error %v",
		s.name, sent, answered, s.byA.Load(), s.byB.Load(), sent-answered, s.bad.Load(), s.retried.Load(),
		time.Duration(s.maxLatency.Load()).Round(time.Microsecond), s.firstErr)
}

func (s *loadStats) fail(err error) {
	s.firstErrMu.Lock()
	if s.firstErr == nil {
		s.firstErr = err
	}
	s.firstErrMu.Unlock()
}

// lose records that the query sent at sent went unanswered.
func (s *loadStats) lose(sent time.Duration, err error) {
	s.fail(err)
	s.firstErrMu.Lock()
	s.lostAt = append(s.lostAt, sent)
	s.firstErrMu.Unlock()
}

// answer counts a reply that came after took.
func (s *loadStats) answer(r *dns.Msg, took time.Duration) {
	s.answered.Add(1)
	for {
		old := s.maxLatency.Load()
		if int64(took) <= old || s.maxLatency.CompareAndSwap(old, int64(took)) {
			break
		}
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		s.bad.Add(1)
		s.fail(fmt.Errorf("reply %s with %d answers", dns.RcodeToString[r.Rcode], len(r.Answer)))
	}
	switch restartNSID(r) {
	case "a":
		s.byA.Add(1)
	case "b":
		s.byB.Add(1)
	}
}

func restartNSID(r *dns.Msg) string {
	if opt := r.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if n, ok := o.(*dns.EDNS0_NSID); ok {
				b := make([]byte, len(n.Nsid)/2)
				fmt.Sscanf(n.Nsid, "%x", &b)
				return string(b)
			}
		}
	}
	return ""
}

// restartLoad sends 2,000 UDP and 2,000 TCP queries a second to addr.
type restartLoad struct {
	start    time.Time
	took     time.Duration // from the start to the last query sent
	addr     string
	udp, tcp loadStats
	id       atomic.Uint32
}

func newRestartLoad(addr string) *restartLoad {
	l := &restartLoad{addr: addr}
	l.udp.name, l.tcp.name = "UDP", "TCP"
	return l
}

const (
	restartRate    = 2000 // queries a second, per transport
	restartTimeout = time.Second
	restartTick    = 10 * time.Millisecond
	restartConns   = 10 // kept TCP connections, which carry half of the TCP load
)

func (l *restartLoad) query() *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion("www.example.test.", dns.TypeA)
	q.Id = uint16(l.id.Add(1))
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	return q
}

// run starts the load; the function it returns stops it and waits until
// every query sent has its answer or has timed out.
func (l *restartLoad) run(ctx context.Context) func() {
	ctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	l.start = time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(restartTick)
		defer tick.Stop()
		var udp, tcp int
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			// As many as are due since the start: a late tick catches up.
			for ; udp < due(l.start, restartRate); udp++ {
				wg.Add(1)
				go func() { defer wg.Done(); l.udpQuery() }()
			}
			for ; tcp < due(l.start, restartRate/2); tcp++ {
				wg.Add(1)
				go func() { defer wg.Done(); l.tcpQuery(nil) }()
			}
		}
	}()
	for range restartConns {
		wg.Add(1)
		go func() { defer wg.Done(); l.keptConn(ctx, restartRate/2/restartConns) }()
	}
	return func() {
		stop()
		l.took = time.Since(l.start)
		wg.Wait()
	}
}

// udpQuery sends one query from a new socket and waits for its answer.
func (l *restartLoad) udpQuery() {
	q := l.query()
	c, err := net.Dial("udp", l.addr)
	if err != nil {
		l.udp.fail(err)
		return
	}
	defer c.Close()
	p, _ := q.Pack()
	start := time.Now()
	l.udp.sent.Add(1)
	if _, err := c.Write(p); err != nil {
		l.udp.fail(err)
		return
	}
	c.SetReadDeadline(start.Add(restartTimeout))
	buf := make([]byte, 1232)
	for {
		n, err := c.Read(buf)
		if err != nil {
			l.udp.lose(start.Sub(l.start), err)
			return
		}
		r := new(dns.Msg)
		if r.Unpack(buf[:n]) != nil || r.Id != q.Id {
			continue
		}
		l.udp.answer(r, time.Since(start))
		return
	}
}

// tcpQuery asks on conn, or on a new connection when conn is nil; it
// reports whether conn is still usable. A kept connection that the server
// closes before answering (as a stopping server closes them; RFC 7766
// §6.2.3) has its query retried once on a new connection, as resolvers
// do.
func (l *restartLoad) tcpQuery(conn net.Conn) (ok bool) {
	q := l.query()
	start := time.Now()
	l.tcp.sent.Add(1)
	if conn != nil {
		if r, err := exchangeTCP(conn, q, start.Add(restartTimeout)); err == nil {
			l.tcp.answer(r, time.Since(start))
			return true
		}
		l.tcp.retried.Add(1)
	}
	c, err := net.DialTimeout("tcp", l.addr, time.Until(start.Add(restartTimeout)))
	if err != nil {
		l.tcp.fail(err)
		return false
	}
	defer c.Close()
	r, err := exchangeTCP(c, q, start.Add(restartTimeout))
	if err != nil {
		l.tcp.lose(start.Sub(l.start), err)
		return false
	}
	l.tcp.answer(r, time.Since(start))
	return false
}

func exchangeTCP(c net.Conn, q *dns.Msg, deadline time.Time) (*dns.Msg, error) {
	c.SetDeadline(deadline)
	p, _ := q.Pack()
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(p)))
	if _, err := c.Write(append(frame, p...)); err != nil {
		return nil, err
	}
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, err
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf); err != nil {
		return nil, err
	}
	if r.Id != q.Id {
		return nil, errors.New("reply to another query")
	}
	return r, nil
}

// due is how many queries are due at rate a second since start.
func due(start time.Time, rate int) int {
	return int(time.Since(start) * time.Duration(rate) / time.Second)
}

// keptConn sends rate queries a second, one after the other, on one
// connection, opening a new one when the server has closed it.
func (l *restartLoad) keptConn(ctx context.Context, rate int) {
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	tick := time.NewTicker(restartTick)
	defer tick.Stop()
	sent := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for ; sent < due(l.start, rate); sent++ {
			if conn == nil {
				c, err := net.DialTimeout("tcp", l.addr, restartTimeout)
				if err != nil {
					l.tcp.sent.Add(1)
					l.tcp.fail(err)
					continue
				}
				conn = c
			}
			if !l.tcpQuery(conn) {
				conn.Close()
				conn = nil
			}
		}
	}
}
