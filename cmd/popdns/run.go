package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/events"
	"github.com/popdns/popdns/internal/fleet"
	"github.com/popdns/popdns/internal/learned"
	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/internal/reload"
	"github.com/popdns/popdns/internal/reuseport"
	"github.com/popdns/popdns/internal/status"
	"github.com/popdns/popdns/latency/learn"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

// runServe serves until ctx ends, as the flags in args say; it logs to
// stderr.
func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseServeFlags(args)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	if was := runtime.GOMAXPROCS(0); procsFor(was, os.Getenv("GOMAXPROCS") != "") != was {
		n := procsFor(was, false)
		runtime.GOMAXPROCS(n)
		log.Info().Int("gomaxprocs", n).Int("gomaxprocs_default", was).
			Msg("running with a second P, so that the UDP readers do not delay the health probes")
	}
	a, err := start(cfg, args, log, nil)
	if err != nil {
		return err
	}
	return a.serve(ctx)
}

// minProcs is the fewest Ps popdns serves with. A UDP reader under load
// never parks, and Go's scheduler looks at the network only when a P has
// nothing else to run, or every 10 ms. With one P (one CPU, or a CPU
// limit) the health probes' replies wait behind the reader: their RTTs
// grew by 20–50 ms under load in bench/, and the penalties they feed then
// moved clients and flushed the decision cache every few seconds. A second
// P waits in the netpoller and runs a probe as soon as its reply is in;
// the kernel shares the CPU between the two threads. Setting GOMAXPROCS
// ends the runtime's tracking of a changing CPU limit, which is why it is
// set only when the runtime chose 1.
const minProcs = 2

// procsFor is the GOMAXPROCS to serve with, given the runtime's choice and
// whether the operator set GOMAXPROCS, which always wins.
func procsFor(current int, setByOperator bool) int {
	if setByOperator || current >= minProcs {
		return current
	}
	return minProcs
}

func versionString() string {
	s := "popdns " + version
	if bi, ok := debug.ReadBuildInfo(); ok {
		s += " (" + bi.GoVersion + ")"
	}
	return s
}

// parseServeFlags reads the configuration (the file named by -config, or
// the built-in demo) and applies the flags that override it.
func parseServeFlags(args []string) (*config, error) {
	fl := flag.NewFlagSet("popdns", flag.ContinueOnError)
	fl.Usage = func() { serveUsage(fl) }
	configFile := fl.String("config", "", "configuration `file` (default: the built-in demo)")
	listen := fl.String("listen", "", "DNS listen `addresses`, comma-separated host:port (overrides the config)")
	httpAddr := fl.String("http", "", "HTTP endpoint `host:port`, \"off\" to disable (overrides the config)")
	httpPublic := fl.Bool("http-public-without-token", false,
		"serve the status page, /status and /explain without a token on an HTTP endpoint beyond loopback (sets http_public_without_token)")
	zonesDir := fl.String("zones", "", "zones `directory` (overrides the config)")
	rest, err := parseArgs(fl, args)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, &usageError{fl: fl, err: fmt.Errorf("unexpected argument %q (the commands are %s)", rest[0], commands)}
	}
	var cfg *config
	if *configFile == "" {
		cfg, err = demoConfig()
	} else {
		cfg, err = readConfigFile(*configFile)
	}
	if err != nil {
		return nil, err
	}
	if *listen != "" {
		cfg.dns.Listen = strings.Split(*listen, ",")
		// dnsserver checks its listen addresses, as it did the file's.
		dnsCfg, err := cfg.dns.Provision()
		if err != nil {
			return nil, fmt.Errorf("-listen %q: %w", *listen, err)
		}
		cfg.dns = dnsCfg
	}
	switch *httpAddr {
	case "":
	case "off":
		cfg.httpAddr = ""
	default:
		if err := checkHostPort(*httpAddr); err != nil {
			return nil, fmt.Errorf("-http %q: %w", *httpAddr, err)
		}
		cfg.httpAddr = *httpAddr
	}
	if *httpPublic {
		cfg.httpPublicWithoutToken = true
	}
	if err := cfg.checkHTTPExposure(*httpAddr != ""); err != nil {
		return nil, err
	}
	if *zonesDir != "" {
		if st, err := os.Stat(*zonesDir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("-zones %s: not a directory", *zonesDir)
		}
		cfg.zonesDir = *zonesDir
		cfg.zonesFS = os.DirFS(*zonesDir)
		cfg.zonesOnDisk = true
	}
	return cfg, nil
}

func newLogger(cfg *config, w io.Writer) zerolog.Logger {
	if !cfg.logJSON {
		f, isFile := w.(*os.File)
		color := isFile && isatty.IsTerminal(f.Fd())
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !color}
	}
	// The level is the process's, so that a reload can change it.
	zerolog.SetGlobalLevel(cfg.logLevel)
	return zerolog.New(w).With().Timestamp().Logger()
}

// app is a started popdns: zones loaded, sockets bound, DNS and HTTP
// already answering (they did while the zones loaded), the reloader and
// the probes not yet running.
type app struct {
	cfg          *config
	log          zerolog.Logger
	dns          *dnsserver.Server
	built        *server // owns the GeoIP databases, closed after serving
	reloader     *reload.Reloader
	status       *status.Reporter
	http         *http.Server // nil when the HTTP endpoint is off
	httpListener net.Listener
	// overrides keeps the operators' PoP states; applier applies them.
	overrides overrides.Store
	// fleet is this instance's part of a fleet (cluster:); nil: alone.
	fleet       *fleet.Fleet
	fleetHealth *fleet.Health
	applier     *overrideApplier
	// stopDNS ends the DNS server's Serve, which start began so that the
	// zones loaded first answer while the others load (or, taking over,
	// once all are); dnsDone has what Serve returned. httpDone is the
	// same for HTTP (nil when off).
	stopDNS  context.CancelFunc
	dnsDone  chan error
	httpDone chan error
	// takingOver: another process served the DNS addresses at start;
	// this one takes them over, and the HTTP address, once it serves.
	takingOver bool
	// learned is the learned-latency table; nil when learned_latency is
	// off. ingestToken guards POST /v1/latency ("": no ingest).
	learned     *learned.Service
	ingestToken string
}

// Learned is the latest published learned-latency snapshot; nil when
// learned latency is off.
func (a *app) Learned() *learn.Snapshot {
	if a.learned == nil {
		return nil
	}
	return a.learned.Snapshot()
}

// server is the DNS server and what it was built with.
type server struct {
	dns     *dnsserver.Server
	metrics *prometheus.Registry
	locator *geo.Locator
	prober  *healthprobe.Prober
	health  *healthSource // what the DNS server and the status read of the probes
	// events is the timeline of the status page: the probes, the
	// overrides and the reloader record into it.
	events *events.Log
}

// close releases the GeoIP databases once nothing queries any more.
func (s *server) close() { s.locator.Close() }

// newServer loads the zones and the GeoIP databases and builds the DNS
// server, without binding anything.
func newServer(cfg *config, log zerolog.Logger) (*server, error) {
	s, err := buildServer(cfg, log)
	if err != nil {
		return nil, err
	}
	snap, err := loadZones(cfg, log, nil)
	if err != nil {
		s.close()
		return nil, err
	}
	if err := s.setZones(snap); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// buildServer opens the GeoIP databases and builds the DNS server, with
// no zones yet (it answers REFUSED) and without binding anything.
func buildServer(cfg *config, log zerolog.Logger) (*server, error) {
	s := &server{metrics: prometheus.NewRegistry()}
	s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoMetric())
	s.events = events.New(events.DefaultSize, nil)
	s.prober = healthprobe.New(log, s.metrics, healthprobe.WithOnChange(healthEvents(s.events)))
	s.health = &healthSource{prober: s.prober}
	deps := dnsserver.Deps{Log: log, Metrics: s.metrics, Health: s.health}
	db, err := openGeoIP(cfg)
	if err != nil {
		return nil, err
	}
	// A Locator even without databases: one configured later is swapped in.
	s.locator = geo.NewLocator(db, log)
	s.metrics.MustRegister(s.locator.Collector())
	deps.Locator = s.locator
	if s.dns, err = dnsserver.New(cfg.dns, deps); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// loadZones loads the zones directory as a start does: the files in
// parallel, and, when progress is not nil, handing it the zones loaded so
// far while others still load. Any error fails the start. Memory the load
// used and no longer needs goes back to the OS.
func loadZones(cfg *config, log zerolog.Logger, progress func(*zones.Snapshot)) (*zones.Snapshot, error) {
	loader := zones.Loader{MaxFileSize: cfg.zoneMaxFileSize, Progress: progress}
	snap, err := loader.Load(cfg.zonesFS, cfg.pops, reload.RememberedSerials(cfg.stateDir, log))
	if err != nil {
		return nil, fmt.Errorf("zones in %s:\n%w", cfg.zonesDir, err)
	}
	reload.ReturnMemory(nil, snap)
	return snap, nil
}

// setZones serves snap and probes what it names.
func (s *server) setZones(snap *zones.Snapshot) error {
	if err := s.prober.SetTargets(snap.Probes()); err != nil {
		return fmt.Errorf("probes: %w", err)
	}
	s.dns.SetZones(snap)
	return nil
}

// start binds every socket, so that a busy port fails the start with a
// clear error, then serves DNS and HTTP while it loads the zones: each
// zone answers as soon as it is loaded, and /readyz names those still
// loading, so that a huge zone does not keep the others down. A bad zone
// still fails the start once every file is loaded. Then it wires the
// reloader, which applies args, the serve flags, to every configuration
// it rereads. clock is the reloader's (nil: the system clock).
func start(cfg *config, args []string, log zerolog.Logger, clock reload.Clock) (*app, error) {
	started := time.Now()
	built, err := buildServer(cfg, log)
	if err != nil {
		return nil, err
	}
	built.events.Add(events.Start, events.Info, cfg.source, versionString()+" starting")
	reload.WarnOldGeoIP(built.locator.Info(), started, log, built.events)
	srv := built.dns
	a := &app{cfg: cfg, log: log, dns: srv, built: built}
	// The overrides before anything answers: a restart must not answer
	// with a PoP an operator drained. A file that cannot be read fails
	// the start rather than silently undo a drain.
	var store overrides.Store
	if cfg.cluster != nil {
		// A fleet's overrides are in its NATS bucket, shared by every
		// instance. NATS is not waited for beyond its timeout: an
		// instance that cannot reach it serves, and applies the
		// overrides once it can.
		f, err := fleet.Open(context.Background(), *cfg.cluster, log, built.metrics)
		if err != nil {
			built.close()
			return nil, fmt.Errorf("cluster: %w", err)
		}
		select {
		case <-f.Ready():
		case <-time.After(cfg.cluster.Timeout):
		}
		a.fleet, store = f, f.Overrides()
		h, err := f.NewHealth(built.prober.Status)
		if err != nil {
			a.closeFleet()
			built.close()
			return nil, fmt.Errorf("cluster: %w", err)
		}
		a.fleetHealth = h
		built.health.fleet.Store(h)
	} else {
		fs, err := overrides.OpenFile(cfg.stateDir, nil)
		if err != nil {
			built.close()
			return nil, fmt.Errorf("state_dir: %w", err)
		}
		store = fs
	}
	a.overrides, a.applier = store, newOverrideApplier(store, srv, log)
	a.applier.events = built.events
	if err := a.applier.Sync(context.Background()); err != nil {
		if a.fleet == nil || !errors.Is(err, overrides.ErrUnavailable) {
			a.closeFleet()
			built.close()
			return nil, fmt.Errorf("state_dir: %w", err)
		}
		log.Warn().Err(err).Msg("NATS cannot be reached: serving without the fleet's overrides until it can")
	}
	// HTTP first: it is the one socket Listen cannot take back, so a busy
	// HTTP port leaves no DNS socket bound behind it.
	var adminToken, readToken string
	if cfg.httpAddr != "" {
		// Shared as the DNS addresses are, so that a new process can
		// take over (package reuseport); steered with them (serve).
		l, err := reuseport.ListenTCP(cfg.httpAddr, !cfg.dns.ReusePortOff)
		if err != nil {
			a.closeFleet()
			built.close()
			return nil, fmt.Errorf("http: %w", err)
		}
		a.httpListener = l
		if cfg.adminTokenFile != "" {
			if adminToken, err = readAdminToken(cfg.adminTokenFile); err != nil {
				l.Close()
				a.closeFleet()
				built.close()
				return nil, fmt.Errorf("admin_token_file: %w", err)
			}
		}
		if cfg.readTokenFile != "" {
			if readToken, err = readAdminToken(cfg.readTokenFile); err != nil {
				l.Close()
				a.closeFleet()
				built.close()
				return nil, fmt.Errorf("read_token_file: %w", err)
			}
		}
		if cfg.ingestTokenFile != "" {
			if a.ingestToken, err = readAdminToken(cfg.ingestTokenFile); err != nil {
				l.Close()
				a.closeFleet()
				built.close()
				return nil, fmt.Errorf("learned_latency.ingest_token_file: %w", err)
			}
		}
	}
	if err := srv.Listen(); err != nil {
		if a.httpListener != nil {
			a.httpListener.Close()
		}
		a.closeFleet()
		built.close()
		return nil, err
	}
	if cfg.learned != nil {
		a.learned = newLearned(cfg, built, a.fleet, log)
	}
	files := &lateFiles{}
	deps := status.Deps{Server: srv, Health: built.health, Files: files, Overrides: a.overrides,
		Events: built.events, GeoIP: built.locator, Build: buildInfo(started), Traffic: srv}
	if a.fleet != nil { // a nil *fleet.Fleet in the interface would not be nil
		deps.Fleet, deps.Observations = a.fleet, a.fleetHealth
	}
	if a.learned != nil {
		deps.Learned = a.learned
	}
	a.status = status.New(deps)
	built.metrics.MustRegister(a.status.Collector())
	// A process taking over from another reads nothing before its zones
	// are loaded: until it serves, the other answers every query, and
	// answers in full (dnsserver.Server.TakingOver).
	a.takingOver = srv.TakingOver()
	if a.takingOver {
		log.Info().Strs("dns", cfg.dns.Listen).
			Msg("another process serves these addresses: taking them over once the zones are loaded")
	} else {
		a.serveDNS()
	}
	a.serveEarly(adminToken, readToken)
	var announced bool
	snap, err := loadZones(cfg, log, func(partial *zones.Snapshot) {
		srv.SetZones(partial)
		if !announced && len(partial.Zones()) > 0 {
			announced = true
			ev := log.Info().Int("zones", len(partial.Zones())).Strs("loading", partial.Loading()).Strs("dns", srv.Addrs())
			if a.httpListener != nil {
				ev = ev.Str("http", a.httpListener.Addr().String())
			}
			ev.Msg("serving the zones loaded so far while the others load")
		}
	})
	if err == nil {
		err = built.setZones(snap)
	}
	if err == nil && a.takingOver {
		a.serveDNS()
	}
	if err != nil {
		a.stopEarly()
		a.closeFleet()
		built.close()
		return nil, err
	}
	load := func() (reload.Config, error) {
		next, err := parseServeFlags(args)
		if err != nil {
			return reload.Config{}, err
		}
		// The cookie secrets apply at once: a rollover needs no restart.
		srv.SetCookieSecrets(next.dns.Cookies.Secrets)
		return next.reloadConfig(), nil
	}
	a.reloader = reload.New(cfg.reloadConfig(), reload.Deps{Load: load, DNS: srv, Prober: built.prober,
		Locator: built.locator, Log: log, Metrics: built.metrics, Clock: clock, Events: built.events})
	files.set(a.reloader)
	return a, nil
}

// serveDNS starts answering DNS: before the zones are loaded, or, taking
// over, once they are; serve takes it over, stopEarly stops it.
func (a *app) serveDNS() {
	dnsCtx, stop := context.WithCancel(context.Background())
	a.stopDNS, a.dnsDone = stop, make(chan error, 1)
	go func() { a.dnsDone <- a.dns.Serve(dnsCtx) }()
}

// serveEarly starts answering HTTP, when it is on, before the zones are
// loaded; serve takes it over, stopEarly stops it.
func (a *app) serveEarly(adminToken, readToken string) {
	if a.httpListener == nil {
		return
	}
	cfg, log := a.cfg, a.log
	var admin *status.Admin
	if cfg.adminTokenFile != "" {
		admin = status.NewAdmin(a.status, status.AdminConfig{Token: adminToken, Store: a.overrides, Sync: a.applier.Sync,
			MinActive: cfg.minActive, Log: log})
	}
	acc := status.Access{ReadToken: readToken, ReadNeedsToken: cfg.httpReadNeedsToken()}
	if !acc.ReadNeedsToken && !loopbackAddr(cfg.httpAddr) {
		log.Warn().Str("http", cfg.httpAddr).
			Msg("the status page, /status and /explain are served to anyone, as http_public_without_token says")
	}
	var withLearned []func(*status.Endpoints)
	if a.learned != nil {
		withLearned = append(withLearned, func(e *status.Endpoints) { e.Learned, e.IngestToken = a.learned, a.ingestToken })
	}
	a.http = cfg.httpLimits.NewServer(httpHandler(a.built, a.status, admin, a.overrides, acc, cfg.httpLimits, log, withLearned...), log)
	a.httpDone = make(chan error, 1)
	go func() { a.httpDone <- a.http.Serve(a.httpListener) }()
}

// fleetHealthEvery is how often a fleet member publishes its own probe
// verdicts that changed and combines the fleet's again: well within a
// probe interval.
const fleetHealthEvery = time.Second

// closeFleet leaves the fleet, if this instance is in one.
func (a *app) closeFleet() {
	if a.fleet != nil {
		if err := a.fleet.Close(); err != nil {
			a.log.Warn().Err(err).Msg("leaving the fleet")
		}
	}
}

// stopEarly stops what serveEarly started, when the start fails.
func (a *app) stopEarly() {
	if a.stopDNS != nil {
		a.stopDNS()
		<-a.dnsDone
	}
	if a.http != nil {
		a.http.Close()
		<-a.httpDone
	}
}

// lateFiles is the reloader's FileErrors once there is a reloader: the
// status serves /readyz while the zones load, before it exists.
type lateFiles struct {
	r atomic.Pointer[reload.Reloader]
}

func (f *lateFiles) set(r *reload.Reloader) { f.r.Store(r) }

// FileErrors is the reloader's, or none before there is one.
func (f *lateFiles) FileErrors() map[string]string {
	if r := f.r.Load(); r != nil {
		return r.FileErrors()
	}
	return nil
}

// httpHandler is the HTTP endpoint of s, reporting through rep, with the
// admin API when admin is not nil and the overrides of store, guarded by
// acc and limits; opts add optional routes (learned latency's).
func httpHandler(s *server, rep *status.Reporter, admin *status.Admin, store overrides.Store, acc status.Access,
	limits status.HTTPConfig, log zerolog.Logger, opts ...func(*status.Endpoints)) http.Handler {
	e := status.Endpoints{Metrics: s.metrics, Explain: explainHandler(s.dns), Admin: admin,
		Overrides: store, Access: acc, Limits: limits, Log: log}
	for _, opt := range opts {
		opt(&e)
	}
	return rep.Handler(e)
}

// reloadConfig is what the reloader reads of c.
func (c *config) reloadConfig() reload.Config {
	rc := reload.Config{Source: c.source, ZonesDir: c.zonesDir, ZonesFS: c.zonesFS, ZonesOnDisk: c.zonesOnDisk,
		PoPs: c.pops, ZoneMissingGrace: c.zoneMissingGrace, ZoneMaxFileSize: c.zoneMaxFileSize, GeoCity: c.geoCity, GeoASN: c.geoASN,
		GeoEmbedded: c.geoCityBytes != nil, StateDir: c.stateDir, LogLevel: c.logLevel}
	if c.source != demoSource {
		rc.ConfigFile = c.source
	}
	d := c.dns
	rc.Restart = []reload.Setting{
		{Name: "listen", Value: fmt.Sprintf("%q", d.Listen)},
		{Name: "http", Value: c.httpAddr},
		{Name: "zones", Value: c.zonesDir},
		{Name: "admin_token_file", Value: c.adminTokenFile},
		{Name: "read_token_file", Value: c.readTokenFile},
		{Name: "min_active", Value: fmt.Sprint(c.minActive)},
		// The auto serials follow a new state_dir at once; the overrides
		// stay in the file opened at start.
		{Name: "state_dir (for the overrides)", Value: c.stateDir},
		{Name: "http_public_without_token", Value: fmt.Sprint(c.httpPublicWithoutToken)},
		{Name: "http_limits", Value: fmt.Sprintf("%+v", c.httpLimits)},
		{Name: "edns_udp_size", Value: fmt.Sprint(d.UDPSize)},
		{Name: "nsid", Value: d.NSID},
		{Name: "tcp_idle_timeout", Value: d.TCPIdleTimeout.String()},
		{Name: "tcp_max_queries", Value: fmt.Sprint(d.TCPMaxQueries)},
		{Name: "tcp_max_connections", Value: fmt.Sprint(d.TCPMaxConnections)},
		{Name: "tcp_max_connections_per_prefix", Value: fmt.Sprint(d.TCPMaxConnectionsPerPrefix)},
		{Name: "tcp_prefix_v4, tcp_prefix_v6", Value: fmt.Sprint(d.TCPPrefixV4, d.TCPPrefixV6)},
		{Name: "tcp_read_timeout", Value: d.TCPReadTimeout.String()},
		{Name: "shutdown_grace", Value: d.ShutdownGrace.String()},
		{Name: "query_log", Value: fmt.Sprint(d.QueryLog)},
		{Name: "cookies.enabled", Value: fmt.Sprint(!d.Cookies.Off)},
		{Name: "path_inflation, latency_max_age, probes.penalty_weight", Value: d.Steering.String()},
		{Name: "rate_limit", Value: d.RateLimit.String()},
		{Name: "reuse_port", Value: fmt.Sprint(!d.ReusePortOff)},
		{Name: "learned_latency", Value: fmt.Sprintf("%+v ingest_token_file=%s", c.learned, c.ingestTokenFile)},
	}
	return rc
}

// openGeoIP opens the configured databases, or returns nil when there are
// none: geo records then answer in their listed order. An error names the
// configuration's file, line and key, as its other problems do.
func openGeoIP(cfg *config) (*geo.DB, error) {
	db, err := openGeoIPFiles(cfg)
	var oe *geo.OpenError
	if errors.As(err, &oe) {
		key := "geoip.city"
		if oe.Kind == "ASN" {
			key = "geoip.asn"
		}
		at := cfg.source
		if line := cfg.lines[key]; line > 0 {
			at = fmt.Sprintf("%s:%d", cfg.source, line)
		}
		return nil, fmt.Errorf("%s: %s: %w", at, key, err)
	}
	return db, err
}

func openGeoIPFiles(cfg *config) (*geo.DB, error) {
	switch {
	case cfg.geoCityBytes != nil:
		return geo.FromBytes(cfg.geoCityBytes, cfg.geoASNBytes)
	case cfg.geoCity != "":
		return geo.Open(cfg.geoCity, cfg.geoASN)
	}
	return nil, nil
}

// serve runs until ctx is done, then shuts everything down gracefully.
// Every component runs in g under ctx and returns when it ends.
func (a *app) serve(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	// SIGHUP is caught before the serving line is logged: whoever reads
	// that line may send it at once, and its default action kills.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	g.Go(func() error { return a.reloader.Run(ctx, hup) })
	g.Go(func() error {
		select {
		case <-ctx.Done():
			a.stopDNS()
			return <-a.dnsDone
		case err := <-a.dnsDone:
			return err
		}
	})
	g.Go(func() error { return a.built.prober.Run(ctx) })
	g.Go(func() error { return a.applier.Run(ctx) })
	if a.fleetHealth != nil {
		g.Go(func() error { return a.fleetHealth.Run(ctx, fleetHealthEvery) })
	}
	g.Go(func() error { return a.status.Run(ctx) })
	if a.learned != nil {
		// Saves once more when ctx ends: a SIGTERM keeps what was learned.
		g.Go(func() error { return a.learned.Run(ctx) })
	}
	if a.http != nil {
		g.Go(func() error {
			if err := <-a.httpDone; !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			// The same grace as DNS's. A client still holding a request
			// after it is cut off: that is the end of the grace, not a
			// failure of the shutdown.
			grace := a.cfg.dns.ShutdownGrace
			if grace <= 0 {
				grace = dnsserver.DefaultShutdownGrace
			}
			shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			if err := a.http.Shutdown(shutdownCtx); err != nil {
				a.log.Warn().Err(err).Msg("HTTP requests still running at the end of the shutdown grace; closed")
				a.http.Close()
			}
			return nil
		})
	}
	// "Serving" also means that changes to the files are seen from now on:
	// the reloader is ready once its watches are in place.
	select {
	case <-a.reloader.Ready():
	case <-ctx.Done():
	}
	if a.takingOver {
		// Last, so that the rest of the start does not compete with
		// the readers once every query comes here.
		select {
		case <-a.dns.Served():
			a.takeOver()
		case <-ctx.Done():
		}
	}
	a.logServing()
	err := g.Wait()
	a.closeFleet()
	a.built.close()
	a.log.Info().Msg("popdns stopped")
	return err
}

// takeOver steers the DNS addresses, then the HTTP address, to this
// process (package reuseport), so that every query, and /readyz and the
// status, are this process's from then on. A failure leaves the other
// process answering (and losing what its sockets hold when it stops).
func (a *app) takeOver() {
	if err := a.dns.TakeOver(); err != nil {
		a.log.Error().Err(err).Msg("could not take the DNS addresses over: the process serving them keeps answering")
		a.built.events.Add(events.Start, events.Error, a.cfg.source, "could not take the DNS addresses over: "+err.Error())
		return
	}
	a.built.events.Add(events.Start, events.Info, a.cfg.source, "took the DNS addresses over from the process serving them")
	if a.httpListener == nil {
		return
	}
	if err := reuseport.Steer(a.httpListener.(*net.TCPListener), reuseport.Newest); err != nil {
		a.log.Error().Err(err).Msg("could not take the HTTP address over: the process serving it keeps answering it")
	}
}

// logServing writes the one line that tells a person what is served and
// how to try it.
func (a *app) logServing() {
	snap := a.dns.Zones()
	var origins []string
	for _, z := range snap.Zones() {
		origins = append(origins, z.Origin())
	}
	addrs := a.dns.Addrs()
	tcp := a.dns.TCPLimits()
	ev := a.log.Info().Str("config", a.cfg.source).Strs("zones", origins).Strs("dns", addrs).
		Int("tcp_max_connections", tcp.Connections).Int("tcp_max_connections_per_prefix", tcp.PerPrefix).
		Int("file_limit", tcp.FileLimit)
	if a.httpListener != nil {
		ev = ev.Str("http", a.httpListener.Addr().String())
	}
	if len(addrs) > 0 && len(origins) > 0 {
		ev = ev.Str("try", digHint(addrs[0], snap))
	}
	ev.Msg("popdns serving")
}

// digHint is a dig command that gets a real answer from the first zone.
func digHint(addr string, snap *zones.Snapshot) string {
	host, port, _ := net.SplitHostPort(addr)
	z := snap.Zones()[0]
	name, qtype := z.Origin(), "SOA"
	if n := z.Node("www." + z.Origin()); n != nil && (n.Geo() != nil || n.RRset(dns.TypeA) != nil) {
		name, qtype = "www."+z.Origin(), "A"
	}
	return fmt.Sprintf("dig @%s -p %s %s %s", host, port, strings.TrimSuffix(name, "."), qtype)
}

// newLearned starts the learned-latency table of cfg: its state loaded
// from state_dir, its measurements located with built's GeoIP databases
// and checked against the PoPs of the zones served, its snapshots handed
// to the DNS server; in a fleet, its measurements shared with every
// instance through fl's stream.
func newLearned(cfg *config, built *server, fl *fleet.Fleet, log zerolog.Logger) *learned.Service {
	srv := built.dns
	var share learned.Fleet
	if fl != nil {
		// Every instance learns every instance's measurements; the
		// stream keeps them as long as they count (max_age).
		share = fl.LatencyStream(fleet.LatencyStreamConfig{MaxAge: cfg.learned.MaxAge, MaxBytes: cfg.learned.FleetStreamMaxBytes})
	}
	return learned.New(*cfg.learned, learned.Deps{Log: log, Metrics: built.metrics, Locator: built.locator, Fleet: share,
		KnownPoP: func(name string) bool {
			// The inventory of the zones served, which a reload may
			// change; the configuration's before the first is loaded.
			inv := cfg.pops
			if snap := srv.Zones(); snap != nil && snap.PoPs() != nil {
				inv = snap.PoPs()
			}
			return inv != nil && inv.Get(name) != nil
		},
		Publish: srv.SetLearned, Events: built.events, Explored: srv.Explored})
}
