package dnsserver

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/internal/reuseport"
)

// nsidOf asks addr over proto, from a new socket each time (a new source
// port, which the kernel's hash would spread over a reuseport group), and
// returns the NSID of the server that answered.
func nsidOf(t *testing.T, proto, addr string) string {
	t.Helper()
	m := query("www.example.test.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	r := exchange(t, proto, addr, m)
	if opt := r.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if n, ok := o.(*dns.EDNS0_NSID); ok {
				return n.Nsid
			}
		}
	}
	t.Fatalf("%s reply without NSID: %v", proto, r)
	return ""
}

// answeredBy asks n times over UDP and TCP and counts the answers by NSID.
func answeredBy(t *testing.T, addr string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		for _, proto := range []string{"udp", "tcp"} {
			got[proto+" "+nsidOf(t, proto, addr)]++
		}
	}
	return got
}

// TestTakeOver runs two servers on one address, as an old and a new
// process during a restart: the old one answers everything until the new
// one serves, the new one everything from then on, and alone once the
// old one has stopped.
func TestTakeOver(t *testing.T) {
	if !reuseport.Supported() {
		t.Skip("no SO_REUSEPORT steering here")
	}
	old := newTestServer(t, Config{NSID: "old"})
	if err := old.Listen(); err != nil {
		t.Fatal(err)
	}
	if old.TakingOver() {
		t.Error("the first server is taking over")
	}
	oldCtx, stopOld := context.WithCancel(context.Background())
	oldDone := make(chan error, 1)
	go func() { oldDone <- old.Serve(oldCtx) }()
	defer func() {
		stopOld()
		dnstest.Receive(t, oldDone, 10*time.Second, "the old server's Serve to return")
	}()
	dnstest.Receive(t, old.Served(), 5*time.Second, "the old server to serve")
	addr := old.Addrs()[0]

	oldID, newID := hex.EncodeToString([]byte("old")), hex.EncodeToString([]byte("new"))
	newer := newTestServer(t, Config{NSID: "new", Listen: []string{addr}})
	if err := newer.Listen(); err != nil {
		t.Fatalf("second Listen on %s: %v", addr, err)
	}
	if !newer.TakingOver() {
		t.Error("the second server on the address is not taking over")
	}
	const n = 20
	if got := answeredBy(t, addr, n); got["udp "+oldID] != n || got["tcp "+oldID] != n {
		t.Errorf("bound, not serving: answers %v; want all %d of each from old", got, n)
	}
	start := time.Now()
	newCtx, stopNew := context.WithCancel(context.Background())
	newDone := make(chan error, 1)
	go func() { newDone <- newer.Serve(newCtx) }()
	defer func() {
		stopNew()
		dnstest.Receive(t, newDone, 10*time.Second, "the new server's Serve to return")
	}()
	dnstest.Receive(t, newer.Served(), 5*time.Second, "the new server to serve")
	if got := answeredBy(t, addr, n); got["udp "+oldID] != n || got["tcp "+oldID] != n {
		t.Errorf("serving, not taken over: answers %v; want all %d of each from old", got, n)
	}
	if err := newer.TakeOver(); err != nil {
		t.Fatal(err)
	}
	t.Logf("the new server took over %v after its Serve", time.Since(start))
	if got := answeredBy(t, addr, n); got["udp "+newID] != n || got["tcp "+newID] != n {
		t.Errorf("taken over: answers %v; want all %d of each from new", got, n)
	}
	stopOld()
	if err := dnstest.Receive(t, oldDone, 10*time.Second, "the old server's Serve to return"); err != nil {
		t.Errorf("old Serve: %v", err)
	}
	oldDone <- nil // for the deferred receive
	if got := answeredBy(t, addr, n); got["udp "+newID] != n || got["tcp "+newID] != n {
		t.Errorf("the old one gone: answers %v; want all %d of each from new", got, n)
	}
}

// TestReusePortOff checks that with reuse_port off a second server cannot
// bind a served address, and the error says why.
func TestReusePortOff(t *testing.T) {
	first := newTestServer(t, Config{ReusePortOff: true})
	addr := startServer(t, first)[0]
	second := newTestServer(t, Config{ReusePortOff: true, Listen: []string{addr}})
	err := second.Listen()
	if err == nil {
		t.Fatalf("a second Listen on %s succeeded with reuse_port off", addr)
	}
	if !errors.Is(err, syscall.EADDRINUSE) || (reuseport.Supported() && !strings.Contains(err.Error(), "reuse_port is off")) {
		t.Errorf("second Listen: %v; want address in use, saying reuse_port is off", err)
	}
	// On, the first still holds it exclusively: the second fails too.
	third := newTestServer(t, Config{Listen: []string{addr}})
	if err := third.Listen(); err == nil {
		t.Errorf("Listen with reuse_port on succeeded on %s, held exclusively", addr)
	}
}

// TestShutdownAnswersBacklog sends queries to a bound server that does
// not read yet, over UDP and over TCP connections it has not accepted,
// then starts Serve already told to stop: it must answer every one, as a
// process that another has taken over from answers what its sockets hold.
func TestShutdownAnswersBacklog(t *testing.T) {
	s := newTestServer(t, Config{})
	s.acceptDrainMax = 10 * time.Second // a starved CI machine may take its time
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := s.Addrs()[0]
	const n = 20
	type reply struct {
		proto string
		err   error
	}
	replies := make(chan reply, 2*n)
	var conns []*dns.Conn
	for _, proto := range []string{"udp", "tcp"} {
		for range n {
			c, err := dns.DialTimeout(proto, addr, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			if err := c.WriteMsg(query("www.example.test.", dns.TypeA)); err != nil {
				t.Fatal(err)
			}
			go func() {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				r, err := c.ReadMsg()
				if err == nil && (r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1) {
					err = errors.New("reply " + r.String())
				}
				replies <- reply{proto, err}
			}()
		}
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Serve(ctx); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	got := map[string]int{}
	for range 2 * n {
		r := dnstest.Receive(t, replies, 10*time.Second, "a reply")
		if r.err != nil {
			t.Errorf("%s: %v", r.proto, r.err)
			continue
		}
		got[r.proto]++
	}
	if got["udp"] != n || got["tcp"] != n {
		t.Errorf("answered %v of %d each", got, n)
	}
}

// TestTCPShutdownAcceptsBacklog shuts the TCP server down before it has
// accepted anything: the connections the kernel completed in the
// meantime are in the listener's backlog, which a close would reset, and
// must be accepted and answered instead.
func TestTCPShutdownAcceptsBacklog(t *testing.T) {
	for _, late := range []time.Duration{0, 100 * time.Millisecond} {
		t.Run(fmt.Sprintf("accept loop %s late", late), func(t *testing.T) { tcpShutdownAcceptsBacklog(t, late) })
	}
}

// tcpShutdownAcceptsBacklog starts the accept loop late after the
// shutdown, as on a starved machine: past acceptDrainIdle, the waiting
// connections must still be accepted (backlogWaiting), not reset.
func tcpShutdownAcceptsBacklog(t *testing.T, late time.Duration) {
	s := newTestServer(t, Config{})
	s.acceptDrainMax = 10 * time.Second // a starved CI machine may take its time
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	l := s.listeners[0].tcp
	const n = 10
	var conns []*dns.Conn
	for range n {
		c, err := dns.DialTimeout("tcp", l.Addr().String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.WriteMsg(query("www.example.test.", dns.TypeA)); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	ts := newTCPServer(s)
	ts.shutdown(l)
	time.Sleep(late)
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		if err := ts.serve(l); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if r, err := c.ReadMsg(); err != nil {
			t.Errorf("connection %d of the backlog: %v", i, err)
		} else if len(r.Answer) != 1 {
			t.Errorf("connection %d of the backlog: reply %v", i, r)
		}
	}
	done := make(chan struct{})
	go func() { ts.wg.Wait(); close(done) }()
	dnstest.Receive(t, done, 5*time.Second, "the TCP server to stop")
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Error("the listener still accepts after the backlog was drained")
	}
}

// TestTCPShutdownWaitsForFirstQuery: a connection accepted before the
// shutdown whose client has not written its query yet (it connects, then
// writes) is answered when the query comes, well after drainPoll, rather
// than closed for having nothing to drain.
func TestTCPShutdownWaitsForFirstQuery(t *testing.T) {
	s := newTestServer(t, Config{})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	l := s.listeners[0].tcp
	ts := newTCPServer(s)
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		if err := ts.serve(l); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	c, err := dns.DialTimeout("tcp", l.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for deadline := time.Now().Add(5 * time.Second); ; {
		ts.mu.Lock()
		open := ts.open
		ts.mu.Unlock()
		if open == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection was not accepted")
		}
		time.Sleep(time.Millisecond)
	}
	ts.shutdown(l)
	time.Sleep(10 * drainPoll) // the client is slow to write
	if err := c.WriteMsg(query("www.example.test.", dns.TypeA)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if r, err := c.ReadMsg(); err != nil {
		t.Errorf("the first query, written after the shutdown: %v", err)
	} else if len(r.Answer) != 1 {
		t.Errorf("reply %v", r)
	}
	done := make(chan struct{})
	go func() { ts.wg.Wait(); close(done) }()
	dnstest.Receive(t, done, 5*time.Second, "the TCP server to stop")
}

// TestBacklogWaiting: a listener's accept queue is seen from TCP_INFO,
// where the platform gives it.
func TestBacklogWaiting(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TCP_INFO of a listener is Linux's")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if backlogWaiting(l) {
		t.Fatal("an empty accept queue is seen as waiting")
	}
	c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !backlogWaiting(l) {
		t.Fatal("a completed connection in the accept queue is not seen")
	}
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if backlogWaiting(l) {
		t.Fatal("the accept queue is seen as waiting once emptied")
	}
}
