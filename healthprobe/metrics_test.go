package healthprobe

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// TestSeriesPerProbe pins the series each probe costs, which
// docs/monitoring.md quotes: 26 from its start (up, rtt, the histogram's
// 13 buckets, +Inf, _sum and _count, 8 outcomes) and one more of
// popdns_probe_errors_total per reason it has failed with, 33 at most.
func TestSeriesPerProbe(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := newMetrics(reg)
	m.create("a")
	m.observe("a", Result{Healthy: true, RTT: time.Millisecond}, time.Millisecond, "")
	if n := samples(t, reg); n != 26 {
		t.Errorf("a probe that succeeded: %d series, want 26", n)
	}
	for _, reason := range outcomes[1:] {
		m.observe("a", Result{}, 0, reason)
	}
	if n := samples(t, reg); n != 33 {
		t.Errorf("a probe that failed with every reason: %d series, want 33", n)
	}
	m.forget("a")
	if n := samples(t, reg); n != 0 {
		t.Errorf("a forgotten probe: %d series, want 0", n)
	}
}

// samples counts the sample lines reg exposes.
func samples(t *testing.T, reg prometheus.Gatherer) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, l := range strings.Split(b.String(), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}
