package fswatch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/rs/zerolog"
)

// dataFile stands in for a caller's filter such as zones.IsDataFile:
// YAML and CSV files, leaving out hidden files and editors' backups.
func dataFile(base string) bool {
	if strings.HasPrefix(base, ".") || strings.HasSuffix(base, "~") {
		return false
	}
	ext := filepath.Ext(base)
	return ext == ".yaml" || ext == ".yml" || ext == ".csv"
}

// startWatcher runs a Watcher on dir (data files only) and returns a channel
// that receives one value per reported change.
func startWatcher(t *testing.T, dir string) <-chan struct{} {
	t.Helper()
	return startWatcherWith(t, dir, 20*time.Millisecond, zerolog.Nop())
}

// startWatcherWith is startWatcher with the debounce and logger given;
// chmod, if given, is the watcher's NoticeChmod condition.
func startWatcherWith(t *testing.T, dir string, debounce time.Duration, log zerolog.Logger, chmod ...func() bool) <-chan struct{} {
	t.Helper()
	w := New(debounce, log)
	w.Watch(dir, dataFile)
	for _, c := range chmod {
		w.NoticeChmod(c)
	}
	changes := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func() { changes <- struct{}{} }) }()
	t.Cleanup(func() {
		cancel()
		if err := dnstest.Receive(t, done, 5*time.Second, "the watcher to stop"); err != nil {
			t.Error(err)
		}
	})
	dnstest.Receive(t, w.Ready(), 5*time.Second, "the watcher to be ready")
	return changes
}

func waitChange(t *testing.T, changes <-chan struct{}) {
	t.Helper()
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Fatal("no change reported within 5 s")
	}
}

func TestWatcherSeesEveryWayOfReplacingAFile(t *testing.T) {
	dir := t.TempDir()
	zone := filepath.Join(dir, "example.test.yaml")
	if err := os.WriteFile(zone, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	changes := startWatcher(t, dir)
	for _, tc := range []struct {
		name   string
		change func() error
	}{
		{"write in place", func() error {
			f, err := os.OpenFile(zone, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte("v2"), 0)
			return err
		}},
		{"truncate and write", func() error { return os.WriteFile(zone, []byte("version 3"), 0o644) }},
		{"temporary file renamed over", func() error {
			tmp := filepath.Join(dir, ".example.test.yaml.tmp")
			if err := os.WriteFile(tmp, []byte("v4"), 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, zone)
		}},
		{"new file", func() error { return os.WriteFile(filepath.Join(dir, "other.test.yml"), []byte("v1"), 0o644) }},
		{"removed file", func() error { return os.Remove(filepath.Join(dir, "other.test.yml")) }},
		{"latency table", func() error { return os.WriteFile(filepath.Join(dir, "rtt.csv"), []byte("x"), 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.change(); err != nil {
				t.Fatal(err)
			}
			waitChange(t, changes)
		})
	}
}

// lineChan is a log sink that passes each line on; the watcher logs one
// line per relevant event, in the order it handles them.
type lineChan chan string

func (c lineChan) Write(p []byte) (int, error) {
	select {
	case c <- string(p):
	default: // a test reads only the lines it needs; the rest may drop
	}
	return len(p), nil
}

// waitLine reads lines until one contains s.
func waitLine(t *testing.T, lines <-chan string, s string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case l := <-lines:
			if strings.Contains(l, s) {
				return
			}
		case <-deadline:
			t.Fatalf("no log line with %s within 5 s", s)
		}
	}
}

// TestWatcherDebounces checks the debounce: a burst of changes is reported
// once, and no sooner than the debounce after the burst's last change. A
// watcher that reported each event at once fails both checks.
func TestWatcherDebounces(t *testing.T) {
	// Long beside the microseconds between the burst's changes, so that only a
	// stall of the whole process could split the burst into two reports.
	const debounce = 500 * time.Millisecond
	write := func(name, data string) func(dir string) error {
		return func(dir string) error { return os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644) }
	}
	renameOver := func(name, data string) func(dir string) error {
		return func(dir string) error {
			tmp := filepath.Join(dir, "."+name+".tmp")
			if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, filepath.Join(dir, name))
		}
	}
	remove := func(name string) func(dir string) error {
		return func(dir string) error { return os.Remove(filepath.Join(dir, name)) }
	}
	for _, tc := range []struct {
		name  string
		burst []func(dir string) error // each makes at least one event
	}{
		{"one file saved four ways", []func(string) error{
			write("a.yaml", "v2"), renameOver("a.yaml", "v3"), write("a.yaml", "version 4"), renameOver("a.yaml", "v5")}},
		{"files added and removed", []func(string) error{
			write("b.yaml", "v1"), write("rtt.csv", "x"), remove("b.yaml"), write("c.yml", "v1")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("v1"), 0o644); err != nil {
				t.Fatal(err)
			}
			lines := make(lineChan, 1024)
			changes := startWatcherWith(t, dir, debounce, zerolog.New(lines).Level(zerolog.DebugLevel))

			var last time.Time // just before the burst's last change: no event of it is older
			for _, change := range tc.burst {
				last = time.Now()
				if err := change(dir); err != nil {
					t.Fatal(err)
				}
			}
			waitChange(t, changes)
			if after := time.Since(last); after < debounce {
				t.Errorf("change reported %v after the burst's last change, before the %v debounce", after, debounce)
			}

			// One more change, and the watcher's log line for it: events
			// are handled in order, so every event of the burst has been
			// handled by then, and any second report of it has been sent.
			sentinel := filepath.Join(dir, "sentinel.yaml")
			if err := os.WriteFile(sentinel, []byte("v1"), 0o644); err != nil {
				t.Fatal(err)
			}
			waitLine(t, lines, sentinel)
			select {
			case <-changes:
				t.Errorf("a burst of %d changes was reported more than once", len(tc.burst))
			default:
			}
		})
	}
}

// TestWatcherSeesConfigMapSwap: Kubernetes mounts a ConfigMap as
// name -> ..data/name, and updates it by pointing ..data at a new
// timestamped directory with a rename. The file's own name sees no event.
func TestWatcherSeesConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	v1 := filepath.Join(dir, "..2026_11_22_01")
	if err := os.Mkdir(v1, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v1, "example.test.yaml"), []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(v1), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "example.test.yaml"), filepath.Join(dir, "example.test.yaml")); err != nil {
		t.Fatal(err)
	}
	changes := startWatcher(t, dir)

	v2 := filepath.Join(dir, "..2026_11_22_02")
	if err := os.Mkdir(v2, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v2, "example.test.yaml"), []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(v2), filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	waitChange(t, changes)
	got, err := os.ReadFile(filepath.Join(dir, "example.test.yaml"))
	if err != nil || string(got) != "v2" {
		t.Fatalf("after the swap the file reads %q (%v)", got, err)
	}
}

func TestWatcherIgnores(t *testing.T) {
	w := New(time.Millisecond, zerolog.Nop())
	w.Watch("/zones", dataFile)
	w.WatchFile("/etc/popdns/popdns.yaml")
	var failing atomic.Bool
	w.NoticeChmod(failing.Load)
	for _, tc := range []struct {
		ev      fsnotify.Event
		failing bool
		want    bool
	}{
		// A watched directory's own permissions always count; a
		// file's count only while something failed to load.
		{fsnotify.Event{Name: "/zones", Op: fsnotify.Chmod}, false, true},
		{fsnotify.Event{Name: "/zones/", Op: fsnotify.Chmod}, false, true},
		{fsnotify.Event{Name: "/zones/a.yaml", Op: fsnotify.Chmod}, true, true},
		{fsnotify.Event{Name: "/etc/popdns/popdns.yaml", Op: fsnotify.Chmod}, true, true},
		{fsnotify.Event{Name: "/etc/popdns/popdns.yaml", Op: fsnotify.Chmod}, false, false},
		{fsnotify.Event{Name: "/zones/notes.txt", Op: fsnotify.Chmod}, true, false},
		{fsnotify.Event{Name: "/etc/popdns", Op: fsnotify.Chmod}, false, true},
		{fsnotify.Event{Name: "/etc", Op: fsnotify.Chmod}, true, false},
		{fsnotify.Event{Name: "/zones/a.yaml", Op: fsnotify.Write}, false, true},
		{fsnotify.Event{Name: "/zones/a.yaml", Op: fsnotify.Chmod}, false, false},
		{fsnotify.Event{Name: "/zones/a.yaml.swp", Op: fsnotify.Write}, false, false},
		{fsnotify.Event{Name: "/zones/.a.yaml", Op: fsnotify.Create}, false, false},
		{fsnotify.Event{Name: "/zones/notes.txt", Op: fsnotify.Write}, false, false},
		{fsnotify.Event{Name: "/zones/..data", Op: fsnotify.Create}, false, true},
		{fsnotify.Event{Name: "/etc/popdns/popdns.yaml", Op: fsnotify.Rename}, false, true},
		{fsnotify.Event{Name: "/etc/popdns/other.yaml", Op: fsnotify.Write}, false, false},
		{fsnotify.Event{Name: "/elsewhere/a.yaml", Op: fsnotify.Write}, false, false},
	} {
		failing.Store(tc.failing)
		if got := w.relevant(tc.ev); got != tc.want {
			t.Errorf("relevant(%v) with failing %t = %v, want %v", tc.ev, tc.failing, got, tc.want)
		}
	}
}

// TestWatcherSeesPermissionFixes chmods the watched directory and a zone
// file for real: a permission fix shows no other event, so these are the
// only way to notice it without polling.
func TestWatcherSeesPermissionFixes(t *testing.T) {
	dir := t.TempDir()
	zone := filepath.Join(dir, "example.test.yaml")
	if err := os.WriteFile(zone, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	changes := startWatcherWith(t, dir, 20*time.Millisecond, zerolog.Nop(), func() bool { return true })
	for _, tc := range []struct {
		name string
		path string
		mode os.FileMode
	}{
		{"directory made unreadable", dir, 0o000},
		{"directory fixed", dir, 0o755},
		{"file made unreadable", zone, 0o000},
		{"file fixed", zone, 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.Chmod(tc.path, tc.mode); err != nil {
				t.Fatal(err)
			}
			waitChange(t, changes)
		})
	}
}
