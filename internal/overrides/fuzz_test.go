package overrides

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzOpenFile: whatever state_dir's file holds, OpenFile returns an
// error or a store, never panics, and a store it returns writes a file it
// reads back the same.
func FuzzOpenFile(f *testing.F) {
	// A file as popdns writes it: one override, revisions, history.
	f.Add([]byte(`{"version": 1, "overrides": [{"pop": "fra", "state": "drain", "who": "ann", "set": "2026-12-01T12:00:00Z", "revision": 2}],
"revisions": {"fra": 2, "iad": 5}, "history": [{"op": "set", "at": "2026-12-01T12:00:00Z", "override": {"pop": "fra", "state": "drain", "who": "ann", "set": "2026-12-01T12:00:00Z", "revision": 2}}]}`))
	// An empty store.
	f.Add([]byte(`{"version": 1, "overrides": [], "revisions": {}, "history": []}`))
	// Cut short, a bad state, a wrong type, a revision not in revisions.
	f.Add([]byte(`{"version": 1, "overrides": [`))
	f.Add([]byte(`{"version": 1, "revisions": {"fra": 1}, "overrides": [{"pop": "fra", "state": "up", "revision": 1}]}`))
	f.Add([]byte(`{"version": "1"}`))
	f.Add([]byte(`{"version": 1, "overrides": [{"pop": "fra", "state": "down", "revision": 9}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := OpenFile(dir, nil)
		if err != nil {
			return
		}
		ctx := context.Background()
		list, _ := s.List(ctx)
		// A write rewrites the file; reopened, it holds the same.
		if _, err := s.Put(ctx, Override{PoP: "fuzz-pop", Who: "fuzz"}, s.overrides["fuzz-pop"].Revision); err != nil {
			t.Fatal(err)
		}
		again, err := OpenFile(dir, nil)
		if err != nil {
			t.Fatalf("a file FileStore wrote does not open: %v", err)
		}
		after, _ := again.List(ctx)
		after = slices.DeleteFunc(after, func(o Override) bool { return o.PoP == "fuzz-pop" })
		list = slices.DeleteFunc(list, func(o Override) bool { return o.PoP == "fuzz-pop" })
		if len(after) != len(list) {
			t.Fatalf("%d overrides, then %d after a rewrite", len(list), len(after))
		}
	})
}
