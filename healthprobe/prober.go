package healthprobe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Timer is the part of *time.Timer a Prober uses, so tests can inject time.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// Option configures a Prober in New.
type Option func(*Prober)

// WithClock replaces the wall clock used for scheduling and timestamps:
// now reads the time and newTimer returns a Timer that fires after d.
// Probe RTTs and per-probe timeouts still use real time.
func WithClock(now func() time.Time, newTimer func(d time.Duration) Timer) Option {
	return func(p *Prober) { p.now, p.newTimer = now, newTimer }
}

// WithJitter replaces the jitter function: the wait after a target's first
// probe is its interval minus jitter(Target.Jitter). The default is uniform
// in [0, Target.Jitter), so probes started together do not stay in
// lockstep.
func WithJitter(jitter func(most time.Duration) time.Duration) Option {
	return func(p *Prober) { p.jitter = jitter }
}

// Change is a probe's change of state, as WithOnChange reports it.
type Change struct {
	// IDs are the probe IDs that share the probe, sorted.
	IDs  []string
	Addr string
	// Healthy is the new state; Reason and Err say why a probe went
	// down (Err is "" when it went up).
	Healthy bool
	Reason  string
	Err     string
	At      time.Time
}

// WithOnChange has f called at each change of a probe's state (rise or
// fall reached, or a first result that is a failure), in the order of the
// changes. f runs with the Prober's lock held: it must be quick and must
// not call the Prober. It must not keep Change.IDs.
func WithOnChange(f func(Change)) Option {
	return func(p *Prober) { p.onChange = f }
}

// withProbe replaces the probe function (tests).
func withProbe(f probeFunc) Option {
	return func(p *Prober) { p.probe = f }
}

// Prober runs the configured probes and publishes their Status. Create it
// with New, start it with Run, and change its targets with SetTargets at any
// time. All methods are safe for concurrent use.
type Prober struct {
	log      zerolog.Logger
	metrics  *metrics
	now      func() time.Time
	newTimer func(time.Duration) Timer
	jitter   func(time.Duration) time.Duration
	probe    probeFunc
	onChange func(Change) // nil: nobody is told

	status    atomic.Pointer[Status] // never nil after New
	firstDone chan struct{}          // closed once the first round is done
	wg        sync.WaitGroup         // one per running worker goroutine

	// mu guards the fields below.
	mu         sync.Mutex
	workers    map[string]*worker // by Target.Key
	runCtx     context.Context    // nil until Run; workers derive from it
	stopped    bool               // Run has returned
	configured bool               // SetTargets has succeeded once
	firstClose bool               // firstDone is closed
	generation uint64
}

// worker is one deduplicated probe and the IDs it reports under.
type worker struct {
	target Target // validated; ID is the first of ids
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine exits; nil if never started

	// guarded by Prober.mu
	ids   []string // sorted
	state *tracker
}

// New returns a Prober with no targets that logs to log and registers its
// metrics with reg. It panics if reg is nil.
func New(log zerolog.Logger, reg prometheus.Registerer, opts ...Option) *Prober {
	if reg == nil {
		panic("healthprobe: New with nil Registerer")
	}
	p := &Prober{
		log:      log.With().Str("component", "healthprobe").Logger(),
		metrics:  newMetrics(reg),
		now:      time.Now,
		newTimer: func(d time.Duration) Timer { return realTimer{time.NewTimer(d)} },
		jitter: func(most time.Duration) time.Duration {
			if most < 1 {
				return 0
			}
			return rand.N(most)
		},
		probe:     probe,
		firstDone: make(chan struct{}),
		workers:   map[string]*worker{},
	}
	for _, o := range opts {
		o(p)
	}
	p.status.Store(&Status{Results: map[string]Result{}, superseded: make(chan struct{})})
	return p
}

// Status returns the latest snapshot; never nil. Do not modify it.
func (p *Prober) Status() *Status { return p.status.Load() }

// FirstRoundDone returns a channel closed once SetTargets has been called
// and every target has at least one result. Each probe is bounded by its
// timeout, so after Run starts this takes at most the longest timeout.
func (p *Prober) FirstRoundDone() <-chan struct{} { return p.firstDone }

// ErrRunning is returned by Run if the Prober is or was already running.
var ErrRunning = errors.New("healthprobe: Run called twice")

// Run probes the targets until ctx is done, then stops every probe,
// waits for their goroutines and returns nil.
func (p *Prober) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.runCtx != nil || p.stopped {
		p.mu.Unlock()
		return ErrRunning
	}
	p.runCtx = ctx
	for _, w := range p.workers {
		p.startLocked(w)
	}
	p.mu.Unlock()

	<-ctx.Done()

	p.mu.Lock()
	p.stopped = true
	for _, w := range p.workers {
		if w.cancel != nil {
			w.cancel()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// SetTargets replaces the set of probes. Targets are validated first; on
// an error nothing changes. Targets with equal Keys share one probe.
// Probes whose Key is new start (once Run runs), probes no longer named
// stop, and the others keep their state. It is an error for one ID to name
// two different probes.
func (p *Prober) SetTargets(targets []Target) error {
	want := map[string]*worker{}
	byID := map[string]string{}
	for _, t := range targets {
		v, err := t.Validate()
		if err != nil {
			return err
		}
		k := v.Key()
		if prev, ok := byID[v.ID]; ok && prev != k {
			return fmt.Errorf("healthprobe: target %s names two different probes", v.ID)
		}
		byID[v.ID] = k
		w, ok := want[k]
		if !ok {
			w = &worker{target: v}
			want[k] = w
		}
		if !slices.Contains(w.ids, v.ID) {
			w.ids = append(w.ids, v.ID)
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	for k, old := range p.workers {
		nw, keep := want[k]
		for _, id := range old.ids {
			if !keep || !slices.Contains(nw.ids, id) {
				p.metrics.forget(id)
			}
		}
		if !keep {
			if old.cancel != nil {
				old.cancel()
			}
			delete(p.workers, k)
			continue
		}
		old.ids = nw.ids
		slices.Sort(old.ids)
	}
	for id := range byID {
		p.metrics.create(id)
	}
	for k, w := range want {
		if _, ok := p.workers[k]; ok {
			continue
		}
		slices.Sort(w.ids)
		w.target.ID = w.ids[0]
		w.state = newTracker(w.target.Rise, w.target.Fall)
		p.workers[k] = w
		if p.runCtx != nil && !p.stopped {
			p.startLocked(w)
		}
	}
	p.configured = true
	p.publishLocked()
	return nil
}

// startLocked starts w's goroutine. p.mu must be held and p.runCtx set.
func (p *Prober) startLocked(w *worker) {
	ctx, cancel := context.WithCancel(p.runCtx)
	w.cancel = cancel
	w.done = make(chan struct{})
	p.wg.Add(1)
	go p.runWorker(ctx, w)
}

// runWorker probes w.target right away, then after interval minus jitter,
// then every interval, until ctx is done.
func (p *Prober) runWorker(ctx context.Context, w *worker) {
	defer p.wg.Done()
	defer close(w.done)
	iv := w.target.Interval
	next := p.now()
	wait := iv
	if j := w.target.Jitter; j > 0 { // not NoJitter
		wait -= min(p.jitter(j), iv)
	}
	for {
		p.probeOnce(ctx, w)
		next = next.Add(wait)
		wait = iv
		now := p.now()
		if next.Before(now) {
			next = now // fell behind (e.g. suspend): skip missed rounds
		}
		tm := p.newTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			tm.Stop()
			return
		case <-tm.C():
		}
	}
}

// probeOnce runs one probe bounded by the target's timeout and records it,
// unless the worker was stopped meanwhile.
func (p *Prober) probeOnce(ctx context.Context, w *worker) {
	pctx, cancel := context.WithTimeout(ctx, w.target.Timeout)
	rtt, err := p.probe(pctx, w.target)
	cancel()
	if ctx.Err() != nil {
		return
	}
	reason := ""
	if err != nil {
		reason = classify(err)
	}
	p.record(w, rtt, err, reason)
}

// record folds one result into w's state, exports it and publishes.
func (p *Prober) record(w *worker, rtt time.Duration, err error, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.workers[w.target.Key()] != w {
		return // removed by SetTargets while probing
	}
	changed := w.state.observe(p.now(), rtt, err, reason)
	r := w.state.result()
	for _, id := range w.ids {
		p.metrics.observe(id, r, rtt, reason)
	}
	if changed { // the first success is no change: unprobed counts as up
		ev := p.log.Info()
		if !r.Healthy {
			ev = p.log.Warn().Str("reason", reason).Err(err)
		}
		ev.Strs("targets", w.ids).Str("addr", w.target.Addr).Bool("healthy", r.Healthy).
			Msg("probe state changed")
		if p.onChange != nil {
			c := Change{IDs: w.ids, Addr: w.target.Addr, Healthy: r.Healthy, At: r.Checked}
			if !r.Healthy {
				c.Reason, c.Err = r.LastReason, r.LastError
			}
			p.onChange(c)
		}
	}
	p.publishLocked()
}

// publishLocked stores a new Status built from every worker and closes
// FirstRoundDone once all have a result. p.mu must be held.
func (p *Prober) publishLocked() {
	p.generation++
	s := &Status{
		Generation: p.generation,
		Results:    make(map[string]Result, len(p.workers)),
		superseded: make(chan struct{}),
	}
	all := true
	for _, w := range p.workers {
		r := w.state.result()
		all = all && w.state.probed
		for _, id := range w.ids {
			s.Results[id] = r
		}
	}
	old := p.status.Load()
	s.Steering, s.Health = old.Steering, old.Health
	health, steering := s.Changes(old)
	if steering {
		s.Steering++
	}
	if health {
		s.Health++
	}
	p.status.Store(s)
	close(old.superseded)
	if all && p.configured && !p.firstClose {
		p.firstClose = true
		close(p.firstDone)
	}
}
