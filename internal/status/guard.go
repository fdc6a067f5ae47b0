package status

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// HTTPConfig is how the HTTP endpoint protects itself from slow, large
// and guessing clients. The zero value is the defaults; Provision fills
// them in.
type HTTPConfig struct {
	// ReadHeaderTimeout bounds the time to send the request headers: a
	// client that trickles them (slowloris) is cut off.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the time to read a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of the headers to the end
	// of the reply, so a client that never reads cannot hold a handler.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no next
	// request; Go's own default is ReadTimeout, or never.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body: more is answered 413.
	MaxBodyBytes int64
	// AuthFailuresPerMinute is how many failed authentications a source
	// may have in a minute; after them it gets 429, its token unchecked,
	// until the minute is over.
	AuthFailuresPerMinute int
}

// The defaults of HTTPConfig. Every endpoint answers from memory in well
// under a second, so these only ever cut off clients that are slow on
// purpose or broken.
const (
	DefaultReadHeaderTimeout     = 5 * time.Second
	DefaultReadTimeout           = 10 * time.Second
	DefaultWriteTimeout          = 30 * time.Second
	DefaultIdleTimeout           = 60 * time.Second
	DefaultMaxHeaderBytes        = 16 << 10
	DefaultMaxBodyBytes          = 64 << 10
	DefaultAuthFailuresPerMinute = 10
)

// ConfigError is one bad field of an HTTPConfig; Field is the field's
// name, such as IdleTimeout.
type ConfigError struct {
	Field   string
	Problem string
}

func (e *ConfigError) Error() string { return "status: " + e.Field + ": " + e.Problem }

// Provision returns c with the defaults in its zero fields and, joined, a
// *ConfigError for every field that is negative. It is idempotent.
func (c HTTPConfig) Provision() (HTTPConfig, error) {
	var errs []error
	dur := func(field string, v *time.Duration, def time.Duration) {
		switch {
		case *v < 0:
			errs = append(errs, &ConfigError{field, fmt.Sprintf("%s must not be negative", *v)})
		case *v == 0:
			*v = def
		}
	}
	dur("ReadHeaderTimeout", &c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	dur("ReadTimeout", &c.ReadTimeout, DefaultReadTimeout)
	dur("WriteTimeout", &c.WriteTimeout, DefaultWriteTimeout)
	dur("IdleTimeout", &c.IdleTimeout, DefaultIdleTimeout)
	num := func(field string, v *int64, def int64) {
		switch {
		case *v < 0:
			errs = append(errs, &ConfigError{field, fmt.Sprintf("%d must not be negative", *v)})
		case *v == 0:
			*v = def
		}
	}
	hdr, failures := int64(c.MaxHeaderBytes), int64(c.AuthFailuresPerMinute)
	num("MaxHeaderBytes", &hdr, DefaultMaxHeaderBytes)
	num("MaxBodyBytes", &c.MaxBodyBytes, DefaultMaxBodyBytes)
	num("AuthFailuresPerMinute", &failures, DefaultAuthFailuresPerMinute)
	c.MaxHeaderBytes, c.AuthFailuresPerMinute = int(hdr), int(failures)
	if c.ReadHeaderTimeout > c.ReadTimeout && errs == nil {
		errs = append(errs, &ConfigError{"ReadHeaderTimeout", fmt.Sprintf("%s is longer than the read timeout (%s), which includes it",
			c.ReadHeaderTimeout, c.ReadTimeout)})
	}
	return c, errors.Join(errs...)
}

// NewServer is an http.Server for h with c's timeouts and header limit;
// c must be provisioned.
func (c HTTPConfig) NewServer(h http.Handler, log zerolog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		// The server's own complaints (TLS on a plain port, broken
		// connections) go to our log, not to stderr unstructured.
		ErrorLog: httpErrorLog(log),
	}
}

// Access says who may use the HTTP endpoint. /healthz, /readyz and
// /metrics are open to all, for load balancers and Prometheus; the admin
// API needs the admin token (Admin's); the rest (the status page,
// /status, /explain, GET /v1/overrides and its history) needs the admin
// or the read token when ReadNeedsToken.
type Access struct {
	// ReadToken is a token for the read endpoints only; "" means none.
	ReadToken string
	// ReadNeedsToken: the read endpoints need a token. cmd/popdns sets it
	// for a listener that is not loopback, unless the operator said to
	// serve it openly, and whenever ReadToken is set.
	ReadNeedsToken bool
}

// access is the class of an endpoint.
type access int

const (
	accessOpen access = iota
	accessRead
	accessAdmin
	// accessIngest is POST /v1/latency: the ingest token only, which
	// agents at the PoPs hold and which can do nothing else.
	accessIngest
)

// classify says what r needs: the exempt paths are the monitoring ones,
// the admin API lives under /v1/.
func classify(r *http.Request) access {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		return accessOpen
	}
	if r.URL.Path == "/v1/latency" && r.Method == http.MethodPost {
		return accessIngest
	}
	if r.Method == http.MethodGet && (r.URL.Path == "/v1/overrides" || r.URL.Path == "/v1/overrides/history" ||
		r.URL.Path == "/v1/latency") {
		// The overrides are part of the status: the read token reads them.
		return accessRead
	}
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		return accessAdmin
	}
	return accessRead
}

// bearer is the request's token, or "" without one: a bearer token, or
// when basic is true the password of HTTP basic authentication (any user
// name), which is what a browser can send to the status page when it
// asks. The admin API takes bearer tokens only.
func bearer(r *http.Request, basic bool) string {
	// The scheme's name is case-insensitive (RFC 9110 §11.1).
	if scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(got)
	}
	if _, password, ok := r.BasicAuth(); ok && basic {
		return password
	}
	return ""
}

// tokenIs compares in constant time, so that the time of a refusal says
// nothing about how much of a guess was right. An empty token never
// matches: it is one that is not configured.
func tokenIs(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// guard wraps the endpoint's routes with the access rules, the failure
// limiter and the body limit.
type guard struct {
	next    http.Handler
	acc     Access
	admin   string // the admin token; "" when the admin API is off
	ingest  string // the ingest token; "" when ingest is off
	maxBody int64
	limiter *failureLimiter
	log     zerolog.Logger
	refused *prometheus.CounterVec
}

// Reasons a request is refused, as the metric labels them.
const (
	refusedMissing = "missing_token"
	refusedWrong   = "wrong_token"
	refusedLimited = "rate_limited"
)

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	need := classify(r)
	if need == accessAdmin && g.admin == "" || need == accessIngest && g.ingest == "" {
		// No admin API (no ingest): the routes answer 404, as any
		// unknown one.
		need = accessOpen
	}
	maxBody := g.maxBody
	if need == accessIngest {
		maxBody = MaxIngestBody
		src := sourceOf(r.RemoteAddr)
		if g.limiter.limited(src) {
			g.refuse(w, r, src, refusedLimited)
			return
		}
		if got := bearer(r, false); !tokenIs(got, g.ingest) {
			if tokenIs(got, g.admin) || tokenIs(got, g.acc.ReadToken) {
				// A valid token of another kind: it is who the caller
				// is, not what it may do, that is wrong.
				g.refused.WithLabelValues(refusedWrong).Inc()
				http.Error(w, "this token may not ingest measurements: POST /v1/latency takes the ingest token", http.StatusForbidden)
				return
			}
			reason := refusedWrong
			if got == "" {
				reason = refusedMissing
			}
			g.limiter.fail(src)
			g.refuse(w, r, src, reason)
			return
		}
	}
	if need == accessAdmin || need == accessRead && g.acc.ReadNeedsToken {
		src := sourceOf(r.RemoteAddr)
		if g.limiter.limited(src) {
			g.refuse(w, r, src, refusedLimited)
			return
		}
		got := bearer(r, need == accessRead)
		ok := tokenIs(got, g.admin) || need == accessRead && tokenIs(got, g.acc.ReadToken)
		if !ok {
			reason := refusedWrong
			if got == "" {
				reason = refusedMissing
			}
			g.limiter.fail(src)
			g.refuse(w, r, src, reason)
			return
		}
	}
	if r.ContentLength > maxBody {
		http.Error(w, fmt.Sprintf("request body of %d bytes is larger than the limit of %d", r.ContentLength, maxBody),
			http.StatusRequestEntityTooLarge)
		return
	}
	// A body sent without a length (chunked) is cut off at the limit
	// too: a handler that reads it gets *http.MaxBytesError, and the
	// connection is closed after the reply.
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	g.next.ServeHTTP(w, r)
}

// refuse answers a request without a valid token, counts it and logs a
// sample of such refusals.
func (g *guard) refuse(w http.ResponseWriter, r *http.Request, src netip.Prefix, reason string) {
	g.refused.WithLabelValues(reason).Inc()
	if n, ok := g.limiter.sample(); ok {
		g.log.Warn().Str("remote", r.RemoteAddr).Str("source", src.String()).Str("path", r.URL.Path).
			Str("reason", reason).Int("not_logged_before", n).Msg("HTTP request refused: no valid token")
	}
	if reason == refusedLimited {
		w.Header().Set("Retry-After", "60")
		http.Error(w, "too many failed authentications from your address; try again in a minute", http.StatusTooManyRequests)
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="popdns"`)
	if classify(r) == accessRead {
		// A browser asks for a user name and password: the token is the
		// password.
		w.Header().Add("WWW-Authenticate", `Basic realm="popdns: the password is the read or admin token"`)
	}
	http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
}

// sourceOf is the network a client's failures are counted under: its
// address, or its /64 for IPv6, where one host commonly holds a /64 and
// could otherwise take a fresh address for every guess.
func sourceOf(remote string) netip.Prefix {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Prefix{}
	}
	a := ap.Addr().Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// maxFailureSources bounds the sources the limiter remembers: a guesser
// spread over more addresses than this shares one account for the
// addresses beyond them, which may then lock out a real client that
// arrives during such an attack.
const maxFailureSources = 10000

// failureLimiter counts failed authentications per source in fixed
// one-minute windows. It is safe for concurrent use.
type failureLimiter struct {
	perMinute int
	now       func() time.Time

	mu sync.Mutex // guards the fields below
	// sources holds each source's window; the zero Prefix is the shared
	// account of those past maxFailureSources.
	sources   map[netip.Prefix]*failureWindow
	lastSweep time.Time // when ended windows were last dropped
	// lastLog and notLogged sample the log: one line a second at most,
	// saying how many refusals went unlogged before it.
	lastLog   time.Time
	notLogged int
}

type failureWindow struct {
	start time.Time
	n     int
}

func newFailureLimiter(perMinute int, now func() time.Time) *failureLimiter {
	return &failureLimiter{perMinute: perMinute, now: now, sources: map[netip.Prefix]*failureWindow{}}
}

// limited says whether src has used up its failures for this minute.
func (l *failureLimiter) limited(src netip.Prefix) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.windowLocked(src, false)
	return w != nil && w.n >= l.perMinute
}

// fail counts one failed authentication of src.
func (l *failureLimiter) fail(src netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.windowLocked(src, true).n++
}

// windowLocked is src's current window, a fresh one when its last has
// ended; nil when it has none and create is false.
func (l *failureLimiter) windowLocked(src netip.Prefix, create bool) *failureWindow {
	now := l.now()
	w, ok := l.sources[src]
	if !ok && len(l.sources) >= maxFailureSources {
		// Full: drop the ended windows, at most once a second, since
		// that walks the whole table; if still full, a source not
		// remembered is in the shared account.
		if now.Sub(l.lastSweep) >= time.Second || now.Before(l.lastSweep) {
			l.lastSweep = now
			for p, old := range l.sources {
				if now.Sub(old.start) >= time.Minute {
					delete(l.sources, p)
				}
			}
		}
		if len(l.sources) >= maxFailureSources {
			src = netip.Prefix{}
			w, ok = l.sources[src]
		}
	}
	if !ok {
		if !create {
			return nil
		}
		w = &failureWindow{start: now}
		l.sources[src] = w
	}
	if now.Sub(w.start) >= time.Minute {
		w.start, w.n = now, 0
	}
	return w
}

// sample says whether to log this refusal, and how many were not logged
// since the last one that was.
func (l *failureLimiter) sample() (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.lastLog.IsZero() && now.Sub(l.lastLog) < time.Second {
		l.notLogged++
		return 0, false
	}
	n := l.notLogged
	l.lastLog, l.notLogged = now, 0
	return n, true
}
