package main

import (
	"context"
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
