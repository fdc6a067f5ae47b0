package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/popdns/popdns/dnsserver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newHTTPHandler serves the monitoring endpoint: liveness, readiness and
// Prometheus metrics.
func newHTTPHandler(srv *dnsserver.Server, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		snap := srv.Zones()
		if snap == nil || len(srv.Addrs()) == 0 {
			http.Error(w, "not ready: zones not loaded or listeners not bound", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ready: %d zones\n", len(snap.Zones()))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /explain", func(w http.ResponseWriter, r *http.Request) {
		explainHTTP(w, r, srv)
	})
	return mux
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
