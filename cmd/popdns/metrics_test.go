package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
)

// TestMetricsPassPromtool scrapes /metrics of a running server that has
// answered geo, ECS and TCP queries, probed a dead PoP and failed a
// reload, so that most series exist, and has promtool lint it: names,
// suffixes, units and help text. It skips without promtool (Debian
// package prometheus), except in CI, which installs it.
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		msg := "promtool not found (apt-get install prometheus)"
		if os.Getenv("POPDNS_CI") != "" {
			t.Fatal(msg + "; POPDNS_CI is set (.ci/run installs it), so this is a failure")
		}
		t.Skip(msg)
	}
	r, servers := startProbedApp(t, "")
	servers["iad"].stop()
	dnstest.Receive(t, r.status.ProbesSettled(), 10*time.Second, "the first probe round to settle")
	r.waitAnswer(t, "192.0.2.10", 5*time.Second)
	q := new(dns.Msg)
	q.SetQuestion("geo.test.", dns.TypeSOA)
	if _, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(q, r.addr); err != nil {
		t.Fatal(err)
	}
	writeFile(t, r.cfg.zonesDir, "broken.test.yaml", "origin: broken.test.\n")
	r.waitLog(t, "reload failed")

	rec := httptest.NewRecorder()
	r.handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(rec.Body.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
