package overrides

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/popdns/popdns/pops"
)

// FileName is the file in state_dir that holds a FileStore: the
// overrides, each PoP's last revision and the history.
const FileName = "overrides.json"

// MaxHistory is how many events a FileStore keeps: at the pace operators
// change states, years of them, in a file of a few hundred kilobytes.
const MaxHistory = 1000

// fileFormat is FileName's content. Revisions outlive deleted overrides,
// so that a PoP's revisions only grow and a write naming a revision read
// before a delete and a new put still conflicts.
type fileFormat struct {
	Version   int               `json:"version"`
	Overrides []Override        `json:"overrides"`
	Revisions map[string]uint64 `json:"revisions"`
	History   []Event           `json:"history"`
}

const fileVersion = 1

// FileStore is a Store for one instance: in memory, and in FileName in
// its directory when it has one, rewritten atomically (a temporary file
// renamed over it) on every change, so that overrides and their history
// survive a restart. It is safe for concurrent use.
type FileStore struct {
	path string // "" keeps everything in memory only
	now  func() time.Time

	mu sync.Mutex // guards the fields below, and is held across a write of the file
	// overrides by PoP, and each PoP's last revision, deleted or not.
	overrides map[string]Override
	revisions map[string]uint64
	history   []Event
	// watchers are woken after each change; each buffers one wake-up.
	watchers map[chan struct{}]struct{}
}

var _ Store = (*FileStore)(nil)

// OpenFile returns the store kept in dir's FileName, read if it exists;
// dir "" keeps the overrides in memory only, for as long as the process
// runs. now stamps the history (nil: time.Now). A file that cannot be
// read or decoded is an error naming it (and the line and column of a
// syntax error): overrides are operators' decisions, and starting
// without them would silently undo a drain.
func OpenFile(dir string, now func() time.Time) (*FileStore, error) {
	if now == nil {
		now = time.Now
	}
	s := &FileStore{now: now, overrides: map[string]Override{}, revisions: map[string]uint64{},
		watchers: map[chan struct{}]struct{}{}}
	if dir == "" {
		return s, nil
	}
	s.path = filepath.Join(dir, FileName)
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("overrides: %w", err)
	}
	if err := s.decode(data); err != nil {
		return nil, fmt.Errorf("overrides: %s%w (move the file away to start without the overrides it holds)", s.path, err)
	}
	return s, nil
}

// decode fills s from a file's data; its errors begin with ":line:col: "
// or ": ", to follow the file name.
func (s *FileStore) decode(data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New(": empty (popdns never writes an empty file)")
	}
	var f fileFormat
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			// Offset is just past the character that is wrong.
			line, col := lineCol(data, syn.Offset-1)
			return fmt.Errorf(":%d:%d: %w", line, col, err)
		case errors.Is(err, io.ErrUnexpectedEOF):
			line, _ := lineCol(data, int64(len(data)))
			return fmt.Errorf(":%d: the file ends in the middle of its JSON (cut short?)", line)
		case errors.As(err, &typ):
			// Offset is past the value of the wrong type: its line.
			line, _ := lineCol(data, typ.Offset)
			return fmt.Errorf(":%d: %w", line, err)
		}
		return fmt.Errorf(": %w", err)
	}
	if f.Version != fileVersion {
		return fmt.Errorf(": version %d, want %d", f.Version, fileVersion)
	}
	for k, v := range f.Revisions {
		s.revisions[k] = v
	}
	for i, o := range f.Overrides {
		st, ok := pops.ParseAdminState(o.StateName)
		switch {
		case o.PoP == "":
			return fmt.Errorf(": overrides[%d]: no pop", i)
		case !ok || o.StateName != st.String():
			return fmt.Errorf(": overrides[%d] (%s): state %q is not one of active, drain, down", i, o.PoP, o.StateName)
		case o.Revision == 0 || o.Revision > s.revisions[o.PoP]:
			return fmt.Errorf(": overrides[%d] (%s): revision %d is not in revisions (%d)", i, o.PoP, o.Revision, s.revisions[o.PoP])
		}
		if _, dup := s.overrides[o.PoP]; dup {
			return fmt.Errorf(": overrides[%d]: a second override of %s", i, o.PoP)
		}
		o.State = st
		s.overrides[o.PoP] = o
	}
	for i := range f.History {
		e := &f.History[i]
		e.Override.State, _ = pops.ParseAdminState(e.Override.StateName)
	}
	s.history = f.History
	return nil
}

// lineCol is the line and column (from 1) of the byte at offset off in
// data.
func lineCol(data []byte, off int64) (int, int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// Path is the store's file, or "" when it keeps everything in memory.
func (s *FileStore) Path() string { return s.path }

// List implements Store.
func (s *FileStore) List(context.Context) ([]Override, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked(), nil
}

func (s *FileStore) listLocked() []Override {
	out := make([]Override, 0, len(s.overrides))
	for _, o := range s.overrides {
		out = append(out, o)
	}
	return Sorted(out)
}

// Put implements Store. The override's StateName is set from its State,
// and its Revision to the one returned.
func (s *FileStore) Put(_ context.Context, o Override, rev uint64) (uint64, error) {
	if o.PoP == "" {
		return 0, errors.New("overrides: an override needs a PoP")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.overrides[o.PoP].Revision; cur != rev {
		return 0, fmt.Errorf("%w: %s is at revision %d, not %d", ErrConflict, o.PoP, cur, rev)
	}
	o.StateName = o.State.String()
	o.Revision = s.revisions[o.PoP] + 1
	err := s.commitLocked(o.PoP, &o, Event{Op: "set", At: s.now(), Override: o})
	if err != nil {
		return 0, err
	}
	return o.Revision, nil
}

// Delete implements Store.
func (s *FileStore) Delete(_ context.Context, pop string, rev uint64, who, why string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.overrides[pop]
	if !ok || cur.Revision != rev {
		return fmt.Errorf("%w: %s is at revision %d, not %d", ErrConflict, pop, cur.Revision, rev)
	}
	gone := cur
	gone.Who, gone.Why, gone.Set, gone.Expires = who, why, s.now(), time.Time{}
	return s.commitLocked(pop, nil, Event{Op: "delete", At: gone.Set, Override: gone})
}

// commitLocked makes o (nil: none) pop's override and appends ev to the
// history: in the file first, so that a change that cannot be written is
// not made at all, then in memory; then it wakes the watchers.
func (s *FileStore) commitLocked(pop string, o *Override, ev Event) error {
	overrides := make(map[string]Override, len(s.overrides)+1)
	for k, v := range s.overrides {
		overrides[k] = v
	}
	revisions := make(map[string]uint64, len(s.revisions)+1)
	for k, v := range s.revisions {
		revisions[k] = v
	}
	if o != nil {
		overrides[pop] = *o
		revisions[pop] = o.Revision
	} else {
		delete(overrides, pop)
	}
	history := append(s.history, ev)
	if len(history) > MaxHistory {
		history = append([]Event(nil), history[len(history)-MaxHistory:]...)
	}
	if s.path != "" {
		list := make([]Override, 0, len(overrides))
		for _, v := range overrides {
			list = append(list, v)
		}
		if err := writeFile(s.path, fileFormat{Version: fileVersion, Overrides: Sorted(list), Revisions: revisions, History: history}); err != nil {
			return fmt.Errorf("overrides: not written: %w", err)
		}
	}
	s.overrides, s.revisions, s.history = overrides, revisions, history
	for ch := range s.watchers {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is pending already; it reads the latest list
		}
	}
	return nil
}

// writeFile replaces path with f atomically: a crash leaves the old file
// or the new one, never half of one.
func writeFile(path string, f fileFormat) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, FileName+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	_, err = tmp.Write(append(data, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return err
	}
	// The rename itself is durable once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// History implements Store; limit <= 0 means all that is kept.
func (s *FileStore) History(_ context.Context, limit int) ([]Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.history
	if limit > 0 && len(h) > limit {
		h = h[len(h)-limit:]
	}
	return append([]Event(nil), h...), nil
}

// Watch implements Store: fn gets the list at once and after each change
// made through s. Changes close together may reach fn as one call with
// the latest list. It returns nil when ctx ends.
func (s *FileStore) Watch(ctx context.Context, fn func([]Override)) error {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.watchers[ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.watchers, ch)
		s.mu.Unlock()
	}()
	for {
		list, _ := s.List(ctx)
		fn(list)
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
		}
	}
}
