package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// udpFlood sends count packets at rate a second from sockets bound to
// sources, and classifies what comes back by the ID each packet carries.
type udpFlood struct {
	server  netip.AddrPort
	sources []netip.Addr
	ports   int // sockets per source address
	rate    int // packets a second
	count   int // at most this many packets
	dur     time.Duration
	// packet writes packet i into buf and returns it; the flood then
	// writes the socket's sequence number over its first two bytes (the
	// DNS ID). A packet shorter than two bytes carries no ID and is never
	// matched.
	packet func(i int, rng *rand.Rand, buf []byte) []byte
	// anyReply counts every reply as answered: a reply to garbage may
	// echo its random flags, TC among them.
	anyReply bool
}

// udpSocket is one attacker socket and what it has seen.
type udpSocket struct {
	conn *net.UDPConn
	sent int
	// seen has a bit per ID sent; a reply counts once.
	seen       []uint64
	full, tc   atomic.Int64
	bytesOut   atomic.Int64
	unexpected atomic.Int64 // replies with an ID not sent or seen before
}

// drain is how long replies are awaited after the last packet.
const drain = 500 * time.Millisecond

// run floods and returns the attacker's tally.
func (f *udpFlood) run(ctx context.Context) (attack, error) {
	perSocket := (f.count + len(f.sources)*f.ports - 1) / (len(f.sources) * f.ports)
	if perSocket > 1<<16 {
		return attack{}, fmt.Errorf("udp flood: %d packets a socket: more than the IDs", perSocket)
	}
	var socks []*udpSocket
	defer func() {
		for _, s := range socks {
			s.conn.Close()
		}
	}()
	for _, src := range f.sources {
		for range f.ports {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
			if err != nil {
				return attack{}, fmt.Errorf("udp flood: bind %v: %w", src, err)
			}
			c.SetReadBuffer(1 << 20)
			socks = append(socks, &udpSocket{conn: c, seen: make([]uint64, perSocket/64+1)})
		}
	}
	// Each socket's seen is read and written by its reader alone.
	var wg sync.WaitGroup
	for _, s := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 65536)
			for {
				n, _, err := s.conn.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				if n < 12 {
					s.unexpected.Add(1)
					continue
				}
				id := int(binary.BigEndian.Uint16(buf))
				fresh := id < len(s.seen)*64 && s.seen[id/64]&(1<<(id%64)) == 0
				if fresh {
					s.seen[id/64] |= 1 << (id % 64)
				}
				if !fresh {
					s.unexpected.Add(1)
					continue
				}
				s.bytesOut.Add(int64(n))
				if buf[2]&0x02 != 0 && !f.anyReply { // TC
					s.tc.Add(1)
				} else {
					s.full.Add(1)
				}
			}
		}()
	}

	var a attack
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 0, 4096)
	start := time.Now()
	end := start.Add(f.dur)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	next := 0
send:
	for a.sent < f.count {
		now := time.Now()
		if now.After(end) {
			break
		}
		due := min(int(now.Sub(start).Seconds()*float64(f.rate))+1, f.count)
		for ; a.sent < due; a.sent++ {
			// Round robin: no socket sends more than perSocket.
			s := socks[next]
			next = (next + 1) % len(socks)
			pkt := f.packet(a.sent, rng, buf[:0])
			if len(pkt) >= 2 {
				binary.BigEndian.PutUint16(pkt, uint16(s.sent))
			}
			s.sent++
			if _, err := s.conn.WriteToUDPAddrPort(pkt, f.server); err != nil && !errors.Is(err, net.ErrClosed) {
				a.sendErrors++
			}
			a.bytesIn += int64(len(pkt))
		}
		select {
		case <-ctx.Done():
			break send
		case <-tick.C:
		}
	}
	a.elapsed = time.Since(start)
	time.Sleep(drain)
	for _, s := range socks {
		s.conn.Close()
	}
	wg.Wait()
	for _, s := range socks {
		a.full += int(s.full.Load())
		a.slipped += int(s.tc.Load())
		a.bytesOut += s.bytesOut.Load()
		a.unexpected += int(s.unexpected.Load())
	}
	a.dropped = a.sent - a.full - a.slipped
	return a, nil
}

// spreadSources returns n addresses spread over 127.0.0.0/8 outside
// 127.0.0.0/24, where the legitimate client is, one per /24 while they
// last: a rate limiter that accounts by /24 sees n sources.
func spreadSources(n int, seed uint64) []netip.Addr {
	rng := rand.New(rand.NewPCG(seed, 7))
	seen := map[[2]byte]bool{}
	out := make([]netip.Addr, 0, n)
	for len(out) < n {
		b, c := byte(1+rng.IntN(254)), byte(rng.IntN(256))
		if len(seen) < 254*256 && seen[[2]byte{b, c}] {
			continue
		}
		seen[[2]byte{b, c}] = true
		out = append(out, netip.AddrFrom4([4]byte{127, b, c, byte(1 + rng.IntN(254))}))
	}
	return out
}

// query returns the wire form of a query for name and qtype, with EDNS
// (1232 bytes) as resolvers send it.
func query(name string, qtype uint16) []byte {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	m.SetEdns0(1232, false)
	b, err := m.Pack()
	if err != nil {
		panic(err) // the suite's own names: a bug
	}
	return b
}

// fixedQuery sends the same question every time.
func fixedQuery(name string, qtype uint16) func(int, *rand.Rand, []byte) []byte {
	q := query(name, qtype)
	return func(_ int, _ *rand.Rand, buf []byte) []byte { return append(buf, q...) }
}

// randomSubdomain asks for a random 12-letter label under the zone, each
// a name that does not exist.
func randomSubdomain() func(int, *rand.Rand, []byte) []byte {
	q := query("xxxxxxxxxxxx."+zoneName, dns.TypeA)
	const at = 13 // header (12) + the label's length byte
	return func(_ int, rng *rand.Rand, buf []byte) []byte {
		buf = append(buf, q...)
		for i := range 12 {
			buf[at+i] = 'a' + byte(rng.IntN(26))
		}
		return buf
	}
}

// garbageUDP cycles through kinds of malformed packets.
func garbageUDP() func(int, *rand.Rand, []byte) []byte {
	valid := query("www."+zoneName, dns.TypeA)
	return func(i int, rng *rand.Rand, buf []byte) []byte {
		switch i % 6 {
		case 0: // random bytes, 2 to 600
			n := 2 + rng.IntN(599)
			for range n {
				buf = append(buf, byte(rng.Uint32()))
			}
		case 1: // a truncated header
			buf = append(buf, valid[:2+rng.IntN(10)]...)
		case 2: // a header that promises a question and has none
			buf = append(buf, valid[:12]...)
		case 3: // a query cut inside its question
			buf = append(buf, valid[:13+rng.IntN(len(valid)-14)]...)
		case 4: // a label length that runs past the end
			buf = append(buf, valid[:12]...)
			buf = append(buf, 63, 'a', 'b')
		default: // a compression pointer to itself
			buf = append(buf, valid[:12]...)
			buf = append(buf, 0xc0, 12, 0, 1, 0, 1)
		}
		return buf
	}
}
