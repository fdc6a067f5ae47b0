package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/popdns/popdns/internal/learned"
	stdlog "log"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/events"
	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/internal/traffic"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/rs/zerolog"
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

// TrafficSource is what the server answered, as the status reads it:
// *dnsserver.Server.
type TrafficSource interface {
	Traffic() traffic.Report
}

// Deps is what a Reporter reads. Server and Health are required.
type Deps struct {
	Server Server
	Health Health
	// Files is nil when nothing reloads: only the snapshot's file errors
	// are reported then.
	Files Files
	// Overrides is read for the overrides the status lists; nil leaves
	// them out.
	Overrides OverrideLister
	// Fleet is the fleet this instance is part of; nil when it runs
	// alone. Observations, with it, are the observers' verdicts the
	// status lists per probe.
	Fleet        Fleet
	Observations Observations
	// Events is the timeline the status lists; GeoIP the databases whose
	// ages it shows (nil: none); Build the binary (timeline.go).
	Events *events.Log
	GeoIP  GeoIP
	Build  BuildInfo
	// Traffic is read for the status's traffic and catchment; nil leaves
	// them out.
	Traffic TrafficSource
	// Learned is read for the status's learned section; nil leaves it
	// out.
	Learned Learned
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
	// ovStore and fleet are nil when not given.
	ovStore      OverrideLister
	fleet        Fleet
	observations Observations
	// events, geoip and build are shown as given (timeline.go).
	events  *events.Log
	geoip   GeoIP
	build   BuildInfo
	traffic TrafficSource
	learned Learned
	// ovCache is the last list of overrides read from ovStore.
	ovCache overridesCache
	// probesSettled is closed once the first probe round is done, or has
	// run out of time: readiness waits for it.
	probesSettled chan struct{}
	// index is the index of the latest snapshot read.
	index atomic.Pointer[snapIndex]
	// counts are the PoPs' target counts of the latest epoch read.
	counts atomic.Pointer[popCounts]
}

// indexOf is the index of snap, built once per snapshot.
func (r *Reporter) indexOf(snap *zones.Snapshot) *snapIndex {
	if idx := r.index.Load(); idx != nil && idx.snap == snap {
		return idx
	}
	idx := indexOf(snap)
	r.index.Store(idx)
	return idx
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
	return &Reporter{srv: deps.Server, health: deps.Health, files: deps.Files, ovStore: deps.Overrides, fleet: deps.Fleet, observations: deps.Observations,
		now: deps.Now, after: deps.After, probesSettled: make(chan struct{}),
		events: deps.Events, geoip: deps.GeoIP, build: deps.Build, traffic: deps.Traffic, learned: deps.Learned}
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

// Status gathers what GET /status and the status page show: the first
// page of zones.
func (r *Reporter) Status() Status {
	st, _ := r.StatusOf(Query{})
	return st
}

// StatusOf gathers the status with the zones and targets q selects; its
// error is BuildPage's.
func (r *Reporter) StatusOf(q Query) (Status, error) {
	return r.statusOf(context.Background(), q)
}

// statusOf is StatusOf, reading the overrides under ctx.
func (r *Reporter) statusOf(ctx context.Context, q Query) (Status, error) {
	st, err := buildPage(r.indexOf(r.srv.Zones()), r.health.Status(), r.srv.Overrides(), r.now, q, &r.counts)
	if r.files != nil {
		maps.Copy(st.Errors, r.files.FileErrors())
	}
	r.addFleet(ctx, &st)
	r.addTimeline(&st)
	if r.traffic != nil {
		t := r.traffic.Traffic()
		st.Traffic = &t
	}
	// Off is shown as off, so that a reader of /status need not know that
	// a missing section means it.
	st.Learned = &learned.Info{}
	if r.learned != nil {
		*st.Learned = r.learned.Info()
	}
	st.NotReady = r.NotReady()
	st.Ready = st.NotReady == ""
	return st, err
}

// maxPage bounds ?page=, far beyond any real number of pages.
const maxPage = 1 << 20

// parseQuery reads ?zone= (an origin, with or without its final dot, any
// case) and ?page= (from 1) of GET / and GET /status.
func parseQuery(req *http.Request) (Query, error) {
	v := req.URL.Query()
	var q Query
	if zone := v.Get("zone"); zone != "" {
		q.Zone = dns.Fqdn(strings.ToLower(zone))
	}
	if page := v.Get("page"); page != "" {
		n, err := strconv.Atoi(page)
		if err != nil || n < 1 || n > maxPage {
			return q, fmt.Errorf("page %q: must be a whole number from 1", page)
		}
		q.Page = n
	}
	if q.Zone != "" && q.Page != 0 {
		return q, errors.New("ask for a zone or a page, not both")
	}
	return q, nil
}

// serveStatus answers a GET of / or /status for q with write, or the
// error of a bad query.
func (r *Reporter) serveStatus(w http.ResponseWriter, req *http.Request, write func(http.ResponseWriter, Status)) {
	q, err := parseQuery(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	st, err := r.statusOf(req.Context(), q)
	if err != nil {
		http.Error(w, fmt.Sprintf("zone %s: %v", q.Zone, err), http.StatusNotFound)
		return
	}
	write(w, st)
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
	// Overrides serves GET /v1/overrides and /v1/overrides/history, to
	// the read token too; nil leaves them out.
	Overrides overrides.Store
	// Access is who may use which routes.
	Access Access
	// Limits are the body and failed-authentication limits; the zero
	// value is the defaults.
	Limits HTTPConfig
	// Log gets the sampled refusals.
	Log zerolog.Logger
	// Learned serves GET /v1/latency (the read token) and, with
	// IngestToken, POST /v1/latency; nil leaves both out.
	Learned Learned
	// IngestToken is the bearer token of POST /v1/latency alone; ""
	// leaves ingest off.
	IngestToken string
}

// Handler serves the monitoring endpoint: liveness, readiness, Prometheus
// metrics, the status as JSON and as a page, explanations, and the admin
// API when e.Admin is not nil, each behind e.Access's rules. It registers
// the counter of refused requests on e.Metrics.
func (r *Reporter) Handler(e Endpoints) http.Handler {
	limits, err := e.Limits.Provision()
	if err != nil {
		// The caller's configuration check reports a bad value; a
		// handler still serves, with the defaults.
		limits, _ = HTTPConfig{}.Provision()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, req *http.Request) {
		r.serveStatus(w, req, func(w http.ResponseWriter, st Status) { WritePage(w, st, r.now()) })
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := r.NotReady(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		// The index counts the zones without sorting them again: /readyz
		// needs no token and is asked often.
		fmt.Fprintf(w, "ready: %s, %s\n", plural(len(r.indexOf(r.srv.Zones()).zones), "zone", "zones"), plural(len(r.health.Status().Results), "probe", "probes"))
	})
	mux.Handle("GET /metrics", newCachedMetrics(promhttp.HandlerFor(newCachedGatherer(e.Metrics, metricsMaxAge, r.now),
		promhttp.HandlerOpts{Registry: e.Metrics}), metricsMaxAge, r.now))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, req *http.Request) {
		r.serveStatus(w, req, func(w http.ResponseWriter, st Status) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(st)
		})
	})
	if e.Explain != nil {
		mux.Handle("GET /explain", e.Explain)
	}
	if e.Overrides != nil {
		ro := overridesReader{store: e.Overrides, now: r.now}
		mux.HandleFunc("GET /v1/overrides", ro.list)
		mux.HandleFunc("GET /v1/overrides/history", ro.history)
	}
	if e.Admin != nil {
		mux.HandleFunc("POST /v1/pops/{name}/state", e.Admin.setPoPState)
		mux.HandleFunc("POST /v1/overrides/{pop}", e.Admin.putOverride)
		mux.HandleFunc("DELETE /v1/overrides/{pop}", e.Admin.deleteOverride)
	}
	if e.Learned != nil {
		le := learnedEndpoint{e.Learned}
		mux.HandleFunc("GET /v1/latency", le.table)
		if e.IngestToken != "" {
			mux.HandleFunc("POST /v1/latency", le.ingest)
		}
	}
	g := &guard{next: mux, acc: e.Access, maxBody: limits.MaxBodyBytes, ingest: e.IngestToken,
		limiter: newFailureLimiter(limits.AuthFailuresPerMinute, r.now),
		log:     e.Log.With().Str("component", "http").Logger(), refused: refusedCounter(e.Metrics)}
	if e.Admin != nil {
		g.admin = e.Admin.cfg.Token
	}
	return g
}

// refusedCounter is the counter of requests refused for want of a valid
// token, registered on reg, or the one already there: a test may build
// several handlers on one registry.
func refusedCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "popdns", Subsystem: "http", Name: "refused_total",
		Help: "HTTP requests refused for want of a valid bearer token: missing_token, wrong_token, or rate_limited (too many failures from the source this minute; the token was not checked).",
	}, []string{"reason"})
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return old
			}
		}
		// Counted but not exported: the refusals themselves still work.
		return c
	}
	for _, reason := range []string{refusedMissing, refusedWrong, refusedLimited} {
		c.WithLabelValues(reason)
	}
	return c
}

// plural is n and the noun that goes with it.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// metricsMaxAge is how long one gathering of the metrics answers
// /metrics. With thousands of zones a gathering costs tens of
// milliseconds of CPU (a series per zone for the serial and for the
// queries), and /metrics needs no token: without the cache, anyone who can
// reach it could keep a core busy. A second is far below any scrape
// interval, so Prometheus still sees every change.
const metricsMaxAge = time.Second

// cachedGatherer gathers from g at most once per maxAge; concurrent
// scrapes wait for one gathering and share it. The families it returns
// are only read by promhttp's encoders, so sharing them is safe.
type cachedGatherer struct {
	g      prometheus.Gatherer
	maxAge time.Duration
	now    func() time.Time

	mu  sync.Mutex // guards the fields below, and is held while gathering
	at  time.Time
	mfs []*dto.MetricFamily
	err error
}

func newCachedGatherer(g prometheus.Gatherer, maxAge time.Duration, now func() time.Time) *cachedGatherer {
	return &cachedGatherer{g: g, maxAge: maxAge, now: now}
}

// Gather implements prometheus.Gatherer.
func (c *cachedGatherer) Gather() ([]*dto.MetricFamily, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if age := now.Sub(c.at); c.mfs != nil && age >= 0 && age < c.maxAge {
		return c.mfs, c.err
	}
	c.mfs, c.err = c.g.Gather()
	c.at = now
	return c.mfs, c.err
}

// cachedMetrics answers /metrics from a reply at most maxAge old: with
// ten thousand zones encoding the metrics costs about 30 ms of CPU even
// once gathered. A reply depends on the format and compression the
// client accepts, so one is kept for each; there are few of them.
type cachedMetrics struct {
	h      http.Handler
	maxAge time.Duration
	now    func() time.Time

	mu      sync.Mutex // guards replies, and is held while one is made
	replies map[string]*cachedReply
}

// maxCachedReplies bounds the replies kept, in case clients send formats
// in ever new spellings: past it, a reply is made afresh, not kept.
const maxCachedReplies = 8

type cachedReply struct {
	at     time.Time
	code   int
	header http.Header
	body   []byte
}

func newCachedMetrics(h http.Handler, maxAge time.Duration, now func() time.Time) *cachedMetrics {
	return &cachedMetrics{h: h, maxAge: maxAge, now: now, replies: map[string]*cachedReply{}}
}

func (c *cachedMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The format as promhttp picks it, with its default formats.
	key := string(expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)) + "|" + strconv.FormatBool(acceptsGzip(r.Header.Get("Accept-Encoding")))
	c.mu.Lock()
	now := c.now()
	reply, ok := c.replies[key]
	if age := now.Sub(reply.atOrZero()); !ok || age < 0 || age >= c.maxAge {
		rec := &replyRecorder{header: http.Header{}, code: http.StatusOK}
		c.h.ServeHTTP(rec, r)
		reply = &cachedReply{at: now, code: rec.code, header: rec.header, body: rec.body.Bytes()}
		for k, old := range c.replies {
			if now.Sub(old.at) >= c.maxAge {
				delete(c.replies, k)
			}
		}
		if len(c.replies) < maxCachedReplies {
			c.replies[key] = reply
		}
	}
	c.mu.Unlock()
	maps.Copy(w.Header(), reply.header)
	w.WriteHeader(reply.code)
	_, _ = w.Write(reply.body) // the client went away: nothing to tell it
}

func (r *cachedReply) atOrZero() time.Time {
	if r == nil {
		return time.Time{}
	}
	return r.at
}

// acceptsGzip reads Accept-Encoding as promhttp does: gzip (or *) listed
// without q=0.
func acceptsGzip(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.TrimSpace(coding)
		if coding != "gzip" && coding != "*" {
			continue
		}
		q := strings.ReplaceAll(params, " ", "")
		if q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000" {
			return true
		}
	}
	return false
}

// replyRecorder keeps a reply in memory.
type replyRecorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *replyRecorder) Header() http.Header         { return r.header }
func (r *replyRecorder) WriteHeader(code int)        { r.code = code }
func (r *replyRecorder) Write(p []byte) (int, error) { return r.body.Write(p) }

// httpErrorLog sends net/http's own complaints (a TLS handshake on the
// plain port, a failed accept) to log.
func httpErrorLog(log zerolog.Logger) *stdlog.Logger {
	return stdlog.New(errorLogWriter{log.With().Str("component", "http").Logger()}, "", 0)
}

type errorLogWriter struct{ log zerolog.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	w.log.Warn().Str("error", strings.TrimSpace(string(p))).Msg("HTTP server error")
	return len(p), nil
}
