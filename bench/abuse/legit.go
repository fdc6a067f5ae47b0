package main

import (
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// legitAddr is the legitimate client's source address; every attacker is
// outside its /24.
var legitAddr = net.IPv4(127, 0, 0, 1)

// legitTimeout is how long the legitimate client waits for each answer:
// the bar for a fresh TCP query under a connection flood.
const legitTimeout = time.Second

// transport is what the legitimate client measured over one transport.
type transport struct {
	Sent, OK int
	Lat      []time.Duration // of the successful queries
}

// Rate is the share of queries answered well.
func (t transport) Rate() float64 {
	if t.Sent == 0 {
		return 0
	}
	return float64(t.OK) / float64(t.Sent)
}

// Quantile is the q-quantile of the successful queries' latencies.
func (t transport) Quantile(q float64) time.Duration {
	if len(t.Lat) == 0 {
		return 0
	}
	s := slices.Clone(t.Lat)
	slices.Sort(s)
	return s[min(int(q*float64(len(s))), len(s)-1)]
}

// legitResult is the legitimate client's view of one scenario.
type legitResult struct {
	UDP, TCP, HTTP transport
}

// legitRates is how many queries a second the legitimate client asks per
// transport.
type legitRates struct{ UDP, TCP, HTTP int }

// runLegit asks at rates until ctx ends and waits for the answers in flight.
// UDP and TCP queries alternate between the plain name and the geo name
// (SERVFAIL when both probes fail); a success is a NOERROR answer with
// data and no TC bit, within legitTimeout. Each TCP query and HTTP request
// opens its own connection, as a new client would.
func runLegit(ctx context.Context, dnsAddr, httpAddr string, r legitRates) legitResult {
	var res legitResult
	var mu sync.Mutex // guards res
	var wg sync.WaitGroup
	record := func(t *transport, ok bool, d time.Duration) {
		mu.Lock()
		t.Sent++
		if ok {
			t.OK++
			t.Lat = append(t.Lat, d)
		}
		mu.Unlock()
	}
	names := []string{"www." + zoneName, "geo." + zoneName}
	hc := &http.Client{Timeout: legitTimeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: legitAddr}}).DialContext,
	}}
	loop := func(rate int, t *transport, ask func(i int) bool) {
		if rate <= 0 {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					start := time.Now()
					ok := ask(i)
					record(t, ok, time.Since(start))
				}()
			}
		}()
	}
	loop(r.UDP, &res.UDP, func(i int) bool { return legitUDP(dnsAddr, names[i%2]) })
	loop(r.TCP, &res.TCP, func(i int) bool { return legitTCP(dnsAddr, names[i%2]) })
	loop(r.HTTP, &res.HTTP, func(int) bool {
		resp, err := hc.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	<-ctx.Done()
	wg.Wait()
	return res
}

// goodAnswer tells whether b is a full NOERROR answer to id.
func goodAnswer(b []byte, id uint16) bool {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return false
	}
	return m.Id == id && m.Response && !m.Truncated && m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0
}

func legitUDP(addr, name string) bool {
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: legitAddr}, net.UDPAddrFromAddrPort(mustAddrPort(addr)))
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(legitTimeout))
	q := query(name, dns.TypeA)
	id := uint16(rand.Uint32())
	binary.BigEndian.PutUint16(q, id)
	if _, err := c.Write(q); err != nil {
		return false
	}
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return false
		}
		if n >= 2 && binary.BigEndian.Uint16(buf) == id {
			return goodAnswer(buf[:n], id)
		}
	}
}

func legitTCP(addr, name string) bool {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: legitAddr}, Timeout: legitTimeout}
	start := time.Now()
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(start.Add(legitTimeout))
	q := query(name, dns.TypeA)
	id := uint16(rand.Uint32())
	binary.BigEndian.PutUint16(q, id)
	framed := append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)
	if _, err := c.Write(framed); err != nil {
		return false
	}
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return false
	}
	b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		return false
	}
	return goodAnswer(b, id)
}
