package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// attack is what one scenario's attacker counted. Whatever the unit,
// full + slipped + dropped == sent.
type attack struct {
	sent    int // queries, messages, connections or requests the attacker made
	full    int // answered in full (for connections: still held open at the end)
	slipped int // answered with TC=1 and nothing else
	dropped int // no reply (for connections: refused, failed or closed by the server)
	// bytesIn is what the attacker sent (DNS payload), bytesOut what came
	// back to it; their ratio is the amplification.
	bytesIn, bytesOut int64
	sendErrors        int // sends that failed locally
	unexpected        int // replies that matched nothing sent, or twice
	elapsed           time.Duration
	notes             []string
}

// scale is how hard and how long the scenarios push.
type scale struct {
	Name string
	// UDP floods: Rate packets a second for at most Dur, Count packets in all.
	UDPRate, UDPCount int
	UDPDur            time.Duration
	SpoofSources      int // distinct attacker addresses (one /24 each) of the spoofed flood
	OneNamePorts      int // sockets of the one source of the one-name flood
	// Connection floods hold Conns connections for ConnDur.
	Conns   int
	ConnDur time.Duration
	// The trickle holds TrickleConns connections, each sending every
	// TrickleEvery, for ConnDur.
	TrickleConns int
	TrickleEvery time.Duration
	GarbageTCP   int // garbage connections
	HTTPConns    int // slowloris and keep-alive connections
	// IdleTimeout is the server's tcp_idle_timeout, below ConnDur so that
	// a trickle that outlives it shows.
	IdleTimeout time.Duration
	// ServerNofile is the server's RLIMIT_NOFILE: below what the harness
	// can hold itself (both share the machine's 20000), so that a
	// connection flood can reach it as 20,000 connections did in issue 13.
	ServerNofile int
	Legit        legitRates
}

var scales = map[string]scale{
	// small is for CI: each scenario about a second and a few thousand
	// packets or a few hundred connections.
	"small": {
		Name: "small", UDPRate: 3000, UDPCount: 3000, UDPDur: time.Second,
		SpoofSources: 256, OneNamePorts: 4,
		Conns: 1500, ConnDur: 1500 * time.Millisecond,
		TrickleConns: 200, TrickleEvery: 300 * time.Millisecond,
		GarbageTCP: 300, HTTPConns: 200,
		IdleTimeout: time.Second, ServerNofile: 1024,
		Legit: legitRates{UDP: 50, TCP: 20, HTTP: 10},
	},
	// full is for the figures: seconds per scenario, tens of
	// thousands of packets, thousands of connections.
	"full": {
		Name: "full", UDPRate: 20000, UDPCount: 60000, UDPDur: 3 * time.Second,
		SpoofSources: 1024, OneNamePorts: 16,
		Conns: 12000, ConnDur: 5 * time.Second,
		TrickleConns: 2000, TrickleEvery: time.Second,
		GarbageTCP: 3000, HTTPConns: 3000,
		IdleTimeout: 2 * time.Second, ServerNofile: 8192,
		Legit: legitRates{UDP: 50, TCP: 20, HTTP: 10},
	},
}

// target is where a scenario aims: the server under test.
type target struct {
	dns  netip.AddrPort
	http string
}

// scenario is one attack of the suite.
type scenario struct {
	Name  string
	About string
	Unit  string
	run   func(ctx context.Context, t target, s scale) (attack, error)
}

// scenarios returns the suite in the order it runs.
func scenarios() []scenario {
	return []scenario{
		{Name: "baseline", Unit: "queries", About: "no attack: the legitimate client alone",
			run: func(ctx context.Context, _ target, s scale) (attack, error) {
				sleepCtx(ctx, s.UDPDur)
				return attack{elapsed: s.UDPDur}, nil
			}},
		{Name: "spoofed-txt", Unit: "queries",
			About: "UDP flood for the 4×250-byte TXT from sources spread over 127.0.0.0/8 (amplification)",
			run: func(ctx context.Context, t target, s scale) (attack, error) {
				f := udpFlood{server: t.dns, sources: spreadSources(s.SpoofSources, 1), ports: 1,
					rate: s.UDPRate, count: s.UDPCount, dur: s.UDPDur, packet: fixedQuery("big."+zoneName, dns.TypeTXT)}
				a, err := f.run(ctx)
				a.notes = append(a.notes, fmt.Sprintf("%d sources, one per /24", s.SpoofSources))
				return a, err
			}},
		{Name: "reflection", Unit: "queries",
			About: "UDP flood for the 4×250-byte TXT from one forged source, the victim of a reflection (amplification)",
			run: func(ctx context.Context, t target, s scale) (attack, error) {
				f := udpFlood{server: t.dns, sources: []netip.Addr{netip.MustParseAddr("127.66.0.1")}, ports: s.OneNamePorts,
					rate: s.UDPRate, count: s.UDPCount, dur: s.UDPDur, packet: fixedQuery("big."+zoneName, dns.TypeTXT)}
				return f.run(ctx)
			}},
		{Name: "one-name", Unit: "queries", About: "UDP flood of one name (www A) from one source",
			run: func(ctx context.Context, t target, s scale) (attack, error) {
				f := udpFlood{server: t.dns, sources: []netip.Addr{netip.MustParseAddr("127.9.9.9")}, ports: s.OneNamePorts,
					rate: s.UDPRate, count: s.UDPCount, dur: s.UDPDur, packet: fixedQuery("www."+zoneName, dns.TypeA)}
				return f.run(ctx)
			}},
		{Name: "nxdomain", Unit: "queries", About: "UDP flood of random subdomains (NXDOMAIN) from 4 sources",
			run: func(ctx context.Context, t target, s scale) (attack, error) {
				f := udpFlood{server: t.dns, sources: spreadSources(4, 2), ports: 1,
					rate: s.UDPRate, count: s.UDPCount, dur: s.UDPDur, packet: randomSubdomain()}
				return f.run(ctx)
			}},
		{Name: "tcp-idle", Unit: "connections", About: "TCP connections opened from 16 sources and held idle, reopened when closed",
			run: func(ctx context.Context, t target, s scale) (attack, error) {
				h := holdFlood{addr: t.dns.String(), sources: spreadSources(16, 3), conns: s.Conns, dur: s.ConnDur, dialers: 256}
				return h.run(ctx)
			}},
		{Name: "tcp-trickle", Unit: "connections",
			About: "TCP connections that send a zero-length frame, or one byte of a query, at every tick",
			run: func(ctx context.Context, t target, s scale) (attack, error) {
				h := holdFlood{addr: t.dns.String(), sources: spreadSources(16, 4), conns: s.TrickleConns, dur: s.ConnDur,
					dialers: 64, interval: s.TrickleEvery, tick: trickle(), kind: trickleKind}
				a, err := h.run(ctx)
				a.notes = append(a.notes, fmt.Sprintf("a tick every %s, idle timeout %s", s.TrickleEvery, s.IdleTimeout))
				return a, err
			}},
		{Name: "garbage-udp", Unit: "messages",
			About: "random bytes, truncated headers, bad label lengths and pointer loops over UDP",
			run: func(ctx context.Context, t target, s scale) (attack, error) {
				f := udpFlood{server: t.dns, sources: spreadSources(16, 5), ports: 1,
					rate: s.UDPRate, count: s.UDPCount, dur: s.UDPDur, packet: garbageUDP(), anyReply: true}
				return f.run(ctx)
			}},
		{Name: "garbage-tcp", Unit: "messages",
			About: "one malformed message per TCP connection: zero and wrong lengths, random bytes, truncated headers",
			run: func(ctx context.Context, t target, s scale) (attack, error) {
				g := garbageTCP{addr: t.dns.String(), sources: spreadSources(16, 6), count: s.GarbageTCP, dur: s.ConnDur, dialers: 64}
				return g.run(ctx)
			}},
		{Name: "http-slowloris", Unit: "connections", About: "HTTP requests whose headers never end, a line at every tick",
			run: func(ctx context.Context, t target, s scale) (attack, error) {
				h := holdFlood{addr: t.http, sources: spreadSources(16, 7), conns: s.HTTPConns, dur: s.ConnDur, dialers: 64,
					setup: slowHeaders, interval: s.TrickleEvery, tick: slowHeaderTick}
				return h.run(ctx)
			}},
		{Name: "http-keepalive", Unit: "connections", About: "one /healthz request per HTTP connection, then held idle (keep-alive hoarding)",
			run: func(ctx context.Context, t target, s scale) (attack, error) {
				h := holdFlood{addr: t.http, sources: spreadSources(16, 8), conns: s.HTTPConns, dur: s.ConnDur, dialers: 64,
					setup: keepAliveRequest}
				return h.run(ctx)
			}},
	}
}

// result is one scenario's row of the report.
type result struct {
	Scenario scenario
	Attack   attack
	Legit    legitResult
	// Server: CPU used during the scenario, RSS at its end and its peak.
	CPU         time.Duration
	RSSKiB      int64
	PeakKiB     int64
	Alive       bool               // popdns still ran at the end
	ProbeFails  map[string]float64 // failed probes during the scenario, by reason
	ProbesDown  int                // probe targets down at the end
	ProbeScrape string             // why the probe metrics could not be read, if so
	Err         string             // the scenario could not run
}

// Consistent tells whether the attacker's tally adds up.
func (a attack) Consistent() bool {
	return a.full+a.slipped+a.dropped == a.sent && a.full >= 0 && a.slipped >= 0 && a.dropped >= 0
}

// Amplification is bytes back per byte sent, 0 when nothing was sent.
func (a attack) Amplification() float64 {
	if a.bytesIn == 0 {
		return 0
	}
	return float64(a.bytesOut) / float64(a.bytesIn)
}
