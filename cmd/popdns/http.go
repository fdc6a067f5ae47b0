package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/zones"
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
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(zonesStatus(srv.Zones()))
	})
	mux.HandleFunc("GET /explain", func(w http.ResponseWriter, r *http.Request) {
		explainHTTP(w, r, srv)
	})
	return mux
}

// statusJSON is what GET /status reports of the zones. The health-probe
// issue adds PoPs and targets.
type statusJSON struct {
	Generation uint64            `json:"generation"`
	LoadedAt   time.Time         `json:"loaded_at"`
	Zones      []zoneStatus      `json:"zones"`
	Errors     map[string]string `json:"errors"` // file → why its latest version is not served
	PoPs       []string          `json:"pops"`
	Latency    int               `json:"latency_entries"`
}

type zoneStatus struct {
	Origin  string `json:"origin"`
	File    string `json:"file"`
	Serial  uint32 `json:"serial"`
	Records int    `json:"records"`
	Error   string `json:"error,omitempty"` // its file's latest version failed: this is the last good one
}

func zonesStatus(snap *zones.Snapshot) statusJSON {
	st := statusJSON{Zones: []zoneStatus{}, Errors: map[string]string{}}
	if snap == nil {
		return st
	}
	st.Generation, st.LoadedAt, st.PoPs, st.Latency = snap.Generation(), snap.LoadedAt(), snap.PoPs().Names(), snap.Latency().Len()
	for file, err := range snap.FileErrors() {
		st.Errors[file] = err.Error()
	}
	for _, z := range snap.Zones() {
		st.Zones = append(st.Zones, zoneStatus{Origin: z.Origin(), File: z.File(), Serial: z.Serial(), Records: z.Records(), Error: st.Errors[z.File()]})
	}
	return st
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
