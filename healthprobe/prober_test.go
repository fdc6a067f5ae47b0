package healthprobe

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/dnstest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
)

// fakeClock is an injected clock whose timers fire only on Advance.
type fakeClock struct {
	added chan struct{} // signalled when a timer is added

	mu     sync.Mutex // guards the fields below
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	clock *fakeClock
	at    time.Time
	c     chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_700_000_000, 0), added: make(chan struct{}, 1024)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	c.added <- struct{}{}
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.timers {
		if x == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// Advance moves the clock by d and fires every timer due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.c <- c.now
	}
	c.timers = kept
}

// waitTimers blocks until at least n timers are pending.
func (c *fakeClock) waitTimers(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.timers)
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-c.added:
		case <-deadline:
			t.Fatalf("%d timers pending, want %d", got, n)
		}
	}
}

// waitStatus blocks until cond holds for the published Status.
func waitStatus(t *testing.T, p *Prober, cond func(*Status) bool) *Status {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		s := p.Status()
		if cond(s) {
			return s
		}
		select {
		case <-s.superseded:
		case <-deadline:
			t.Fatalf("status never matched; last: gen %d %+v", s.Generation, s.Results)
		}
	}
}

// scripted is a probe function that returns the results a test feeds it.
type scripted struct {
	mu    sync.Mutex // guards calls
	calls map[string]int
	next  chan error
}

func newScripted() *scripted { return &scripted{calls: map[string]int{}, next: make(chan error)} }

func (s *scripted) probe(ctx context.Context, t Target) (time.Duration, error) {
	s.mu.Lock()
	s.calls[t.Addr]++
	s.mu.Unlock()
	select {
	case err := <-s.next:
		return 5 * time.Millisecond, err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (s *scripted) count(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[addr]
}

// start returns a running Prober with the fake clock and probe, stopped at
// test cleanup.
func start(t *testing.T, clk *fakeClock, pf probeFunc, reg prometheus.Registerer, opts ...Option) *Prober {
	t.Helper()
	p := New(zerolog.Nop(), reg, append([]Option{WithClock(clk.Now, clk.NewTimer),
		WithJitter(func(time.Duration) time.Duration { return 0 }), withProbe(pf)}, opts...)...)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := dnstest.Receive(t, done, 5*time.Second, "Run to return"); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return p
}

func TestProberRiseFall(t *testing.T) {
	clk := newFakeClock()
	sp := newScripted()
	reg := prometheus.NewPedanticRegistry()
	p := start(t, clk, sp.probe, reg)
	tg := Target{ID: "pop1", Kind: KindTCP, Addr: "10.0.0.1:80", Interval: 10 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3}
	if err := p.SetTargets([]Target{tg}); err != nil {
		t.Fatal(err)
	}
	if r, ok := p.Status().Result("pop1"); !ok || !r.Healthy || r.Probed() {
		t.Fatalf("before the first probe: %+v %t, want healthy and unprobed", r, ok)
	}
	// Every outcome and the histogram exist, at zero, before any probe.
	if n := seriesCount(t, reg, "popdns_probe_results_total"); n != len(outcomes) {
		t.Errorf("%d results_total series before the first probe, want %d", n, len(outcomes))
	}
	if n := seriesCount(t, reg, "popdns_probe_duration_seconds"); n != 1 {
		t.Errorf("%d duration_seconds series before the first probe, want 1", n)
	}
	select {
	case <-p.FirstRoundDone():
		t.Fatal("first round done before any result")
	default:
	}

	refused := &ProbeError{ReasonRefused, errors.New("refused")}
	steps := []struct {
		err  error
		want bool
	}{
		{nil, true},      // first round: up
		{refused, true},  // 1 of 3
		{refused, true},  // 2 of 3
		{refused, false}, // fall
		{nil, false},     // 1 of 2
		{refused, false}, // resets the rise count
		{nil, false},     // 1 of 2
		{nil, true},      // rise
	}
	for i, st := range steps {
		if i > 0 {
			clk.waitTimers(t, 1)
			clk.Advance(tg.Interval)
		}
		before := p.Status()
		gen := before.Generation
		sp.next <- st.err
		s := waitStatus(t, p, func(s *Status) bool { return s.Generation > gen })
		r, _ := s.Result("pop1")
		if r.Healthy != st.want {
			t.Fatalf("step %d: healthy = %t, want %t (%+v)", i, r.Healthy, st.want, r)
		}
		// The RTT is constant, so only a change of health may move
		// Steering, which decision caches key on.
		was, _ := before.Result("pop1")
		if moved := s.Steering != before.Steering; moved != (was.Healthy != r.Healthy) {
			t.Errorf("step %d: Steering %d -> %d with healthy %t -> %t", i, before.Steering, s.Steering, was.Healthy, r.Healthy)
		}
		if moved := s.Health != before.Health; moved != (was.Healthy != r.Healthy) {
			t.Errorf("step %d: Health %d -> %d with healthy %t -> %t", i, before.Health, s.Health, was.Healthy, r.Healthy)
		}
		if !r.Checked.Equal(clk.Now()) {
			t.Errorf("step %d: Checked = %v, want %v", i, r.Checked, clk.Now())
		}
		if i == 0 {
			dnstest.Receive(t, p.FirstRoundDone(), 5*time.Second, "the first round")
		}
		up := metricValue(t, reg, "popdns_probe_up", "pop1", "")
		if (up == 1) != st.want {
			t.Errorf("step %d: popdns_probe_up = %v", i, up)
		}
	}
	if got := metricValue(t, reg, "popdns_probe_errors_total", "pop1", ReasonRefused); got != 4 {
		t.Errorf("errors_total{refused} = %v, want 4", got)
	}
	if got := metricValue(t, reg, "popdns_probe_rtt_seconds", "pop1", ""); got != 0.005 {
		t.Errorf("rtt_seconds = %v, want 0.005", got)
	}
	for outcome, want := range map[string]float64{"ok": 4, ReasonRefused: 4, ReasonTimeout: 0, ReasonOther: 0} {
		if got := testutil.ToFloat64(p.metrics.results.WithLabelValues("pop1", outcome)); got != want {
			t.Errorf("results_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	// Only the four successes have an RTT to observe.
	if n := testutil.CollectAndCount(p.metrics.duration); n != 1 {
		t.Errorf("%d duration series, want 1", n)
	}
	h := &dto.Metric{}
	if err := p.metrics.duration.WithLabelValues("pop1").(prometheus.Metric).Write(h); err != nil {
		t.Fatal(err)
	}
	if got := h.GetHistogram().GetSampleCount(); got != 4 {
		t.Errorf("duration_seconds count = %d, want 4 (the successes)", got)
	}
	if n := sp.count(tg.Addr); n != len(steps) {
		t.Errorf("%d probes, want %d", n, len(steps))
	}
}

// TestProberOnChange: a probe going down and up again reports two
// changes, and the results between them none.
func TestProberOnChange(t *testing.T) {
	clk := newFakeClock()
	sp := newScripted()
	var mu sync.Mutex
	var changes []Change
	p := start(t, clk, sp.probe, prometheus.NewRegistry(), WithOnChange(func(c Change) {
		mu.Lock()
		defer mu.Unlock()
		c.IDs = slices.Clone(c.IDs)
		changes = append(changes, c)
	}))
	tg := Target{ID: "ams-web", Kind: KindTCP, Addr: "10.0.0.1:80", Interval: 10 * time.Second, Timeout: time.Second, Rise: 1, Fall: 2}
	same := tg
	same.ID = "ams-api" // shares the probe
	if err := p.SetTargets([]Target{tg, same}); err != nil {
		t.Fatal(err)
	}
	refused := &ProbeError{ReasonRefused, errors.New("connection refused")}
	for i, err := range []error{nil, refused, refused, refused, nil, nil} {
		if i > 0 {
			clk.waitTimers(t, 1)
			clk.Advance(tg.Interval)
		}
		gen := p.Status().Generation
		sp.next <- err
		waitStatus(t, p, func(s *Status) bool { return s.Generation > gen })
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 2 {
		t.Fatalf("changes = %+v, want down then up", changes)
	}
	down, up := changes[0], changes[1]
	ids := []string{"ams-api", "ams-web"}
	if down.Healthy || down.Reason != ReasonRefused || down.Err != "refused: connection refused" || !slices.Equal(down.IDs, ids) || down.Addr != tg.Addr {
		t.Errorf("down = %+v", down)
	}
	if !up.Healthy || up.Reason != "" || up.Err != "" || !slices.Equal(up.IDs, ids) || !up.At.After(down.At) {
		t.Errorf("up = %+v (down at %v)", up, down.At)
	}
}

// probeCounter succeeds at once and counts probes per address.
type probeCounter struct {
	mu    sync.Mutex // guards calls
	calls map[string]int
}

func (c *probeCounter) probe(_ context.Context, t Target) (time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[t.Addr]++
	return time.Millisecond, nil
}

func TestProberSetTargets(t *testing.T) {
	base := runtime.NumGoroutine()
	clk := newFakeClock()
	pc := &probeCounter{calls: map[string]int{}}
	reg := prometheus.NewRegistry()
	p := New(zerolog.Nop(), reg, WithClock(clk.Now, clk.NewTimer), withProbe(pc.probe))
	ctx, cancel := context.WithCancel(t.Context())
	runDone := make(chan error, 1)

	a1 := Target{ID: "a1", Kind: KindTCP, Addr: "10.0.0.1:80"}
	a2 := Target{ID: "a2", Kind: KindTCP, Addr: "10.0.0.1:80", Rise: DefaultRise} // same probe as a1
	b := Target{ID: "b", Kind: KindTCP, Addr: "10.0.0.2:80"}
	// Targets set before Run start with it.
	if err := p.SetTargets([]Target{a1, a2, b, a1}); err != nil {
		t.Fatal(err)
	}
	go func() { runDone <- p.Run(ctx) }()
	dnstest.Receive(t, p.FirstRoundDone(), 5*time.Second, "the first round")
	s := waitStatus(t, p, func(s *Status) bool { return len(s.Results) == 3 })
	for _, id := range []string{"a1", "a2", "b"} {
		if r, _ := s.Result(id); !r.Probed() || !r.Healthy {
			t.Errorf("%s: %+v", id, r)
		}
	}
	clk.waitTimers(t, 2)
	p.mu.Lock()
	if len(p.workers) != 2 {
		t.Errorf("%d workers, want 2 (a1 and a2 deduplicated)", len(p.workers))
	}
	var bDone chan struct{}
	for _, w := range p.workers {
		if w.target.Addr == b.Addr {
			bDone = w.done
		}
	}
	p.mu.Unlock()
	pc.mu.Lock()
	if pc.calls[a1.Addr] != 1 || pc.calls[b.Addr] != 1 {
		t.Errorf("calls = %v, want one per distinct probe", pc.calls)
	}
	pc.mu.Unlock()

	// Dropping b stops its goroutine and its metrics; a1 keeps its state.
	if err := p.SetTargets([]Target{a1, {ID: "c", Kind: KindTCP, Addr: "10.0.0.3:80"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bDone:
	case <-time.After(5 * time.Second):
		t.Fatal("removed probe's goroutine did not exit")
	}
	s = waitStatus(t, p, func(s *Status) bool {
		r, ok := s.Result("c")
		return ok && r.Probed()
	})
	if _, ok := s.Result("b"); ok {
		t.Error("b still in status")
	}
	if _, ok := s.Result("a2"); ok {
		t.Error("a2 still in status")
	}
	if r, _ := s.Result("a1"); !r.Probed() {
		t.Error("a1 lost its state")
	}
	if n := seriesCount(t, reg, "popdns_probe_up"); n != 2 {
		t.Errorf("%d up series, want 2 (a1, c)", n)
	}
	if n := seriesCount(t, reg, "popdns_probe_results_total"); n != 2*len(outcomes) {
		t.Errorf("%d results_total series, want %d (a1, c)", n, 2*len(outcomes))
	}
	if n := seriesCount(t, reg, "popdns_probe_duration_seconds"); n != 2 {
		t.Errorf("%d duration_seconds series, want 2 (a1, c)", n)
	}

	// Bad input changes nothing.
	if err := p.SetTargets([]Target{a1, {ID: "a1", Kind: KindTCP, Addr: "10.9.9.9:1"}}); err == nil {
		t.Error("one ID naming two probes was accepted")
	}
	if err := p.SetTargets([]Target{{ID: "x"}}); err == nil {
		t.Error("invalid target accepted")
	}
	if _, ok := p.Status().Result("c"); !ok {
		t.Error("failed SetTargets changed the status")
	}

	cancel()
	if err := dnstest.Receive(t, runDone, 5*time.Second, "Run to return"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := p.Run(t.Context()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v", err)
	}
	// No goroutine outlives Run; allow the runtime a bounded time to settle.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d, want <= %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func TestProberJitter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		jitter time.Duration
		want   time.Duration
	}{
		{"interval - jitter(4s)", 4 * time.Second, 6 * time.Second},
		{"NoJitter waits the interval", NoJitter, 8 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			pc := &probeCounter{calls: map[string]int{}}
			var bad atomic.Bool // the jitter function got no positive most
			p := New(zerolog.Nop(), prometheus.NewRegistry(), WithClock(clk.Now, clk.NewTimer), withProbe(pc.probe),
				WithJitter(func(most time.Duration) time.Duration {
					bad.Store(bad.Load() || most <= 0)
					return most / 2
				}))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			go func() { _ = p.Run(ctx) }()
			if err := p.SetTargets([]Target{{ID: "a", Kind: KindTCP, Addr: "h:1", Interval: 8 * time.Second, Timeout: time.Second, Jitter: tc.jitter}}); err != nil {
				t.Fatal(err)
			}
			dnstest.Receive(t, p.FirstRoundDone(), 5*time.Second, "the first round")
			clk.waitTimers(t, 1)
			clk.mu.Lock()
			wait := clk.timers[0].at.Sub(clk.now)
			clk.mu.Unlock()
			if wait != tc.want || bad.Load() {
				t.Errorf("first wait = %v, want %v; jitter function called with most <= 0: %v", wait, tc.want, bad.Load())
			}
		})
	}
}

func TestProberRealProbe(t *testing.T) {
	// End to end with the real TCP probe: a closed port goes down on the
	// first round, logged once.
	clk := newFakeClock()
	var logs strings.Builder
	var logMu sync.Mutex
	p := New(zerolog.New(zerolog.SyncWriter(&lockedWriter{&logMu, &logs})), prometheus.NewRegistry(), WithClock(clk.Now, clk.NewTimer))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = p.Run(ctx) }()
	if err := p.SetTargets([]Target{{ID: "dead", Kind: KindTCP, Addr: closedPort(t)}}); err != nil {
		t.Fatal(err)
	}
	dnstest.Receive(t, p.FirstRoundDone(), 5*time.Second, "the first round")
	r, _ := p.Status().Result("dead")
	if r.Healthy || r.LastReason != ReasonRefused {
		t.Fatalf("dead target: %+v", r)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if n := strings.Count(logs.String(), "probe state changed"); n != 1 {
		t.Errorf("%d state-change log lines, want 1:\n%s", n, logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// metricValue returns the value of the gauge or counter name with the
// given target (and reason, if not empty) labels, or -1 if absent.
func metricValue(t *testing.T, g prometheus.Gatherer, name, target, reason string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if (l.GetName() == "target" && l.GetValue() != target) || (l.GetName() == "reason" && l.GetValue() != reason) {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// seriesCount returns how many series the metric name has.
func seriesCount(t *testing.T, g prometheus.Gatherer, name string) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}
