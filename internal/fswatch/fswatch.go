// Package fswatch owns watching files for changes: it watches
// directories, not files, filters events by the callers' file names,
// and debounces each burst into one call. It knows nothing of what the
// files hold; the reloader says which names matter and what a change
// does.
package fswatch

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// DefaultDebounce gathers a burst of file events (an editor's save, an
// rsync, a ConfigMap swap) into one reload.
const DefaultDebounce = 200 * time.Millisecond

// Watcher turns changes to files of interest into reload calls. It watches
// directories, not files, so that every usual way of replacing a file is
// seen: writing in place, truncating and writing, writing a temporary file
// and renaming it over (editors, rsync, geoipupdate), and the Kubernetes
// ConfigMap swap of a ..data symlink, which a watch on the file itself
// would lose. Chmod events (inotify's attribute changes, which touch and
// chown cause too) count only where a permission may decide what loads:
// on a watched directory itself always, and on the files of interest
// while NoticeChmod's condition holds. A Watcher is configured before Run
// and must not be changed while it runs.
type Watcher struct {
	debounce time.Duration
	newTimer func(time.Duration) Timer
	log      zerolog.Logger
	dirs     map[string][]func(base string) bool
	chmod    func() bool // nil: chmod of a file never counts
	ready    chan struct{}
}

// Timer is the part of *time.Timer a Watcher uses, so that tests can
// inject time.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// New returns a Watcher that waits debounce after the last event of a
// burst before it reports the change.
func New(debounce time.Duration, log zerolog.Logger) *Watcher {
	return &Watcher{debounce: debounce, log: log.With().Str("component", "watcher").Logger(),
		newTimer: func(d time.Duration) Timer { return realTimer{time.NewTimer(d)} },
		dirs:     map[string][]func(string) bool{}, ready: make(chan struct{})}
}

// SetTimer replaces the wall clock the debounce is measured with:
// newTimer returns a Timer that fires once d has passed.
func (w *Watcher) SetTimer(newTimer func(d time.Duration) Timer) { w.newTimer = newTimer }

// Ready is closed once Run watches every directory: a change made after
// that is seen.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Watch adds dir, reporting events for the entries whose base name match
// accepts, and for Kubernetes' ..data links, which replace them all at once.
func (w *Watcher) Watch(dir string, match func(base string) bool) {
	dir = filepath.Clean(dir)
	w.dirs[dir] = append(w.dirs[dir], match)
}

// NoticeChmod makes a chmod (or chown, or touch) of a file of interest a
// change while cond reports true. A file that could not be read because
// of its permissions shows no other event when they are fixed; the
// caller's cond says whether some file's latest version failed to load,
// so that otherwise such events cost nothing. cond is called from Run's
// goroutine and must be safe for concurrent use.
func (w *Watcher) NoticeChmod(cond func() bool) { w.chmod = cond }

// WatchFile watches the directory of path for changes to path.
func (w *Watcher) WatchFile(path string) {
	base := filepath.Base(path)
	w.Watch(filepath.Dir(path), func(b string) bool { return b == base })
}

// Run watches until ctx is done, calling onChange (from this goroutine,
// never concurrently) once per burst of relevant events. It returns an
// error only if the watches cannot be set up.
func (w *Watcher) Run(ctx context.Context, onChange func()) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("fswatch: %w", err)
	}
	defer fw.Close()
	for dir := range w.dirs {
		if err := fw.Add(dir); err != nil {
			return fmt.Errorf("fswatch: watch %s: %w", dir, err)
		}
	}
	close(w.ready)
	w.loop(ctx, fw.Events, fw.Errors, onChange)
	return nil
}

// loop is Run once the watches are in place: it reads events and errors
// until ctx ends or either channel closes, and calls onChange the
// debounce after the last event of each burst.
func (w *Watcher) loop(ctx context.Context, events <-chan fsnotify.Event, errs <-chan error, onChange func()) {
	// timer runs while a change is pending; each event of the burst
	// replaces it, so that it fires the debounce after the last one.
	var timer Timer
	var fire <-chan time.Time // timer's channel; nil blocks when none
	arm := func() {
		if timer != nil {
			timer.Stop()
		}
		timer = w.newTimer(w.debounce)
		fire = timer.C()
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if !w.relevant(ev) {
				continue
			}
			w.log.Debug().Str("file", ev.Name).Str("op", ev.Op.String()).Msg("file changed")
			arm()
		case err, ok := <-errs:
			if !ok {
				return
			}
			// An overflow loses events: reload to be sure nothing is missed.
			w.log.Warn().Err(err).Msg("file watch error; reloading")
			arm()
		case <-fire:
			timer, fire = nil, nil
			onChange()
		}
	}
}

func (w *Watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		// A watched directory's permissions decide whether anything in
		// it can be read, so they always count: a directory made
		// unreadable is reported at once, and so is the fix.
		if _, ok := w.dirs[filepath.Clean(ev.Name)]; ok {
			return true
		}
		if w.chmod == nil || !w.chmod() {
			return false
		}
	}
	base := filepath.Base(ev.Name)
	if strings.HasPrefix(base, "..") {
		return true // a ConfigMap's ..data link, or its timestamped target
	}
	for _, match := range w.dirs[filepath.Dir(ev.Name)] {
		if match(base) {
			return true
		}
	}
	return false
}
