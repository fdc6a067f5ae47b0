package zones

import (
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestLoadLatency(t *testing.T) {
	zone := zoneFile("a.test.", "192.0.2.1")
	fs1 := fstest.MapFS{
		"a.yaml":              zone,
		"rum.csv":             {Data: []byte("81.2.69.0/24,fra,12\n")},
		"probes.latency.yaml": {Data: []byte("- { prefix: 81.2.0.0/16, pop: iad, rtt_ms: 90 }\n")},
		"notes.txt":           {Data: []byte("not a table")},
	}
	snap, err := Load(fs1, testPoPs(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Latency().Len() != 2 || len(snap.Zones()) != 1 {
		t.Fatalf("latency entries %d, zones %d; want 2 and 1 (a latency YAML is not a zone)", snap.Latency().Len(), len(snap.Zones()))
	}
	// A broken table keeps its last good version.
	fs2 := fstest.MapFS{
		"a.yaml":              zone,
		"rum.csv":             {Data: []byte("81.2.69.0/24,fra,oops\n")},
		"probes.latency.yaml": {Data: []byte("- { prefix: 81.2.0.0/16, pop: iad, rtt_ms: 90 }\n")},
	}
	next, err := Load(fs2, testPoPs(t), snap)
	if err == nil || !strings.Contains(err.Error(), "rum.csv:1: rtt_ms") {
		t.Fatalf("errors %v", err)
	}
	e, _, _ := next.Latency().Lookup("fra", netip.MustParseAddr("81.2.69.7"), time.Time{}, 0)
	if e == nil || e.RTTMS != 12 || e.File != "rum.csv" {
		t.Errorf("after a broken reload fra entry %v, want rum.csv's 12 ms", e)
	}
	if next.FileError("rum.csv") == nil {
		t.Error("no FileError for the broken table")
	}
	// The same measurement in two files: the first file by name keeps it.
	fs3 := fstest.MapFS{
		"a.yaml":              zone,
		"rum.csv":             {Data: []byte("81.2.69.0/24,fra,12\n")},
		"probes.latency.yaml": {Data: []byte("- { prefix: 81.2.69.0/24, pop: fra, rtt_ms: 1 }\n")},
	}
	third, err := Load(fs3, testPoPs(t), next)
	if err == nil || !strings.Contains(err.Error(), "rum.csv:1: prefix: 81.2.69.0/24 to fra is already measured at probes.latency.yaml:1") {
		t.Fatalf("errors %v", err)
	}
	if e, _, _ := third.Latency().Lookup("fra", netip.MustParseAddr("81.2.69.7"), time.Time{}, 0); e == nil || e.RTTMS != 1 {
		t.Errorf("fra entry %v, want probes.latency.yaml's 1 ms", e)
	}
}
