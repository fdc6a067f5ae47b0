package zones

import (
	"errors"
	"io/fs"
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/popdns/popdns/pops"
)

// TestLoadMissingGrace walks one zone file through disappearing and coming
// back, or staying away, under a fake clock: a file gone for less than the
// grace period keeps serving its last good zone, and is dropped by the first
// load at or after the end of it.
func TestLoadMissingGrace(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	both := fstest.MapFS{"a.yaml": zoneFile("a.test.", "192.0.2.1"), "b.yaml": zoneFile("b.test.", "192.0.2.2")}
	onlyB := fstest.MapFS{"b.yaml": both["b.yaml"]}
	renamed := fstest.MapFS{"b.yaml": both["b.yaml"], "c.yaml": zoneFile("a.test.", "192.0.2.3")}
	type step struct {
		at       time.Duration // after t0
		fsys     fstest.MapFS
		wantA    string // www.a.test., "" when not served
		missing  bool   // a.yaml in Missing and in FileErrors
		wantFrom string // the file a.test. is served from, when served
	}
	const grace = 5 * time.Second
	tests := []struct {
		name  string
		grace time.Duration
		steps []step
	}{
		{"back within the grace period", grace, []step{
			{0, both, "192.0.2.1", false, "a.yaml"},
			{time.Second, onlyB, "192.0.2.1", true, "a.yaml"},
			{3 * time.Second, onlyB, "192.0.2.1", true, "a.yaml"},
			{4 * time.Second, both, "192.0.2.1", false, "a.yaml"},
			// Gone again: a new grace period from now.
			{8 * time.Second, onlyB, "192.0.2.1", true, "a.yaml"},
			{12 * time.Second, onlyB, "192.0.2.1", true, "a.yaml"},
		}},
		{"gone for good", grace, []step{
			{0, both, "192.0.2.1", false, "a.yaml"},
			{time.Second, onlyB, "192.0.2.1", true, "a.yaml"},
			{6*time.Second - time.Nanosecond, onlyB, "192.0.2.1", true, "a.yaml"},
			{6 * time.Second, onlyB, "", false, ""},
			{7 * time.Second, both, "192.0.2.1", false, "a.yaml"},
		}},
		{"no grace period", 0, []step{
			{0, both, "192.0.2.1", false, "a.yaml"},
			{time.Millisecond, onlyB, "", false, ""},
		}},
		{"renamed: the present file serves at once", grace, []step{
			{0, both, "192.0.2.1", false, "a.yaml"},
			{time.Second, renamed, "192.0.2.3", false, "c.yaml"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prev *Snapshot
			var since time.Time
			for i, st := range tt.steps {
				now := t0.Add(st.at)
				l := Loader{MissingGrace: tt.grace, Now: func() time.Time { return now }}
				snap, err := l.Load(st.fsys, nil, prev)
				if err != nil {
					t.Fatalf("step %d: a missing file is not an error of the load: %v", i, err)
				}
				if got := wwwAddr(snap, "a.test."); got != st.wantA {
					t.Errorf("step %d (+%s): www.a.test. = %q, want %q", i, st.at, got, st.wantA)
				}
				if z := snap.Match("a.test."); z != nil && z.File() != st.wantFrom {
					t.Errorf("step %d: a.test. served from %s, want %s", i, z.File(), st.wantFrom)
				}
				if got := wwwAddr(snap, "b.test."); got != "192.0.2.2" {
					t.Errorf("step %d: www.b.test. = %q", i, got)
				}
				m, isMissing := snap.Missing()["a.yaml"]
				fe := snap.FileError("a.yaml")
				if isMissing != st.missing || (fe != nil) != st.missing {
					t.Fatalf("step %d (+%s): Missing %v %v, FileError %v; want missing %t", i, st.at, m, isMissing, fe, st.missing)
				}
				if len(snap.Missing()) > 1 || snap.FileError("c.yaml") != nil {
					t.Errorf("step %d: Missing %v, FileErrors %v", i, snap.Missing(), snap.FileErrors())
				}
				if isMissing {
					if since.IsZero() {
						since = now
					}
					if !m.Since.Equal(since) || !m.Until.Equal(since.Add(tt.grace)) {
						t.Errorf("step %d: Missing = %+v, want since %s until %s", i, m, since, since.Add(tt.grace))
					}
					if !strings.Contains(fe.Error(), "a.yaml: missing from the directory since") {
						t.Errorf("step %d: FileError = %v", i, fe)
					}
				} else {
					since = time.Time{}
				}
				prev = snap
			}
		})
	}
}

// TestLoadMissingLatencyFile: a latency table that disappears keeps its
// entries through the grace period, and gives way to a present file that
// measures the same prefix.
func TestLoadMissingLatencyFile(t *testing.T) {
	inv := testPoPs(t)
	t0 := time.Unix(1_800_000_000, 0)
	table := &fstest.MapFile{Data: []byte("81.2.69.0/24,fra,12\n192.0.2.0/24,iad,80\n")}
	moved := &fstest.MapFile{Data: []byte("81.2.69.0/24,fra,15\n")}
	load := func(fsys fstest.MapFS, at time.Duration, prev *Snapshot) *Snapshot {
		t.Helper()
		now := t0.Add(at)
		snap, err := Loader{MissingGrace: 5 * time.Second, Now: func() time.Time { return now }}.Load(fsys, inv, prev)
		if err != nil {
			t.Fatalf("+%s: %v", at, err)
		}
		return snap
	}
	s1 := load(fstest.MapFS{"rtt.csv": table}, 0, nil)
	s2 := load(fstest.MapFS{}, time.Second, s1)
	if s2.Latency().Len() != 2 || s2.Missing()["rtt.csv"].Until != t0.Add(6*time.Second) {
		t.Errorf("within the grace period: %d entries, Missing %v", s2.Latency().Len(), s2.Missing())
	}
	s3 := load(fstest.MapFS{"new.csv": moved}, 2*time.Second, s2)
	if s3.Latency().Len() != 2 || s3.FileError("new.csv") != nil {
		t.Errorf("a present file measuring the same prefix: %d entries, errors %v", s3.Latency().Len(), s3.FileErrors())
	}
	if e, _, _ := s3.Latency().Lookup("fra", netip.MustParseAddr("81.2.69.1"), t0, 0); e == nil || e.RTTMS != 15 {
		t.Errorf("81.2.69.1 to fra: %v, want the present file's 15 ms", e)
	}
	s4 := load(fstest.MapFS{"new.csv": moved}, 6*time.Second, s3)
	if s4.Latency().Len() != 1 || len(s4.Missing()) != 0 {
		t.Errorf("after the grace period: %d entries, Missing %v", s4.Latency().Len(), s4.Missing())
	}
}

// TestLoadUnreadableDirectory: a directory that cannot be listed is an
// error wrapping ErrReadDir (so that a caller can tell it from broken
// files), and the snapshot kept meanwhile is a new generation, stamped by
// the Loader's clock, that serves the previous zones and carries on their
// state: a file in its grace period stays missing since the same time, so
// that an unreadable spell neither restarts nor ends the grace period.
func TestLoadUnreadableDirectory(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	unreadable := dirErrFS{errors.New("permission denied")}
	both := fstest.MapFS{"a.yaml": zoneFile("a.test.", "192.0.2.1"), "b.yaml": zoneFile("b.test.", "192.0.2.2")}
	onlyB := fstest.MapFS{"b.yaml": both["b.yaml"]}
	type step struct {
		at      time.Duration // after t0
		fsys    fs.FS
		wantA   string        // www.a.test., "" when not served
		missing time.Duration // a.yaml missing since t0 plus this; -1: not missing
	}
	const grace = 5 * time.Second
	tests := []struct {
		name  string
		steps []step
	}{
		{"the previous zones keep serving", []step{
			{0, both, "192.0.2.1", -1},
			{time.Second, unreadable, "192.0.2.1", -1},
			{2 * time.Second, unreadable, "192.0.2.1", -1},
			{3 * time.Second, both, "192.0.2.1", -1},
		}},
		{"a missing file's grace period runs on", []step{
			{0, both, "192.0.2.1", -1},
			{time.Second, onlyB, "192.0.2.1", time.Second},
			{3 * time.Second, unreadable, "192.0.2.1", time.Second},
			// Readable again after the grace period that began at +1s.
			{6 * time.Second, onlyB, "", -1},
		}},
		{"a missing file that comes back", []step{
			{0, both, "192.0.2.1", -1},
			{time.Second, onlyB, "192.0.2.1", time.Second},
			{2 * time.Second, unreadable, "192.0.2.1", time.Second},
			{4 * time.Second, onlyB, "192.0.2.1", time.Second},
			{5 * time.Second, both, "192.0.2.1", -1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prev *Snapshot
			for i, st := range tt.steps {
				now := t0.Add(st.at)
				snap, err := Loader{MissingGrace: grace, Now: func() time.Time { return now }}.Load(st.fsys, nil, prev)
				if _, bad := st.fsys.(dirErrFS); bad {
					if !errors.Is(err, ErrReadDir) || !strings.Contains(err.Error(), "permission denied") {
						t.Errorf("step %d: error %v, want one wrapping ErrReadDir", i, err)
					}
				} else if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if got := wwwAddr(snap, "a.test."); got != st.wantA {
					t.Errorf("step %d (+%s): www.a.test. = %q, want %q", i, st.at, got, st.wantA)
				}
				if got := wwwAddr(snap, "b.test."); got != "192.0.2.2" {
					t.Errorf("step %d: www.b.test. = %q", i, got)
				}
				// Every version of a.yaml served was compiled by the first load.
				if z := snap.Match("a.test."); z != nil && z.Origin() == "a.test." && !z.LoadedAt().Equal(t0) {
					t.Errorf("step %d: a.test. LoadedAt %s, want the Loader's clock at its load, %s", i, z.LoadedAt(), t0)
				}
				if got, want := snap.Generation(), uint64(i+1); got != want {
					t.Errorf("step %d: generation %d, want %d", i, got, want)
				}
				if !snap.LoadedAt().Equal(now) {
					t.Errorf("step %d: LoadedAt %s, want the Loader's clock, %s", i, snap.LoadedAt(), now)
				}
				m, isMissing := snap.Missing()["a.yaml"]
				switch {
				case st.missing < 0 && isMissing:
					t.Errorf("step %d (+%s): a.yaml missing %+v, want not", i, st.at, m)
				case st.missing >= 0 && (!m.Since.Equal(t0.Add(st.missing)) || !m.Until.Equal(t0.Add(st.missing+grace))):
					t.Errorf("step %d (+%s): a.yaml missing %+v (%t), want since +%s", i, st.at, m, isMissing, st.missing)
				}
				prev = snap
			}
		})
	}
}

// TestUnknownPoPs: a zone that names a PoP a new inventory lacks fails to
// load under it and keeps serving its last good version; UnknownPoPs names
// the file and line that still use the PoP.
func TestUnknownPoPs(t *testing.T) {
	inv := testPoPs(t)
	fsys := fstest.MapFS{
		"geo.yaml": {Data: []byte(`origin: example.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.1 }
          iad: { a: 192.0.2.2 }
`)},
		"b.yaml": zoneFile("b.test.", "192.0.2.2"),
	}
	prev, err := Load(fsys, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if errs := prev.UnknownPoPs(inv); len(errs) != 0 {
		t.Errorf("UnknownPoPs under its own inventory: %v", errs)
	}
	noIAD, err := pops.New(*inv.Get("fra"), *inv.Get("sin"), *inv.Get("hkg"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := Load(fsys, noIAD, prev)
	if err == nil || snap.Match("example.test.") == nil {
		t.Fatalf("load under the smaller inventory: %v; the last good zone must keep serving", err)
	}
	errs := snap.UnknownPoPs(noIAD)
	if len(errs) != 1 || errs[0].File != "geo.yaml" || errs[0].Line != 12 || errs[0].Field != "geo.targets.iad" {
		t.Errorf("UnknownPoPs = %v, want geo.yaml:12 geo.targets.iad", errs)
	}
}
