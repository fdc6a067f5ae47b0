//go:build slow

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestMonitoringPromtool: promtool accepts the alerting rules and their
// unit tests pass (each alert fires on synthetic series and stays quiet
// when healthy), and every dashboard query parses as PromQL. It skips
// without promtool (Debian package prometheus), except in CI, which
// installs it. Its subprocesses take seconds, hence the slow tag.
func TestMonitoringPromtool(t *testing.T) {
	rules := filepath.Join(monitoringDir, "popdns-alerts.yaml")
	dashboard := dashboardExprs(t)
	promtool := lookPromtool(t)
	promtoolRun(t, promtool, "check", "rules", rules)
	promtoolRun(t, promtool, "test", "rules", filepath.Join(monitoringDir, "popdns-alerts.test.yaml"))
	// The dashboard's queries as recording rules, so that promtool
	// parses each; Grafana's variables become what they stand for.
	vars := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*")
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var recs []rule
	for i, e := range dashboard {
		recs = append(recs, rule{Record: "dashboard:query" + string(rune('a'+i/26)) + string(rune('a'+i%26)), Expr: vars.Replace(e)})
	}
	out, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": recs}}})
	if err != nil {
		t.Fatal(err)
	}
	promtoolRun(t, promtool, "check", "rules", writeFile(t, t.TempDir(), "dashboard-rules.yaml", string(out)))
}

func lookPromtool(t *testing.T) string {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		msg := "promtool not found (apt-get install prometheus)"
		if os.Getenv("POPDNS_CI") != "" {
			t.Fatal(msg + "; POPDNS_CI is set (.ci/run installs it), so this is a failure")
		}
		t.Skip(msg)
	}
	return promtool
}

func promtoolRun(t *testing.T, promtool string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, promtool, args...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
