package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/popdns/popdns/dnsserver"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newHTTPHandler serves the monitoring endpoint: liveness, readiness,
// Prometheus metrics, the status as JSON and as a page, explanations, and
// the admin API when admin is not nil.
func newHTTPHandler(s *server, admin *adminAPI) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeStatusPage(w, s.status(), time.Now())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := s.notReady(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ready: %d zones, %d probes\n", len(s.dns.Zones().Zones()), len(s.prober.Status().Results))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{Registry: s.metrics}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.status())
	})
	mux.HandleFunc("GET /explain", func(w http.ResponseWriter, r *http.Request) {
		explainHTTP(w, r, s.dns)
	})
	if admin != nil {
		mux.HandleFunc("POST /v1/pops/{name}/state", admin.setPoPState)
	}
	return mux
}

// status gathers what GET /status and the status page show.
func (s *server) status() statusJSON {
	st := buildStatus(s.dns.Zones(), s.prober.Status(), s.dns.Overrides())
	if errs := s.fileErrors.Load(); errs != nil {
		maps.Copy(st.Errors, *errs)
	}
	st.NotReady = s.notReady()
	st.Ready = st.NotReady == ""
	return st
}

// notReady says why the server is not ready to take traffic, or "" when
// it is: every zone loaded (a start with a bad zone fails outright), the
// listeners serving and the first round of probes done or out of time.
func (s *server) notReady() string {
	switch {
	case s.dns.Zones() == nil:
		return "zones not loaded"
	case !s.dns.Serving():
		return "DNS listeners not serving yet"
	}
	select {
	case <-s.probesSettled:
		return ""
	default:
	}
	st := s.prober.Status()
	probed := 0
	for _, r := range st.Results {
		if r.Probed() {
			probed++
		}
	}
	return fmt.Sprintf("first probe round running: %d of %d probes answered", probed, len(st.Results))
}

// explainHTTP serves GET /explain?name=&type=&client=, where client is an
// address (the query's source) or a prefix (the ECS a resolver sends).
func explainHTTP(w http.ResponseWriter, r *http.Request, srv *dnsserver.Server) {
	q := r.URL.Query()
	ecs, source := "", q.Get("client")
	if strings.Contains(source, "/") {
		ecs, source = source, ""
	}
	req, err := explainRequest(q.Get("name"), q.Get("type"), ecs, source)
	if err == nil {
		var ex *dnsserver.Explanation
		if ex, err = srv.Explain(req); err == nil {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(ex)
			return
		}
	}
	http.Error(w, err.Error(), http.StatusBadRequest)
}
