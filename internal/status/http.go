package status

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is the running DNS server as the status reads it:
// *dnsserver.Server.
type Server interface {
	// Zones returns the snapshot served; nil before the first load.
	Zones() *zones.Snapshot
	// Overrides returns the operators' runtime PoP states.
	Overrides() *steer.Overrides
	// Serving reports whether the DNS listeners serve.
	Serving() bool
}

// Health is the prober as the status reads it: *healthprobe.Prober.
type Health interface {
	// Status returns the latest probe results.
	Status() *healthprobe.Status
	// FirstRoundDone is closed once every probe has had its first try.
	FirstRoundDone() <-chan struct{}
}

// Files lists the files outside the zone snapshot (the configuration, the
// GeoIP databases, the zones directory) whose latest version failed to
// load, with their errors: *reload.Reloader.
type Files interface {
	FileErrors() map[string]string
}

// Deps is what a Reporter reads. Server and Health are required.
type Deps struct {
	Server Server
	Health Health
	// Files is nil when nothing reloads: only the snapshot's file errors
	// are reported then.
	Files Files
	// Now is the clock of the page and of selection; nil means time.Now.
	Now func() time.Time
	// After is the timer of Run's wait for the first probe round; nil
	// means time.After.
	After func(time.Duration) <-chan time.Time
}

// Reporter gathers the status of a running server and says whether it is
// ready. It is safe for concurrent use; Run settles its readiness.
type Reporter struct {
	srv    Server
	health Health
	files  Files
	now    func() time.Time
	after  func(time.Duration) <-chan time.Time
	// probesSettled is closed once the first probe round is done, or has
	// run out of time: readiness waits for it.
	probesSettled chan struct{}
}

// New returns a Reporter of deps. It panics if Server or Health is nil.
func New(deps Deps) *Reporter {
	if deps.Server == nil || deps.Health == nil {
		panic("status: New needs a Server and a Health")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.After == nil {
		deps.After = time.After
	}
	return &Reporter{srv: deps.Server, health: deps.Health, files: deps.Files, now: deps.Now, after: deps.After,
		probesSettled: make(chan struct{})}
}

// Run settles readiness once the first probe round is done, or after the
// longest probe timeout: a probe that cannot finish its first round in
// time must not keep the server unready (its target counts as healthy
// until it answers). It returns nil once settled or when ctx ends.
func (r *Reporter) Run(ctx context.Context) error {
	var longest time.Duration
	if snap := r.srv.Zones(); snap != nil {
		for _, t := range snap.Probes() {
			longest = max(longest, t.Timeout)
		}
	}
	// When ctx ends first, the timer is no longer referenced and the
	// runtime collects it.
	timeout := r.after(longest + 100*time.Millisecond)
	select {
	case <-r.health.FirstRoundDone():
	case <-timeout:
	case <-ctx.Done():
		return nil
	}
	close(r.probesSettled)
	return nil
}

// ProbesSettled is closed once Run has settled the first probe round.
func (r *Reporter) ProbesSettled() <-chan struct{} { return r.probesSettled }

// Status gathers what GET /status and the status page show.
func (r *Reporter) Status() Status {
	st := Build(r.srv.Zones(), r.health.Status(), r.srv.Overrides(), r.now)
	if r.files != nil {
		maps.Copy(st.Errors, r.files.FileErrors())
	}
	st.NotReady = r.NotReady()
	st.Ready = st.NotReady == ""
	return st
}

// NotReady says why the server is not ready to take traffic, or "" when
// it is: every zone loaded (a start with a bad zone fails outright; while
// a start loads, it names the zone files still loading, whose zones do
// not answer yet), the listeners serving and the first round of probes
// done or out of time.
func (r *Reporter) NotReady() string {
	snap := r.srv.Zones()
	switch {
	case snap == nil:
		return "zones not loaded"
	case len(snap.Loading()) > 0:
		return loadingReason(snap)
	case !r.srv.Serving():
		return "DNS listeners not serving yet"
	}
	select {
	case <-r.probesSettled:
		return ""
	default:
	}
	st := r.health.Status()
	probed := 0
	for _, res := range st.Results {
		if res.Probed() {
			probed++
		}
	}
	return fmt.Sprintf("first probe round running: %d of %d probes answered", probed, len(st.Results))
}

// loadingMax is the number of loading files NotReady names; it counts the
// rest, so that a start with 10,000 zones does not write them all.
const loadingMax = 10

// loadingReason says which zone files a partial snapshot is still waiting
// for.
func loadingReason(snap *zones.Snapshot) string {
	loading := snap.Loading()
	names := strings.Join(loading[:min(len(loading), loadingMax)], ", ")
	if len(loading) > loadingMax {
		names += fmt.Sprintf(" and %d more", len(loading)-loadingMax)
	}
	return fmt.Sprintf("zones loading: %s still loading (%s), %s served so far", plural(len(loading), "file", "files"), names,
		plural(len(snap.Zones()), "zone", "zones"))
}

// Endpoints are the routes of the HTTP endpoint that are not the
// Reporter's own.
type Endpoints struct {
	// Metrics is served at GET /metrics. Required.
	Metrics *prometheus.Registry
	// Explain serves GET /explain; nil leaves it out.
	Explain http.Handler
	// Admin serves the admin API; nil leaves it off.
	Admin *Admin
}

// Handler serves the monitoring endpoint: liveness, readiness, Prometheus
// metrics, the status as JSON and as a page, explanations, and the admin
// API when e.Admin is not nil.
func (r *Reporter) Handler(e Endpoints) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		WritePage(w, r.Status(), r.now())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := r.NotReady(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ready: %s, %s\n", plural(len(r.srv.Zones().Zones()), "zone", "zones"), plural(len(r.health.Status().Results), "probe", "probes"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(e.Metrics, promhttp.HandlerOpts{Registry: e.Metrics}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.Status())
	})
	if e.Explain != nil {
		mux.Handle("GET /explain", e.Explain)
	}
	if e.Admin != nil {
		mux.HandleFunc("POST /v1/pops/{name}/state", e.Admin.setPoPState)
	}
	return mux
}

// plural is n and the noun that goes with it.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
