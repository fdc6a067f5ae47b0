package status

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/internal/overrides"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

const (
	testAdminToken = "admin-token-0123456789"
	testReadToken  = "read-token-0123456789"
)

// guardedHandler is the endpoint of a ready server with acc's rules, the
// admin API on when admin is true, on clock and reg.
func guardedHandler(t *testing.T, acc Access, admin bool, limits HTTPConfig, clock *dnstest.Clock,
	reg *prometheus.Registry, log zerolog.Logger) http.Handler {
	t.Helper()
	srv := &fakeServer{snap: testSnapshot(t)}
	srv.serving.Store(true)
	now := time.Now
	if clock != nil {
		now = clock.Now
	}
	rep := New(Deps{Server: srv, Health: fakeHealth{firstDone: make(chan struct{})}, Now: now})
	e := Endpoints{Metrics: reg, Access: acc, Limits: limits, Log: log,
		Explain: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "explained") })}
	if admin {
		store, _ := overrides.OpenFile("", nil)
		e.Admin = NewAdmin(rep, AdminConfig{Token: testAdminToken, Store: store, Log: zerolog.Nop()})
		e.Overrides = store
	}
	return rep.Handler(e)
}

// TestAccessRules: which requests a token must carry, on a loopback
// listener (reads open) and on a public one (reads need the read or the
// admin token); the admin API always needs the admin token, and the
// monitoring routes never need one.
func TestAccessRules(t *testing.T) {
	loopback := Access{}
	public := Access{ReadToken: testReadToken, ReadNeedsToken: true}
	publicAdminOnly := Access{ReadNeedsToken: true}
	basic := func(password string) string {
		req := httptest.NewRequest("GET", "/", nil)
		req.SetBasicAuth("anyone", password)
		return req.Header.Get("Authorization")
	}
	const admin, noAdmin = true, false
	tests := []struct {
		name   string
		acc    Access
		admin  bool
		method string
		path   string
		auth   string
		want   int
	}{
		{"loopback: page without a token", loopback, admin, "GET", "/", "", 200},
		{"loopback: status without a token", loopback, admin, "GET", "/status", "", 200},
		{"loopback: admin API without a token", loopback, admin, "POST", "/v1/pops/fra/state", "", 401},
		{"loopback: admin API with the read token", Access{ReadToken: testReadToken}, admin, "POST", "/v1/pops/fra/state", "Bearer " + testReadToken, 401},
		{"loopback: admin API with its token", loopback, admin, "POST", "/v1/pops/fra/state", "Bearer " + testAdminToken, 404},
		{"loopback: admin API with its token as basic", loopback, admin, "POST", "/v1/pops/fra/state", basic(testAdminToken), 401},
		{"no admin API: its route is unknown", loopback, noAdmin, "POST", "/v1/pops/fra/state", "", 404},
		{"no admin API: its token does nothing", publicAdminOnly, noAdmin, "GET", "/status", "Bearer " + testAdminToken, 401},

		{"public: healthz open", public, admin, "GET", "/healthz", "", 200},
		{"public: readyz open", public, admin, "GET", "/readyz", "", 503}, // first probe round never ends here
		{"public: metrics open", public, admin, "GET", "/metrics", "", 200},
		{"public: page without a token", public, admin, "GET", "/", "", 401},
		{"public: status without a token", public, admin, "GET", "/status", "", 401},
		{"public: explain without a token", public, admin, "GET", "/explain", "", 401},
		{"public: unknown route without a token", public, admin, "GET", "/nothing", "", 401},
		{"public: status with a wrong token", public, admin, "GET", "/status", "Bearer " + testReadToken + "x", 401},
		{"public: status with a prefix of the token", public, admin, "GET", "/status", "Bearer " + testReadToken[:10], 401},
		{"public: status with the read token", public, admin, "GET", "/status", "Bearer " + testReadToken, 200},
		{"public: status with the admin token", public, admin, "GET", "/status", "Bearer " + testAdminToken, 200},
		{"public: page with the read token as basic", public, admin, "GET", "/", basic(testReadToken), 200},
		{"public: explain with the read token", public, admin, "GET", "/explain", "Bearer " + testReadToken, 200},
		{"public: admin API with the read token", public, admin, "POST", "/v1/pops/fra/state", "Bearer " + testReadToken, 401},
		{"public: admin API with its token", public, admin, "POST", "/v1/pops/fra/state", "Bearer " + testAdminToken, 404},
		{"public, admin token only: status with it", publicAdminOnly, admin, "GET", "/status", "Bearer " + testAdminToken, 200},
		{"public, admin token only: an empty bearer", publicAdminOnly, admin, "GET", "/status", "Bearer ", 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := guardedHandler(t, tc.acc, tc.admin, HTTPConfig{}, nil, prometheus.NewRegistry(), zerolog.Nop())
			var body io.Reader
			if tc.method == "POST" {
				body = strings.NewReader(`{"state":"drain"}`)
			}
			req := httptest.NewRequest(tc.method, tc.path, body)
			req.RemoteAddr = "192.0.2.7:4000"
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("%s %s: %d %q, want %d", tc.method, tc.path, rec.Code, rec.Body, tc.want)
			}
			if tc.want == 401 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", rec.Header().Values("WWW-Authenticate"))
			}
		})
	}
}

// TestAuthFailureLimit: after AuthFailuresPerMinute failures in a minute a
// source gets 429 whatever its token, other sources do not, and the
// minute's end lifts it; refusals are counted and logged one a second.
func TestAuthFailureLimit(t *testing.T) {
	clock := dnstest.NewClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	reg := prometheus.NewRegistry()
	var logs dnstest.LogBuffer
	h := guardedHandler(t, Access{ReadNeedsToken: true}, true, HTTPConfig{AuthFailuresPerMinute: 3}, clock, reg,
		zerolog.New(&logs))
	get := func(remote, token string) int {
		req := httptest.NewRequest("GET", "/status", nil)
		req.RemoteAddr = remote
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	const attacker, neighbour, friend = "198.51.100.7:1000", "[2001:db8:1:2::99]:1000", "198.51.100.8:1000"
	steps := []struct {
		remote, token string
		want          int
	}{
		{attacker, "guess-1", 401},
		{attacker, "", 401},
		{attacker, "guess-3", 401},
		{attacker, testAdminToken, 429}, // the token is not even checked
		{friend, testAdminToken, 200},   // another address
		{"[2001:db8:1:2::1]:1000", "guess", 401},
		{"[2001:db8:1:2::2]:1000", "guess", 401},
		{"[2001:db8:1:2::3]:1000", "guess", 401},
		{neighbour, testAdminToken, 429}, // the same IPv6 /64
	}
	for i, s := range steps {
		if got := get(s.remote, s.token); got != s.want {
			t.Fatalf("step %d (%s): %d, want %d", i, s.remote, got, s.want)
		}
	}
	clock.Advance(time.Minute)
	if got := get(attacker, testAdminToken); got != 200 {
		t.Errorf("a minute later: %d, want 200", got)
	}
	for reason, want := range map[string]float64{refusedMissing: 1, refusedWrong: 5, refusedLimited: 2} {
		if got := refusedCount(t, reg, reason); got != want {
			t.Errorf("popdns_http_refused_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	// The clock stood still for the eight refusals: one line for them, the
	// first, with the source; the next, a minute later, says how many
	// went unlogged.
	get(attacker, "guess-again")
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"remote":"198.51.100.7:1000"`) ||
		!strings.Contains(lines[0], `"reason":"wrong_token"`) || !strings.Contains(lines[1], `"not_logged_before":7`) {
		t.Errorf("refusal log:\n%s", logs.String())
	}
}

// TestFailureLimiterBounded: the limiter remembers at most
// maxFailureSources sources; past them the newcomers share one account,
// and ended windows make room again.
func TestFailureLimiterBounded(t *testing.T) {
	clock := dnstest.NewClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	l := newFailureLimiter(2, clock.Now)
	for i := range maxFailureSources {
		l.fail(sourceOf(net.JoinHostPort(net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)).String(), "1")))
	}
	a, b := sourceOf("192.0.2.1:1"), sourceOf("192.0.2.2:1")
	l.fail(a)
	l.fail(b)
	if len(l.sources) != maxFailureSources+1 || !l.limited(a) || !l.limited(b) {
		t.Fatalf("%d sources; newcomers limited %v %v, want %d sources and both limited (shared account)",
			len(l.sources), l.limited(a), l.limited(b), maxFailureSources+1)
	}
	clock.Advance(time.Minute)
	l.fail(a)
	if len(l.sources) != 1 || l.limited(a) {
		t.Errorf("after a minute: %d sources, limited %v; want the ended windows gone", len(l.sources), l.limited(a))
	}
}

// TestBodyLimit: a body larger than the limit is refused with 413, whether
// it says its length or not, and the admin API's own, smaller limit holds.
func TestBodyLimit(t *testing.T) {
	h := guardedHandler(t, Access{}, true, HTTPConfig{MaxBodyBytes: 100}, nil, prometheus.NewRegistry(), zerolog.Nop())
	admin := "/v1/pops/fra/state"
	big := `{"state":"` + strings.Repeat("d", 200) + `"}`
	tests := []struct {
		name string
		path string
		body io.Reader
		want int
	}{
		{"with its length", admin, strings.NewReader(big), 413},
		{"without a length", admin, io.MultiReader(strings.NewReader(big)), 413},
		{"to a route that reads none", "/status", strings.NewReader(big), 413},
		{"small enough", admin, strings.NewReader(`{"state":"drain"}`), 404}, // no PoP fra
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if tc.path == "/status" {
				method = "GET"
			}
			req := httptest.NewRequest(method, tc.path, tc.body)
			req.Header.Set("Authorization", "Bearer "+testAdminToken)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("%d %q, want %d", rec.Code, rec.Body, tc.want)
			}
		})
	}

	// The admin API's limit is its own, below the endpoint's default.
	h = guardedHandler(t, Access{}, true, HTTPConfig{}, nil, prometheus.NewRegistry(), zerolog.Nop())
	req := httptest.NewRequest("POST", admin, io.MultiReader(strings.NewReader(`{"state":"`+strings.Repeat("d", 5000)+`"}`)))
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 413 || !strings.Contains(rec.Body.String(), "4096") {
		t.Errorf("admin body of 5 kB: %d %q, want 413 naming its limit", rec.Code, rec.Body)
	}
}

// TestHTTPConfigProvision: defaults in the zero fields, every negative
// field reported.
func TestHTTPConfigProvision(t *testing.T) {
	c, err := HTTPConfig{IdleTimeout: time.Second}.Provision()
	if err != nil || c.IdleTimeout != time.Second || c.ReadHeaderTimeout != DefaultReadHeaderTimeout ||
		c.MaxBodyBytes != DefaultMaxBodyBytes || c.AuthFailuresPerMinute != DefaultAuthFailuresPerMinute {
		t.Errorf("%+v, %v", c, err)
	}
	_, err = HTTPConfig{ReadTimeout: -1, MaxHeaderBytes: -1, MaxBodyBytes: -5}.Provision()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *ConfigError
		if errors.As(e, &ce) {
			fields = append(fields, ce.Field)
		}
	}
	if strings.Join(fields, ",") != "ReadTimeout,MaxHeaderBytes,MaxBodyBytes" {
		t.Errorf("fields %v of %v", fields, err)
	}
	if _, err := (HTTPConfig{ReadHeaderTimeout: time.Minute, ReadTimeout: time.Second}).Provision(); err == nil {
		t.Error("a header timeout longer than the read timeout was accepted")
	}
}

// serveWith serves h on a loopback port with c's limits until the test
// ends, and returns its address.
func serveWith(t *testing.T, c HTTPConfig, h http.Handler) string {
	t.Helper()
	c, err := c.Provision()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := c.NewServer(h, zerolog.Nop())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		dnstest.Receive(t, done, 5*time.Second, "the server to stop")
	})
	return l.Addr().String()
}

// closedWithin reads from conn until the server closes it, and says how
// long that took; it fails the test if the server has not closed it in
// limit.
func closedWithin(t *testing.T, conn net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	conn.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v", limit)
	}
	return time.Since(start)
}

// TestServerTimeouts: with small timeouts, a client that trickles its
// headers (slowloris), one that trickles its body and an idle keep-alive
// connection are all cut off by the server.
func TestServerTimeouts(t *testing.T) {
	c := HTTPConfig{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 400 * time.Millisecond,
		IdleTimeout: 300 * time.Millisecond}
	addr := serveWith(t, c, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	dial := func(t *testing.T) net.Conn {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	// trickle writes a line every 50 ms until the server closes conn or
	// the test ends.
	trickle := func(t *testing.T, conn net.Conn, line string) {
		stop := make(chan struct{})
		done := make(chan struct{})
		t.Cleanup(func() { close(stop); <-done })
		go func() {
			defer close(done)
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := io.WriteString(conn, line); err != nil {
						return
					}
				}
			}
		}()
	}

	t.Run("headers sent slowly", func(t *testing.T) {
		conn := dial(t)
		io.WriteString(conn, "GET /status HTTP/1.1\r\nHost: popdns\r\n")
		trickle(t, conn, "X-Slow: 1\r\n")
		if d := closedWithin(t, conn, 3*time.Second); d > 2*time.Second {
			t.Errorf("cut off after %v, want about the 200ms header timeout", d)
		}
	})
	t.Run("body sent slowly", func(t *testing.T) {
		conn := dial(t)
		io.WriteString(conn, "POST /v1/pops/fra/state HTTP/1.1\r\nHost: popdns\r\nContent-Length: 100000\r\n\r\n")
		trickle(t, conn, "x")
		if d := closedWithin(t, conn, 3*time.Second); d > 2*time.Second {
			t.Errorf("cut off after %v, want about the 400ms read timeout", d)
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		conn := dial(t)
		io.WriteString(conn, "GET /status HTTP/1.1\r\nHost: popdns\r\n\r\n")
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("first request: %d, close %v", resp.StatusCode, resp.Close)
		}
		if d := closedWithin(t, conn, 3*time.Second); d > 2*time.Second {
			t.Errorf("idle connection closed after %v, want about the 300ms idle timeout", d)
		}
	})
}

// refusedCount is popdns_http_refused_total{reason} as reg gathers it.
func refusedCount(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "popdns_http_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no popdns_http_refused_total{reason=%q}", reason)
	return 0
}

// TestMetricsCached: /metrics answers from a reply at most a second old,
// one per format and compression, so that scraping it in a loop costs one
// encoding a second.
func TestMetricsCached(t *testing.T) {
	clock := dnstest.NewClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_total", Help: "Test."})
	reg.MustRegister(c)
	h := guardedHandler(t, Access{ReadNeedsToken: true}, false, HTTPConfig{}, clock, reg, zerolog.Nop())
	scrape := func(encoding string) string {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if encoding != "" {
			req.Header.Set("Accept-Encoding", encoding)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("/metrics: %d", rec.Code)
		}
		if encoding == "gzip" {
			return rec.Header().Get("Content-Encoding")
		}
		for line := range strings.SplitSeq(rec.Body.String(), "\n") {
			if strings.HasPrefix(line, "test_total ") {
				return line
			}
		}
		t.Fatalf("no test_total in %q", rec.Body)
		return ""
	}
	if got := scrape(""); got != "test_total 0" {
		t.Fatalf("first scrape: %s", got)
	}
	c.Inc()
	clock.Advance(999 * time.Millisecond)
	if got := scrape(""); got != "test_total 0" {
		t.Errorf("within the second: %s, want the cached 0", got)
	}
	if got := scrape("gzip"); got != "gzip" {
		t.Errorf("a client that takes gzip got Content-Encoding %q", got)
	}
	clock.Advance(time.Millisecond)
	if got := scrape(""); got != "test_total 1" {
		t.Errorf("a second later: %s, want 1", got)
	}
	for accept, want := range map[string]bool{"gzip": true, "gzip, deflate": true, "br;q=1.0, gzip;q=0.5": true,
		"*": true, "gzip;q=0": false, "identity": false, "": false} {
		if acceptsGzip(accept) != want {
			t.Errorf("acceptsGzip(%q) = %v", accept, !want)
		}
	}
}

// TestBearerSchemeCaseInsensitive: the scheme's name is matched in any
// case (RFC 9110 §11.1), the token exactly.
func TestBearerSchemeCaseInsensitive(t *testing.T) {
	for _, tc := range []struct{ header, want string }{
		{"Bearer tok", "tok"},
		{"bearer tok", "tok"},
		{"BEARER  tok ", "tok"},
		{"Bearertok", ""},
		{"Basic dXNlcjpwdw==", ""},
		{"", ""},
	} {
		r := httptest.NewRequest("GET", "/status", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		if got := bearer(r, false); got != tc.want {
			t.Errorf("Authorization %q: token %q, want %q", tc.header, got, tc.want)
		}
	}
}
