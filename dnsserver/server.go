package dnsserver

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnscookie"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/reuseport"
	"github.com/popdns/popdns/internal/rrl"
	"github.com/popdns/popdns/internal/traffic"
	"github.com/popdns/popdns/latency/learn"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Config is the validated configuration of a Server. The zero value of
// each optional field means its documented default.
type Config struct {
	// Listen lists host:port addresses; each serves UDP and TCP. Port 0
	// picks a free port, the same one for both transports.
	Listen []string
	// UDPSize is the EDNS payload size we advertise and the most we send
	// over UDP. Default 1232, which avoids IP fragmentation (DNS flag day 2020).
	UDPSize uint16
	// NSID is returned to clients that ask for it (RFC 5001); empty: off.
	NSID string
	// TCPIdleTimeout closes a TCP connection that has sent no query for
	// this long (RFC 7766 §6.2.3). Default 10 s.
	TCPIdleTimeout time.Duration
	// TCPMaxQueries closes a TCP connection after this many queries;
	// default 0 is unlimited.
	TCPMaxQueries int
	// TCPReadTimeout bounds the time to read one whole query over TCP
	// from its first byte, and (with TCPIdleTimeout, whichever is
	// shorter) the wait for a new connection's first query, so that a
	// client trickling bytes holds a connection no longer. Default 2 s.
	TCPReadTimeout time.Duration
	// TCPMaxConnections caps the TCP connections open at once, over all
	// listeners; one more takes the place of the least active (tcp.go).
	// Default: the file-descriptor limit (RLIMIT_NOFILE) less a reserve
	// of a quarter of it, at least 256, for health probes, HTTP, reloads
	// and zone files, and at most DefaultTCPMaxConnections. A value that
	// leaves fewer than 256 descriptors is an error.
	TCPMaxConnections int
	// TCPMaxConnectionsPerPrefix caps the TCP connections open at once
	// from one source network (TCPPrefixV4, TCPPrefixV6), so that one
	// network cannot take them all. Default: a tenth of
	// TCPMaxConnections, at least 1.
	TCPMaxConnectionsPerPrefix int
	// TCPPrefixV4 and TCPPrefixV6 are the prefix lengths of a source
	// network for TCPMaxConnectionsPerPrefix. Default 24 and 56.
	TCPPrefixV4, TCPPrefixV6 int
	// ShutdownGrace bounds how long Serve, once its context is done,
	// answers the queries it has read (and those the kernel holds for it)
	// before it closes what is left. Default 5 s.
	ShutdownGrace time.Duration
	// QueryLog logs every query at info level. Meant for debugging: it
	// costs far more than answering.
	QueryLog bool
	// Steering holds the parameters of PoP selection; New provisions it
	// (steer.Options.Provision).
	Steering steer.Options
	// RateLimit is response rate limiting of UDP replies (package rrl);
	// the zero value limits at rrl's defaults. TCP is never limited.
	RateLimit rrl.Config
	// Cookies configures DNS cookies (RFC 7873, RFC 9018); on by default.
	Cookies CookieConfig
	// ReusePortOff binds the listen addresses exclusively. By default (on
	// Linux) they are bound with SO_REUSEPORT, so that a new process can
	// bind them while this one serves and take over without losing a
	// query (package internal/reuseport; Listen, TakeOver).
	ReusePortOff bool
	// ExplorePct is the share of geo answers, in percent, that put their
	// decision's exploration target first (steer.Decision.Explore: the
	// best eligible alternative the client's learned-latency cell has no
	// fresh RTT of), so that measurements come to exist for the PoPs a
	// client could move to. 0, the default, is off; at most 50. Only
	// decisions made with a learned-latency table (SetLearned) have one.
	ExplorePct float64
	// Widen configures ECS scope widening (widen.go); on by default.
	Widen WidenConfig

	// fileLimit is the file-descriptor limit the TCP defaults are sized
	// by; 0 reads the process's, and a negative one is unknown. Tests set
	// it.
	fileLimit int
}

// CookieConfig configures DNS cookies (see cookie.go for what a query's
// COOKIE option gets).
type CookieConfig struct {
	// Off ignores COOKIE options, as a server without cookies does.
	Off bool
	// Secrets make and check server cookies. nil: New makes a random
	// secret, so that no other instance accepts this one's cookies, nor
	// this one after a restart; clients then just learn a new cookie.
	// Instances behind one address (anycast, a load balancer) share a
	// secret so that a client's cookie is valid at each of them.
	Secrets *dnscookie.Secrets
}

// Deps are what a Server uses but does not own.
type Deps struct {
	Log     zerolog.Logger
	Metrics prometheus.Registerer // required
	// Locator places clients for geo records; nil means every client is of
	// unknown location and geo records answer in their listed order.
	Locator Locator
	// Health says which probed targets are up and how slow; nil means no
	// probes: every target counts as healthy.
	Health HealthSource
}

// Locator places a client address. *geo.Locator implements it; it must be
// safe for concurrent use and must not block.
type Locator interface {
	Locate(netip.Addr) geo.Location
}

// HealthSource is the live probe state. *healthprobe.Prober implements it;
// Status is called on the query path, so it must not block.
type HealthSource interface {
	Status() *healthprobe.Status
}

// ConfigError is a bad value of one field of [Config]; Field is the Go
// field name (Steering's fields as Steering.Name), which the caller maps to
// where the value came from.
type ConfigError struct {
	Field   string
	Problem string
}

func (e *ConfigError) Error() string { return "dnsserver: " + e.Field + ": " + e.Problem }

// MaxExplorePct bounds Config.ExplorePct: exploring sends a client to a
// PoP ranked worse for it, and more than half its answers would make the
// exploration its usual answer.
const MaxExplorePct = 50

// Provision returns cfg with its defaults applied and its steering options
// provisioned (steer.Options.Provision) and, joined, a *ConfigError for
// every field that is out of range. New calls it; a configuration loader calls it too, to report
// every problem before anything starts. It is idempotent.
func (cfg Config) Provision() (Config, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{field, fmt.Sprintf(format, args...)})
	}
	if len(cfg.Listen) == 0 {
		bad("Listen", "no address")
	}
	for _, addr := range cfg.Listen {
		if err := checkListenAddr(addr); err != nil {
			bad("Listen", "%q: %v", addr, err)
		}
	}
	if cfg.Widen.PerSecond == 0 {
		cfg.Widen.PerSecond = DefaultWidenPerSecond
	}
	if cfg.Widen.PerSecond < 0 {
		bad("Widen.PerSecond", "%d is negative", cfg.Widen.PerSecond)
	}
	if cfg.UDPSize == 0 {
		cfg.UDPSize = DefaultUDPSize
	}
	if cfg.UDPSize < dns.MinMsgSize {
		bad("UDPSize", "%d is below the minimum of %d", cfg.UDPSize, dns.MinMsgSize)
	}
	switch {
	case cfg.TCPIdleTimeout == 0:
		cfg.TCPIdleTimeout = DefaultTCPIdleTimeout
	case cfg.TCPIdleTimeout < 0:
		bad("TCPIdleTimeout", "must not be negative")
	}
	if cfg.TCPMaxQueries < 0 {
		bad("TCPMaxQueries", "must not be negative (0 means unlimited)")
	}
	cfg.provisionTCP(bad)
	switch {
	case cfg.ShutdownGrace == 0:
		cfg.ShutdownGrace = DefaultShutdownGrace
	case cfg.ShutdownGrace < 0:
		bad("ShutdownGrace", "must not be negative")
	}
	if sec := cfg.Cookies.Secrets; sec != nil && sec.Current == (dnscookie.Secret{}) {
		bad("Cookies.Secrets", "the secret is all zeros")
	}
	if !(cfg.ExplorePct >= 0 && cfg.ExplorePct <= MaxExplorePct) {
		bad("ExplorePct", "%v: must be a percentage from 0 to %d", cfg.ExplorePct, MaxExplorePct)
	}
	steering, err := cfg.Steering.Provision()
	for _, e := range unjoin(err) {
		var oe *steer.OptionError
		if errors.As(e, &oe) {
			bad("Steering."+oe.Field, "%s", oe.Problem)
		} else {
			errs = append(errs, e)
		}
	}
	cfg.Steering = steering
	rateLimit, err := cfg.RateLimit.Provision()
	for _, e := range unjoin(err) {
		var re *rrl.ConfigError
		if errors.As(e, &re) {
			bad("RateLimit."+re.Field, "%s", re.Problem)
		} else {
			errs = append(errs, e)
		}
	}
	cfg.RateLimit = rateLimit
	return cfg, errors.Join(errs...)
}

// unjoin lists the errors err joins (errors.Join), or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// checkListenAddr checks a listen address: host:port with an IP address
// (or no host: every address) and a port from 0 to 65535.
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("host must be an IP address: %w", err)
		}
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// udpReadBuffer is the receive buffer asked for each UDP socket, up to
// net.core.rmem_max. The default (rmem_default, 208 KiB) holds some 200
// queries: a reader that falls behind by 100 ms at 2,000 queries a second
// overflows it, as TestBinaryRestart saw while a new process started on
// the same two CPUs (7 of 4,491 lost, 7 receive-buffer overflows, before
// anything was taken over). 4 MiB holds some 4,000.
const udpReadBuffer = 4 << 20

// DefaultUDPSize is the EDNS payload size advertised when Config leaves it 0.
const DefaultUDPSize = 1232

// DefaultTCPIdleTimeout applies when Config.TCPIdleTimeout is 0.
const DefaultTCPIdleTimeout = 10 * time.Second

// Defaults of the TCP limits and of shutdown; see Config.
const (
	DefaultTCPReadTimeout = 2 * time.Second
	// DefaultTCPMaxConnections is the most TCP connections the default
	// allows whatever the file-descriptor limit: each costs memory too
	// (a goroutine and its buffers, some 10–20 KiB).
	DefaultTCPMaxConnections = 20000
	DefaultTCPPrefixV4       = rrl.DefaultIPv4Prefix // the source network rate limiting accounts by
	DefaultTCPPrefixV6       = rrl.DefaultIPv6Prefix
	DefaultShutdownGrace     = 5 * time.Second
	// fdReserveMin is the fewest file descriptors the TCP connections
	// leave to everything else: listeners, probes (one socket each while
	// probing), HTTP, zone and GeoIP files being read, fsnotify, the
	// runtime.
	fdReserveMin = 256
	// tcpLimitUnknown is the default where the descriptor limit cannot
	// be read.
	tcpLimitUnknown = 1000
)

// provisionTCP applies the TCP connection limits' defaults, sized by the
// file-descriptor limit, and checks them. With a limit of n descriptors,
// a reserve of max(256, n/4) (at most n/2) stays for everything but DNS
// connections and the default cap is n less that reserve, at most
// DefaultTCPMaxConnections: 20000 descriptors give 15000 connections and
// 1500 per source network. A cap set by hand may take all but 256.
func (cfg *Config) provisionTCP(bad func(field, format string, args ...any)) {
	switch {
	case cfg.TCPReadTimeout == 0:
		cfg.TCPReadTimeout = DefaultTCPReadTimeout
	case cfg.TCPReadTimeout < 0:
		bad("TCPReadTimeout", "must not be negative")
	}
	if cfg.fileLimit == 0 {
		cfg.fileLimit = fileLimit()
	}
	n := max(cfg.fileLimit, 0)
	reserve := min(max(fdReserveMin, n/4), n/2)
	switch {
	case cfg.TCPMaxConnections < 0:
		bad("TCPMaxConnections", "must not be negative (0 sizes it by the file-descriptor limit)")
	case cfg.TCPMaxConnections == 0 && n > 0:
		cfg.TCPMaxConnections = max(1, min(n-reserve, DefaultTCPMaxConnections))
	case cfg.TCPMaxConnections == 0:
		cfg.TCPMaxConnections = tcpLimitUnknown
	case n > 0 && cfg.TCPMaxConnections > n-min(fdReserveMin, n/2):
		bad("TCPMaxConnections", "%d leaves fewer than %d of the process's %d file descriptors (RLIMIT_NOFILE) for health probes, HTTP and reloads; raise the limit (ulimit -n, systemd LimitNOFILE=) or lower this",
			cfg.TCPMaxConnections, min(fdReserveMin, n/2), n)
	}
	switch {
	case cfg.TCPMaxConnectionsPerPrefix < 0:
		bad("TCPMaxConnectionsPerPrefix", "must not be negative (0 means a tenth of tcp_max_connections)")
	case cfg.TCPMaxConnectionsPerPrefix == 0:
		cfg.TCPMaxConnectionsPerPrefix = max(1, cfg.TCPMaxConnections/10)
	case cfg.TCPMaxConnectionsPerPrefix > cfg.TCPMaxConnections && cfg.TCPMaxConnections > 0:
		bad("TCPMaxConnectionsPerPrefix", "%d is more than the %d connections allowed in all", cfg.TCPMaxConnectionsPerPrefix, cfg.TCPMaxConnections)
	}
	if cfg.TCPPrefixV4 == 0 {
		cfg.TCPPrefixV4 = DefaultTCPPrefixV4
	}
	if cfg.TCPPrefixV4 < 1 || cfg.TCPPrefixV4 > 32 {
		bad("TCPPrefixV4", "%d is not a prefix length from 1 to 32", cfg.TCPPrefixV4)
	}
	if cfg.TCPPrefixV6 == 0 {
		cfg.TCPPrefixV6 = DefaultTCPPrefixV6
	}
	if cfg.TCPPrefixV6 < 1 || cfg.TCPPrefixV6 > 128 {
		bad("TCPPrefixV6", "%d is not a prefix length from 1 to 128", cfg.TCPPrefixV6)
	}
}

// Server answers DNS queries over UDP and TCP from the latest zones
// snapshot. Its methods are safe for concurrent use.
type Server struct {
	cfg        Config
	nsidHex    string
	log        zerolog.Logger
	allDownLog zerolog.Logger // sampled: at most 5 lines per 10 s, for all names together
	limiter    *rrl.Limiter   // nil: rate limiting off
	explore    udpfast.Explorer
	rrlLog     zerolog.Logger // sampled as allDownLog
	metrics    *metrics
	tcpMetrics *tcpMetrics
	locator    Locator
	health     HealthSource
	overrides  atomic.Pointer[steer.Overrides] // nil: none
	steering   steer.Options                   // provisioned
	cache      decisionCache
	zones      atomic.Pointer[zones.Snapshot]    // nil until the first SetZones
	cookies    atomic.Pointer[dnscookie.Secrets] // nil: cookies are off
	now        func() time.Time                  // the clock cookies are made at and traffic is counted by
	// acceptDrainMax bounds how long shutdown accepts a TCP listener's
	// backlog; 0: the constant. Tests on a starved machine raise it.
	acceptDrainMax time.Duration
	serving        atomic.Bool       // every listener is answering
	served         chan struct{}     // closed the first time serving turns true
	servedOnce     sync.Once         // closes served
	signer         *signer           // the signatures of signed zones' answers
	traffic        *traffic.Counters // what was answered, for /status and Prometheus
	// widen grows decisions' ECS scopes off the query path (widen.go).
	widen *widener
	// learned is the learned-latency table (SetLearned); nil: none.
	learned atomic.Pointer[learn.Snapshot]

	mu        sync.Mutex // mu guards the fields below
	listeners []listener
	// takingOver: at Listen another process served an address, which
	// this one takes over when told (TakeOver).
	takingOver bool
	// fast are the UDP fast path's sockets while Serve runs, by
	// listener (nil where there is none); nil outside Serve.
	fast []*udpfast.Socket
}

// listener is one address, bound for both transports.
type listener struct {
	udp net.PacketConn
	tcp net.Listener
}

// New validates cfg and returns a Server that has not yet bound any socket.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg, err := cfg.Provision()
	if err != nil {
		return nil, err
	}
	if deps.Metrics == nil {
		panic("dnsserver: New without a metrics registerer")
	}
	// The traffic counters read the server's clock, which tests set; s
	// is made below, after counting begins.
	var s *Server
	tr := traffic.New(func() time.Time {
		if s == nil {
			return systemNow()
		}
		return s.now()
	})
	m, err := newMetrics(deps.Metrics, tr)
	if err != nil {
		return nil, fmt.Errorf("dnsserver: register metrics: %w", err)
	}
	tm, err := newTCPMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("dnsserver: register metrics: %w", err)
	}
	log := deps.Log.With().Str("component", "dnsserver").Logger()
	limiter, err := rrl.New(cfg.RateLimit)
	if err != nil {
		return nil, fmt.Errorf("dnsserver: %w", err)
	}
	s = &Server{
		tcpMetrics: tm,
		cfg:        cfg,
		nsidHex:    hex.EncodeToString([]byte(cfg.NSID)),
		log:        log,
		allDownLog: log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second}),
		limiter:    limiter,
		explore:    udpfast.NewExplorer(cfg.ExplorePct),
		rrlLog:     log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second}),
		metrics:    m,
		locator:    deps.Locator,
		health:     deps.Health,
		steering:   cfg.Steering,
		now:        systemNow,
		traffic:    tr,
		served:     make(chan struct{}),
	}
	sm, err := newSignMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("dnsserver: register metrics: %w", err)
	}
	s.signer = newSigner(time.Now, log, sm)
	wm, err := newWidenMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("dnsserver: register metrics: %w", err)
	}
	s.widen = newWidener(cfg.Widen, deps.Locator, &s.cache, wm)
	if !cfg.Cookies.Off {
		secrets := cfg.Cookies.Secrets
		if secrets == nil {
			if secrets, err = dnscookie.RandomSecrets(); err != nil {
				return nil, err
			}
		}
		c := *secrets // the caller's may change; ours must not
		s.cookies.Store(&c)
	}
	return s, nil
}

// allDown records that an answer of geo record g had no eligible target
// and its when_all_down policy decided: a counter always, a log line
// sampled. The fast path counts per batch and logs once per batch.
func (s *Server) allDown(g *zones.Geo, servfail bool) {
	s.metrics.allDown.WithLabelValues(g.WhenAllDown.String()).Inc()
	s.logAllDown(g, servfail)
}

func (s *Server) logAllDown(g *zones.Geo, servfail bool) {
	s.allDownLog.Warn().Str("name", g.Owner).Str("policy", g.WhenAllDown.String()).Bool("servfail", servfail).
		Msg("geo record has no eligible target; when_all_down decided")
}

// SetPoPStates replaces the operators' runtime admin states of PoPs, by PoP
// name, without a reload. They combine with the configuration's states as
// target states do: the strongest wins (down over drain over active), so an
// override of active only removes an earlier override. The server keeps its
// own copy of states.
func (s *Server) SetPoPStates(states map[string]pops.AdminState) {
	for {
		old := s.overrides.Load()
		if s.overrides.CompareAndSwap(old, old.Next(states)) {
			return
		}
	}
}

// PoPStates returns a copy of the runtime admin states set with
// SetPoPStates (active ones left out).
func (s *Server) PoPStates() map[string]pops.AdminState { return s.overrides.Load().States() }

// Overrides returns the operators' runtime admin states as selection reads
// them; nil before the first SetPoPStates.
func (s *Server) Overrides() *steer.Overrides { return s.overrides.Load() }

// SetZones makes snap the data that queries are answered from. The swap is
// atomic: a query in flight finishes with the snapshot it started with.
// Signed zones are presigned in the background (while Serve runs); until
// then their answers are signed as they are asked.
func (s *Server) SetZones(snap *zones.Snapshot) {
	// First: snap's answers find their counters. A query still on the
	// snapshot before counts its geo answers in its PoP, unattributed
	// (traffic.Counters.Target).
	s.traffic.SetZones(snap)
	s.zones.Store(snap)
	s.signer.setZones(snap)
}

// Traffic is what the server answered: queries per zone, geo answers per
// record target and the catchment, and their rates while Serve runs.
func (s *Server) Traffic() traffic.Report { return s.traffic.Report() }

// Zones returns the snapshot being served, or nil before the first SetZones.
func (s *Server) Zones() *zones.Snapshot { return s.zones.Load() }

// Listen binds every configured address for UDP and TCP. After it returns
// without error, Addrs reports the bound addresses and Serve may be called.
//
// Unless Config.ReusePortOff, the addresses are bound with SO_REUSEPORT
// and, if another process (of the same user, with SO_REUSEPORT too)
// already serves one, this Server is taking over (TakingOver): the other
// keeps getting every query until TakeOver.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) > 0 {
		return errors.New("dnsserver: already listening")
	}
	share := !s.cfg.ReusePortOff && reuseport.Supported()
	s.takingOver = false
	for _, addr := range s.cfg.Listen {
		if share && reuseport.Held(addr) {
			s.takingOver = true
		}
	}
	for _, addr := range s.cfg.Listen {
		l, err := bind(addr, share)
		if err != nil {
			s.closeListenersLocked()
			return err
		}
		s.listeners = append(s.listeners, l)
	}
	return nil
}

// TakingOver reports whether Listen found another process serving an
// address: until TakeOver, that one keeps getting every query.
func (s *Server) TakingOver() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.takingOver
}

// bind opens UDP and TCP on addr, with SO_REUSEPORT when share is true.
// For port 0 both must end up on the same port, so it takes TCP's port
// for UDP and retries if that one is taken.
func bind(addr string, share bool) (listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return listener{}, fmt.Errorf("dnsserver: listen address %q: %w", addr, err)
	}
	const attempts = 20
	for i := 0; ; i++ {
		tl, err := reuseport.ListenTCP(addr, share)
		if err != nil {
			return listener{}, fmt.Errorf("dnsserver: %w", err)
		}
		udpAddr := addr
		if port == "0" {
			udpAddr = net.JoinHostPort(host, strconv.Itoa(tl.Addr().(*net.TCPAddr).Port))
		}
		var pc *net.UDPConn
		if port == "0" && share && reuseport.Held(udpAddr) {
			// A port of our choosing another process of this user
			// serves over UDP: joining its group would share its
			// queries. Pick another.
			err = syscall.EADDRINUSE
		} else {
			pc, err = reuseport.ListenUDP(udpAddr, share)
		}
		if err == nil {
			// Best effort: the kernel caps it at net.core.rmem_max
			// silently.
			_ = pc.SetReadBuffer(udpReadBuffer)
			return listener{udp: pc, tcp: tl}, nil
		}
		tl.Close()
		if port != "0" || i == attempts {
			return listener{}, fmt.Errorf("dnsserver: %w", err)
		}
	}
}

// TCPLimits are the TCP connection limits the server runs with, as
// provisioned from the file-descriptor limit, for operators to see.
type TCPLimits struct {
	Connections, PerPrefix int
	FileLimit              int // RLIMIT_NOFILE as read at start; 0: unknown
}

// TCPLimits reports the TCP connection limits in force.
func (s *Server) TCPLimits() TCPLimits {
	return TCPLimits{Connections: s.cfg.TCPMaxConnections, PerPrefix: s.cfg.TCPMaxConnectionsPerPrefix,
		FileLimit: max(s.cfg.fileLimit, 0)}
}

// Serving reports whether Serve has every listener answering queries.
func (s *Server) Serving() bool { return s.serving.Load() }

// Served is closed once Serve first has every listener answering queries;
// a Server taking over may then TakeOver.
func (s *Server) Served() <-chan struct{} { return s.served }

// Addrs lists the bound addresses (host:port, UDP and TCP alike), in the
// order of Config.Listen.
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.tcp.Addr().String()
	}
	return out
}

// Serve answers queries on the bound sockets until ctx is done, then shuts
// down gracefully within Config.ShutdownGrace: it stops reading and
// accepting, answers every query it has read — and those the kernel
// already holds for it: the UDP sockets' queues, and what each TCP
// connection has received — and returns once all are answered, or the
// grace period is over.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if len(s.listeners) == 0 {
		s.mu.Unlock()
		return errors.New("dnsserver: Serve before Listen")
	}
	var udps []*serving
	var fast []*udpfast.Socket
	stopped := make(chan *serving, len(s.listeners))
	fastErr := make(chan error, len(s.listeners))
	tcpErr := make(chan error, len(s.listeners))
	tcp := newTCPServer(s)
	for _, l := range s.listeners {
		// The fast path's readers own the UDP socket where they can, and
		// hand what they do not answer to the miekg/dns server.
		udpConn := l.udp
		var u *udpfast.Socket
		if fu, err := udpfast.NewSocket(l.udp, fastHost{s}, s.fastConfig()); err != nil {
			s.log.Warn().Err(err).Msg("UDP fast path unavailable; answering through miekg/dns only")
		} else if fu != nil {
			u = fu
			fast = append(fast, u)
			udpConn = u.Handoff()
		}
		srv := &dns.Server{
			PacketConn:     udpConn,
			Handler:        s,
			UDPSize:        dns.MaxMsgSize,
			MsgAcceptFunc:  acceptQuery,
			ReadTimeout:    time.Second,
			WriteTimeout:   time.Second,
			DecorateReader: screenReader, // malformed ECS: FORMERR with OPT (screenECS)
		}
		sv := &serving{srv: srv, fast: u, started: make(chan struct{}), stopped: make(chan struct{})}
		srv.NotifyStartedFunc = func() { close(sv.started) }
		udps = append(udps, sv)
		go func() {
			defer close(sv.stopped)
			sv.err = srv.ActivateAndServe()
			stopped <- sv
		}()
		tcp.wg.Add(1)
		go func() {
			defer tcp.wg.Done()
			if err := tcp.serve(l.tcp); err != nil {
				tcpErr <- fmt.Errorf("dnsserver: serve tcp: %w", err)
			}
		}()
	}
	for _, u := range fast {
		u.Start(fastErr)
	}
	s.fast = make([]*udpfast.Socket, len(udps))
	for i, sv := range udps {
		s.fast[i] = sv.fast
	}
	s.mu.Unlock()
	signCtx, stopSigning := context.WithCancel(ctx)
	signDone := make(chan struct{})
	go func() {
		defer close(signDone)
		s.signer.run(signCtx)
	}()
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		s.traffic.Run(signCtx)
	}()
	widenDone := make(chan struct{})
	go func() {
		defer close(widenDone)
		s.widen.run(signCtx)
	}()
	defer func() {
		stopSigning()
		<-signDone
		<-trafficDone
		<-widenDone
	}()
	go func() {
		for _, sv := range udps {
			select {
			case <-sv.started:
			case <-sv.stopped:
				return
			case <-ctx.Done():
				return
			}
		}
		s.serving.Store(true)
		s.servedOnce.Do(func() { close(s.served) })
	}()
	defer s.serving.Store(false)

	var err error
	select {
	case <-ctx.Done():
	case sv := <-stopped:
		err = fmt.Errorf("dnsserver: serve: %w", sv.err)
	case ferr := <-fastErr:
		err = ferr
	case terr := <-tcpErr:
		err = terr
	}
	s.mu.Lock()
	s.fast = nil // closed by shutdown: TakeOver must not steer them
	s.mu.Unlock()
	s.shutdown(tcp, udps)
	return err
}

// TakeOver steers every address's reuseport groups, UDP and TCP, to this
// Server's sockets: the process that served them when Listen bound them
// (TakingOver) gets nothing new, and on SIGTERM answers what it holds and
// closes (package internal/reuseport). Call it once Served is closed and
// everything else the process does at start is done: from then on every
// query waits for this process, and a reader starved by the rest of a
// start would let its socket overflow. A failure leaves that group's
// traffic with the other process, and its queue to be lost when it
// closes.
func (s *Server) TakeOver() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fast == nil {
		return errors.New("dnsserver: TakeOver while not serving")
	}
	var failed error
	for i, l := range s.listeners {
		var err error
		if u := s.fast[i]; u != nil {
			err = reuseport.SteerControl(u, reuseport.Newest)
		} else if c, ok := l.udp.(syscall.Conn); ok {
			err = reuseport.Steer(c, reuseport.Newest)
		}
		if c, ok := l.tcp.(syscall.Conn); ok && err == nil {
			err = reuseport.Steer(c, reuseport.Newest)
		}
		if err != nil {
			failed = errors.Join(failed, fmt.Errorf("%s: %w", l.tcp.Addr(), err))
		}
	}
	if failed != nil {
		return fmt.Errorf("dnsserver: take the addresses over: %w", failed)
	}
	s.log.Info().Int("addresses", len(s.listeners)).Msg("took the DNS addresses over: every new query comes here; the process that served them may stop")
	return nil
}

// shutdown stops reading and answers what was read, within the grace
// period. TCP stops accepting and each connection answers what it has
// received, then closes. Each fast path reader reads its socket's queue
// once more, up to what was there (drainUDP), answering it or handing it
// off; then the general path's UDP server answers every query handed off
// and stops. What the grace period does not cover is dropped.
func (s *Server) shutdown(tcp *tcpServer, udps []*serving) {
	deadline := time.Now().Add(s.cfg.ShutdownGrace)
	graceCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	s.mu.Lock()
	var tls []net.Listener
	for _, l := range s.listeners {
		tls = append(tls, l.tcp)
	}
	s.mu.Unlock()
	tcp.shutdown(tls...)
	tcpDone := make(chan struct{})
	go func() {
		tcp.wg.Wait()
		close(tcpDone)
	}()
	// Every socket stops at once, then drains: stopped one after the
	// other, the last would go on answering new queries while the first
	// drained, and get no time of its own.
	for _, sv := range udps {
		if sv.fast != nil {
			sv.fast.Stop(deadline)
		}
	}
	for _, sv := range udps {
		if sv.fast != nil {
			sv.fast.Wait()
		}
	}
	// miekg/dns refuses to shut down a server that has not marked itself
	// started, so each is shut down only once it has (or found gone). A
	// server reading the fast path's hand-off is told to finish instead:
	// it reads every query queued for it, answers them and returns.
	for _, sv := range udps {
		select {
		case <-sv.started:
			if sv.fast != nil {
				sv.fast.FinishHandoff()
			} else {
				sv.srv.ShutdownContext(graceCtx)
			}
		case <-sv.stopped:
		case <-graceCtx.Done():
		}
	}
	for _, sv := range udps {
		select {
		case <-sv.stopped:
		case <-graceCtx.Done():
			// Past the grace period: stop it whatever it still holds.
			if sv.fast != nil {
				sv.fast.CloseHandoff()
			}
			select {
			case <-sv.started:
				sv.srv.ShutdownContext(graceCtx)
			case <-sv.stopped:
			}
			<-sv.stopped
		}
	}
	select {
	case <-tcpDone:
	case <-graceCtx.Done():
		tcp.closeAll()
		<-tcpDone
	}
	for _, sv := range udps {
		if sv.fast != nil {
			sv.fast.Close()
		}
	}
}

// serving is one miekg/dns UDP server run by Serve.
type serving struct {
	srv     *dns.Server
	fast    *udpfast.Socket // the fast path reading the socket; nil: none
	started chan struct{}   // closed once it serves
	stopped chan struct{}   // closed when ActivateAndServe has returned
	err     error           // what it returned; read after stopped
}

// Run binds and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Serve(ctx)
}

func (s *Server) closeListenersLocked() {
	for _, l := range s.listeners {
		l.udp.Close()
		l.tcp.Close()
	}
	s.listeners = nil
}
