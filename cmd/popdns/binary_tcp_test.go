//go:build slow

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
)

// testBinaryTCPFlood runs popdns with 300 file descriptors (ulimit -n),
// which size its TCP limits at 150 connections and 15 per /24, and floods
// it with idle and trickling connections. While 200 come from 127.0.0.x,
// a TCP query from another network is answered within 1 s, UDP and
// /healthz answer; while 400 more from twenty /24s hold every connection
// allowed, the health probe of a TCP target on loopback keeps succeeding,
// /healthz answers (the connections never take the descriptors the
// reserve keeps), and a fresh TCP query is still answered, in place of a
// flood connection. Before the limits, such a flood took every descriptor
// and every probe failed with "too many open files".
func testBinaryTCPFlood(t *testing.T, bin string) {
	target, err := net.Listen("tcp", "127.0.0.1:0") // the probed PoP
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	probed := make(chan struct{}, 1000) // a token per probe that reached the target
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			c.Close()
			select {
			case probed <- struct{}{}:
			default:
			}
		}
	}()
	dir := t.TempDir()
	writeFile(t, dir, "zones/geo.test.yaml", `origin: geo.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.10 }
`)
	cfg := writeFile(t, dir, "popdns.yaml", fmt.Sprintf(`zones: zones
tcp_idle_timeout: 30s
tcp_read_timeout: 30s
probes: { interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }
pops:
  fra: { lat: 50.11, lon: 8.68, probe: { tcp: "%s" } }
`, target.Addr()))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", `ulimit -n 300 && exec "$0" "$@"`, bin,
		"-config", cfg, "-listen", "127.0.0.1:0", "-http", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stderr)
	var serving string
	for lines.Scan() {
		if strings.Contains(lines.Text(), "popdns serving") {
			serving = lines.Text()
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	m := regexp.MustCompile(`"dns":\["([^"]+)"\].*"http":"([^"]+)"`).FindStringSubmatch(serving)
	if m == nil {
		t.Fatalf("no serving line with addresses: %q", serving)
	}
	addr, httpAddr := m[1], m[2]

	metric := func(name string) float64 {
		t.Helper()
		resp, err := http.Get("http://" + httpAddr + "/metrics")
		if err != nil {
			t.Fatalf("/metrics: %v", err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
				v, _ := strconv.ParseFloat(rest, 64)
				return v
			}
		}
		return -1
	}
	healthz := func() {
		t.Helper()
		resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + httpAddr + "/healthz")
		if err != nil {
			t.Fatalf("/healthz: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("/healthz: %d", resp.StatusCode)
		}
	}
	ask := func(proto, src string) (time.Duration, error) {
		c := &dns.Client{Net: proto, Timeout: time.Second}
		if src != "" {
			c.Dialer = &net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		}
		q := new(dns.Msg)
		q.SetQuestion("www.geo.test.", dns.TypeA)
		start := time.Now()
		r, _, err := c.Exchange(q, addr)
		if err == nil && len(r.Answer) != 1 {
			err = fmt.Errorf("reply %v", r)
		}
		return time.Since(start), err
	}
	waitOpen := func(n float64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for metric("popdns_dns_tcp_connections") < n {
			if time.Now().After(deadline) {
				t.Fatalf("%v connections open, want %v", metric("popdns_dns_tcp_connections"), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	var mu sync.Mutex // guards flood
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	stopTrickle := make(chan struct{})
	defer close(stopTrickle)
	go func() { // every other connection sends a byte of a query every 200 ms
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopTrickle:
				return
			case <-tick.C:
			}
			mu.Lock()
			for i := 0; i < len(flood); i += 2 {
				flood[i].Write([]byte{0})
			}
			mu.Unlock()
		}
	}()
	connect := func(src string) {
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("flood from %s: %v", src, err)
		}
		mu.Lock()
		flood = append(flood, c)
		mu.Unlock()
	}

	for i := range 200 {
		connect(fmt.Sprintf("127.0.0.%d", i%250+1))
	}
	waitOpen(15)
	if took, err := ask("tcp", "127.0.200.1"); err != nil || took > time.Second {
		t.Errorf("fresh TCP query during the 127.0.0.x flood: %v after %v", err, took)
	}
	if _, err := ask("udp", ""); err != nil {
		t.Errorf("UDP query during the flood: %v", err)
	}
	healthz()

	for p := 1; p <= 20; p++ {
		for h := 1; h <= 20; h++ {
			connect(fmt.Sprintf("127.0.%d.%d", p, h))
		}
	}
	waitOpen(150)
	errorsBefore := probeErrors(t, httpAddr)
	// Five probes reach the target with every connection taken: they
	// did not share the budget the flood used up.
	for len(probed) > 0 {
		<-probed
	}
	for i := range 5 {
		dnstest.Receive(t, probed, 5*time.Second, fmt.Sprintf("probe %d with the connections full", i+1))
	}
	if after := probeErrors(t, httpAddr); after != errorsBefore {
		t.Errorf("probe errors went from %d to %d with the connections full", errorsBefore, after)
	}
	if up := metric(`popdns_probe_up{target="tcp://` + target.Addr().String() + `"}`); up != 1 {
		t.Errorf("probe up %v, want 1", up)
	}
	healthz()
	if _, err := ask("udp", ""); err != nil {
		t.Errorf("UDP query with the connections full: %v", err)
	}
	if n := metric(`popdns_dns_tcp_connections_refused_total{reason="per_prefix"}`); n <= 0 {
		t.Errorf("refused per_prefix: %v", n)
	}
	// A fresh query still gets in, in place of a connection that never
	// asked.
	if took, err := ask("tcp", "127.0.201.1"); err != nil || took > time.Second {
		t.Errorf("fresh TCP query with every connection taken: %v after %v", err, took)
	}
	if n := metric("popdns_dns_tcp_connections_evicted_total"); n <= 0 {
		t.Errorf("evicted %v, want some", n)
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid)); err == nil && len(fds) >= 300 {
		t.Errorf("%d descriptors open of 300", len(fds))
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) || ctx.Err() != nil {
		t.Fatalf("after SIGTERM: %v (context %v)", err, ctx.Err())
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("SIGTERM with 150 connections open took %v", took)
	}
}

// probeErrors sums popdns_probe_errors_total.
func probeErrors(t *testing.T, httpAddr string) int {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	defer resp.Body.Close()
	sum := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "popdns_probe_errors_total{") {
			f := strings.Fields(sc.Text())
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += int(v)
		}
	}
	return sum
}
