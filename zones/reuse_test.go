package zones

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/pops"
)

// reuseZone is a zone with `serial: auto` and a geo record at www whose
// fra target answers addr, so that it depends on the PoP inventory.
func reuseZone(addr string, mtime time.Time) *fstest.MapFile {
	return &fstest.MapFile{ModTime: mtime, Data: []byte(`origin: reuse.test.
records:
  "@":
    - soa: { mname: ns1, rname: hostmaster, serial: auto }
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: ` + addr + ` }
`)}
}

// reusePoPs is a fresh inventory (a new pointer) holding the named PoPs.
func reusePoPs(t *testing.T, names ...string) *pops.Inventory {
	t.Helper()
	var list []pops.PoP
	for _, n := range names {
		list = append(list, pops.PoP{Name: n, Point: geo.Point{Lat: 50, Lon: 8}})
	}
	p, err := pops.New(list...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadReusesUnchangedZone(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p1, p2 := reusePoPs(t, "fra"), reusePoPs(t, "fra")
	noFra := reusePoPs(t, "iad")
	type step struct {
		files   fstest.MapFS
		pops    *pops.Inventory
		errPart string // substring of the error; "" for none
		reused  bool   // the zone served is the previous step's *Zone
		serial  string // "same" or "up" against the previous step
	}
	v1 := func() fstest.MapFS { return fstest.MapFS{"reuse.yaml": reuseZone("192.0.2.1", t0)} }
	tests := []struct {
		name  string
		steps []step
	}{
		{"unchanged file is reused, even when touched", []step{
			{files: v1(), pops: p1},
			{files: fstest.MapFS{"reuse.yaml": reuseZone("192.0.2.1", t0.Add(time.Hour))}, pops: p1, reused: true, serial: "same"},
		}},
		{"changed file is reparsed", []step{
			{files: v1(), pops: p1},
			{files: fstest.MapFS{"reuse.yaml": reuseZone("192.0.2.2", t0.Add(time.Hour))}, pops: p1, serial: "up"},
		}},
		{"a new PoPs inventory forces a reparse of unchanged bytes", []step{
			{files: v1(), pops: p1},
			{files: v1(), pops: p2, serial: "same"},
		}},
		{"a new inventory that lacks a target fails the unchanged file", []step{
			{files: v1(), pops: p1},
			{files: v1(), pops: noFra, errPart: `unknown PoP "fra"`, reused: true, serial: "same"},
		}},
		{"a zone kept after an error is not reused under the newer inventory", []step{
			{files: v1(), pops: p1},
			{files: fstest.MapFS{"reuse.yaml": brokenFile}, pops: p2, errPart: "bad A data", reused: true, serial: "same"},
			{files: v1(), pops: p2, serial: "same"}, // the kept zone's PoPs are p1's
			{files: v1(), pops: p2, reused: true, serial: "same"},
		}},
		{"a zone kept after a directory error is not reused under the newer inventory", []step{
			{files: v1(), pops: p1},
			{files: nil, pops: p2, errPart: "read directory", reused: true, serial: "same"},
			{files: v1(), pops: p2, serial: "same"},
		}},
		{"a stray duplicate does not stop the serving file's reuse", []step{
			{files: v1(), pops: p1},
			{files: fstest.MapFS{"a.yaml": reuseZone("192.0.2.9", t0), "reuse.yaml": reuseZone("192.0.2.1", t0)},
				pops: p1, errPart: "already served from reuse.yaml", reused: true, serial: "same"},
			{files: fstest.MapFS{"a.yaml": reuseZone("192.0.2.9", t0), "reuse.yaml": reuseZone("192.0.2.1", t0)},
				pops: p1, errPart: "already served from reuse.yaml", reused: true, serial: "same"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prev *Snapshot
			var prevZone *Zone
			for i, st := range tt.steps {
				var snap *Snapshot
				var err error
				if st.files == nil {
					snap, err = Load(dirErrFS{errors.New("gone")}, st.pops, prev)
				} else {
					snap, err = Load(st.files, st.pops, prev)
				}
				switch {
				case st.errPart == "" && err != nil:
					t.Fatalf("load %d: %v", i+1, err)
				case st.errPart != "" && (err == nil || !strings.Contains(err.Error(), st.errPart)):
					t.Fatalf("load %d: error %v, want one containing %q", i+1, err, st.errPart)
				}
				z := snap.Match("reuse.test.")
				if z == nil || z.File() != "reuse.yaml" {
					t.Fatalf("load %d: reuse.test. not served from reuse.yaml", i+1)
				}
				if i > 0 {
					if got := z == prevZone; got != st.reused {
						t.Errorf("load %d: reused = %v, want %v", i+1, got, st.reused)
					}
					switch st.serial {
					case "same":
						if z.Serial() != prevZone.Serial() {
							t.Errorf("load %d: serial %d, want the unchanged %d", i+1, z.Serial(), prevZone.Serial())
						}
					case "up":
						if !serialGreater(z.Serial(), prevZone.Serial()) {
							t.Errorf("load %d: serial %d, want above %d", i+1, z.Serial(), prevZone.Serial())
						}
					}
				}
				// A zone that loaded cleanly resolves its targets in the
				// inventory of this load, whether parsed or reused.
				if st.errPart == "" {
					if pop := z.Node("www.reuse.test.").Geo().Targets[0].PoP; pop != st.pops.Get("fra") {
						t.Errorf("load %d: the fra target is not the inventory's PoP", i+1)
					}
				}
				prev, prevZone = snap, z
			}
		})
	}
}

func TestLoadReusesUnchangedLatency(t *testing.T) {
	zone := zoneFile("a.test.", "192.0.2.1")
	table := func(rtt string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("81.2.69.0/24,fra," + rtt + "\n")}
	}
	p1, p2 := reusePoPs(t, "fra"), reusePoPs(t, "fra")
	type step struct {
		table   *fstest.MapFile
		pops    *pops.Inventory
		errPart string
		reused  bool // rum.csv's entries are the previous step's
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"unchanged file is reused", []step{{table: table("12"), pops: p1}, {table: table("12"), pops: p1, reused: true}}},
		{"changed file is reparsed", []step{{table: table("12"), pops: p1}, {table: table("13"), pops: p1}}},
		{"a new PoPs inventory forces a reparse", []step{{table: table("12"), pops: p1}, {table: table("12"), pops: p2}}},
		{"a new inventory that lacks the PoP fails the unchanged file", []step{
			{table: table("12"), pops: p1},
			{table: table("12"), pops: reusePoPs(t, "iad"), errPart: `unknown PoP "fra"`, reused: true},
		}},
		{"entries kept after an error are not reused under the newer inventory", []step{
			{table: table("12"), pops: p1},
			{table: table("oops"), pops: p2, errPart: "rtt_ms", reused: true},
			{table: table("12"), pops: p2},
			{table: table("12"), pops: p2, reused: true},
		}},
		{"a file restored after an error reuses the entries kept", []step{
			{table: table("12"), pops: p1},
			{table: table("oops"), pops: p1, errPart: "rtt_ms", reused: true},
			{table: table("12"), pops: p1, reused: true}, // the bytes of the entries kept
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prev *Snapshot
			for i, st := range tt.steps {
				snap, err := Load(fstest.MapFS{"a.yaml": zone, "rum.csv": st.table}, st.pops, prev)
				switch {
				case st.errPart == "" && err != nil:
					t.Fatalf("load %d: %v", i+1, err)
				case st.errPart != "" && (err == nil || !strings.Contains(err.Error(), st.errPart)):
					t.Fatalf("load %d: error %v, want one containing %q", i+1, err, st.errPart)
				}
				entries := snap.latencyByFile["rum.csv"]
				if len(entries) != 1 {
					t.Fatalf("load %d: %d entries from rum.csv, want 1", i+1, len(entries))
				}
				if i > 0 {
					if got := &entries[0] == &prev.latencyByFile["rum.csv"][0]; got != st.reused {
						t.Errorf("load %d: reused = %v, want %v", i+1, got, st.reused)
					}
				}
				if z := snap.Match("a.test."); z == nil || (i > 0 && st.pops == tt.steps[i-1].pops && z != prev.Match("a.test.")) {
					t.Errorf("load %d: the unchanged zone is not reused", i+1)
				}
				prev = snap
			}
		})
	}
}
