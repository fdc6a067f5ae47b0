package zones

import (
	"errors"
	"io/fs"
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

// TestRememberedSerialsUnreadableDirectory: the serials of an earlier run
// outlive a load that cannot list the directory, so that a zone served
// for the first time after it continues from its remembered serial.
func TestRememberedSerialsUnreadableDirectory(t *testing.T) {
	early := time.Unix(1_800_000_000, 0)
	now := early.Add(24 * time.Hour)
	l := Loader{Now: func() time.Time { return now }}
	first, err := l.Load(fstest.MapFS{"auto.yaml": autoZone("one", early)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := first.AutoSerials()["auto.test."]
	// The next run remembers a serial above what the file's modification
	// time gives, as after a change within the same second.
	rec.Serial++
	remembered := map[string]SerialRecord{"auto.test.": rec}
	b := fstest.MapFS{"b.yaml": zoneFile("b.test.", "192.0.2.2")}
	tests := []struct {
		name  string
		loads []fs.FS // before the one that finds auto.yaml
	}{
		{"directory readable", []fs.FS{b}},
		{"directory unreadable once", []fs.FS{b, dirErrFS{errors.New("permission denied")}}},
		{"unreadable at startup", []fs.FS{dirErrFS{errors.New("permission denied")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := RememberedSerials(remembered)
			for _, fsys := range tt.loads {
				prev, _ = l.Load(fsys, nil, prev)
			}
			snap, err := l.Load(fstest.MapFS{"auto.yaml": autoZone("one", early), "b.yaml": b["b.yaml"]}, nil, prev)
			if err != nil {
				t.Fatal(err)
			}
			if got := snap.Match("auto.test.").Serial(); got != rec.Serial {
				t.Errorf("serial %d, want the remembered %d", got, rec.Serial)
			}
		})
	}
}
