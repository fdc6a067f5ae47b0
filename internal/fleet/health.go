package fleet

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/popdns/popdns/healthprobe"
	"github.com/prometheus/client_golang/prometheus"
)

// Health is the fleet's view of the probes: this instance publishes its
// own verdicts, watches every instance's, and combines them by the
// configured rule (healthprobe.Combine), so that every instance judges
// every target the same way. Status is what the query path reads; it
// never waits on NATS: with too few fresh observers, or NATS away, the
// combination falls back to the local probes. Health is safe for
// concurrent use; Run drives it.
type Health struct {
	f       *Fleet
	local   func() *healthprobe.Status
	rule    healthprobe.Rule
	combine sync.Mutex // serialises recomputations, so that Follow numbers in order
	current atomic.Pointer[healthprobe.Status]
	// inputs of the last combination, to recompute only on change.
	lastLocal *healthprobe.Status
	observed  atomic.Pointer[map[string][]Observation]
	lastObs   *map[string][]Observation
	// published is what was last published per probe, and when.
	published map[string]publishedObs

	divergent prometheus.Gauge
	observers *prometheus.GaugeVec
}

type publishedObs struct {
	obs Observation
	at  time.Time
}

// NewHealth is the fleet's health over local, this instance's own probe
// results (the Prober's Status). Its metrics go to the fleet's registry.
func (f *Fleet) NewHealth(local func() *healthprobe.Status) (*Health, error) {
	rule, err := healthprobe.ParseRule(f.cfg.Health, fractionOf(f.cfg))
	if err != nil {
		return nil, err
	}
	rule.MaxAge = f.cfg.ObservationTTL
	h := &Health{f: f, local: local, rule: rule, published: map[string]publishedObs{},
		divergent: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "popdns", Subsystem: "fleet", Name: "divergent_probes",
			Help: "Probes whose local verdict differs from the fleet's (under health: local, from what majority would decide)."}),
		observers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "popdns", Subsystem: "fleet", Name: "observers",
			Help: "Fresh observers of each probe, this instance included once it publishes."}, []string{"probe"}),
	}
	for _, c := range []prometheus.Collector{h.divergent, h.observers} {
		if err := f.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// fractionOf is the fraction the rule takes: only the fraction rule has
// one.
func fractionOf(c Config) float64 {
	if c.Health == "fraction" {
		return c.Fraction
	}
	return 0
}

// Status is the combined health: the fleet's verdicts where enough
// instances observe a probe, this instance's own elsewhere. Until the
// first combination, it is the local one.
func (h *Health) Status() *healthprobe.Status {
	if st := h.current.Load(); st != nil {
		return st
	}
	return h.local()
}

// Run publishes this instance's verdicts and recombines whenever its own
// or the fleet's change, until ctx ends. every is how often it looks at
// the local probes (a probe interval's fraction: 1 s is plenty).
func (h *Health) Run(ctx context.Context, every time.Duration) error {
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- h.f.WatchObservations(ctx, func(m map[string][]Observation) {
			h.observed.Store(&m)
			h.recombine(time.Now())
		})
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			<-watchDone
			return nil
		case err := <-watchDone:
			return err
		case now := <-tick.C:
			h.publish(ctx, now)
			h.recombine(now)
		}
	}
}

// publish writes this instance's verdict on each probe that changed, or
// that was last written a third of the observation TTL ago (so that it
// stays fresh). A failed write is tried again next round.
func (h *Health) publish(ctx context.Context, now time.Time) {
	st := h.local()
	if st == nil {
		return
	}
	refresh := h.f.cfg.ObservationTTL / 3
	for id, r := range st.Results {
		obs, ok := healthprobe.ObservationOf(h.f.cfg.Instance, h.f.cfg.Region, r)
		if !ok {
			continue
		}
		last, seen := h.published[id]
		if seen && last.obs == obs && now.Sub(last.at) < refresh {
			continue
		}
		if err := h.f.Publish(ctx, id, obs); err != nil {
			continue
		}
		h.published[id] = publishedObs{obs: obs, at: now}
	}
}

// recombine combines the local and the fleet's verdicts again when either
// changed, and publishes the result for Status.
func (h *Health) recombine(now time.Time) {
	h.combine.Lock()
	defer h.combine.Unlock()
	local, obs := h.local(), h.observed.Load()
	if local == h.lastLocal && obs == h.lastObs && h.current.Load() != nil {
		return
	}
	h.lastLocal, h.lastObs = local, obs
	var fleet map[string][]Observation
	if obs != nil {
		fleet = *obs
	}
	st, div := healthprobe.Combine(local, fleet, h.rule, h.f.cfg.MinObservers, h.f.cfg.Instance, now)
	if st == nil {
		return
	}
	prev := h.current.Load()
	if prev == nil {
		// Until now Status handed out the local status, and caches keyed
		// their decisions on its numbers: the first combination follows
		// it, so that a verdict the fleet overturns moves them on.
		prev = local
	}
	st.Follow(prev)
	h.current.Store(st)
	h.divergent.Set(float64(len(div)))
	for id, r := range st.Results {
		h.observers.WithLabelValues(id).Set(float64(r.Quorum.Observers))
	}
}

// Divergent is the gauge of probes whose local verdict differs from the
// fleet's, for tests and the status.
func (h *Health) Divergent() prometheus.Gauge { return h.divergent }

// Observations are the fleet's observations as last received, by probe
// ID, those older than the observation TTL left out: what the combination
// counted, for the status.
func (h *Health) Observations() map[string][]Observation {
	p := h.observed.Load()
	if p == nil {
		return nil
	}
	now := time.Now()
	out := make(map[string][]Observation, len(*p))
	for id, obs := range *p {
		for _, o := range obs {
			if h.rule.MaxAge <= 0 || now.Sub(o.Checked) <= h.rule.MaxAge {
				out[id] = append(out[id], o)
			}
		}
	}
	return out
}
