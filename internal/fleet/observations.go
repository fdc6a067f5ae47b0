package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/popdns/popdns/healthprobe"
)

// Observation is one instance's verdict on one probe, as the fleet
// shares it: healthprobe's, which Combine reads.
type Observation = healthprobe.Observation

// Publish writes obs as this instance's observation of probeID (key
// <probe>.<instance>), to expire ObservationTTL after this write unless
// written again. An empty Instance or Region is this instance's. While
// NATS is away it fails at once with overrides.ErrUnavailable; the
// caller just publishes again next round.
func (f *Fleet) Publish(ctx context.Context, probeID string, obs Observation) error {
	if obs.Instance == "" {
		obs.Instance = f.cfg.Instance
	}
	if obs.Region == "" {
		obs.Region = f.cfg.Region
	}
	_, kv, err := f.bound()
	if err != nil {
		return err
	}
	data, err := json.Marshal(obs)
	if err != nil {
		return fmt.Errorf("fleet: observation of %s: %w", probeID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	key := observationKey(probeID, obs.Instance)
	if f.obsPerMsgTTL {
		m := &nats.Msg{Subject: "$KV." + kv.Bucket() + "." + key, Data: data}
		_, err = f.js.PublishMsg(ctx, m, jetstream.WithMsgTTL(f.cfg.ObservationTTL))
	} else {
		_, err = kv.Put(ctx, key, data)
	}
	if err != nil {
		return unavailable(fmt.Errorf("observation of %s: %w", probeID, err))
	}
	return nil
}

// WatchObservations hands fn, per probe ID, the fresh observations of
// every instance (sorted by instance) once the bucket is read and after
// every change, an expiry included. fn owns the map. It returns ctx's
// error when ctx ends, nil when the fleet closes; while NATS is away it
// reports nothing (the last map stands; the health rule decides how
// long to trust it, by Checked).
func (f *Fleet) WatchObservations(ctx context.Context, fn func(map[string][]Observation)) error {
	if err := f.waitReady(ctx); err != nil {
		return closedNil(err)
	}
	return closedNil(f.follow(ctx, f.obsKV, f.cfg.ObservationTTL, func(m map[string]jetstream.KeyValueEntry) {
		out := map[string][]Observation{}
		for _, e := range m {
			probe, inst, err := splitObservationKey(e.Key())
			if err != nil {
				f.log.Debug().Str("key", e.Key()).Msg("fleet: observation under a foreign key; ignored")
				continue
			}
			var o Observation
			if err := json.Unmarshal(e.Value(), &o); err != nil || o.Instance != inst {
				f.log.Debug().Str("key", e.Key()).Msg("fleet: unreadable observation; ignored")
				continue
			}
			out[probe] = append(out[probe], o)
		}
		for _, list := range out {
			slices.SortFunc(list, func(a, b Observation) int { return strings.Compare(a.Instance, b.Instance) })
		}
		fn(out)
	}))
}
