//go:build linux && (amd64 || arm64)

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/popdns/popdns/bench/internal/dnswire"
)

func TestSlotPacking(t *testing.T) {
	for _, c := range []struct {
		sent  int64
		phase int32
		rcode int
	}{{1, phaseWarmup, 0}, {123456789012, phaseMeasure, 3}, {1 << 50, phaseDrain, 15}} {
		v := packSlot(c.sent, c.phase, c.rcode)
		if v == 0 {
			t.Fatal("a taken slot packs to 0")
		}
		s, p, r := unpackSlot(v)
		if s != c.sent || p != c.phase || r != c.rcode {
			t.Errorf("%+v → %d %d %d", c, s, p, r)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	for s, ok := range map[string]bool{
		"127.0.0.1:53": true, "127.1.2.3:5353": true, "[::1]:53": true,
		"10.0.0.1:53": false, "192.0.2.1:53": false, "[2001:db8::1]:53": false, "localhost:53": false, "127.0.0.1": false,
	} {
		if err := loopbackOnly(s); (err == nil) != ok {
			t.Errorf("%s: %v", s, err)
		}
	}
}

func TestBuildPackets(t *testing.T) {
	qs := []dnswire.Query{
		{Name: "static.example.test.", Type: dnswire.TypeA, EDNS: true},
		{Name: "nx1.example.test.", Type: dnswire.TypeA, EDNS: true, Rcode: 3},
	}
	pk, err := buildPackets(qs)
	if err != nil || pk.len() != 2 || pk.rcodes[1] != 3 {
		t.Fatalf("%+v %v", pk, err)
	}
	for i, q := range qs {
		want, _ := dnswire.Append(nil, 0, q)
		if !bytes.Equal(pk.buf[pk.off[i]:pk.off[i+1]], want) {
			t.Errorf("packet %d differs", i)
		}
	}
}

// responder answers every query on loopback, NXDOMAIN for names that start
// with "nx", dropping every dropEvery-th query (0: none). It stops when the
// test ends.
func responder(t *testing.T, dropEvery int) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		n := 0
		for {
			k, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			n++
			if dropEvery > 0 && n%dropEvery == 0 {
				continue
			}
			msg := buf[:k]
			msg[2] |= 0x80 // QR
			if k > 15 && string(msg[13:15]) == "nx" {
				msg[3] = msg[3]&0xf0 | 3
			}
			if _, err := pc.WriteTo(msg, addr); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

func queryFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "q.txt")
	text := "# test\nstatic.example.test. A - NOERROR\nwww.example.test. A 203.0.113.0/24 NOERROR\nnx1.example.test. A - NXDOMAIN\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runJSON(t *testing.T, args ...string) Result {
	t.Helper()
	cfg, err := parseFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(cfg, &out); err != nil {
		t.Fatal(err)
	}
	var r Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	return r
}

func TestRunMax(t *testing.T) {
	addr := responder(t, 0)
	// A long timeout: under the race detector on a busy machine a reply
	// can take a while, and must not count as lost.
	r := runJSON(t, "-server", addr, "-queries", queryFile(t), "-mode", "max", "-warmup", "50ms", "-duration", "300ms",
		"-timeout", "5s", "-sockets", "2", "-outstanding", "8", "-pid", strconv.Itoa(os.Getpid()))
	if r.Answered == 0 || r.Lost != 0 || r.Unexpected != 0 || r.Malformed != 0 {
		t.Errorf("%+v", r)
	}
	if r.Rcodes["NXDOMAIN"] == 0 || r.Rcodes["NOERROR"] < r.Rcodes["NXDOMAIN"] {
		t.Errorf("rcodes %v", r.Rcodes)
	}
	if r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 || r.Latency.Max < r.Latency.P99 {
		t.Errorf("latency %+v", r.Latency)
	}
	// The kernel queues a reply before the generator reads it, so the
	// latency to its receive stamp is never the longer one.
	rx := r.RxLatency
	if r.RxMissing != 0 || rx.P50 <= 0 || rx.P99 < rx.P50 || rx.P50 > r.Latency.P50 || rx.Max > r.Latency.Max {
		t.Errorf("latency to the receive stamp %+v (%d without a stamp), to the read %+v", rx, r.RxMissing, r.Latency)
	}
	if len(r.PIDs) == 0 || r.PIDs[0] != os.Getpid() || r.CPUSec < 0 || r.RSSKiB <= 0 {
		t.Errorf("pids %v", r.PIDs)
	}
}

func TestRunRateWithLoss(t *testing.T) {
	addr := responder(t, 10)
	r := runJSON(t, "-server", addr, "-queries", queryFile(t), "-mode", "rate", "-rate", "1000", "-warmup", "0s",
		"-duration", "500ms", "-timeout", "1s", "-sockets", "2")
	// 1000 q/s for 0.5 s, one in ten dropped.
	if r.Sent < 400 || r.Sent > 600 {
		t.Errorf("sent %d, want about 500", r.Sent)
	}
	if r.Lost < r.Sent/20 || r.Lost > r.Sent/4 || r.Answered+r.Lost > r.Sent {
		t.Errorf("sent %d, answered %d, lost %d: want about a tenth lost", r.Sent, r.Answered, r.Lost)
	}
}

func TestRunCount(t *testing.T) {
	addr := responder(t, 0)
	cfg, err := parseFlags([]string{"-server", addr, "-queries", queryFile(t), "-warmup", "0s", "-duration", "10s", "-count", "500"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = run(cfg, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "-count") || time.Since(start) > 5*time.Second {
		t.Errorf("err %v after %v, want an early stop", err, time.Since(start))
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-queries", "q", "-server", "192.0.2.1:53"},
		{"-queries", "q", "-mode", "burst"},
		{"-queries", "q", "-sockets", "0"},
		{"-queries", "q", "extra"},
		{"-queries", "q", "-metrics", "http://127.0.0.1:1/metrics"},
		{"-queries", "q", "-counter", "x_total"},
		{"-queries", "q", "-metrics", "http://192.0.2.1/metrics", "-counter", "x_total"},
	} {
		if _, err := parseFlags(args); err == nil || errors.Is(err, nil) {
			t.Errorf("%q: no error", args)
		}
	}
}

// TestRunRandom sends a list of one random query from two sockets and
// checks that the server saw no name twice.
func TestRunRandom(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	names := make(chan map[string]int, 1)
	go func() {
		seen := map[string]int{}
		defer func() { names <- seen }()
		buf := make([]byte, 1500)
		for {
			k, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			seen[string(buf[12:31])]++
			buf[2] |= 0x80
			if _, err := pc.WriteTo(buf[:k], addr); err != nil {
				return
			}
		}
	}()
	path := filepath.Join(t.TempDir(), "q.txt")
	if err := os.WriteFile(path, []byte("rrrrrrrrrrrrrrrrrr.example.test. A - NOERROR do random\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runJSON(t, "-server", pc.LocalAddr().String(), "-queries", path, "-mode", "max", "-warmup", "20ms",
		"-duration", "200ms", "-timeout", "5s", "-sockets", "2", "-outstanding", "8")
	pc.Close()
	var seen map[string]int
	select {
	case seen = <-names:
	case <-time.After(5 * time.Second):
		t.Fatal("the responder did not stop")
	}
	if r.Answered == 0 || int64(len(seen)) < r.Answered {
		t.Errorf("answered %d, %d distinct names", r.Answered, len(seen))
	}
	for name, n := range seen {
		if n > 1 {
			t.Errorf("%q asked %d times", name, n)
		}
	}
}

func TestParseCounters(t *testing.T) {
	text := `# HELP popdns_dnssec_signatures_total RRSIGs made.
# TYPE popdns_dnssec_signatures_total counter
popdns_dnssec_signatures_total{path="presign"} 12
popdns_dnssec_signatures_total{path="query"} 3.5e+06
other_total 7 1700000000000
`
	got, err := parseCounters(strings.NewReader(text), []string{`popdns_dnssec_signatures_total{path="query"}`, "other_total"})
	if err != nil || got[`popdns_dnssec_signatures_total{path="query"}`] != 3.5e6 || got["other_total"] != 7 {
		t.Errorf("%v %v", got, err)
	}
	if _, err := parseCounters(strings.NewReader(text), []string{"missing_total"}); err == nil {
		t.Error("a missing series: no error")
	}
	if _, err := parseCounters(strings.NewReader("x_total one\n"), []string{"x_total"}); err == nil {
		t.Error("a bad value: no error")
	}
}

// TestRunCounters reads a counter at the window's edges.
func TestRunCounters(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "made_total{path=\"query\"} %d\n", n.Add(10))
	}))
	t.Cleanup(srv.Close)
	addr := responder(t, 0)
	r := runJSON(t, "-server", addr, "-queries", queryFile(t), "-warmup", "0s", "-duration", "100ms",
		"-metrics", srv.URL+"/metrics", "-counter", `made_total{path="query"}`)
	if got := r.Counters[`made_total{path="query"}`]; got != 10 || r.CounterRates[`made_total{path="query"}`] <= 0 {
		t.Errorf("counters %v, rates %v", r.Counters, r.CounterRates)
	}
}
