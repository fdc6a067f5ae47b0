package zones

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// startWatcher runs a Watcher on dir (zone files only) and returns a channel
// that receives one value per reported change.
func startWatcher(t *testing.T, dir string) <-chan struct{} {
	t.Helper()
	w := NewWatcher(20*time.Millisecond, zerolog.Nop())
	w.Watch(dir, IsDataFile)
	changes := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func() { changes <- struct{}{} }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-w.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("watcher not ready within 5 s")
	}
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
	w := NewWatcher(time.Millisecond, zerolog.Nop())
	w.Watch("/zones", IsZoneFile)
	w.WatchFile("/etc/popdns/popdns.yaml")
	for _, tc := range []struct {
		ev   fsnotify.Event
		want bool
	}{
		{fsnotify.Event{Name: "/zones/a.yaml", Op: fsnotify.Write}, true},
		{fsnotify.Event{Name: "/zones/a.yaml", Op: fsnotify.Chmod}, false},
		{fsnotify.Event{Name: "/zones/a.yaml.swp", Op: fsnotify.Write}, false},
		{fsnotify.Event{Name: "/zones/.a.yaml", Op: fsnotify.Create}, false},
		{fsnotify.Event{Name: "/zones/notes.txt", Op: fsnotify.Write}, false},
		{fsnotify.Event{Name: "/zones/..data", Op: fsnotify.Create}, true},
		{fsnotify.Event{Name: "/etc/popdns/popdns.yaml", Op: fsnotify.Rename}, true},
		{fsnotify.Event{Name: "/etc/popdns/other.yaml", Op: fsnotify.Write}, false},
		{fsnotify.Event{Name: "/elsewhere/a.yaml", Op: fsnotify.Write}, false},
	} {
		if got := w.relevant(tc.ev); got != tc.want {
			t.Errorf("relevant(%v) = %v, want %v", tc.ev, got, tc.want)
		}
	}
}
