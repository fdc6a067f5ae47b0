package main

import (
	"fmt"
	"net/http"

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
	return mux
}
