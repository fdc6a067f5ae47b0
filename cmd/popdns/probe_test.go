package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/internal/status"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// popServer is a PoP's health endpoint on 127.0.0.1 that a test stops,
// restarts on the same port, and slows down.
type popServer struct {
	addr  string
	delay atomic.Int64 // nanoseconds each answer waits

	mu  sync.Mutex // guards srv
	srv *http.Server
}

func newPoPServer(t *testing.T) *popServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &popServer{addr: l.Addr().String()}
	p.serve(l)
	t.Cleanup(p.stop)
	return p
}

func (p *popServer) serve(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Duration(p.delay.Load())):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintln(w, "ok")
	})}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

// stop closes the listener: probes get connection refused.
func (p *popServer) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		_ = p.srv.Close()
		p.srv = nil
	}
}

// restart listens on the same port again.
func (p *popServer) restart(t *testing.T) {
	t.Helper()
	var l net.Listener
	var err error
	for range 50 { // the port may linger briefly after Close
		if l, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	p.serve(l)
}

// Probe timings for the end-to-end tests: short, so the tests take
// seconds, and fall > rise so that the two are told apart.
const (
	e2eInterval = 200 * time.Millisecond
	e2eRise     = 2
	e2eFall     = 3
)

// startProbedApp serves geo.test with www over fra, lhr and iad, each PoP
// probed over HTTP on its own local server. The client 192.0.2.0/26 is in
// Frankfurt in the test database: fra first, then lhr (650 km away),
// then iad.
func startProbedApp(t *testing.T, extraConfig string) (*runningApp, map[string]*popServer) {
	t.Helper()
	dir := t.TempDir()
	city, err := os.ReadFile("../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "city.mmdb", string(city))
	servers := map[string]*popServer{"fra": newPoPServer(t), "lhr": newPoPServer(t), "iad": newPoPServer(t)}
	writeFile(t, dir, "zones/geo.test.yaml", `origin: geo.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.10 }
          lhr: { a: 192.0.2.15 }
          iad: { a: 192.0.2.20 }
`)
	cfg := fmt.Sprintf(`zones: zones
geoip: { city: city.mmdb }
probes: { interval: %s, timeout: 150ms, rise: %d, fall: %d }
pops:
  fra: { lat: 50.11, lon: 8.68, probe: { http: "%s", path: /health } }
  lhr: { lat: 51.47, lon: -0.45, probe: { http: "%s", path: /health } }
  iad: { lat: 38.95, lon: -77.45, probe: { http: "%s", path: /health } }
%s`, e2eInterval, e2eRise, e2eFall, servers["fra"].addr, servers["lhr"].addr, servers["iad"].addr, extraConfig)
	r := startApp(t, writeFile(t, dir, "popdns.yaml", cfg))
	return r, servers
}

// waitAnswer polls until the Frankfurt client gets want and returns how
// long that took.
func (r *runningApp) waitAnswer(t *testing.T, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := r.answer(t, "www.geo.test.", "192.0.2.0/26")
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("answer %s, want %s within %s; logs:\n%s", got, want, limit, r.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *runningApp) getStatus(t *testing.T) status.Status {
	t.Helper()
	rec := httptest.NewRecorder()
	r.handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	var st status.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("status %s: %v", rec.Body.String(), err)
	}
	return st
}

func targetOf(st status.Status, pop string) status.Target {
	for _, ts := range st.Targets {
		if ts.PoP == pop {
			return ts
		}
	}
	return status.Target{}
}

// TestPoPDiesAndComesBack stops fra's server: the Frankfurt client moves
// to lhr once fra's probe has failed fall times, and comes back once it
// has succeeded rise times after a restart.
func TestPoPDiesAndComesBack(t *testing.T) {
	r, servers := startProbedApp(t, "")
	r.waitAnswer(t, "192.0.2.10", 5*time.Second)
	dnstest.Receive(t, r.status.ProbesSettled(), 10*time.Second, "the first probe round")

	servers["fra"].stop()
	took := r.waitAnswer(t, "192.0.2.15", 10*time.Second)
	// The first failing probe comes at most one interval after the stop,
	// and fall-1 more follow an interval apart: no move before that.
	t.Logf("fra stopped: the Frankfurt client moved to lhr after %s (fall %d × interval %s)", took.Round(time.Millisecond), e2eFall, e2eInterval)
	if min := (e2eFall - 1) * e2eInterval; took < min {
		t.Errorf("moved after %s, before %d failed probes could have happened (%s)", took, e2eFall, min)
	}
	st := r.getStatus(t)
	if len(st.Zones) != 1 || st.Zones[0].LoadedAt.IsZero() || !st.Ready {
		t.Errorf("zones in /status: %+v, ready %t", st.Zones, st.Ready)
	}
	if fra := targetOf(st, "fra"); fra.Healthy || fra.Eligible || !strings.Contains(fra.LastError, "refused") || fra.LastChange.IsZero() {
		t.Errorf("fra target in /status while down: %+v", fra)
	}
	for _, p := range st.PoPs {
		if p.Name == "fra" && (p.Up || p.Healthy) {
			t.Errorf("fra PoP in /status while down: %+v", p)
		}
	}
	r.waitLog(t, `"healthy":false`)

	servers["fra"].restart(t)
	took = r.waitAnswer(t, "192.0.2.10", 10*time.Second)
	t.Logf("fra restarted: the Frankfurt client came back after %s (rise %d × interval %s)", took.Round(time.Millisecond), e2eRise, e2eInterval)
	if min := (e2eRise - 1) * e2eInterval; took < min {
		t.Errorf("came back after %s, before %d good probes could have happened (%s)", took, e2eRise, min)
	}
	if fra := targetOf(r.getStatus(t), "fra"); !fra.Healthy || !fra.Eligible || fra.LastError != "" {
		t.Errorf("fra target in /status after the restart: %+v", fra)
	}
}

// TestSlowPoPLosesClients slows fra's server down: its penalty grows past
// the few milliseconds that separate it from lhr for a Frankfurt client,
// who moves; once fra is fast again the penalty decays and the client
// returns. A client far from both (Ashburn) stays where it is.
func TestSlowPoPLosesClients(t *testing.T) {
	r, servers := startProbedApp(t, "")
	r.waitAnswer(t, "192.0.2.10", 5*time.Second)
	dnstest.Receive(t, r.status.ProbesSettled(), 10*time.Second, "the first probe round")
	// A few fast rounds first, so that the baseline is a fast RTT.
	waitProbeRounds(t, r, "fra", 3)

	servers["fra"].delay.Store(int64(60 * time.Millisecond))
	took := r.waitAnswer(t, "192.0.2.15", 10*time.Second)
	// On a busy machine the fast rounds' RTTs are noisy enough to move the
	// client before any slow round, and the penalty read then is that
	// noise: check it once two rounds have run with the delay (the first
	// may have started before it).
	waitProbeRounds(t, r, "fra", 2)
	fra := targetOf(r.getStatus(t), "fra")
	t.Logf("fra slowed by 60 ms: the Frankfurt client moved to lhr after %s; fra RTT %.1f ms, baseline %.1f ms, penalty %.1f ms (steering %.0f ms)",
		took.Round(time.Millisecond), fra.RTTMS, fra.BaselineMS, fra.PenaltyMS, fra.SteeringPenaltyMS)
	if !fra.Healthy || fra.PenaltyMS < 10 || fra.SteeringPenaltyMS < 10 || fra.SteeringPenaltyMS > fra.PenaltyMS+2.5 {
		t.Errorf("slow fra: %+v; want healthy with a penalty over the 10 ms that separate it from lhr", fra)
	}
	if got := r.answer(t, "www.geo.test.", "192.0.2.64/26"); got != "192.0.2.20" {
		t.Errorf("Ashburn client answered %s, want iad: a slow fra must not move clients far from it", got)
	}

	servers["fra"].delay.Store(0)
	took = r.waitAnswer(t, "192.0.2.10", 10*time.Second)
	t.Logf("fra fast again: the Frankfurt client came back after %s", took.Round(time.Millisecond))
}

// waitProbeRounds waits until pop's probe has been checked n more times.
func waitProbeRounds(t *testing.T, r *runningApp, pop string, n int) {
	t.Helper()
	id := r.dns.Zones().PoPs().Get(pop).Probe
	seen, last := 0, time.Time{}
	deadline := time.Now().Add(10 * time.Second)
	for seen < n {
		if res, ok := r.built.prober.Status().Result(id); ok && res.Checked.After(last) {
			if !last.IsZero() {
				seen++
			}
			last = res.Checked
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe %s ran %d of %d rounds in 10 s", id, seen, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProbeMetricsAndReadiness scrapes /metrics through the Prometheus
// text parser once the first round is done, and checks /readyz.
func TestProbeMetricsAndReadiness(t *testing.T) {
	r, servers := startProbedApp(t, "")
	servers["iad"].stop()
	dnstest.Receive(t, r.status.ProbesSettled(), 10*time.Second, "the first probe round")
	h := r.handler(nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "3 probes") {
		t.Errorf("/readyz after the first round: %d %s", rec.Code, rec.Body.String())
	}
	r.waitAnswer(t, "192.0.2.10", 5*time.Second)
	r.answer(t, "www.geo.test.", "192.0.2.64/26") // Ashburn, iad down: fra or lhr

	deadline := time.Now().Add(5 * time.Second)
	for {
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		parser := expfmt.NewTextParser(model.LegacyValidation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
		if err != nil {
			t.Fatalf("/metrics does not parse: %v", err)
		}
		value := func(name string, labels map[string]string) (float64, bool) {
			f := families[name]
			if f == nil {
				return 0, false
			}
		series:
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
						continue series
					}
				}
				switch {
				case m.Counter != nil:
					return m.GetCounter().GetValue(), true
				case m.Gauge != nil:
					return m.GetGauge().GetValue(), true
				case m.Histogram != nil:
					return float64(m.GetHistogram().GetSampleCount()), true
				}
			}
			return 0, false
		}
		iadProbe := r.dns.Zones().PoPs().Get("iad").Probe
		fraProbe := r.dns.Zones().PoPs().Get("fra").Probe
		checks := []struct {
			name   string
			labels map[string]string
			ok     func(float64) bool
		}{
			{"popdns_probe_up", map[string]string{"target": iadProbe}, func(v float64) bool { return v == 0 }},
			{"popdns_probe_up", map[string]string{"target": fraProbe}, func(v float64) bool { return v == 1 }},
			{"popdns_probe_rtt_seconds", map[string]string{"target": fraProbe}, func(v float64) bool { return v > 0 && v < 0.15 }},
			{"popdns_probe_errors_total", map[string]string{"target": iadProbe, "reason": "refused"}, func(v float64) bool { return v >= 1 }},
			{"popdns_geo_answers_total", map[string]string{"zone": "geo.test.", "record": "www.geo.test.", "pop": "fra"}, func(v float64) bool { return v >= 1 }},
			{"popdns_dns_ecs_requests_total", map[string]string{"ecs": "used"}, func(v float64) bool { return v >= 2 }},
			{"popdns_dns_ecs_scope_prefix_length", nil, func(v float64) bool { return v >= 2 }},
			{"popdns_dns_requests_total", map[string]string{"zone": "geo.test.", "qtype": "A", "rcode": "NOERROR"}, func(v float64) bool { return v >= 2 }},
			{"popdns_dns_request_duration_seconds", map[string]string{"proto": "udp"}, func(v float64) bool { return v >= 2 }},
			{"popdns_zone_serial", map[string]string{"zone": "geo.test."}, func(v float64) bool { return v == 1 }},
			{"popdns_reload_last_success_timestamp_seconds", nil, func(v float64) bool { return v > 1.7e9 }},
			{"popdns_reload_last_timestamp_seconds", map[string]string{"what": "zones", "result": "ok"}, func(v float64) bool { return v > 1.7e9 }},
		}
		var failed []string
		for _, c := range checks {
			v, found := value(c.name, c.labels)
			if !found || !c.ok(v) {
				failed = append(failed, fmt.Sprintf("%s%v = %v (found %t)", c.name, c.labels, v, found))
			}
		}
		if len(failed) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics wrong:\n%s", strings.Join(failed, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAdminAPI drains a PoP through POST /v1/pops/{name}/state and checks
// that clients move, and that the API refuses requests without the token.
func TestAdminAPI(t *testing.T) {
	r, _ := startProbedApp(t, "")
	const token = "0123456789abcdef-secret"
	h := r.handler(status.NewAdmin(r.status, status.AdminConfig{Token: token, Store: r.overrides, Sync: r.applier.Sync,
		MinActive: 1, Log: r.log}))
	post := func(path, auth, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	r.waitAnswer(t, "192.0.2.10", 5*time.Second)
	for _, tc := range []struct {
		name, path, auth, body string
		code                   int
	}{
		{"no token", "/v1/pops/fra/state", "", `{"state":"drain"}`, http.StatusUnauthorized},
		{"wrong token", "/v1/pops/fra/state", "Bearer wrong-token-of-some-length", `{"state":"drain"}`, http.StatusUnauthorized},
		{"not bearer", "/v1/pops/fra/state", "Basic " + token, `{"state":"drain"}`, http.StatusUnauthorized},
		{"unknown PoP", "/v1/pops/xyz/state", "Bearer " + token, `{"state":"drain"}`, http.StatusNotFound},
		{"bad state", "/v1/pops/fra/state", "Bearer " + token, `{"state":"sleepy"}`, http.StatusBadRequest},
		{"empty state", "/v1/pops/fra/state", "Bearer " + token, `{"state":""}`, http.StatusBadRequest},
		{"state not in its exact name", "/v1/pops/fra/state", "Bearer " + token, `{"state":"DRAIN"}`, http.StatusBadRequest},
		{"bad body", "/v1/pops/fra/state", "Bearer " + token, `drain`, http.StatusBadRequest},
		{"unknown field", "/v1/pops/fra/state", "Bearer " + token, `{"state":"drain","for":"1h"}`, http.StatusBadRequest},
	} {
		if rec := post(tc.path, tc.auth, tc.body); rec.Code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, rec.Body.String(), tc.code)
		}
	}
	if got := r.answer(t, "www.geo.test.", "192.0.2.0/26"); got != "192.0.2.10" {
		t.Fatalf("refused requests changed the answer: %s", got)
	}

	rec := post("/v1/pops/fra/state", "Bearer "+token, `{"state":"drain"}`)
	var p status.PoP
	if err := json.Unmarshal(rec.Body.Bytes(), &p); rec.Code != http.StatusOK || err != nil || p.State != "drain" || p.Override != "drain" || p.Up {
		t.Fatalf("drain: %d %s", rec.Code, rec.Body.String())
	}
	r.waitAnswer(t, "192.0.2.15", time.Second)
	r.waitLog(t, "PoP state set through the admin API")

	if rec := post("/v1/pops/fra/state", "Bearer "+token, `{"state":"active"}`); rec.Code != http.StatusOK {
		t.Fatalf("active: %d %s", rec.Code, rec.Body.String())
	}
	r.waitAnswer(t, "192.0.2.10", time.Second)

	// Without a token file the API does not exist.
	rec = httptest.NewRecorder()
	r.handler(nil).ServeHTTP(rec, httptest.NewRequest("POST", "/v1/pops/fra/state", strings.NewReader(`{"state":"down"}`)))
	if rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("admin API without a token file: %d", rec.Code)
	}
}

// TestProbesFollowReloads adds a probe by editing the configuration and
// removes it again: the prober starts and stops it, and no goroutine of
// it is left behind.
func TestProbesFollowReloads(t *testing.T) {
	r, servers := startProbedApp(t, "")
	dnstest.Receive(t, r.status.ProbesSettled(), 10*time.Second, "the first probe round")
	if n := len(r.built.prober.Status().Results); n != 3 {
		t.Fatalf("%d probes, want 3", n)
	}
	extra := newPoPServer(t)
	cfgFile := r.cfg.source
	data, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	withTCP := strings.Replace(string(data), `iad: { lat: 38.95, lon: -77.45, probe: { http: "`+servers["iad"].addr+`", path: /health } }`,
		`iad: { lat: 38.95, lon: -77.45, probe: { tcp: "`+extra.addr+`" } }`, 1)
	if withTCP == string(data) {
		t.Fatal("config edit did not apply")
	}
	if err := os.WriteFile(cfgFile, []byte(withTCP), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool {
		_, ok := r.built.prober.Status().Result("tcp://" + extra.addr)
		return ok && len(r.built.prober.Status().Results) == 3
	}, "the tcp probe replaces iad's http probe")
	if err := os.WriteFile(cfgFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool {
		_, ok := r.built.prober.Status().Result("tcp://" + extra.addr)
		return !ok
	}, "the tcp probe is gone")
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal(errors.New("timed out waiting: " + what))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestReadyzReasons checks /readyz before the listeners serve and before
// the first probe round is done.
func TestReadyzReasons(t *testing.T) {
	rec := httptest.NewRecorder()
	serverHandler(newDemoServer(t)).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "not ready: DNS listeners not serving yet") {
		t.Errorf("/readyz before serving: %d %s", rec.Code, rec.Body.String())
	}

	// Serving, with probe results but the round not yet declared done:
	// the reason counts the probes that answered.
	r, _ := startProbedApp(t, "")
	dnstest.Receive(t, r.status.ProbesSettled(), 10*time.Second, "the first probe round")
	rec = httptest.NewRecorder()
	serverHandler(r.built).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "first probe round running: 3 of 3 probes answered") {
		t.Errorf("/readyz before the probes settle: %d %s", rec.Code, rec.Body.String())
	}
}

// TestStatusPageServed fetches GET / from a running server whose fra probe
// fails: the page names every PoP and shows fra unhealthy, under the
// page's content security policy.
func TestStatusPageServed(t *testing.T) {
	r, servers := startProbedApp(t, "")
	servers["fra"].stop()
	r.waitAnswer(t, "192.0.2.15", 10*time.Second)
	rec := httptest.NewRecorder()
	r.handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	body := rec.Body.String()
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Security-Policy") != status.PageCSP {
		t.Fatalf("GET /: %d, CSP %q", rec.Code, rec.Header().Get("Content-Security-Policy"))
	}
	for _, want := range []string{"fra", "lhr", "iad", "unhealthy", "geo.test."} {
		if !strings.Contains(body, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	rec = httptest.NewRecorder()
	r.handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/nope", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /nope: %d, want 404 (only / is the page)", rec.Code)
	}
}
