package overrides

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/pops"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func drain(pop string) Override {
	return Override{PoP: pop, State: pops.Drain, Who: "ops@test", Why: "maintenance", Set: t0}
}

// TestFileStoreRevisions: a write names the revision it replaces; any
// other is a conflict, and revisions keep growing across deletes.
func TestFileStoreRevisions(t *testing.T) {
	ctx := context.Background()
	type step struct {
		op      string // put or delete
		pop     string
		rev     uint64
		wantRev uint64 // of a put
		wantErr error
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"first put names 0", []step{{"put", "fra", 0, 1, nil}}},
		{"first put naming a revision", []step{{"put", "fra", 1, 0, ErrConflict}}},
		{"second put with the current revision", []step{{"put", "fra", 0, 1, nil}, {"put", "fra", 1, 2, nil}}},
		{"second put with a stale revision", []step{{"put", "fra", 0, 1, nil}, {"put", "fra", 1, 2, nil}, {"put", "fra", 1, 0, ErrConflict}}},
		{"second put as if new", []step{{"put", "fra", 0, 1, nil}, {"put", "fra", 0, 0, ErrConflict}}},
		{"delete with the current revision", []step{{"put", "fra", 0, 1, nil}, {"delete", "fra", 1, 0, nil}}},
		{"delete with a stale revision", []step{{"put", "fra", 0, 1, nil}, {"put", "fra", 1, 2, nil}, {"delete", "fra", 1, 0, ErrConflict}}},
		{"delete of nothing", []step{{"delete", "fra", 0, 0, ErrConflict}}},
		{"revisions grow across a delete", []step{{"put", "fra", 0, 1, nil}, {"delete", "fra", 1, 0, nil}, {"put", "fra", 0, 2, nil}}},
		{"a revision read before a delete conflicts", []step{{"put", "fra", 0, 1, nil}, {"delete", "fra", 1, 0, nil}, {"put", "fra", 1, 0, ErrConflict}}},
		{"PoPs have their own revisions", []step{{"put", "fra", 0, 1, nil}, {"put", "iad", 0, 1, nil}, {"put", "fra", 1, 2, nil}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, dir := range []string{"", t.TempDir()} {
				s, err := OpenFile(dir, func() time.Time { return t0 })
				if err != nil {
					t.Fatal(err)
				}
				for i, st := range tc.steps {
					var rev uint64
					var err error
					if st.op == "put" {
						rev, err = s.Put(ctx, drain(st.pop), st.rev)
					} else {
						err = s.Delete(ctx, st.pop, st.rev, "ops@test", "done")
					}
					if !errors.Is(err, st.wantErr) || (st.wantErr != nil) != (err != nil) {
						t.Fatalf("dir %q step %d (%s %s @%d): err %v, want %v", dir, i, st.op, st.pop, st.rev, err, st.wantErr)
					}
					if rev != st.wantRev {
						t.Fatalf("dir %q step %d: revision %d, want %d", dir, i, rev, st.wantRev)
					}
				}
			}
		})
	}
}

// TestFileStoreExpiry: an expired override stays listed but is not in
// force, and NextExpiry says when InForce changes.
func TestFileStoreExpiry(t *testing.T) {
	ctx := context.Background()
	s, err := OpenFile("", func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	fra, iad, lhr := drain("fra"), drain("iad"), drain("lhr")
	fra.Expires = t0.Add(time.Hour)
	iad.Expires = t0.Add(2 * time.Hour)
	iad.State = pops.Down
	lhr.State = pops.Active
	for _, o := range []Override{fra, iad, lhr} {
		if _, err := s.Put(ctx, o, 0); err != nil {
			t.Fatal(err)
		}
	}
	list, _ := s.List(ctx)
	for _, tc := range []struct {
		at       time.Time
		inForce  map[string]pops.AdminState
		nextExpi time.Time
	}{
		{t0, map[string]pops.AdminState{"fra": pops.Drain, "iad": pops.Down}, t0.Add(time.Hour)},
		{t0.Add(time.Hour - time.Nanosecond), map[string]pops.AdminState{"fra": pops.Drain, "iad": pops.Down}, t0.Add(time.Hour)},
		{t0.Add(time.Hour), map[string]pops.AdminState{"iad": pops.Down}, t0.Add(2 * time.Hour)},
		{t0.Add(3 * time.Hour), map[string]pops.AdminState{}, time.Time{}},
	} {
		got := InForce(list, tc.at)
		if len(got) != len(tc.inForce) {
			t.Errorf("at %s: in force %v, want %v", tc.at, got, tc.inForce)
		}
		for k, v := range tc.inForce {
			if got[k] != v {
				t.Errorf("at %s: in force %v, want %v", tc.at, got, tc.inForce)
			}
		}
		if next := NextExpiry(list, tc.at); !next.Equal(tc.nextExpi) {
			t.Errorf("at %s: next expiry %s, want %s", tc.at, next, tc.nextExpi)
		}
	}
	if len(list) != 3 {
		t.Errorf("listed %d, want 3 (expired ones stay until deleted)", len(list))
	}
}

// TestFileStoreReopen: what one run wrote, the next reads: overrides,
// revisions and history.
func TestFileStoreReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenFile(dir, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	o := drain("fra")
	o.Expires = t0.Add(time.Hour)
	if _, err := s.Put(ctx, o, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, drain("iad"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "iad", 1, "ops@test", "back"); err != nil {
		t.Fatal(err)
	}
	again, err := OpenFile(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := again.List(ctx)
	if len(list) != 1 || list[0].PoP != "fra" || list[0].State != pops.Drain || list[0].Who != "ops@test" ||
		!list[0].Expires.Equal(o.Expires) || list[0].Revision != 1 {
		t.Fatalf("after reopening: %+v", list)
	}
	hist, _ := again.History(ctx, 0)
	if len(hist) != 3 || hist[2].Op != "delete" || hist[2].Override.PoP != "iad" || hist[2].Override.Why != "back" ||
		hist[0].Override.State != pops.Drain {
		t.Fatalf("history after reopening: %+v", hist)
	}
	// iad's revision survived its delete.
	if rev, err := again.Put(ctx, drain("iad"), 0); err != nil || rev != 2 {
		t.Fatalf("iad after reopening: revision %d, %v; want 2", rev, err)
	}
	if h, _ := again.History(ctx, 2); len(h) != 2 || h[1].Override.PoP != "iad" || h[1].Op != "set" {
		t.Fatalf("last 2 events: %+v", h)
	}
}

// TestFileStoreHistoryBounded: the history keeps the last MaxHistory
// events.
func TestFileStoreHistoryBounded(t *testing.T) {
	ctx := context.Background()
	s, _ := OpenFile("", nil)
	var rev uint64
	for range MaxHistory + 10 {
		var err error
		if rev, err = s.Put(ctx, drain("fra"), rev); err != nil {
			t.Fatal(err)
		}
	}
	h, _ := s.History(ctx, 0)
	if len(h) != MaxHistory || h[len(h)-1].Override.Revision != MaxHistory+10 || h[0].Override.Revision != 11 {
		t.Fatalf("%d events, revisions %d..%d", len(h), h[0].Override.Revision, h[len(h)-1].Override.Revision)
	}
}

// TestFileStoreBadFile: a file that cannot be read is an error naming it
// and, for a syntax error, its line: popdns refuses to start rather than
// silently undo a drain.
func TestFileStoreBadFile(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"syntax", "{\n  \"version\": 1,\n  \"overrides\": [,]\n}", "overrides.json:3:17: invalid character ','"},
		{"type", "{\n  \"version\": \"one\"\n}", "overrides.json:2: json: cannot unmarshal"},
		{"unknown field", `{"version": 1, "overides": []}`, `unknown field "overides"`},
		{"version", `{"version": 2}`, "version 2, want 1"},
		{"state", `{"version": 1, "revisions": {"fra": 1}, "overrides": [{"pop": "fra", "state": "sleepy", "revision": 1}]}`, `state "sleepy"`},
		{"revision", `{"version": 1, "overrides": [{"pop": "fra", "state": "drain", "revision": 3}]}`, "revision 3 is not in revisions"},
		{"duplicate", `{"version": 1, "revisions": {"fra": 1}, "overrides": [{"pop": "fra", "state": "drain", "revision": 1}, {"pop": "fra", "state": "down", "revision": 1}]}`, "a second override of fra"},
		{"empty", ``, "overrides.json: empty"},
		{"cut short", "{\n  \"version\": 1,\n  \"overrides\": [", "overrides.json:3: the file ends in the middle of its JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := OpenFile(dir, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), filepath.Join(dir, FileName)) {
				t.Fatalf("error %v, want the file and %q", err, tc.want)
			}
		})
	}
}

// TestFileStoreWriteFails: a change that cannot be written is not made.
func TestFileStoreWriteFails(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenFile(filepath.Join(dir, "state"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A file where the directory should be.
	if err := os.WriteFile(filepath.Join(dir, "state"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, drain("fra"), 0); err == nil {
		t.Fatal("put succeeded without its file")
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Fatalf("listed after a failed write: %+v", list)
	}
}

// TestFileStoreWatch: the watcher gets the list at once and after each
// change.
func TestFileStoreWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, _ := OpenFile("", nil)
	got := make(chan []Override, 10)
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, func(l []Override) { got <- l }) }()
	recv := func() []Override {
		t.Helper()
		select {
		case l := <-got:
			return l
		case <-time.After(5 * time.Second):
			t.Fatal("no call of the watcher")
			return nil
		}
	}
	if l := recv(); len(l) != 0 {
		t.Fatalf("first call: %+v", l)
	}
	if _, err := s.Put(ctx, drain("fra"), 0); err != nil {
		t.Fatal(err)
	}
	if l := recv(); len(l) != 1 || l[0].PoP != "fra" {
		t.Fatalf("after a put: %+v", l)
	}
	if err := s.Delete(ctx, "fra", 1, "x", ""); err != nil {
		t.Fatal(err)
	}
	if l := recv(); len(l) != 0 {
		t.Fatalf("after a delete: %+v", l)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return when its context ended")
	}
}
