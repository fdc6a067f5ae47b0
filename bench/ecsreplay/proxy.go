package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// proxy sits between Unbound and a backend and counts what Unbound asks:
// the same count for every backend, whatever its own statistics say. It
// relays each UDP datagram unchanged, from a socket of its own per query,
// and relays the reply unchanged. It listens on UDP only: the backends'
// replies are far below any UDP size, so Unbound never retries over TCP
// (a query that did would fail, and the replay counts it as failed).
type proxy struct {
	conn    *net.UDPConn
	backend netip.AddrPort
	geoName string // lower-case FQDN of the geo name
	timeout time.Duration
	wg      sync.WaitGroup

	mu     sync.Mutex // mu guards counts
	counts upstream
}

// upstream is what the proxy saw since it was last reset.
type upstream struct {
	Queries int // every datagram relayed to the backend
	Geo     int // queries for the geo name, type A
	// GeoNoECS counts geo queries that carried no ECS option.
	GeoNoECS int
	// Subnets counts the geo queries by the ECS subnet they carried; more
	// queries than subnets means Unbound asked some subnet twice.
	Subnets map[netip.Prefix]int
	// Lost counts queries the backend did not answer within the timeout.
	Lost int
}

func newProxy(backend netip.AddrPort, geoName string) (*proxy, error) {
	if !backend.Addr().IsLoopback() {
		return nil, fmt.Errorf("ecsreplay: proxy: backend %s is not a loopback address", backend)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("ecsreplay: proxy: %w", err)
	}
	p := &proxy{conn: conn, backend: backend, geoName: strings.ToLower(dns.Fqdn(geoName)), timeout: 2 * time.Second}
	p.counts.Subnets = map[netip.Prefix]int{}
	return p, nil
}

// Addr is where Unbound sends its queries.
func (p *proxy) Addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Run relays until Close.
func (p *proxy) Run() {
	buf := make([]byte, 65535)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if !from.Addr().Unmap().IsLoopback() {
			continue
		}
		q := append([]byte(nil), buf[:n]...)
		p.count(q)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(q, from)
		}()
	}
}

// count records query q.
func (p *proxy) count(q []byte) {
	var m dns.Msg
	unpacked := m.Unpack(q) == nil && len(m.Question) == 1
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts.Queries++
	if !unpacked || m.Question[0].Qtype != dns.TypeA || strings.ToLower(m.Question[0].Name) != p.geoName {
		return
	}
	p.counts.Geo++
	if e := ecsOf(&m); e != nil {
		p.counts.Subnets[netip.PrefixFrom(e.addr, int(e.source))]++
	} else {
		p.counts.GeoNoECS++
	}
}

func (p *proxy) relay(q []byte, to netip.AddrPort) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(p.backend))
	if err != nil {
		p.lost()
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(p.timeout))
	if _, err := c.Write(q); err != nil {
		p.lost()
		return
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		p.lost()
		return
	}
	_, _ = p.conn.WriteToUDPAddrPort(buf[:n], to)
}

func (p *proxy) lost() {
	p.mu.Lock()
	p.counts.Lost++
	p.mu.Unlock()
}

// Reset zeroes the counts and returns what they were.
func (p *proxy) Reset() upstream {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.counts
	p.counts = upstream{Subnets: map[netip.Prefix]int{}}
	return old
}

// Close stops Run and waits for the queries in flight.
func (p *proxy) Close() {
	_ = p.conn.Close()
	p.wg.Wait()
}
