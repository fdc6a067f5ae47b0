// Package reload keeps a running popdns up to date with its files: it
// watches the zones directory, the configuration file and the GeoIP
// databases, loads what changed off to the side, and swaps it in (zones,
// PoP inventory, probe targets, GeoIP databases, log level). A file whose
// latest version fails keeps its last good version serving and is listed
// by FileErrors until a good version loads. It also keeps the auto serials
// in the state directory (serials.go), counts reloads in Prometheus, and
// arranges the reload that ends a missing zone file's grace period.
//
// It never reads the configuration file itself: cmd/popdns passes the
// function that does (Deps.Load), so that the serve flags apply to every
// reread configuration as they did at start.
package reload

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/events"
	"github.com/popdns/popdns/internal/fswatch"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// Config is what the reloader reads, and how, as one configuration says.
// Of a configuration reread while serving, the reloader takes the log
// level, the PoP inventory, the GeoIP paths, the missing-file grace and
// the file size limit;
// everything else applies after a restart, and a change to it is warned
// about (Restart).
type Config struct {
	// Source names the configuration in messages and FileErrors: its
	// file, or a name such as "built-in demo".
	Source string
	// ConfigFile is the configuration file to watch; "" when the
	// configuration is not a file.
	ConfigFile string
	ZonesDir   string // for messages; ZonesFS is what is read
	ZonesFS    fs.FS
	// ZonesOnDisk says that ZonesDir is a directory to watch, not an
	// embedded one that never changes.
	ZonesOnDisk bool
	PoPs        *pops.Inventory
	// ZoneMissingGrace is how long a zone or latency file gone from the
	// directory keeps serving its last good version (zones.Loader).
	ZoneMissingGrace time.Duration
	// ZoneMaxFileSize is the largest zone or latency file loaded
	// (zones.Loader.MaxFileSize); 0 is the default.
	ZoneMaxFileSize int64
	// GeoCity and GeoASN are the database paths; "" when not configured.
	GeoCity, GeoASN string
	// GeoEmbedded says the databases are built in (the demo's): they
	// are never reopened.
	GeoEmbedded bool
	// StateDir is where the auto serials are remembered; "" remembers
	// nothing.
	StateDir string
	LogLevel zerolog.Level
	// Restart lists the settings that apply only after a restart, so
	// that a reload warns when one changed.
	Restart []Setting
}

// Setting is one setting of Config.Restart: its name as the operator
// knows it and its value, in any form that compares.
type Setting struct{ Name, Value string }

// DNS is the DNS server the reloader swaps zones into: *dnsserver.Server.
type DNS interface {
	Zones() *zones.Snapshot
	SetZones(*zones.Snapshot)
}

// Prober is the health prober whose targets follow the zones:
// *healthprobe.Prober.
type Prober interface {
	SetTargets([]healthprobe.Target) error
}

// Locator is where new GeoIP databases go: *geo.Locator.
type Locator interface {
	Swap(*geo.DB)
}

// Clock is the time the reloader measures grace periods with; tests
// replace it.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed, unless
	// the returned stop is called first.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// Deps is what a Reloader works with. Every field but Clock is required.
type Deps struct {
	// Load rereads the configuration, as at start.
	Load    func() (Config, error)
	DNS     DNS
	Prober  Prober
	Locator Locator
	Log     zerolog.Logger
	Metrics prometheus.Registerer
	Clock   Clock // nil: the system clock
	// Events is the timeline where each file that fails, loads again or
	// is replaced is recorded; nil records nothing.
	Events *events.Log
}

// Reloader brings a running popdns up to date with its files. Run watches
// them and reloads on SIGHUP and when a missing file's grace period ends;
// Reload may also be called directly. Reloads never overlap. It is safe
// for concurrent use.
type Reloader struct {
	load    func() (Config, error)
	dns     DNS
	prober  Prober
	locator Locator
	log     zerolog.Logger
	metrics metrics
	clock   Clock
	events  *events.Log // nil: none
	// due gets why when a missing zone file's grace period ends or a
	// DNSSEC key's timing event comes; Run
	// reloads then, so that the file is dropped on time.
	due chan string
	// ready is closed once Run watches the files and has reloaded once.
	ready chan struct{}
	// failing is whether some file's latest version failed to load: the
	// watcher's NoticeChmod condition, since a permission fix makes no
	// other event.
	failing atomic.Bool
	// fileErrors is what FileErrors returns; never nil.
	fileErrors atomic.Pointer[map[string]string]

	mu        sync.Mutex // mu guards the fields below
	cfg       Config
	geoFiles  []os.FileInfo                 // the GeoIP files in use, to notice a replacement
	serials   map[string]zones.SerialRecord // the auto serials last saved
	lastError map[string]string             // per file, the error already logged
	// errors holds the files outside the zone snapshot whose latest
	// version failed: the configuration, the GeoIP databases and the
	// zones directory itself, by path. The snapshot has the zone files'.
	errors    map[string]string
	geoFailed string      // the GeoIP file of the error in errors, "" when none
	stopWake  func() bool // stops the pending grace timer; nil when none
}

// reloadKinds are the values of popdns_reload_total's what label: what a
// reload loads (the zone files, the configuration file, the GeoIP
// databases) and the prober taking the new zones' probes.
var reloadKinds = []string{"zones", "config", "geoip", "probes"}

type metrics struct {
	reloads   *prometheus.CounterVec
	last      *prometheus.GaugeVec
	lastOK    prometheus.Gauge
	serials   *prometheus.GaugeVec
	zoneCount prometheus.Gauge
}

// New returns the reloader of a server started with cfg, whose zones
// deps.DNS already serves; it saves their auto serials. It panics when a
// required dependency is nil.
func New(cfg Config, deps Deps) *Reloader {
	if deps.Load == nil || deps.DNS == nil || deps.Prober == nil || deps.Locator == nil || deps.Metrics == nil {
		panic("reload: New needs Load, DNS, Prober, Locator and Metrics")
	}
	if deps.Clock == nil {
		deps.Clock = systemClock{}
	}
	m := metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "popdns", Subsystem: "reload", Name: "total",
			Help: "Reload attempts, one per reload and kind (zones, config, geoip, probes: the prober taking the new zones' probes), by result: error when any file of that kind failed to load (zones counts one per reload, however many files failed)."},
			[]string{"what", "result"}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "popdns", Subsystem: "reload", Name: "last_timestamp_seconds",
			Help: "When each kind of reload last ended with each result."}, []string{"what", "result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "popdns", Subsystem: "reload", Name: "last_success_timestamp_seconds",
			Help: "When the zones last loaded without any error."}),
		serials: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "popdns", Subsystem: "zone", Name: "serial",
			Help: "The SOA serial each zone serves."}, []string{"zone"}),
		zoneCount: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "popdns", Name: "zones",
			Help: "Zones served."}),
	}
	deps.Metrics.MustRegister(m.reloads, m.last, m.lastOK, m.serials, m.zoneCount)
	// Every kind and result at zero from the start, so that an alert on
	// increase(...{result="error"}) has a series before the first failure.
	for _, what := range reloadKinds {
		for _, result := range []string{"ok", "error"} {
			m.reloads.WithLabelValues(what, result)
		}
	}
	r := &Reloader{load: deps.Load, dns: deps.DNS, prober: deps.Prober, locator: deps.Locator, cfg: cfg,
		log: deps.Log.With().Str("component", "reload").Logger(), metrics: m, clock: deps.Clock, events: deps.Events,
		due: make(chan string, 1), ready: make(chan struct{}), geoFiles: geoFiles(cfg),
		lastError: map[string]string{}, errors: map[string]string{}}
	r.fileErrors.Store(&map[string]string{})
	snap := deps.DNS.Zones()
	r.recordZones(nil, snap)
	r.serials = saveSerials(cfg.StateDir, snap, nil, r.log)
	if len(snap.FileErrors()) == 0 {
		m.lastOK.SetToCurrentTime()
	}
	return r
}

// Run watches the files, when the zones are on disk, and reloads when they
// change, on every value of hup (SIGHUP), and when a missing file's grace
// period ends, until ctx ends; then it stops the pending grace timer.
// Ready is closed once the watches are in place and a first reload has
// picked up any change made before them.
func (r *Reloader) Run(ctx context.Context, hup <-chan os.Signal) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
				r.Reload("SIGHUP")
			case why := <-r.due:
				r.Reload(why)
			}
		}
	})
	r.mu.Lock()
	cfg := r.cfg
	r.mu.Unlock()
	if cfg.ZonesOnDisk {
		w := fswatch.New(fswatch.DefaultDebounce, r.log)
		w.Watch(cfg.ZonesDir, zones.IsDataFile)
		// The key directories of the zones signed now: a key file added,
		// changed or removed makes its zone again. A zone signed later
		// has its keys read at each reload, and watched from the next
		// start.
		for _, dir := range keyDirs(cfg.ZonesDir, r.dns.Zones()) {
			w.Watch(dir, zones.IsKeyFile)
		}
		w.NoticeChmod(r.failing.Load)
		for _, p := range []string{cfg.ConfigFile, cfg.GeoCity, cfg.GeoASN} {
			if p != "" {
				w.WatchFile(p)
			}
		}
		g.Go(func() error { return w.Run(ctx, func() { r.Reload("files changed") }) })
		// A change made between the first load and the watches being in
		// place would be lost, so reload once now: unchanged files are
		// reused.
		select {
		case <-w.Ready():
			r.Reload("watching")
		case <-ctx.Done():
		}
	}
	close(r.ready)
	err := g.Wait()
	// The grace timer is Run's too: nothing reloads once Run is over.
	r.mu.Lock()
	if r.stopWake != nil {
		r.stopWake()
		r.stopWake = nil
	}
	r.mu.Unlock()
	return err
}

// Ready is closed once Run watches the files and has reloaded once (at
// once when nothing is watched), or its context ended first.
func (r *Reloader) Ready() <-chan struct{} { return r.ready }

// FileErrors returns the files outside the zone snapshot (the
// configuration, the GeoIP databases, the zones directory) whose latest
// version failed to load, with their errors. The caller may keep the map
// but must not change it.
func (r *Reloader) FileErrors() map[string]string { return *r.fileErrors.Load() }

// keyEventWhy is why a reload comes when a DNSSEC key's timing changes
// what the keys do.
const keyEventWhy = "a DNSSEC key's timing event came"

// Reload rereads everything and swaps in what loaded. why says what
// asked, for the log.
func (r *Reloader) Reload(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	if why == keyEventWhy {
		r.events.Add(events.Keys, events.Info, "", keyEventWhy+": the signed zones follow their keys' new roles")
	}
	var failed []string // the kinds of file that failed, for the log line
	prev := r.dns.Zones()
	cfg, applied, next, err := r.loadConfigAndZones(prev)
	if !applied {
		failed = append(failed, "config")
	}
	if !r.reloadGeoIP(cfg) {
		failed = append(failed, "geoip")
	}
	// Probes first: a new probe counts as healthy until it answers, and
	// one no longer named must stop before its targets go. When the
	// prober refuses the new targets, serving the new zones would send
	// clients to targets nobody probes, which count as healthy: what is
	// serving stays, with its configuration.
	if perr := r.prober.SetTargets(next.Probes()); perr != nil {
		r.failed("probes", cfg.Source, perr)
		r.count("probes", "error")
		r.publish(prev)
		r.log.Warn().Strs("failed", append(failed, "probes")).Str("why", why).Str("result", "error").
			Uint64("generation", prev.Generation()).Dur("took", time.Since(start)).
			Msg("reloaded nothing: the prober refused the new probes; the last good zones and configuration keep serving")
		return
	}
	r.count("probes", "ok")
	r.dns.SetZones(next)
	r.returnMemory(prev, next)
	r.recordZones(prev, next)
	r.serials = saveSerials(cfg.StateDir, next, r.serials, r.log)
	if !r.reportZones(cfg, next, err) {
		failed = append(failed, "zones")
	}
	r.cfg = cfg
	r.publish(next)
	r.wakeFor(next.Missing(), next.NextKeyEvent(r.clock.Now()))
	ev, result := r.log.Info(), "ok"
	if len(failed) > 0 {
		ev, result = r.log.Warn().Strs("failed", failed), "error"
	}
	ev.Str("why", why).Str("result", result).Uint64("generation", next.Generation()).
		Dur("took", time.Since(start)).Msg("reloaded")
}

// returnMin is the number of records whose memory a load must leave
// behind as garbage, or a swap of snapshots free, before it is handed
// back: some 25 MB of heap (docs/zones.md), far more than a small
// zone's reload makes, so that small reloads cost no forced GC.
const returnMin = 100_000

// returnDelay is how long after a swap the reloader has the old zones
// collected: long enough for the queries in flight to let go of them.
const returnDelay = time.Second

// ReturnMemory hands the memory a start's load used and no longer needs
// back to the OS at once (debug.FreeOSMemory) when it loaded many records;
// otherwise the Go runtime keeps the heap it grew for the load, and a
// server held its peak RSS for minutes. It is for the end of a start's
// load, before the server is ready: it holds the heap lock while it
// returns the memory, and queries that allocate wait (300-400 ms during a
// reload of the million-record zone, which is why a reload only has the GC
// run). The zones a start already serves while a big one loads see that
// pause once, which a start can afford and a reload cannot. prev is the
// snapshot served before, nil at a start.
func ReturnMemory(prev, next *zones.Snapshot) bool {
	if churn(prev, next) < returnMin {
		return false
	}
	debug.FreeOSMemory()
	return true
}

// returnMemory has the zones a reload's swap dropped or replaced
// collected, when there are many records: the runtime then returns the
// memory the GC freed in the background, within some 20 s for a 50 MB
// zone, without stalling queries as ReturnMemory would. They become
// garbage only once nothing holds them, so the GC runs returnDelay after
// the swap. A UDP reader keeps the snapshot it last answered from until
// its next packet: on a server that gets no query meanwhile the old zones
// go with the next GC after one, within the runtime's two minutes at the
// latest.
func (r *Reloader) returnMemory(prev, next *zones.Snapshot) {
	if churn(prev, next) >= returnMin {
		r.clock.AfterFunc(returnDelay, runtime.GC)
	}
}

// churn counts the records of the zones next serves that prev did not (a
// zone reloaded counts as new) and of those prev served that next does
// not: what a swap from prev to next leaves as garbage.
func churn(prev, next *zones.Snapshot) int {
	churn := 0
	for _, z := range next.Zones() {
		if prev == nil || prev.Match(z.Origin()) != z {
			churn += z.Records() // new: its load's garbage is about its size
		}
	}
	if prev != nil {
		for _, z := range prev.Zones() {
			if next.Match(z.Origin()) != z {
				churn += z.Records()
			}
		}
	}
	return churn
}

// loadConfigAndZones rereads the configuration and loads the zones under
// it, or under the running one when it fails or is refused. It returns
// the configuration to run with, whether it is the new one, and the
// zones' snapshot and load error.
func (r *Reloader) loadConfigAndZones(prev *zones.Snapshot) (Config, bool, *zones.Snapshot, error) {
	cur := r.cfg
	var cand *Config
	parsed, err := r.load()
	if err != nil {
		r.failed("config", cur.Source, err)
	} else {
		cand = r.merge(parsed)
	}
	use := cur
	if cand != nil {
		use = *cand
	}
	loader := zones.Loader{MissingGrace: use.ZoneMissingGrace, MaxFileSize: use.ZoneMaxFileSize, Now: r.clock.Now}
	next, err := loader.Load(use.ZonesFS, use.PoPs, prev)
	// A zone that names a PoP the new configuration removes fails to
	// load and keeps serving its last good version, PoP and all, while
	// the PoP's probe would stop and it would count as healthy. Such a
	// configuration is refused whole, until the zones stop naming it.
	if cand != nil && cand.PoPs != cur.PoPs {
		if unknown := next.UnknownPoPs(cand.PoPs); len(unknown) > 0 {
			r.failed("config", cur.Source, popsInUse(cur, unknown))
			cand = nil
			loader.MissingGrace, loader.MaxFileSize = cur.ZoneMissingGrace, cur.ZoneMaxFileSize
			next, err = loader.Load(cur.ZonesFS, cur.PoPs, prev)
		}
	}
	if cand == nil {
		r.count("config", "error")
		return cur, false, next, err
	}
	r.apply(*cand, parsed)
	r.recovered(cand.Source)
	r.count("config", "ok")
	return *cand, true, next, err
}

// reportZones logs what changed in the zone files' errors since the last
// reload and counts the attempt; it reports whether every file loaded. A
// missing file within its grace period is a warning, not a failure.
func (r *Reloader) reportZones(cfg Config, next *zones.Snapshot, err error) bool {
	if errors.Is(err, zones.ErrReadDir) {
		r.failed("zones", cfg.ZonesDir, err)
	} else {
		r.recovered(cfg.ZonesDir)
	}
	missing := next.Missing()
	for file, ferr := range next.FileErrors() {
		if m, ok := missing[file]; ok {
			if r.logOnce(file, ferr, r.log.Warn(), "zone file missing; its last good version keeps serving for a grace period") {
				r.events.Add(events.Reload, events.Warn, file, "missing: its last good version keeps serving until "+m.Until.UTC().Format(time.RFC3339))
			}
		} else if r.logOnce(file, ferr, r.log.Error().Str("what", "zones"), "reload failed; what was serving keeps serving") {
			r.events.Add(events.Reload, events.Error, file, "failed, the last good version keeps serving: "+ferr.Error())
		}
	}
	served := map[string]bool{}
	for _, f := range next.Files() {
		served[f] = true
	}
	for file := range r.lastError {
		if next.FileError(file) == nil && r.errors[file] == "" {
			if served[file] {
				r.log.Info().Str("file", file).Msg("file loads again")
			}
			delete(r.lastError, file)
		}
	}
	if err != nil {
		r.count("zones", "error")
		return false
	}
	r.count("zones", "ok")
	r.metrics.lastOK.SetToCurrentTime()
	return true
}

// popsInUse is the error of a configuration refused because zones still
// name PoPs it removes: each use, by zone file and line.
func popsInUse(cfg Config, unknown zones.ErrorList) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: pops: refused: it removes PoPs that zones still name; remove them from the zones first:", cfg.Source)
	for _, e := range unknown {
		located := *e
		if cfg.ZonesOnDisk {
			located.File = filepath.Join(cfg.ZonesDir, e.File)
		}
		b.WriteString("\n  " + located.Error())
	}
	return errors.New(b.String())
}

// publish hands FileErrors the errors of the files outside the snapshot,
// and the watcher whether anything is failing.
func (r *Reloader) publish(snap *zones.Snapshot) {
	errs := maps.Clone(r.errors)
	r.fileErrors.Store(&errs)
	r.failing.Store(len(errs) > 0 || len(snap.FileErrors()) > 0)
}

// keyDirs lists the directories of the key files of snap's signed zones,
// as paths: a relative one is the zone directory's.
func keyDirs(zonesDir string, snap *zones.Snapshot) []string {
	if snap == nil {
		return nil
	}
	var dirs []string
	for _, z := range snap.Zones() {
		s := z.DNSSEC()
		if s == nil {
			continue
		}
		dir := s.KeysDir
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(zonesDir, dir)
		}
		if !slices.Contains(dirs, filepath.Clean(dir)) {
			dirs = append(dirs, filepath.Clean(dir))
		}
	}
	return dirs
}

// wakeFor arranges a reload for when the first of the missing files'
// grace periods ends or keyEvent comes (a DNSSEC key's timing changes
// what the keys do: zones.Snapshot.NextKeyEvent), replacing the one
// arranged before.
func (r *Reloader) wakeFor(missing map[string]zones.Missing, keyEvent time.Time) {
	if r.stopWake != nil {
		r.stopWake()
		r.stopWake = nil
	}
	first, why := keyEvent, keyEventWhy
	for _, m := range missing {
		if first.IsZero() || m.Until.Before(first) {
			first, why = m.Until, "a missing file's grace period ended"
		}
	}
	if first.IsZero() {
		return
	}
	r.stopWake = r.clock.AfterFunc(first.Sub(r.clock.Now()), func() {
		select {
		case r.due <- why:
		default: // a reload is already due
		}
	})
}

// merge takes what can change while serving from next and keeps the
// rest of the current configuration. It changes nothing yet: apply does.
func (r *Reloader) merge(next Config) *Config {
	cur := r.cfg
	out := cur
	out.LogLevel = next.LogLevel
	// An unchanged inventory keeps its identity, so that zones whose
	// files did not change need not be parsed again.
	if !next.PoPs.Equal(cur.PoPs) {
		out.PoPs = next.PoPs
	}
	out.GeoCity, out.GeoASN = next.GeoCity, next.GeoASN
	out.ZoneMissingGrace = next.ZoneMissingGrace
	out.ZoneMaxFileSize = next.ZoneMaxFileSize
	return &out
}

// apply puts into effect what cand, merge's result from parsed, changes
// (the log level), and warns about what parsed changes that needs a
// restart.
func (r *Reloader) apply(cand, parsed Config) {
	cur := r.cfg
	for _, s := range parsed.Restart {
		i := slices.IndexFunc(cur.Restart, func(c Setting) bool { return c.Name == s.Name })
		if i < 0 || cur.Restart[i].Value != s.Value {
			r.log.Warn().Str("setting", s.Name).Msg("changed in the configuration; it applies after a restart")
			r.events.Add(events.Reload, events.Warn, cand.Source, s.Name+" changed: it applies after a restart")
		}
	}
	zerolog.SetGlobalLevel(cand.LogLevel)
	if cand.PoPs != cur.PoPs {
		r.log.Info().Strs("pops", cand.PoPs.Names()).Msg("PoP inventory changed")
		r.events.Add(events.Reload, events.Info, cand.Source, "PoP inventory changed: "+strings.Join(cand.PoPs.Names(), ", "))
	}
}

// reloadGeoIP opens the databases again when their files changed. A new
// database is opened and checked before it replaces the old one; one
// that fails is refused and the old one keeps serving, and is tried
// again at every reload until it opens. It reports false when it failed.
func (r *Reloader) reloadGeoIP(cfg Config) bool {
	files := geoFiles(cfg)
	if sameFiles(files, r.geoFiles) || cfg.GeoEmbedded {
		// What is configured is what serves: a file that failed before,
		// such as one a configuration since reverted named, is no longer
		// in error.
		if r.geoFailed != "" {
			r.recovered(r.geoFailed)
			r.geoFailed = ""
		}
		return true
	}
	db, err := openGeoIP(cfg)
	if err != nil {
		file := geoErrorFile(cfg, err)
		if r.geoFailed != "" && r.geoFailed != file {
			r.recovered(r.geoFailed)
		}
		r.geoFailed = file
		r.failed("geoip", file, err)
		r.count("geoip", "error")
		return false
	}
	r.locator.Swap(db)
	r.geoFiles = files
	if r.geoFailed != "" {
		r.recovered(r.geoFailed)
		r.geoFailed = ""
	}
	r.count("geoip", "ok")
	r.log.Info().Str("city", cfg.GeoCity).Str("asn", cfg.GeoASN).Msg("GeoIP databases replaced")
	infos := db.Info()
	for _, i := range infos {
		r.events.Add(events.GeoIP, events.Info, i.File, fmt.Sprintf("replaced: %s built %s", i.Type, i.Built.Format(time.DateOnly)))
	}
	WarnOldGeoIP(infos, r.clock.Now(), r.log, r.events)
	return true
}

// openGeoIP opens the configured databases, or returns nil when there are
// none: geo records then answer in their listed order.
func openGeoIP(cfg Config) (*geo.DB, error) {
	if cfg.GeoCity == "" {
		return nil, nil
	}
	return geo.Open(cfg.GeoCity, cfg.GeoASN)
}

// geoErrorFile says which database an error of openGeoIP is about: the
// file geo.Open says failed, else the City database, which is always
// opened.
func geoErrorFile(cfg Config, err error) string {
	var oe *geo.OpenError
	if errors.As(err, &oe) {
		return oe.Path
	}
	return cfg.GeoCity
}

// geoFiles describes the database files as they are now; nil entries
// for files that are missing or not configured.
func geoFiles(cfg Config) []os.FileInfo {
	var out []os.FileInfo
	for _, p := range []string{cfg.GeoCity, cfg.GeoASN} {
		st, err := os.Stat(p)
		if p == "" || err != nil {
			st = nil
		}
		out = append(out, st)
	}
	return out
}

// sameFiles reports whether no database file was replaced or rewritten: a
// rename over it makes another file (os.SameFile), an edit in place
// changes its size or modification time.
func sameFiles(a, b []os.FileInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		switch {
		case a[i] == nil || b[i] == nil:
			if a[i] != b[i] {
				return false
			}
		case !os.SameFile(a[i], b[i]) || a[i].Size() != b[i].Size() || !a[i].ModTime().Equal(b[i].ModTime()):
			return false
		}
	}
	return true
}

// count records one reload attempt of what with its result, and when.
func (r *Reloader) count(what, result string) {
	r.metrics.reloads.WithLabelValues(what, result).Inc()
	r.metrics.last.WithLabelValues(what, result).SetToCurrentTime()
}

// failed records that file, outside the zone snapshot, failed to load:
// /status shows it until recovered, and the log says it once.
func (r *Reloader) failed(what, file string, err error) {
	r.errors[file] = err.Error()
	if r.logOnce(file, err, r.log.Error().Str("what", what), "reload failed; what was serving keeps serving") {
		r.fileEvent(what, events.Error, file, "failed, the last good version keeps serving: "+err.Error())
	}
}

// logOnce logs ev with file and err, once per distinct error of file; it
// reports whether it did.
func (r *Reloader) logOnce(file string, err error, ev *zerolog.Event, msg string) bool {
	if r.lastError[file] == err.Error() {
		ev.Discard()
		return false
	}
	r.lastError[file] = err.Error()
	ev.Str("file", file).Err(err).Msg(msg)
	return true
}

// fileEvent records an event of file, a file of kind what (zones,
// config, geoip, probes), on the timeline.
func (r *Reloader) fileEvent(what string, level events.Level, file, msg string) {
	kind := events.Reload
	if what == "geoip" {
		kind = events.GeoIP
	}
	r.events.Add(kind, level, file, msg)
}

// recovered records that file, outside the zone snapshot, loaded: the
// log says so if it had failed.
func (r *Reloader) recovered(file string) {
	delete(r.errors, file)
	if _, ok := r.lastError[file]; ok {
		r.log.Info().Str("file", file).Msg("file loads again")
		r.events.Add(events.Reload, events.Info, file, "loads again")
		delete(r.lastError, file)
	}
}

// recordZones logs zones that appeared or went away and updates the zone
// gauges.
func (r *Reloader) recordZones(prev, next *zones.Snapshot) {
	seen := map[string]bool{}
	for _, z := range next.Zones() {
		seen[z.Origin()] = true
		r.metrics.serials.WithLabelValues(z.Origin()).Set(float64(z.Serial()))
		if prev != nil && prev.Match(z.Origin()) == nil {
			r.log.Info().Str("zone", z.Origin()).Str("file", z.File()).Msg("zone added")
		}
		if prev != nil {
			r.zoneEvent(prev, z)
		}
	}
	if prev != nil {
		for _, z := range prev.Zones() {
			if !seen[z.Origin()] {
				r.metrics.serials.DeleteLabelValues(z.Origin())
				r.log.Info().Str("zone", z.Origin()).Str("file", z.File()).Msg("zone removed: its file is gone")
				r.events.Add(events.Reload, events.Warn, z.File(), "zone "+z.Origin()+" removed: its file is gone")
			}
		}
	}
	r.metrics.zoneCount.Set(float64(len(seen)))
}

// zoneEvent records on the timeline that z, served from now on, was added,
// reloaded or loads again after its file failed; nothing when prev
// already served it.
func (r *Reloader) zoneEvent(prev *zones.Snapshot, z *zones.Zone) {
	old := prev.Match(z.Origin())
	if old == z {
		return
	}
	what := "reloaded"
	switch {
	case r.lastError[z.File()] != "":
		// reportZones logs "file loads again"; the timeline says it once,
		// here, with the serial.
		what = "loads again"
	case old == nil || old.Origin() != z.Origin():
		what = "added"
	}
	r.events.Add(events.Reload, events.Info, z.File(), fmt.Sprintf("zone %s %s, serial %d", z.Origin(), what, z.Serial()))
}

// WarnOldGeoIP logs a warning, and records one on the timeline ev, for
// each database of infos older than geo.StaleAge at now: clients are then
// sent by where their networks were.
func WarnOldGeoIP(infos []geo.DBInfo, now time.Time, log zerolog.Logger, ev *events.Log) {
	for _, i := range infos {
		if !i.Stale(now) {
			continue
		}
		days := int(i.Age(now).Hours() / 24)
		name := i.File
		if name == "" {
			name = i.Type + " (built in)"
		}
		log.Warn().Str("file", i.File).Str("type", i.Type).Time("built", i.Built).Int("age_days", days).
			Msg("GeoIP database is older than 60 days: client locations are out of date; update it")
		ev.Add(events.GeoIP, events.Warn, name,
			fmt.Sprintf("%s built %s (%d days ago): locations are out of date", i.Type, i.Built.Format(time.DateOnly), days))
	}
}
