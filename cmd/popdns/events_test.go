package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/events"
	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/pops"
	"github.com/rs/zerolog"
)

func eventLines(evs []events.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%s %s %s: %s", e.Kind, e.Level, e.Subject, e.Message))
	}
	return out
}

// TestOverrideEvents: the applier puts an override set, one cleared and
// one expired on the timeline, once each, whichever path (the admin API's
// Sync, the store's watch, the expiry timer) made it apply.
func TestOverrideEvents(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ctx := context.Background()
	store, err := overrides.OpenFile("", clock)
	if err != nil {
		t.Fatal(err)
	}
	// One in force before the start.
	if _, err := store.Put(ctx, overrides.Override{PoP: "sin", State: pops.Down, StateName: "down", Who: "carol", Set: t0}, 0); err != nil {
		t.Fatal(err)
	}
	ev := events.New(0, clock)
	ap := newOverrideApplier(store, &recordedStates{got: make(chan map[string]pops.AdminState, 10)}, zerolog.Nop())
	ap.now, ap.events = clock, ev
	steps := []struct {
		name string
		do   func() error
		want []string
	}{
		{"start", func() error { return nil }, []string{"override warn sin: down in force at start, set by carol"}},
		{"nothing changed", func() error { return nil }, nil},
		{"drain set", func() error {
			_, err := store.Put(ctx, overrides.Override{PoP: "fra", State: pops.Drain, StateName: "drain", Who: "alice", Why: "maintenance", Set: t0}, 0)
			return err
		}, []string{"override warn fra: drain set by alice: maintenance"}},
		{"drain cleared", func() error { return store.Delete(ctx, "fra", 1, "alice", "done") }, []string{"override info fra: drain set by alice cleared"}},
		{"drain with an expiry", func() error {
			_, err := store.Put(ctx, overrides.Override{PoP: "fra", State: pops.Drain, StateName: "drain", Who: "bob", Set: t0, Expires: t0.Add(time.Minute)}, 0)
			return err
		}, []string{"override warn fra: drain set by bob; expires 2026-12-01T12:01:00Z"}},
		{"expired", func() error {
			mu.Lock()
			now = t0.Add(time.Minute)
			mu.Unlock()
			return nil
		}, []string{"override info fra: drain set by bob expired"}},
		{"still expired", func() error { return nil }, nil},
	}
	seen := 0
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if err := ap.Sync(ctx); err != nil {
			t.Fatalf("%s: Sync: %v", st.name, err)
		}
		all := ev.List()
		got := eventLines(all[:len(all)-seen])
		seen = len(all)
		if strings.Join(got, "\n") != strings.Join(st.want, "\n") {
			t.Errorf("%s: new events\n%s\nwant\n%s", st.name, strings.Join(got, "\n"), strings.Join(st.want, "\n"))
		}
	}
}

// TestHealthEvents: a probe going down and up again records two events,
// the first an error naming the address and why.
func TestHealthEvents(t *testing.T) {
	ev := events.New(0, nil)
	record := healthEvents(ev)
	record(healthprobe.Change{IDs: []string{"ams-api", "ams-web"}, Addr: "192.0.2.1:443", Reason: "timeout", Err: "timeout: i/o timeout"})
	record(healthprobe.Change{IDs: []string{"ams-api", "ams-web"}, Addr: "192.0.2.1:443", Healthy: true})
	got := eventLines(ev.List())
	want := []string{
		"health info ams-api, ams-web: up: 192.0.2.1:443 passes its probe again",
		"health error ams-api, ams-web: down: 192.0.2.1:443 fails its probe: timeout: i/o timeout",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestBuildInfo(t *testing.T) {
	started := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	b := buildInfo(started)
	if b.Version != version || !b.StartedAt.Equal(started) || !strings.HasPrefix(b.GoVersion, "go") {
		t.Errorf("buildInfo = %+v", b)
	}
}
