package zones

import (
	"fmt"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/popdns/popdns/internal/dnstest"
)

// slowFS is a MapFS whose file slow cannot be read until release is
// closed: a huge zone, as far as the loader can tell.
type slowFS struct {
	fstest.MapFS
	slow    string
	release chan struct{}
}

func (f slowFS) ReadFile(name string) ([]byte, error) {
	if name == f.slow {
		<-f.release
	}
	return f.MapFS.ReadFile(name)
}

// TestLoadProgress checks that while one zone file loads, Progress hands
// out snapshots that serve the others and list the one still loading, in
// growing generations, and that Load then returns everything.
func TestLoadProgress(t *testing.T) {
	files := fstest.MapFS{"big.yaml": zoneFile("big.test.", "192.0.2.1")}
	for i := range 5 {
		files[fmt.Sprintf("small%d.yaml", i)] = zoneFile(fmt.Sprintf("small%d.test.", i), "192.0.2.2")
	}
	fsys := slowFS{MapFS: files, slow: "big.yaml", release: make(chan struct{})}
	progress := make(chan *Snapshot, 64)
	l := Loader{Workers: 2, Progress: func(s *Snapshot) { progress <- s }}
	type result struct {
		snap *Snapshot
		err  error
	}
	done := make(chan result, 1)
	go func() {
		snap, err := l.Load(fsys, nil, nil)
		done <- result{snap, err}
	}()
	released := false
	defer func() {
		if !released {
			close(fsys.release) // let Load end on a failure
		}
	}()

	var last *Snapshot
	for {
		s := dnstest.Receive(t, progress, dnstest.WaitLimit, "a snapshot that serves every small zone")
		if last != nil && s.Generation() <= last.Generation() {
			t.Fatalf("generation %d after %d", s.Generation(), last.Generation())
		}
		last = s
		if wwwAddr(s, "big.test.") != "" {
			t.Fatal("big.test. served before its file was read")
		}
		if len(s.Zones()) == 5 {
			break
		}
	}
	for i := range 5 {
		if got := wwwAddr(last, fmt.Sprintf("small%d.test.", i)); got != "192.0.2.2" {
			t.Errorf("small%d.test.: %q while big.yaml loads", i, got)
		}
	}
	if got := last.Loading(); !slices.Equal(got, []string{"big.yaml"}) {
		t.Errorf("Loading() = %q, want [big.yaml]", got)
	}

	close(fsys.release)
	released = true
	r := dnstest.Receive(t, done, dnstest.WaitLimit, "Load to return")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.snap.Loading()) != 0 || len(r.snap.Zones()) != 6 || wwwAddr(r.snap, "big.test.") != "192.0.2.1" {
		t.Errorf("final snapshot: %d zones, loading %q", len(r.snap.Zones()), r.snap.Loading())
	}
	if r.snap.Generation() <= last.Generation() {
		t.Errorf("final generation %d, not above the last progress's %d", r.snap.Generation(), last.Generation())
	}
}

// TestLoadParallelSameAsSerial: however many workers, a load gives the
// same zones, errors and order.
func TestLoadParallelSameAsSerial(t *testing.T) {
	files := fstest.MapFS{
		"a.yaml":   zoneFile("a.test.", "192.0.2.1"),
		"b.yaml":   zoneFile("a.test.", "192.0.2.2"), // a.test. again: a's
		"c.yaml":   {Data: []byte("origin: c.test.\nrecords: [\n")},
		"d.yml":    zoneFile("d.test.", "192.0.2.4"),
		"e.yaml":   {Data: []byte("origin: e.test.\n")},
		"zz.yaml":  zoneFile("zz.test.", "192.0.2.5"),
		"ignored~": zoneFile("x.test.", "192.0.2.6"),
	}
	describe := func(workers int) string {
		snap, err := Loader{Workers: workers}.Load(files, nil, nil)
		out := fmt.Sprint(err)
		for _, z := range snap.Zones() {
			out += " " + z.Origin() + "@" + z.File() + "=" + wwwAddr(snap, z.Origin())
		}
		return out
	}
	want := describe(1)
	for _, w := range []int{2, 3, 16} {
		if got := describe(w); got != want {
			t.Errorf("%d workers:\n%s\none worker:\n%s", w, got, want)
		}
	}
}
