package main

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/popdns/popdns/internal/events"
	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/pops"
	"github.com/rs/zerolog"
)

// popStates is where the overrides in force go: *dnsserver.Server.
type popStates interface {
	SetPoPStates(map[string]pops.AdminState)
}

// overrideApplier hands the overrides in force to the DNS server: at
// start, whenever the store reports a change, after each write of the
// admin API, and when the next one expires, so that an expiry lifts a
// drain by itself.
type overrideApplier struct {
	store overrides.Store
	dns   popStates
	now   func() time.Time
	// newTimer is the timer of the next expiry; it returns the channel
	// and a stop function.
	newTimer func(time.Duration) (<-chan time.Time, func() bool)
	log      zerolog.Logger
	// wake tells Run that the next expiry may have changed.
	wake chan struct{}
	// resync is how often Run reads the store whatever its watch says
	// (0: never): a backstop that bounds how long a change a watch
	// missed stays unapplied.
	resync time.Duration

	mu sync.Mutex // guards the fields below; held across a read of the store and its application
	// applied is the states last handed to the server; next is the
	// expiry after which they change.
	applied map[string]pops.AdminState
	next    time.Time
	// events is the timeline each override set, cleared or expired goes
	// to (nil: none); inForce the overrides last seen in force.
	events  *events.Log
	inForce map[string]overrides.Override
}

func newOverrideApplier(store overrides.Store, dns popStates, log zerolog.Logger) *overrideApplier {
	return &overrideApplier{store: store, dns: dns, now: time.Now, log: log.With().Str("component", "overrides").Logger(),
		newTimer: func(d time.Duration) (<-chan time.Time, func() bool) {
			t := time.NewTimer(d)
			return t.C, t.Stop
		},
		wake: make(chan struct{}, 1), resync: overrideResync}
}

// overrideResync is how often the overrides are read again without a
// change reported. A watch over NATS can miss a write while its cluster
// elects new leaders (a server lost, or a cluster still forming) until its
// stall check notices; one read of a small bucket every few seconds makes
// sure a drain applies within this long anyway.
const overrideResync = 5 * time.Second

// Sync reads the store and applies what is in force now. Reading under
// the lock means that of two calls racing, the later one applies the
// later list.
func (ap *overrideApplier) Sync(ctx context.Context) error {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	list, err := ap.store.List(ctx)
	if err != nil {
		return err
	}
	now := ap.now()
	ap.inForce = overrideEvents(ap.events, ap.inForce, list, now)
	states := overrides.InForce(list, now)
	if ap.applied == nil || !maps.Equal(states, ap.applied) {
		ap.dns.SetPoPStates(states)
		ev := ap.log.Info()
		for pop, st := range states {
			ev = ev.Str(pop, st.String())
		}
		ev.Int("overrides", len(states)).Msg("PoP overrides in force")
		ap.applied = states
	}
	if next := overrides.NextExpiry(list, now); !next.Equal(ap.next) {
		ap.next = next
		select {
		case ap.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

func (ap *overrideApplier) nextExpiry() time.Time {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	return ap.next
}

// Run watches the store and the expiries until ctx ends.
func (ap *overrideApplier) Run(ctx context.Context) error {
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- ap.store.Watch(ctx, func([]overrides.Override) {
			if err := ap.Sync(ctx); err != nil && ctx.Err() == nil {
				ap.log.Error().Err(err).Msg("cannot read the overrides; the last ones read stay in force")
			}
		})
	}()
	var resync <-chan time.Time
	if ap.resync > 0 {
		t := time.NewTicker(ap.resync)
		defer t.Stop()
		resync = t.C
	}
	for {
		var fire <-chan time.Time
		stop := func() bool { return false }
		if next := ap.nextExpiry(); !next.IsZero() {
			fire, stop = ap.newTimer(max(next.Sub(ap.now()), 0))
		}
		select {
		case <-ctx.Done():
			stop()
			// A store's Watch may end with ctx's error: the end asked for.
			if err := <-watchDone; ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
				return err
			}
			return nil
		case err := <-watchDone:
			stop()
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return nil // the end asked for, seen here first
			}
			return err
		case <-ap.wake:
			stop()
		case <-fire:
			if err := ap.Sync(ctx); err != nil && ctx.Err() == nil {
				ap.log.Error().Err(err).Msg("cannot read the overrides; the last ones read stay in force")
			}
		case <-resync:
			stop()
			if err := ap.Sync(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, overrides.ErrUnavailable) {
				ap.log.Error().Err(err).Msg("cannot read the overrides; the last ones read stay in force")
			}
		}
	}
}
