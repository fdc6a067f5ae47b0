package fleet_test

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/popdns/popdns/internal/fleet"
	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/pops"
)

// How cmd/popdns wires a fleet: open it, watch the overrides and the
// observations in the errgroup, write through the Store, close on the
// way out.
func ExampleOpen() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := fleet.Config{Instance: "ns1-fra", Region: "eu", NATS: []string{"nats://10.0.0.5:4222"}}
	f, err := fleet.Open(ctx, cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		return // a *fleet.ConfigError names the field
	}
	defer f.Close()

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return f.Overrides().Watch(ctx, func(list []overrides.Override) {
			_ = overrides.InForce(list, time.Now()) // → dnsserver
		})
	})
	g.Go(func() error {
		return f.WatchObservations(ctx, func(byProbe map[string][]fleet.Observation) {
			_ = byProbe // → the health rule
		})
	})

	// The admin API's drain: compare and set on the revision it read.
	_, err = f.Overrides().Put(ctx, overrides.Override{PoP: "fra", State: pops.Drain, Who: "alice", Why: "maintenance", Set: time.Now()}, 0)
	switch {
	case errors.Is(err, overrides.ErrConflict): // 409: read again
	case errors.Is(err, overrides.ErrUnavailable): // 503: NATS is away
	}
	// Each probe round: this instance's verdict.
	_ = f.Publish(ctx, "web.fra", fleet.Observation{Healthy: true, RTT: 12 * time.Millisecond, Checked: time.Now()})

	cancel()
	_ = g.Wait()
}
