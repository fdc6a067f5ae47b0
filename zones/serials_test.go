package zones

import (
	"testing"
	"testing/fstest"
	"time"
)

func TestRememberedSerials(t *testing.T) {
	early := time.Unix(1_800_000_000, 0)
	fsys := fstest.MapFS{"auto.yaml": autoZone("one", early)}
	first, err := Load(fsys, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A burst: changed content, same modification time, so +1.
	fsys["auto.yaml"] = autoZone("two", early)
	second, err := Load(fsys, nil, first)
	if err != nil {
		t.Fatal(err)
	}
	served := second.Match("auto.test.").Serial()
	if served != unixSerial(early)+1 {
		t.Fatalf("serial %d after a change in the same second, want %d", served, unixSerial(early)+1)
	}
	remembered := second.AutoSerials()
	if rec := remembered["auto.test."]; rec.Serial != served || len(rec.SHA256) != 64 {
		t.Fatalf("AutoSerials = %+v", remembered)
	}

	for _, tc := range []struct {
		name  string
		file  string
		mtime time.Time
		want  func(uint32) bool
		about string
	}{
		{"restart, unchanged content: same serial", "two", early.Add(-time.Hour), func(s uint32) bool { return s == served }, "== served"},
		{"restart, changed content, older mtime: still higher", "three", early.Add(-time.Hour), func(s uint32) bool { return s == served+1 }, "served+1"},
		{"restart, changed content, newer mtime: the mtime", "three", early.Add(time.Hour), func(s uint32) bool { return s == unixSerial(early.Add(time.Hour)) }, "the new mtime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs2 := fstest.MapFS{"auto.yaml": autoZone(tc.file, tc.mtime)}
			snap, err := Load(fs2, nil, RememberedSerials(remembered))
			if err != nil {
				t.Fatal(err)
			}
			if got := snap.Match("auto.test.").Serial(); !tc.want(got) {
				t.Errorf("serial %d, want %s (served before the restart: %d)", got, tc.about, served)
			}
			if snap.Generation() != 1 {
				t.Errorf("generation %d after the first load, want 1", snap.Generation())
			}
		})
	}
}
