package zones

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
)

// zoneFile is a valid zone file for origin with one A record at www, so
// that versions of a file can differ in that address.
func zoneFile(origin, addr string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(fmt.Sprintf(`origin: %s
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - a: %s
`, origin, addr))}
}

// brokenFile fails validation on line 4 (field records.www[0].a).
var brokenFile = &fstest.MapFile{Data: []byte("origin: example.test.\nrecords:\n  www:\n    - a: 192.0.2.999\n")}

// wwwAddr is the address at www in the zone snap serves for origin, or "".
func wwwAddr(snap *Snapshot, origin string) string {
	z := snap.Match(origin)
	if z == nil || z.Origin() != origin {
		return ""
	}
	n := z.Node("www." + origin)
	if n == nil || n.RRset(dns.TypeA) == nil {
		return ""
	}
	return n.RRset(dns.TypeA).RRs[0].(*dns.A).A.String()
}

// fileErrors returns the *Error values of err, failing if it is not an
// ErrorList.
func fileErrors(t *testing.T, err error) []*Error {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v (%T) is not an ErrorList", err, err)
	}
	return list
}

func TestIsZoneFile(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"example.test.yaml", true},
		{"example.test.yml", true},
		{"dir/example.test.yaml", true},
		{".example.test.yaml", false},
		{".#example.test.yaml", false},
		{"example.test.yaml~", false},
		{"example.test.yaml.swp", false},
		{"example.test.txt", false},
		{"example.test.YAML", false},
		{"example.test", false},
		{"yaml", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsZoneFile(tt.name); got != tt.want {
				t.Errorf("IsZoneFile(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

func TestLoadIgnoresNonZoneFiles(t *testing.T) {
	fsys := fstest.MapFS{
		"example.test.yaml":       zoneFile("example.test.", "192.0.2.1"),
		"other.test.yml":          zoneFile("other.test.", "192.0.2.2"),
		".hidden.yaml":            brokenFile,
		"example.test.yaml~":      brokenFile,
		"notes.txt":               brokenFile,
		"README":                  brokenFile,
		"subdir/nested.yaml":      brokenFile, // only the top level is read
		"subdir.yaml/inside.yaml": brokenFile, // a directory named like a zone file
	}
	snap, err := Load(fsys, nil, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var origins []string
	for _, z := range snap.Zones() {
		origins = append(origins, z.Origin()+" from "+z.File())
	}
	want := []string{"example.test. from example.test.yaml", "other.test. from other.test.yml"}
	if strings.Join(origins, ", ") != strings.Join(want, ", ") {
		t.Errorf("zones = %q, want %q", origins, want)
	}
}

func TestLoadDuplicateOrigin(t *testing.T) {
	fsys := fstest.MapFS{
		"a.yaml": zoneFile("example.test.", "192.0.2.1"),
		"b.yaml": zoneFile("Example.Test", "192.0.2.2"), // same origin, spelt differently
	}
	snap, err := Load(fsys, nil, nil)
	errs := fileErrors(t, err)
	if len(errs) != 1 {
		t.Fatalf("got %d errors, want 1: %v", len(errs), err)
	}
	e := errs[0]
	if e.File != "b.yaml" || e.Field != "origin" || !strings.Contains(e.Msg, "already served from a.yaml") {
		t.Errorf("error = %#v, want b.yaml origin: already served from a.yaml", *e)
	}
	if got := wwwAddr(snap, "example.test."); got != "192.0.2.1" {
		t.Errorf("www = %q, want a.yaml's 192.0.2.1", got)
	}
	if z := snap.Match("example.test."); z == nil || z.File() != "a.yaml" {
		t.Errorf("example.test. not served from a.yaml")
	}
	if snap.FileError("a.yaml") != nil {
		t.Errorf("FileError(a.yaml) = %v, want nil", snap.FileError("a.yaml"))
	}
	if snap.FileError("b.yaml") == nil {
		t.Errorf("FileError(b.yaml) = nil, want the duplicate origin")
	}
}

// TestLoadDuplicateOriginKeepsServingFile: a stray copy of a zone added
// under a name that sorts first must not take the zone over from the file
// that serves it.
func TestLoadDuplicateOriginKeepsServingFile(t *testing.T) {
	prev, err := Load(fstest.MapFS{"b.yaml": zoneFile("example.test.", "192.0.2.2")}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := Load(fstest.MapFS{
		"a.yaml": zoneFile("example.test.", "192.0.2.1"),
		"b.yaml": zoneFile("example.test.", "192.0.2.2"),
	}, nil,

		prev)

	errs := fileErrors(t, err)
	if len(errs) != 1 || errs[0].File != "a.yaml" || !strings.Contains(errs[0].Msg, "already served from b.yaml") {
		t.Fatalf("errors = %v, want one on a.yaml naming b.yaml", err)
	}
	if got := wwwAddr(snap, "example.test."); got != "192.0.2.2" {
		t.Errorf("www = %q, want b.yaml's 192.0.2.2", got)
	}
	if snap.FileError("b.yaml") != nil || snap.FileError("a.yaml") == nil {
		t.Errorf("FileError: a.yaml %v, b.yaml %v", snap.FileError("a.yaml"), snap.FileError("b.yaml"))
	}
}

func TestLoadPerFileIsolation(t *testing.T) {
	fs1 := fstest.MapFS{
		"a.yaml": zoneFile("a.test.", "192.0.2.1"),
		"b.yaml": zoneFile("b.test.", "192.0.2.2"),
		"c.yaml": zoneFile("c.test.", "192.0.2.3"),
	}
	s1, err := Load(fs1, nil, nil)
	if err != nil {
		t.Fatalf("Load(fs1): %v", err)
	}
	aZone := s1.Match("a.test.")

	// a.yaml breaks, b.yaml changes, c.yaml goes away, d.yaml is new and broken.
	fs2 := fstest.MapFS{
		"a.yaml": brokenFile,
		"b.yaml": zoneFile("b.test.", "192.0.2.22"),
		"d.yaml": {Data: []byte("origin: d.test.\nttl: soon\nrecords: {}\n")},
	}
	s2, err := Load(fs2, nil, s1)
	if s2 == nil {
		t.Fatalf("Load(fs2) returned a nil snapshot")
	}
	errs := fileErrors(t, err)
	wantErrs := []string{
		"a.yaml:4: records.www[0].a: bad A data",
		"d.yaml:2: ttl: must be a whole number",
	}
	for _, w := range wantErrs {
		found := false
		for _, e := range errs {
			if strings.HasPrefix(e.Error(), w) {
				found = true
			}
		}
		if !found {
			t.Errorf("errors %q lack %q", err, w)
		}
	}
	if len(errs) != len(wantErrs) {
		t.Errorf("got %d errors, want %d: %v", len(errs), len(wantErrs), err)
	}

	tests := []struct {
		name     string
		origin   string
		wantAddr string // "" when the zone is not served
		file     string
		fileErr  string // substring of FileError(file), "" for nil
	}{
		{"broken file keeps its previous zone", "a.test.", "192.0.2.1", "a.yaml", "bad A data"},
		{"changed file serves its new version", "b.test.", "192.0.2.22", "b.yaml", ""},
		{"removed file stops serving", "c.test.", "", "c.yaml", ""},
		{"new broken file is not served", "d.test.", "", "d.yaml", "whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wwwAddr(s2, tt.origin); got != tt.wantAddr {
				t.Errorf("www.%s = %q, want %q", tt.origin, got, tt.wantAddr)
			}
			fe := s2.FileError(tt.file)
			switch {
			case tt.fileErr == "" && fe != nil:
				t.Errorf("FileError(%s) = %v, want nil", tt.file, fe)
			case tt.fileErr != "" && (fe == nil || !strings.Contains(fe.Error(), tt.fileErr)):
				t.Errorf("FileError(%s) = %v, want one containing %q", tt.file, fe, tt.fileErr)
			case fe != nil:
				var e *Error
				if !errors.As(fe, &e) || e.File != tt.file {
					t.Errorf("FileError(%s) = %v: no *Error for the file", tt.file, fe)
				}
			}
		})
	}
	if s2.Match("a.test.") != aZone {
		t.Errorf("a.test. is not the very zone served before")
	}

	// The previous snapshot is untouched.
	if got := wwwAddr(s1, "b.test."); got != "192.0.2.2" {
		t.Errorf("old snapshot www.b.test. = %q, want 192.0.2.2", got)
	}
	if got := wwwAddr(s1, "c.test."); got != "192.0.2.3" {
		t.Errorf("old snapshot www.c.test. = %q, want 192.0.2.3", got)
	}

	// Fixing a.yaml serves the fix and clears its error.
	fs3 := fstest.MapFS{"a.yaml": zoneFile("a.test.", "192.0.2.11"), "b.yaml": fs2["b.yaml"]}
	s3, err := Load(fs3, nil, s2)
	if err != nil {
		t.Fatalf("Load(fs3): %v", err)
	}
	if got := wwwAddr(s3, "a.test."); got != "192.0.2.11" {
		t.Errorf("fixed www.a.test. = %q, want 192.0.2.11", got)
	}
	if fe := s3.FileError("a.yaml"); fe != nil {
		t.Errorf("FileError(a.yaml) after the fix = %v", fe)
	}
}

func TestLoadBrokenAtStartup(t *testing.T) {
	fsys := fstest.MapFS{
		"a.yaml": brokenFile,
		"b.yaml": zoneFile("b.test.", "192.0.2.2"),
	}
	snap, err := Load(fsys, nil, nil)
	if snap == nil {
		t.Fatal("Load returned a nil snapshot")
	}
	errs := fileErrors(t, err)
	if len(errs) != 1 || errs[0].File != "a.yaml" || errs[0].Line != 4 || errs[0].Field != "records.www[0].a" {
		t.Errorf("errors = %v, want one at a.yaml:4 records.www[0].a", err)
	}
	if snap.Match("example.test.") != nil {
		t.Errorf("the broken zone is served")
	}
	if got := wwwAddr(snap, "b.test."); got != "192.0.2.2" {
		t.Errorf("www.b.test. = %q, want 192.0.2.2", got)
	}
}

func TestLoadGeneration(t *testing.T) {
	fsys := fstest.MapFS{"a.yaml": zoneFile("a.test.", "192.0.2.1")}
	broken := fstest.MapFS{"a.yaml": brokenFile}
	var prev *Snapshot
	for i, step := range []fstest.MapFS{fsys, fsys, broken, fsys, {}} {
		snap, _ := Load(step, nil, prev)
		if want := uint64(i + 1); snap.Generation() != want {
			t.Errorf("load %d: Generation = %d, want %d", i+1, snap.Generation(), want)
		}
		prev = snap
	}
}

// readErrFS is a MapFS whose ReadFile fails for one file with err.
type readErrFS struct {
	fstest.MapFS
	bad string
	err error
}

func (f readErrFS) ReadFile(name string) ([]byte, error) {
	if name == f.bad {
		return nil, f.err
	}
	return f.MapFS.ReadFile(name)
}

func TestLoadReadError(t *testing.T) {
	base := fstest.MapFS{
		"a.yaml": zoneFile("a.test.", "192.0.2.1"),
		"b.yaml": zoneFile("b.test.", "192.0.2.2"),
	}
	tests := []struct {
		name string
		err  error
		msg  string
	}{
		{"path error", &fs.PathError{Op: "read", Path: "a.yaml", Err: errors.New("input/output error")}, "input/output error"},
		// Not every fs.FS wraps its errors in *fs.PathError.
		{"plain error", errors.New("disk on fire"), "disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				snap *Snapshot
				err  error
			)
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("Load panicked: %v", r)
					}
				}()
				snap, err = Load(readErrFS{MapFS: base, bad: "a.yaml", err: tt.err}, nil, nil)
			}()
			if t.Failed() {
				return
			}
			errs := fileErrors(t, err)
			if len(errs) != 1 || errs[0].File != "a.yaml" || !strings.Contains(errs[0].Msg, tt.msg) {
				t.Errorf("errors = %v, want one for a.yaml containing %q", err, tt.msg)
			}
			if got := wwwAddr(snap, "b.test."); got != "192.0.2.2" {
				t.Errorf("www.b.test. = %q, want 192.0.2.2", got)
			}
		})
	}
}

// dirErrFS cannot list its directory.
type dirErrFS struct{ err error }

func (f dirErrFS) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: f.err}
}

// TestLoadDirectoryError checks the documented promise "The snapshot is
// never nil": a directory that cannot be read is a failed reload, and a bad
// reload keeps the last good state.
func TestLoadDirectoryError(t *testing.T) {
	prev, err := Load(fstest.MapFS{"a.yaml": zoneFile("a.test.", "192.0.2.1")}, nil, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	gone := errors.New("directory gone")
	tests := []struct {
		name     string
		prev     *Snapshot
		wantAddr string
		wantGen  uint64 // a kept snapshot is still a new one: caches keyed on the generation must see it
	}{
		{"at startup", nil, "", 1},
		{"on reload", prev, "192.0.2.1", prev.Generation() + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := Load(dirErrFS{gone}, nil, tt.prev)
			if !errors.Is(err, gone) {
				t.Errorf("error = %v, want one wrapping %v", err, gone)
			}
			if snap == nil {
				t.Fatal("Load returned a nil snapshot")
			}
			if got := wwwAddr(snap, "a.test."); got != tt.wantAddr {
				t.Errorf("www.a.test. = %q, want %q", got, tt.wantAddr)
			}
			if got := snap.Generation(); got != tt.wantGen {
				t.Errorf("Generation() = %d, want %d", got, tt.wantGen)
			}
		})
	}
}

// autoZone is a zone with `serial: auto`; body varies its content.
func autoZone(body string, mtime time.Time) *fstest.MapFile {
	return &fstest.MapFile{ModTime: mtime, Data: []byte(`origin: auto.test.
records:
  "@":
    - soa: { mname: ns1, rname: hostmaster, serial: auto }
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - txt: ` + body + "\n")}
}

// serialGreater is RFC 1982 §3.2: a > b.
func serialGreater(a, b uint32) bool {
	return a != b && a-b < 1<<31
}

func TestLoadAutoSerial(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s0 := uint32(t0.Unix())
	type version struct {
		body  string
		mtime time.Time
	}
	tests := []struct {
		name     string
		versions []version // loaded in turn, each with the previous snapshot
		want     []uint32  // serial after each load
	}{
		{
			name:     "first load uses the ModTime",
			versions: []version{{"one", t0}},
			want:     []uint32{s0},
		},
		{
			name:     "unchanged content keeps the serial",
			versions: []version{{"one", t0}, {"one", t0}},
			want:     []uint32{s0, s0},
		},
		{
			name:     "unchanged content keeps the serial when touched",
			versions: []version{{"one", t0}, {"one", t0.Add(time.Hour)}},
			want:     []uint32{s0, s0},
		},
		{
			name:     "changed content takes the newer ModTime",
			versions: []version{{"one", t0}, {"two", t0.Add(time.Hour)}},
			want:     []uint32{s0, s0 + 3600},
		},
		{
			name:     "changed content, ModTime unchanged",
			versions: []version{{"one", t0}, {"two", t0}, {"three", t0}},
			want:     []uint32{s0, s0 + 1, s0 + 2},
		},
		{
			name:     "changed content, ModTime moved back",
			versions: []version{{"one", t0}, {"two", t0.Add(-time.Hour)}},
			want:     []uint32{s0, s0 + 1},
		},
		{
			name:     "changed back to an earlier content still moves up",
			versions: []version{{"one", t0}, {"two", t0}, {"one", t0}},
			want:     []uint32{s0, s0 + 1, s0 + 2},
		},
		{
			name:     "ModTime jumps by 2^31 seconds: not greater in RFC 1982",
			versions: []version{{"one", t0}, {"two", t0.Add(1 << 31 * time.Second)}},
			want:     []uint32{s0, s0 + 1},
		},
		{
			name:     "wrap: +1 from the largest serial is 0",
			versions: []version{{"one", time.Unix(1<<32-1, 0)}, {"two", time.Unix(1<<32-1, 0)}},
			want:     []uint32{1<<32 - 1, 0},
		},
		{
			name:     "wrap: a ModTime past 2106 wraps and is still greater",
			versions: []version{{"one", time.Unix(1<<32-16, 0)}, {"two", time.Unix(1<<32+5, 0)}},
			want:     []uint32{1<<32 - 16, 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prev *Snapshot
			for i, v := range tt.versions {
				snap, err := Load(fstest.MapFS{"auto.yaml": autoZone(v.body, v.mtime)}, nil, prev)
				if err != nil {
					t.Fatalf("load %d: %v", i+1, err)
				}
				z := snap.Match("auto.test.")
				if got := z.Serial(); got != tt.want[i] {
					t.Errorf("load %d: serial = %d, want %d", i+1, got, tt.want[i])
				}
				if z.SOA().Serial != z.Serial() || z.NegativeSOA().(*dns.SOA).Serial != z.Serial() {
					t.Errorf("load %d: SOA serial %d / negative SOA serial %d differ from Serial %d",
						i+1, z.SOA().Serial, z.NegativeSOA().(*dns.SOA).Serial, z.Serial())
				}
				if apex := z.Apex().RRset(dns.TypeSOA); apex.RRs[0] != dns.RR(z.SOA()) {
					t.Errorf("load %d: the apex SOA RRset does not hold the zone's SOA", i+1)
				}
				if i > 0 && tt.versions[i].body != tt.versions[i-1].body {
					if old := prev.Match("auto.test.").Serial(); !serialGreater(z.Serial(), old) {
						t.Errorf("load %d: changed content got serial %d, not greater than %d", i+1, z.Serial(), old)
					}
				}
				prev = snap
			}
		})
	}
}

// TestLoadAutoSerialNoModTime: a file without a modification time (an
// embedded one) takes the Loader's clock as its base, the first time and
// after a restart with changed content.
func TestLoadAutoSerialNoModTime(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := Loader{Now: func() time.Time { return now }}
	tests := []struct {
		name string
		prev *Snapshot
	}{
		{"first load", nil},
		{"remembered from a run with other content", RememberedSerials(map[string]SerialRecord{
			"auto.test.": {SHA256: strings.Repeat("0", 64), Serial: unixSerial(now) - 100}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := l.Load(fstest.MapFS{"auto.yaml": autoZone("one", time.Time{})}, nil, tt.prev)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := snap.Match("auto.test.").Serial(); got != unixSerial(now) {
				t.Errorf("serial = %d, want the Loader's clock, %d", got, unixSerial(now))
			}
		})
	}
}

func TestLoadFixedSerial(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fsys := fstest.MapFS{"a.yaml": zoneFile("a.test.", "192.0.2.1")}
	fsys["a.yaml"].ModTime = t0
	s1, err := Load(fsys, nil, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	changed := fstest.MapFS{"a.yaml": zoneFile("a.test.", "192.0.2.2")}
	s2, err := Load(changed, nil, s1)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for i, snap := range []*Snapshot{s1, s2} {
		if got := snap.Match("a.test.").Serial(); got != 1 {
			t.Errorf("load %d: serial = %d, want the file's 1", i+1, got)
		}
	}
}
