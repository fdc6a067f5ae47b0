package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/pops"
	"github.com/rs/zerolog"
)

// recordedStates keeps what the applier hands the server.
type recordedStates struct {
	mu  sync.Mutex
	got chan map[string]pops.AdminState
}

func (r *recordedStates) SetPoPStates(m map[string]pops.AdminState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got <- m
}

// TestOverrideApplierExpiry: the applier applies the overrides at start
// and on a change, and when the timer of the next expiry fires, without
// any write, lifts the expired one. Time is the test's.
func TestOverrideApplierExpiry(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	store, err := overrides.OpenFile("", clock)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordedStates{got: make(chan map[string]pops.AdminState, 10)}
	ap := newOverrideApplier(store, rec, zerolog.Nop())
	ap.now = clock
	timers := make(chan time.Duration, 10)
	fire := make(chan time.Time)
	ap.newTimer = func(d time.Duration) (<-chan time.Time, func() bool) {
		timers <- d
		return fire, func() bool { return true }
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ap.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	want := func(states map[string]pops.AdminState) {
		t.Helper()
		select {
		case got := <-rec.got:
			if len(got) != len(states) {
				t.Fatalf("states %v, want %v", got, states)
			}
			for k, v := range states {
				if got[k] != v {
					t.Fatalf("states %v, want %v", got, states)
				}
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no states applied; want %v", states)
		}
	}
	wantTimer := func(d time.Duration) {
		t.Helper()
		for {
			select {
			case got := <-timers:
				if got == d {
					return
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no timer of %s", d)
			}
		}
	}
	want(map[string]pops.AdminState{})

	if _, err := store.Put(ctx, overrides.Override{PoP: "fra", State: pops.Drain, Who: "t", Expires: t0.Add(2 * time.Second)}, 0); err != nil {
		t.Fatal(err)
	}
	want(map[string]pops.AdminState{"fra": pops.Drain})
	wantTimer(2 * time.Second)

	mu.Lock()
	now = t0.Add(2 * time.Second)
	mu.Unlock()
	fire <- now
	want(map[string]pops.AdminState{})
}

// deafStore is a store whose watch reports the first read and then
// nothing, as a NATS watch that missed writes during a leader election.
type deafStore struct{ overrides.Store }

func (d deafStore) Watch(ctx context.Context, fn func([]overrides.Override)) error {
	list, err := d.List(ctx)
	if err != nil {
		return err
	}
	fn(list)
	<-ctx.Done()
	return ctx.Err()
}

// TestOverrideApplierResync: a write the store's watch never reports is
// still applied, by the periodic read.
func TestOverrideApplierResync(t *testing.T) {
	store, err := overrides.OpenFile("", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordedStates{got: make(chan map[string]pops.AdminState, 10)}
	ap := newOverrideApplier(deafStore{store}, rec, zerolog.Nop())
	ap.resync = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ap.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	next := func() map[string]pops.AdminState {
		t.Helper()
		select {
		case got := <-rec.got:
			return got
		case <-time.After(5 * time.Second):
			t.Fatal("no states applied within 5 s")
			return nil
		}
	}
	if got := next(); len(got) != 0 {
		t.Fatalf("at start: %v, want none", got)
	}
	if _, err := store.Put(ctx, overrides.Override{PoP: "fra", State: pops.Drain, Who: "t"}, 0); err != nil {
		t.Fatal(err)
	}
	if got := next(); got["fra"] != pops.Drain || len(got) != 1 {
		t.Fatalf("after a write the watch did not report: %v, want fra drained", got)
	}
}

// TestStartRefusesBadOverridesFile: an overrides.json that cannot be read
// fails the start with its file and line, before anything is bound:
// serving without it would silently undo a drain.
func TestStartRefusesBadOverridesFile(t *testing.T) {
	dir := t.TempDir()
	writeStaticZone(t, dir)
	writeFile(t, dir, "state/overrides.json", "{\n  \"version\": 1,\n  \"overrides\": [\n")
	cfgFile := writeFile(t, dir, "popdns.yaml", "zones: zones\nstate_dir: state\n")
	cfg, err := parseServeFlags([]string{"-config", cfgFile, "-listen", "127.0.0.1:0", "-http", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	if err := run(context.Background(), []string{"check", cfgFile}, &stdout, &stderr); err == nil ||
		!strings.Contains(stderr.String(), "overrides.json:4: the file ends in the middle") {
		t.Errorf("popdns check: %v, stderr %q", err, stderr.String())
	}
	a, err := start(cfg, nil, zerolog.Nop(), nil)
	want := filepath.Join(dir, "state", "overrides.json") + ":4: the file ends in the middle of its JSON"
	if err == nil {
		a.stopEarly()
		t.Fatal("started")
	}
	if !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "state_dir: ") {
		t.Fatalf("error %q, want state_dir: and %q", err, want)
	}
}

// TestAdminCommandUsage: mistakes on popdns admin's command line are
// usage errors, found before anything is sent.
func TestAdminCommandUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "want a command: drain, undrain, list, history"},
		{"unknown command", []string{"sleep"}, `unknown command "sleep"`},
		{"drain without a PoP", []string{"drain"}, "drain takes 1 argument(s)"},
		{"list with an argument", []string{"list", "fra"}, "list takes 0 argument(s)"},
		{"for and until", []string{"drain", "fra", "-for", "1h", "-until", "2026-12-01T18:00:00Z"}, "-for and -until: give one"},
		{"bad until", []string{"drain", "fra", "-until", "tomorrow"}, `-until "tomorrow": not an RFC 3339 time`},
		{"negative for", []string{"drain", "fra", "-for", "-1h"}, "-for -1h0m0s: must be positive"},
		{"no instance", []string{"list"}, "give -http URL or -config FILE"},
		{"no token to write", []string{"drain", "fra", "-http", "127.0.0.1:1"}, "give -token-file FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			err := run(context.Background(), append([]string{"admin"}, tc.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(stderr.String()+err.Error(), tc.want) {
				t.Fatalf("error %v, stderr %q; want %q", err, stderr.String(), tc.want)
			}
		})
	}
}
