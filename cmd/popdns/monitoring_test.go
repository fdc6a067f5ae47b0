package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/dnstest"
	"go.yaml.in/yaml/v3"
)

const monitoringDir = "../../deploy/monitoring"

// TestMonitoringFiles checks deploy/monitoring without promtool: the
// dashboard's JSON parses, the rules are complete, and every popdns metric
// the dashboard and the rules query exists in the /metrics of a running
// server with probes, PoPs, geo records and a GeoIP database.
// TestMonitoringPromtool (-tags slow) runs promtool on them.
func TestMonitoringFiles(t *testing.T) {
	rules := filepath.Join(monitoringDir, "popdns-alerts.yaml")
	dashboard := dashboardExprs(t)
	alerts := ruleExprs(t, rules)
	if len(dashboard) < 20 || len(alerts) < 5 {
		t.Fatalf("%d dashboard queries and %d alerting rules: want every panel's and rule's", len(dashboard), len(alerts))
	}

	t.Run("metrics exist", func(t *testing.T) {
		r, servers := startProbedApp(t, "")
		servers["iad"].stop()
		dnstest.Receive(t, r.status.ProbesSettled(), 10*time.Second, "the first probe round to settle")
		r.waitAnswer(t, "192.0.2.10", 5*time.Second)
		rec := httptest.NewRecorder()
		r.handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("/metrics: %d", rec.Code)
		}
		exported := exportedMetrics(rec.Body.String())
		for _, q := range []struct {
			what  string
			exprs []string
		}{{"the dashboard", dashboard}, {"the alerting rules", alerts}} {
			names := map[string]bool{}
			for _, e := range q.exprs {
				for _, n := range metricNames(e) {
					names[n] = true
				}
			}
			for _, n := range slices.Sorted(func(yield func(string) bool) {
				for n := range names {
					if !yield(n) {
						return
					}
				}
			}) {
				if !exported[n] {
					t.Errorf("%s queries %s, which /metrics does not export", q.what, n)
				}
			}
		}
	})
}

// TestMetricNames: the rough PromQL reading that finds the metrics a
// query names.
func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (pop) (rate(popdns_geo_answers_total{instance=~"$instance"}[5m]))`, []string{"popdns_geo_answers_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(popdns_dns_request_duration_seconds_bucket[5m])))`, []string{"popdns_dns_request_duration_seconds"}},
		{`popdns_probe_duration_seconds_sum / popdns_probe_duration_seconds_count`, []string{"popdns_probe_duration_seconds"}},
		{`popdns_pop_up == 0 and on (pop) popdns_pop_state{state="active"} == 1`, []string{"popdns_pop_state", "popdns_pop_up"}},
		{`time() - popdns_geoip_build_timestamp_seconds > 60 * 86400`, []string{"popdns_geoip_build_timestamp_seconds"}},
		{`up{job="popdns"}`, nil},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

// dashboardExprs is the query of every target of every panel of the
// Grafana dashboard, panels inside rows included.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(monitoringDir, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Inputs []struct {
			Name string `json:"name"`
		} `json:"__inputs"`
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" {
		t.Errorf("__inputs = %+v, want the one datasource input DS_PROMETHEUS", d.Inputs)
	}
	if !bytes.Contains(data, []byte(`"uid": "${DS_PROMETHEUS}"`)) {
		t.Error("no panel uses the ${DS_PROMETHEUS} datasource")
	}
	var exprs []string
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("grafana-dashboard.json: %v", err)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" {
					t.Errorf("panel %q has a target without expr", p.Title)
				}
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return exprs
}

// ruleExprs is the expression of every rule of a Prometheus rules file;
// each alert must have a for:, a severity and a summary and description.
func ruleExprs(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var exprs []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && (r.For == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "") {
				t.Errorf("alert %s: want for:, a severity label and summary and description annotations", r.Alert)
			}
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

var metricName = regexp.MustCompile(`\bpopdns_[a-z0-9_]+`)

// metricNames reads PromQL roughly: the popdns metric names expr uses,
// sorted, a histogram's series (_bucket, _sum, _count) by the
// histogram's name.
func metricNames(expr string) []string {
	var names []string
	for _, n := range metricName.FindAllString(expr, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			n = strings.TrimSuffix(n, suffix)
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// exportedMetrics is the set of metric families in a /metrics text with at
// least one series: a family the registry knows but has no series of is
// not something a query finds.
func exportedMetrics(text string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			name = strings.TrimSuffix(name, suffix)
		}
		names[name] = true
	}
	return names
}
