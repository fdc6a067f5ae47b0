package dnsserver

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func testutilCounter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestQtypeLabelIsBounded(t *testing.T) {
	seen := map[string]bool{}
	for t16 := range 1 << 16 {
		seen[qtypeLabel(uint16(t16))] = true
	}
	if len(seen) > 20 {
		t.Errorf("qtype label takes %d values, want a small bounded set", len(seen))
	}
	if qtypeLabel(65000) != "other" {
		t.Errorf("unknown type label %q, want other", qtypeLabel(65000))
	}
}
