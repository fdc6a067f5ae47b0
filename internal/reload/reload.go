package main

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// reloader brings a running popdns up to date with its files: the zones
// directory (zones and latency tables), the configuration file (PoPs, log
// level) and the GeoIP databases. The watcher, SIGHUP and the end of a
// missing file's grace period (Due) call reload; reloads never overlap.
// Whatever fails to load keeps its last good version serving, and is in
// /status with its error until a good version loads.
type reloader struct {
	args    []string // the serve flags, applied again to every reread configuration
	srv     *server
	log     zerolog.Logger
	metrics reloadMetrics
	clock   clock
	// due gets a value when a missing zone file's grace period ends; the
	// serve loop reloads then, so that the file is dropped on time.
	due chan struct{}
	// failing is whether some file's latest version failed to load: the
	// watcher's NoticeChmod condition, since a permission fix makes no
	// other event.
	failing atomic.Bool

	mu        sync.Mutex // mu guards the fields below
	cfg       *config
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

// clock is the time the reloader measures grace periods with; tests
// replace it.
type clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed, unless
	// the returned stop is called first.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

type reloadMetrics struct {
	reloads   *prometheus.CounterVec
	last      *prometheus.GaugeVec
	lastOK    prometheus.Gauge
	serials   *prometheus.GaugeVec
	zoneCount prometheus.Gauge
}

func newReloader(args []string, cfg *config, srv *server, log zerolog.Logger) *reloader {
	m := reloadMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "popdns", Subsystem: "reload", Name: "total",
			Help: "Reload attempts, one per reload and kind (zones, config, geoip, probes), by result: error when any file of that kind failed to load (zones counts one per reload, however many files failed)."},
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
	srv.metrics.MustRegister(m.reloads, m.last, m.lastOK, m.serials, m.zoneCount)
	r := &reloader{args: args, cfg: cfg, srv: srv, log: log.With().Str("component", "reload").Logger(),
		metrics: m, clock: systemClock{}, due: make(chan struct{}, 1), geoFiles: geoFiles(cfg),
		lastError: map[string]string{}, errors: map[string]string{}}
	r.recordZones(nil, srv.dns.Zones())
	r.serials = saveSerials(cfg, srv.dns.Zones(), nil, r.log)
	if len(srv.dns.Zones().FileErrors()) == 0 {
		m.lastOK.SetToCurrentTime()
	}
	return r
}

// Due receives a value when a reload is due by the clock: a zone file
// has been missing for its whole grace period.
func (r *reloader) Due() <-chan struct{} { return r.due }

// reload rereads everything and swaps in what loaded. why says what asked.
func (r *reloader) reload(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	var failed []string // the kinds of file that failed, for the log line
	prev := r.srv.dns.Zones()
	cfg, next, err := r.loadConfigAndZones(prev)
	if cfg == r.cfg {
		failed = append(failed, "config")
	}
	if !r.reloadGeoIP(cfg) {
		failed = append(failed, "geoip")
	}
	// Probes first: a new probe counts as healthy until it answers, and
	// one no longer named must stop before its targets go.
	if perr := r.srv.prober.SetTargets(next.Probes()); perr != nil {
		r.failed("probes", cfg.source, perr)
		failed = append(failed, "probes")
		r.count("probes", "error")
	}
	r.srv.dns.SetZones(next)
	r.recordZones(prev, next)
	r.serials = saveSerials(cfg, next, r.serials, r.log)
	if !r.reportZones(cfg, next, err) {
		failed = append(failed, "zones")
	}
	r.cfg = cfg
	r.publish(next)
	r.wakeFor(next.Missing())
	ev, result := r.log.Info(), "ok"
	if len(failed) > 0 {
		ev, result = r.log.Warn().Strs("failed", failed), "error"
	}
	ev.Str("why", why).Str("result", result).Uint64("generation", next.Generation()).
		Dur("took", time.Since(start)).Msg("reloaded")
}

// loadConfigAndZones rereads the configuration and loads the zones under
// it, or under the running one when it fails or is refused. It returns
// the configuration to run with (r.cfg itself when the new one did not
// apply) and the zones' snapshot and load error.
func (r *reloader) loadConfigAndZones(prev *zones.Snapshot) (*config, *zones.Snapshot, error) {
	cur := r.cfg
	var cand *config
	parsed, err := parseServeFlags(r.args)
	if err != nil {
		r.failed("config", cur.source, err)
	} else {
		cand = r.merge(parsed)
	}
	use := cur
	if cand != nil {
		use = cand
	}
	loader := zones.Loader{MissingGrace: use.zoneMissingGrace, Now: r.clock.Now}
	next, err := loader.Load(use.zonesFS, use.pops, prev)
	// A zone that names a PoP the new configuration removes fails to
	// load and keeps serving its last good version, PoP and all, while
	// the PoP's probe would stop and it would count as healthy. Such a
	// configuration is refused whole, until the zones stop naming it.
	if cand != nil && cand.pops != cur.pops {
		if unknown := next.UnknownPoPs(cand.pops); len(unknown) > 0 {
			r.failed("config", cur.source, popsInUse(cur, unknown))
			cand = nil
			loader.MissingGrace = cur.zoneMissingGrace
			next, err = loader.Load(cur.zonesFS, cur.pops, prev)
		}
	}
	if cand == nil {
		r.count("config", "error")
		return cur, next, err
	}
	r.apply(cand, parsed)
	r.recovered(cand.source)
	r.count("config", "ok")
	return cand, next, err
}

// reportZones logs what changed in the zone files' errors since the last
// reload and counts the attempt; it reports whether every file loaded. A
// missing file within its grace period is a warning, not a failure.
func (r *reloader) reportZones(cfg *config, next *zones.Snapshot, err error) bool {
	if errors.Is(err, zones.ErrReadDir) {
		r.failed("zones", cfg.zonesDir, err)
	} else {
		r.recovered(cfg.zonesDir)
	}
	missing := next.Missing()
	for file, ferr := range next.FileErrors() {
		if _, ok := missing[file]; ok {
			r.logOnce(file, ferr, r.log.Warn(), "zone file missing; its last good version keeps serving for a grace period")
		} else {
			r.logOnce(file, ferr, r.log.Error().Str("what", "zones"), "reload failed; the last good version keeps serving")
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
func popsInUse(cfg *config, unknown zones.ErrorList) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: pops: refused: it removes PoPs that zones still name; remove them from the zones first:", cfg.source)
	for _, e := range unknown {
		located := *e
		if cfg.zonesOnDisk {
			located.File = filepath.Join(cfg.zonesDir, e.File)
		}
		b.WriteString("\n  " + located.Error())
	}
	return errors.New(b.String())
}

// publish hands /status the errors of the files outside the snapshot,
// and the watcher whether anything is failing.
func (r *reloader) publish(snap *zones.Snapshot) {
	errs := maps.Clone(r.errors)
	r.srv.fileErrors.Store(&errs)
	r.failing.Store(len(errs) > 0 || len(snap.FileErrors()) > 0)
}

// wakeFor arranges a reload for when the first of the missing files'
// grace periods ends, replacing the one arranged before.
func (r *reloader) wakeFor(missing map[string]zones.Missing) {
	if r.stopWake != nil {
		r.stopWake()
		r.stopWake = nil
	}
	var first time.Time
	for _, m := range missing {
		if first.IsZero() || m.Until.Before(first) {
			first = m.Until
		}
	}
	if first.IsZero() {
		return
	}
	r.stopWake = r.clock.AfterFunc(first.Sub(r.clock.Now()), func() {
		select {
		case r.due <- struct{}{}:
		default: // a reload is already due
		}
	})
}

// merge takes what can change while serving from next and keeps the
// rest of the current configuration. It changes nothing yet: apply does.
func (r *reloader) merge(next *config) *config {
	cur := r.cfg
	out := *cur
	out.logLevel = next.logLevel
	// An unchanged inventory keeps its identity, so that zones whose
	// files did not change need not be parsed again.
	out.pops = cur.pops
	out.probes = next.probes
	if !next.pops.Equal(cur.pops) {
		out.pops = next.pops
	}
	out.geoCity, out.geoASN = next.geoCity, next.geoASN
	out.zoneMissingGrace = next.zoneMissingGrace
	return &out
}

// apply puts into effect what cand, merge's result from parsed, changes
// (the log level), and warns about what parsed changes that needs a
// restart.
func (r *reloader) apply(cand, parsed *config) {
	cur := r.cfg
	restart := func(what string, changed bool) {
		if changed {
			r.log.Warn().Str("setting", what).Msg("changed in the configuration; it applies after a restart")
		}
	}
	restart("listen", !slices.Equal(parsed.dns.Listen, cur.dns.Listen))
	restart("http", parsed.httpAddr != cur.httpAddr)
	restart("zones", parsed.zonesDir != cur.zonesDir)
	restart("admin_token_file", parsed.adminTokenFile != cur.adminTokenFile)
	d, c := parsed.dns, cur.dns
	d.Listen, c.Listen = nil, nil
	restart("dns settings (edns_udp_size, nsid, tcp_*, query_log, path_inflation, latency_max_age, probes.penalty_weight)",
		fmt.Sprint(d) != fmt.Sprint(c))
	zerolog.SetGlobalLevel(cand.logLevel)
	if cand.pops != cur.pops {
		r.log.Info().Strs("pops", cand.pops.Names()).Msg("PoP inventory changed")
	}
}

// reloadGeoIP opens the databases again when their files changed. A new
// database is opened and checked before it replaces the old one; one
// that fails is refused and the old one keeps serving, and is tried
// again at every reload until it opens. It reports false when it failed.
func (r *reloader) reloadGeoIP(cfg *config) bool {
	files := geoFiles(cfg)
	if sameFiles(files, r.geoFiles) || cfg.geoCityBytes != nil {
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
	r.srv.locator.Swap(db)
	r.geoFiles = files
	if r.geoFailed != "" {
		r.recovered(r.geoFailed)
		r.geoFailed = ""
	}
	r.count("geoip", "ok")
	r.log.Info().Str("city", cfg.geoCity).Str("asn", cfg.geoASN).Msg("GeoIP databases replaced")
	return true
}

// geoErrorFile says which database an error of openGeoIP is about: the
// file it names, else the City database, which is always opened.
func geoErrorFile(cfg *config, err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) && (pe.Path == cfg.geoASN || pe.Path == cfg.geoCity) {
		return pe.Path
	}
	if cfg.geoASN != "" && strings.Contains(err.Error(), cfg.geoASN) && !strings.Contains(err.Error(), cfg.geoCity) {
		return cfg.geoASN
	}
	return cfg.geoCity
}

// geoFiles describes the database files as they are now; nil entries
// for files that are missing or not configured.
func geoFiles(cfg *config) []os.FileInfo {
	var out []os.FileInfo
	for _, p := range []string{cfg.geoCity, cfg.geoASN} {
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
func (r *reloader) count(what, result string) {
	r.metrics.reloads.WithLabelValues(what, result).Inc()
	r.metrics.last.WithLabelValues(what, result).SetToCurrentTime()
}

// failed records that file, outside the zone snapshot, failed to load:
// /status shows it until recovered, and the log says it once.
func (r *reloader) failed(what, file string, err error) {
	r.errors[file] = err.Error()
	r.logOnce(file, err, r.log.Error().Str("what", what), "reload failed; the last good version keeps serving")
}

// logOnce logs ev with file and err, once per distinct error of file.
func (r *reloader) logOnce(file string, err error, ev *zerolog.Event, msg string) {
	if r.lastError[file] == err.Error() {
		ev.Discard()
		return
	}
	r.lastError[file] = err.Error()
	ev.Str("file", file).Err(err).Msg(msg)
}

// recovered records that file, outside the zone snapshot, loaded: the
// log says so if it had failed.
func (r *reloader) recovered(file string) {
	delete(r.errors, file)
	if _, ok := r.lastError[file]; ok {
		r.log.Info().Str("file", file).Msg("file loads again")
		delete(r.lastError, file)
	}
}

// recordZones logs zones that appeared or went away and updates the zone
// gauges.
func (r *reloader) recordZones(prev, next *zones.Snapshot) {
	seen := map[string]bool{}
	for _, z := range next.Zones() {
		seen[z.Origin()] = true
		r.metrics.serials.WithLabelValues(z.Origin()).Set(float64(z.Serial()))
		if prev != nil && prev.Match(z.Origin()) == nil {
			r.log.Info().Str("zone", z.Origin()).Str("file", z.File()).Msg("zone added")
		}
	}
	if prev != nil {
		for _, z := range prev.Zones() {
			if !seen[z.Origin()] {
				r.metrics.serials.DeleteLabelValues(z.Origin())
				r.log.Info().Str("zone", z.Origin()).Str("file", z.File()).Msg("zone removed: its file is gone")
			}
		}
	}
	r.metrics.zoneCount.Set(float64(len(seen)))
}
