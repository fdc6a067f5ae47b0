package main

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// reloader brings a running popdns up to date with its files: the zones
// directory (zones and latency tables), the configuration file (PoPs, log
// level) and the GeoIP databases. The watcher and SIGHUP both call reload;
// reloads never overlap. Whatever fails to load keeps its last good
// version serving.
type reloader struct {
	args    []string // the serve flags, applied again to every reread configuration
	srv     *server
	log     zerolog.Logger
	metrics reloadMetrics

	mu        sync.Mutex // mu guards the fields below
	cfg       *config
	geoFiles  []os.FileInfo                 // the GeoIP files in use, to notice a replacement
	serials   map[string]zones.SerialRecord // the auto serials last saved
	lastError map[string]string             // per file, the error already logged
}

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
			Help: "Reloads by what was reloaded and whether every file loaded."}, []string{"what", "result"}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "popdns", Subsystem: "reload", Name: "last_timestamp_seconds",
			Help: "When each kind of reload last ended with each result."}, []string{"what", "result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "popdns", Subsystem: "reload", Name: "last_success_timestamp_seconds",
			Help: "When the zones last loaded without any error."}),
		serials: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "popdns", Subsystem: "zone", Name: "serial",
			Help: "The SOA serial each zone serves."}, []string{"zone"}),
		zoneCount: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "popdns", Subsystem: "zone", Name: "count",
			Help: "Zones served."}),
	}
	srv.metrics.MustRegister(m.reloads, m.last, m.lastOK, m.serials, m.zoneCount)
	r := &reloader{args: args, cfg: cfg, srv: srv, log: log.With().Str("component", "reload").Logger(),
		metrics: m, geoFiles: geoFiles(cfg), lastError: map[string]string{}}
	r.recordZones(nil, srv.dns.Zones())
	r.serials = saveSerials(cfg, srv.dns.Zones(), nil, r.log)
	if len(srv.dns.Zones().FileErrors()) == 0 {
		m.lastOK.SetToCurrentTime()
	}
	return r
}

// reload rereads everything and swaps in what loaded. why says what asked.
func (r *reloader) reload(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	cfg := r.cfg
	if next, err := parseServeFlags(r.args); err != nil {
		r.failed("config", cfg.source, err)
	} else {
		cfg = r.applyConfig(next)
	}
	r.reloadGeoIP(cfg)
	prev := r.srv.dns.Zones()
	next, err := zones.Load(cfg.zonesFS, cfg.pops, prev)
	// Probes first: a new probe counts as healthy until it answers, and
	// one no longer named must stop before its targets go.
	if perr := r.srv.prober.SetTargets(next.Probes()); perr != nil {
		r.failed("probes", cfg.source, perr)
	}
	r.srv.dns.SetZones(next)
	r.recordZones(prev, next)
	r.serials = saveSerials(cfg, next, r.serials, r.log)
	result := "ok"
	if err != nil {
		result = "error"
		for file, ferr := range next.FileErrors() {
			r.failed("zones", file, ferr)
		}
	} else {
		r.metrics.lastOK.SetToCurrentTime()
	}
	for file := range r.lastError {
		if next.FileError(file) == nil && r.lastError[file] != "" && file != cfg.source && file != cfg.geoCity {
			r.log.Info().Str("file", file).Msg("file loads again")
			delete(r.lastError, file)
		}
	}
	r.count("zones", result)
	r.cfg = cfg
	r.log.Info().Str("why", why).Str("result", result).Uint64("generation", next.Generation()).
		Dur("took", time.Since(start)).Msg("reloaded")
}

// applyConfig takes what can change while serving from next and keeps the
// rest of the current configuration, warning about what needs a restart.
func (r *reloader) applyConfig(next *config) *config {
	cur := r.cfg
	restart := func(what string, changed bool) {
		if changed {
			r.log.Warn().Str("setting", what).Msg("changed in the configuration; it applies after a restart")
		}
	}
	restart("listen", !slices.Equal(next.dns.Listen, cur.dns.Listen))
	restart("http", next.httpAddr != cur.httpAddr)
	restart("zones", next.zonesDir != cur.zonesDir)
	restart("admin_token_file", next.adminTokenFile != cur.adminTokenFile)
	d, c := next.dns, cur.dns
	d.Listen, c.Listen = nil, nil
	restart("dns settings (edns_udp_size, nsid, tcp_*, query_log, path_inflation, latency_max_age, probes.penalty_weight)",
		fmt.Sprint(d) != fmt.Sprint(c))

	out := *cur
	out.logLevel = next.logLevel
	zerolog.SetGlobalLevel(next.logLevel)
	// An unchanged inventory keeps its identity, so that zones whose
	// files did not change need not be parsed again.
	out.pops = cur.pops
	out.probes = next.probes
	if !next.pops.Equal(cur.pops) {
		out.pops = next.pops
		r.log.Info().Strs("pops", next.pops.Names()).Msg("PoP inventory changed")
	}
	out.geoCity, out.geoASN = next.geoCity, next.geoASN
	if _, ok := r.lastError[cur.source]; ok {
		r.log.Info().Str("file", cur.source).Msg("file loads again")
		delete(r.lastError, cur.source)
	}
	r.count("config", "ok")
	return &out
}

// reloadGeoIP opens the databases again when their files changed. A new
// database is opened and checked before it replaces the old one; one
// that fails is refused and the old one keeps serving.
func (r *reloader) reloadGeoIP(cfg *config) {
	files := geoFiles(cfg)
	if sameFiles(files, r.geoFiles) || cfg.geoCityBytes != nil {
		return
	}
	db, err := openGeoIP(cfg)
	if err != nil {
		r.failed("geoip", cfg.geoCity, err)
		return
	}
	r.srv.locator.Swap(db)
	r.geoFiles = files
	delete(r.lastError, cfg.geoCity)
	r.count("geoip", "ok")
	r.log.Info().Str("city", cfg.geoCity).Str("asn", cfg.geoASN).Msg("GeoIP databases replaced")
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

// count records one reload of what with its result, and when.
func (r *reloader) count(what, result string) {
	r.metrics.reloads.WithLabelValues(what, result).Inc()
	r.metrics.last.WithLabelValues(what, result).SetToCurrentTime()
}

// failed logs an error once per distinct message and file, and counts it.
func (r *reloader) failed(what, file string, err error) {
	r.count(what, "error")
	if r.lastError[file] == err.Error() {
		return
	}
	r.lastError[file] = err.Error()
	r.log.Error().Str("what", what).Str("file", file).Err(err).Msg("reload failed; the last good version keeps serving")
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
