package main

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestUDPFloodTally floods a responder that answers a third of the
// queries in full, a third with TC=1 and ignores the rest, and checks that
// the flood tells them apart exactly.
func TestUDPFloodTally(t *testing.T) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			id := binary.BigEndian.Uint16(buf)
			reply := append([]byte(nil), buf[:n]...)
			reply[2] |= 0x80 // QR
			switch id % 3 {
			case 0:
				reply = append(reply, make([]byte, 100)...)
			case 1:
				reply[2] |= 0x02 // TC
			default:
				continue
			}
			pc.WriteToUDPAddrPort(reply, from)
		}
	}()
	// Two sockets of 150 queries: IDs 0..149 each, so 50 of each kind
	// per socket.
	f := udpFlood{
		server:  pc.LocalAddr().(*net.UDPAddr).AddrPort(),
		sources: []netip.Addr{netip.MustParseAddr("127.3.4.5")},
		ports:   2, rate: 3000, count: 300, dur: 2 * time.Second,
		packet: fixedQuery("www."+zoneName, 1),
	}
	a, err := f.run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if a.sent != 300 || a.full != 100 || a.slipped != 100 || a.dropped != 100 || !a.Consistent() {
		t.Errorf("sent %d full %d slipped %d dropped %d, want 300 100 100 100", a.sent, a.full, a.slipped, a.dropped)
	}
	q := int64(len(query("www."+zoneName, 1)))
	if a.bytesIn != 300*q || a.bytesOut != 200*q+100*100 {
		t.Errorf("bytes in %d out %d, want %d %d", a.bytesIn, a.bytesOut, 300*q, 200*q+100*100)
	}
}

// TestHoldFloodTally holds connections to a listener that closes every
// connection from one source at once and keeps the others: the ones held
// count as answered, the closed ones (reopened while the flood lasts) as
// dropped.
func TestHoldFloodTally(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closer := netip.MustParseAddr("127.7.7.7")
	var kept []net.Conn
	defer func() {
		for _, c := range kept {
			c.Close()
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr() == closer {
				c.Close()
				continue
			}
			kept = append(kept, c)
		}
	}()
	h := holdFlood{addr: ln.Addr().String(), sources: []netip.Addr{netip.MustParseAddr("127.6.6.6"), closer},
		conns: 20, dur: 300 * time.Millisecond, dialers: 8, reopen: 50 * time.Millisecond}
	a, err := h.run(t.Context())
	ln.Close()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	// A connection of the closing source dialled just before the end may
	// not have seen its close yet: it counts as held.
	if a.full < 10 || a.full > 13 || a.dropped < 10 || !a.Consistent() {
		t.Errorf("sent %d held %d dropped %d, want 10 to 13 held and at least 10 closed", a.sent, a.full, a.dropped)
	}
}

func TestSpreadSources(t *testing.T) {
	got := spreadSources(1000, 1)
	seen := map[netip.Prefix]bool{}
	for _, a := range got {
		p := netip.PrefixFrom(a, 24).Masked()
		if !a.Is4() || !a.IsLoopback() || p == netip.MustParsePrefix("127.0.0.0/24") || seen[p] {
			t.Fatalf("%v: not a loopback address in a /24 of its own outside the legitimate client's", a)
		}
		seen[p] = true
	}
}

func TestGarbageIsBounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	g := garbageUDP()
	for i := range 600 {
		if p := g(i, rng, nil); len(p) < 2 || len(p) > 600 {
			t.Fatalf("packet %d: %d bytes", i, len(p))
		}
	}
	valid := query("www."+zoneName, 1)
	for i := range 600 {
		if p := garbageFrame(i, rng, valid); len(p) == 0 || len(p) > 310 {
			t.Fatalf("frame %d: %d bytes", i, len(p))
		}
	}
}

func TestSpliceSection(t *testing.T) {
	tests := []struct {
		name, doc, label, body string
		want                   string
	}{
		{"new file", "", "before", "B1\n", reportHeader + "\n<!-- abuse:begin before -->\nB1\n<!-- abuse:end before -->\n"},
		{"append", "# x\n\n<!-- abuse:begin before -->\nB1\n<!-- abuse:end before -->\n", "after", "A1\n",
			"# x\n\n<!-- abuse:begin before -->\nB1\n<!-- abuse:end before -->\n\n<!-- abuse:begin after -->\nA1\n<!-- abuse:end after -->\n"},
		{"replace", "# x\n\n<!-- abuse:begin before -->\nB1\n<!-- abuse:end before -->\n\n<!-- abuse:begin after -->\nA1\n<!-- abuse:end after -->\n", "before", "B2\n",
			"# x\n\n<!-- abuse:begin before -->\nB2\n<!-- abuse:end before -->\n\n<!-- abuse:begin after -->\nA1\n<!-- abuse:end after -->\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := spliceSection(tt.doc, tt.label, tt.body); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestParseProbeMetrics(t *testing.T) {
	text := `# HELP popdns_probe_up x
# TYPE popdns_probe_up gauge
popdns_probe_up{target="tcp://127.0.0.1:1"} 1
popdns_probe_up{target="http://127.0.0.1:2/health"} 0
popdns_probe_errors_total{reason="other",target="tcp://127.0.0.1:1"} 2
popdns_probe_errors_total{reason="other",target="http://127.0.0.1:2/health"} 3
popdns_probe_errors_total{reason="timeout",target="http://127.0.0.1:2/health"} 1
popdns_dns_requests_total{zone="x"} 9
`
	pm, err := parseProbeMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if pm.targets != 2 || pm.down != 1 || pm.errors["other"] != 5 || pm.errors["timeout"] != 1 {
		t.Errorf("got %+v", pm)
	}
	d := pm.sub(probeMetrics{errors: map[string]float64{"other": 5}})
	if len(d) != 1 || d["timeout"] != 1 {
		t.Errorf("sub: %v", d)
	}
}

func FuzzParseProbeMetrics(f *testing.F) {
	f.Add("popdns_probe_up{target=\"a\"} 1\n")                    // a sample with labels
	f.Add("popdns_probe_errors_total 3\n# comment\n")             // no labels, and a comment
	f.Add("popdns_probe_errors_total{reason=\"x\",target} NaN\n") // a label without a value
	f.Fuzz(func(t *testing.T, s string) {
		parseProbeMetrics(strings.NewReader(s))
	})
}

// TestLegitAgainstNothing checks that the legitimate client counts what it
// could not get when nothing listens, within its timeout.
func TestLegitAgainstNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := runLegit(ctx, "127.0.0.1:9", "127.0.0.1:9", legitRates{UDP: 20, TCP: 20, HTTP: 20})
	if time.Since(start) > 300*time.Millisecond+legitTimeout+time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	for name, tr := range map[string]transport{"udp": r.UDP, "tcp": r.TCP, "http": r.HTTP} {
		if tr.Sent == 0 || tr.OK != 0 {
			t.Errorf("%s: sent %d ok %d, want some sent and none ok", name, tr.Sent, tr.OK)
		}
	}
}
