package dnsserver

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnscookie"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/rrl"
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
	if sec := cfg.Cookies.Secrets; sec != nil && sec.Current == (dnscookie.Secret{}) {
		bad("Cookies.Secrets", "the secret is all zeros")
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

// DefaultUDPSize is the EDNS payload size advertised when Config leaves it 0.
const DefaultUDPSize = 1232

// DefaultTCPIdleTimeout applies when Config.TCPIdleTimeout is 0.
const DefaultTCPIdleTimeout = 10 * time.Second

// Server answers DNS queries over UDP and TCP from the latest zones
// snapshot. Its methods are safe for concurrent use.
type Server struct {
	cfg        Config
	nsidHex    string
	log        zerolog.Logger
	allDownLog zerolog.Logger // sampled: at most 5 lines per 10 s, for all names together
	limiter    *rrl.Limiter   // nil: rate limiting off
	rrlLog     zerolog.Logger // sampled as allDownLog
	metrics    *metrics
	locator    Locator
	health     HealthSource
	overrides  atomic.Pointer[steer.Overrides] // nil: none
	steering   steer.Options                   // provisioned
	cache      decisionCache
	zones      atomic.Pointer[zones.Snapshot]    // nil until the first SetZones
	cookies    atomic.Pointer[dnscookie.Secrets] // nil: cookies are off
	now        func() time.Time                  // the clock cookies are made at
	serving    atomic.Bool                       // every listener is answering

	mu        sync.Mutex // mu guards the fields below
	listeners []listener
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
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("dnsserver: register metrics: %w", err)
	}
	log := deps.Log.With().Str("component", "dnsserver").Logger()
	limiter, err := rrl.New(cfg.RateLimit)
	if err != nil {
		return nil, fmt.Errorf("dnsserver: %w", err)
	}
	s := &Server{
		cfg:        cfg,
		nsidHex:    hex.EncodeToString([]byte(cfg.NSID)),
		log:        log,
		allDownLog: log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second}),
		limiter:    limiter,
		rrlLog:     log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second}),
		metrics:    m,
		locator:    deps.Locator,
		health:     deps.Health,
		steering:   cfg.Steering,
		now:        systemNow,
	}
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
func (s *Server) SetZones(snap *zones.Snapshot) { s.zones.Store(snap) }

// Zones returns the snapshot being served, or nil before the first SetZones.
func (s *Server) Zones() *zones.Snapshot { return s.zones.Load() }

// Listen binds every configured address for UDP and TCP. After it returns
// without error, Addrs reports the bound addresses and Serve may be called.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) > 0 {
		return errors.New("dnsserver: already listening")
	}
	for _, addr := range s.cfg.Listen {
		l, err := bind(addr)
		if err != nil {
			s.closeListenersLocked()
			return err
		}
		s.listeners = append(s.listeners, l)
	}
	return nil
}

// bind opens UDP and TCP on addr. For port 0 both must end up on the same
// port, so it takes TCP's port for UDP and retries if that one is taken.
func bind(addr string) (listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return listener{}, fmt.Errorf("dnsserver: listen address %q: %w", addr, err)
	}
	const attempts = 20
	for i := 0; ; i++ {
		tl, err := net.Listen("tcp", addr)
		if err != nil {
			return listener{}, fmt.Errorf("dnsserver: %w", err)
		}
		udpAddr := addr
		if port == "0" {
			udpAddr = net.JoinHostPort(host, strconv.Itoa(tl.Addr().(*net.TCPAddr).Port))
		}
		pc, err := net.ListenPacket("udp", udpAddr)
		if err == nil {
			return listener{udp: pc, tcp: tl}, nil
		}
		tl.Close()
		if port != "0" || i == attempts {
			return listener{}, fmt.Errorf("dnsserver: %w", err)
		}
	}
}

// Serving reports whether Serve has every listener answering queries.
func (s *Server) Serving() bool { return s.serving.Load() }

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
// down gracefully: it stops reading and lets queries in flight finish.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if len(s.listeners) == 0 {
		s.mu.Unlock()
		return errors.New("dnsserver: Serve before Listen")
	}
	var all []*serving
	var fast []*udpfast.Socket
	stopped := make(chan *serving, 2*len(s.listeners))
	fastErr := make(chan error, len(s.listeners))
	for _, l := range s.listeners {
		// The fast path's readers own the UDP socket where they can, and
		// hand what they do not answer to the miekg/dns server.
		udpConn := l.udp
		if u, err := udpfast.NewSocket(l.udp, fastHost{s}, s.fastConfig()); err != nil {
			s.log.Warn().Err(err).Msg("UDP fast path unavailable; answering through miekg/dns only")
		} else if u != nil {
			fast = append(fast, u)
			udpConn = u.Handoff()
		}
		udp := &dns.Server{
			PacketConn:    udpConn,
			Handler:       s,
			UDPSize:       dns.MaxMsgSize,
			MsgAcceptFunc: acceptQuery,
			ReadTimeout:   time.Second,
			WriteTimeout:  time.Second,
		}
		tcp := &dns.Server{
			Listener:      l.tcp,
			Handler:       s,
			MsgAcceptFunc: acceptQuery,
			ReadTimeout:   2 * time.Second,
			WriteTimeout:  2 * time.Second,
			IdleTimeout:   func() time.Duration { return s.cfg.TCPIdleTimeout },
			MaxTCPQueries: s.cfg.TCPMaxQueries,
		}
		if s.cfg.TCPMaxQueries == 0 {
			tcp.MaxTCPQueries = -1
		}
		for _, srv := range []*dns.Server{udp, tcp} {
			srv.DecorateReader = screenReader // malformed ECS: FORMERR with OPT (screenECS)
			sv := &serving{srv: srv, started: make(chan struct{}), stopped: make(chan struct{})}
			srv.NotifyStartedFunc = func() { close(sv.started) }
			all = append(all, sv)
			go func() {
				defer close(sv.stopped)
				sv.err = srv.ActivateAndServe()
				stopped <- sv
			}()
		}
	}
	for _, u := range fast {
		u.Start(fastErr)
	}
	s.mu.Unlock()
	go func() {
		for _, sv := range all {
			select {
			case <-sv.started:
			case <-sv.stopped:
				return
			case <-ctx.Done():
				return
			}
		}
		s.serving.Store(true)
	}()
	defer s.serving.Store(false)

	var err error
	select {
	case <-ctx.Done():
	case sv := <-stopped:
		err = fmt.Errorf("dnsserver: serve: %w", sv.err)
	case ferr := <-fastErr:
		err = ferr
	}
	// The fast path's readers stop first: what they read is answered or
	// handed off before the miekg/dns servers stop.
	for _, u := range fast {
		u.Shutdown()
	}
	// Stop reading, let the queries in flight be answered, and wait for
	// every serving goroutine before returning. miekg/dns refuses to shut
	// down a server that has not marked itself started, so each is shut
	// down only once it has (or found already gone).
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	for _, sv := range all {
		select {
		case <-sv.started:
			if serr := sv.srv.ShutdownContext(shutdownCtx); serr != nil && !strings.Contains(serr.Error(), "not started") {
				err = errors.Join(err, fmt.Errorf("dnsserver: shutdown: %w", serr))
			}
		case <-sv.stopped:
		}
	}
	for _, sv := range all {
		<-sv.stopped
	}
	for _, u := range fast {
		u.Close()
	}
	return err
}

// serving is one miekg/dns server run by Serve.
type serving struct {
	srv     *dns.Server
	started chan struct{} // closed once it serves
	stopped chan struct{} // closed when ActivateAndServe has returned
	err     error         // what it returned; read after stopped
}

// shutdownGrace bounds how long shutdown waits for queries in flight and
// open TCP connections.
const shutdownGrace = 5 * time.Second

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
