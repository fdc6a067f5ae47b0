package fswatch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// fakeClock is the time a Watcher's debounce runs on in tests: its timers
// fire only when advance moves the clock past them.
type fakeClock struct {
	mu     sync.Mutex // mu guards the fields below
	now    time.Duration
	timers []*fakeTimer
}

type fakeTimer struct {
	at    time.Duration
	c     chan time.Time
	done  bool // fired or stopped; guarded by fakeClock.mu
	clock *fakeClock
}

func (c *fakeClock) newTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now + d, c: make(chan time.Time), clock: c}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// advance moves the clock on by d and fires the timers due, each handed
// to the watcher's loop before advance returns: the loop has taken the
// tick when the next event reaches it.
func (c *fakeClock) advance(t *testing.T, d time.Duration) {
	t.Helper()
	c.mu.Lock()
	c.now += d
	var due []*fakeTimer
	for _, tm := range c.timers {
		if !tm.done && tm.at <= c.now {
			tm.done = true
			due = append(due, tm)
		}
	}
	c.mu.Unlock()
	for _, tm := range due {
		select {
		case tm.c <- time.Time{}:
		case <-time.After(5 * time.Second):
			t.Fatalf("a timer due at +%s was not read within 5 s", tm.at)
		}
	}
}

// TestWatcherDebounces checks the debounce under a fake clock: a burst of
// events, each less than the debounce after the one before but spanning
// more than it, is reported once, and no sooner than the debounce after
// its last event. A watcher that reported each event at once, or that
// counted the debounce from the burst's first event, fails both checks.
func TestWatcherDebounces(t *testing.T) {
	const debounce = 200 * time.Millisecond
	ev := func(name string, op fsnotify.Op) any { return fsnotify.Event{Name: "/zones/" + name, Op: op} }
	type step struct {
		after  time.Duration // since the step before
		events []any         // fsnotify.Event or error, in order
	}
	for _, tc := range []struct {
		name  string
		burst []step
	}{
		// What inotify reports for writing in place, renaming a
		// temporary file over, truncating and writing, and renaming
		// over again.
		{"one file saved four ways", []step{
			{0, []any{ev("a.yaml", fsnotify.Write)}},
			{150 * time.Millisecond, []any{ev(".a.yaml.tmp", fsnotify.Create), ev(".a.yaml.tmp", fsnotify.Write),
				ev(".a.yaml.tmp", fsnotify.Rename), ev("a.yaml", fsnotify.Create)}},
			{150 * time.Millisecond, []any{ev("a.yaml", fsnotify.Write), ev("a.yaml", fsnotify.Write)}},
			{debounce - time.Nanosecond, []any{ev(".a.yaml.tmp", fsnotify.Create), ev("a.yaml", fsnotify.Create)}},
		}},
		{"files added and removed, and a lost event", []step{
			{0, []any{ev("b.yaml", fsnotify.Create), ev("b.yaml", fsnotify.Write)}},
			{100 * time.Millisecond, []any{ev("rtt.csv", fsnotify.Create)}},
			{100 * time.Millisecond, []any{ev("b.yaml", fsnotify.Remove)}},
			{100 * time.Millisecond, []any{fsnotify.ErrEventOverflow}},
			{100 * time.Millisecond, []any{ev("c.yml", fsnotify.Create)}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{}
			w := New(debounce, zerolog.Nop())
			w.Watch("/zones", dataFile)
			w.SetTimer(clock.newTimer)
			events, errs := make(chan fsnotify.Event), make(chan error)
			changes := make(chan struct{}, 16)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				w.loop(ctx, events, errs, func() { changes <- struct{}{} })
			}()
			t.Cleanup(func() {
				cancel()
				dnstest.Receive(t, done, 5*time.Second, "the watcher to stop")
			})
			// send hands e to the loop; the channels are unbuffered, so
			// the loop has handled every earlier event by then.
			send := func(e any) {
				t.Helper()
				var ok bool
				switch e := e.(type) {
				case fsnotify.Event:
					select {
					case events <- e:
						ok = true
					case <-time.After(5 * time.Second):
					}
				case error:
					select {
					case errs <- e:
						ok = true
					case <-time.After(5 * time.Second):
					}
				}
				if !ok {
					t.Fatalf("the watcher did not read %v within 5 s", e)
				}
			}
			// settle returns once the loop has handled everything sent
			// and every tick advance gave it: an event it ignores.
			settle := func() { t.Helper(); send(ev("notes.txt", fsnotify.Write)) }
			var reports []time.Duration // when each change was reported
			collect := func() {
				t.Helper()
				settle()
				for {
					select {
					case <-changes:
						clock.mu.Lock()
						reports = append(reports, clock.now)
						clock.mu.Unlock()
					default:
						return
					}
				}
			}

			var last time.Duration // when the burst's last event came
			for _, st := range tc.burst {
				clock.advance(t, st.after)
				last += st.after
				for _, e := range st.events {
					send(e)
				}
				collect()
			}
			clock.advance(t, debounce-time.Nanosecond)
			collect()
			clock.advance(t, time.Nanosecond)
			collect()
			// Long after, to see any later report.
			clock.advance(t, 10*debounce)
			collect()

			for _, at := range reports {
				if at < last+debounce {
					t.Errorf("a change reported at +%s, before the debounce (%s) after the burst's last event at +%s", at, debounce, last)
				}
			}
			if len(reports) != 1 {
				t.Errorf("a burst of %d steps reported %d times (at %v), want once", len(tc.burst), len(reports), reports)
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
