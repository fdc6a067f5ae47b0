package status

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
)

// What cmd/popdns wires in.
var (
	_ Server = (*dnsserver.Server)(nil)
	_ Health = (*healthprobe.Prober)(nil)
)

type fakeServer struct {
	snap    *zones.Snapshot
	serving atomic.Bool
}

func (f *fakeServer) Zones() *zones.Snapshot      { return f.snap }
func (f *fakeServer) Overrides() *steer.Overrides { return nil }
func (f *fakeServer) Serving() bool               { return f.serving.Load() }

type fakeHealth struct{ firstDone chan struct{} }

func (f fakeHealth) Status() *healthprobe.Status     { return &healthprobe.Status{} }
func (f fakeHealth) FirstRoundDone() <-chan struct{} { return f.firstDone }

type fakeFiles map[string]string

func (f fakeFiles) FileErrors() map[string]string { return f }

const exampleZone = `origin: example.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: 192.0.2.53
`

func testSnapshot(t *testing.T) *zones.Snapshot {
	t.Helper()
	snap, err := zones.Load(fstest.MapFS{"example.test.yaml": {Data: []byte(exampleZone)}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// blockedFS is a MapFS whose files named big* cannot be read until release
// is closed.
type blockedFS struct {
	fstest.MapFS
	release chan struct{}
}

func (f blockedFS) ReadFile(name string) ([]byte, error) {
	if strings.HasPrefix(name, "big") {
		<-f.release
	}
	return f.MapFS.ReadFile(name)
}

// loadingSnapshot is a snapshot a start serves while big files load: the
// zone of testSnapshot served, n zone files still loading.
func loadingSnapshot(t *testing.T, n int) *zones.Snapshot {
	t.Helper()
	fsys := blockedFS{MapFS: fstest.MapFS{"example.test.yaml": {Data: []byte(exampleZone)}}, release: make(chan struct{})}
	for i := range n {
		fsys.MapFS[fmt.Sprintf("big%02d.yaml", i)] = &fstest.MapFile{Data: []byte(exampleZone)}
	}
	partial := make(chan *zones.Snapshot, 1)
	l := zones.Loader{Workers: n + 1, Progress: func(s *zones.Snapshot) {
		select {
		case partial <- s:
		default:
		}
	}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Load(fsys, nil, nil) // the big files repeat example.test.: errors, unread here
	}()
	snap := dnstest.Receive(t, partial, dnstest.WaitLimit, "a snapshot of the zones loaded so far")
	close(fsys.release)
	dnstest.Receive(t, done, dnstest.WaitLimit, "the load to end")
	return snap
}

// TestReadiness walks a Reporter from a server with no zones to ready:
// each reason, in order, on /readyz and in /status, and Run settling on
// the first probe round.
func TestReadiness(t *testing.T) {
	srv := &fakeServer{}
	health := fakeHealth{firstDone: make(chan struct{})}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	rep := New(Deps{Server: srv, Health: health, Files: fakeFiles{"popdns.yaml": "bad"}, Now: func() time.Time { return now }})
	h := rep.Handler(Endpoints{Metrics: prometheus.NewRegistry()})
	readyz := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	for _, step := range []struct {
		name   string
		do     func()
		status int
		want   string
	}{
		{"no zones", func() {}, http.StatusServiceUnavailable, "not ready: zones not loaded"},
		{"zones loading", func() { srv.snap = loadingSnapshot(t, 12) }, http.StatusServiceUnavailable,
			"not ready: zones loading: 12 files still loading (big00.yaml, big01.yaml, big02.yaml, big03.yaml, big04.yaml, big05.yaml, big06.yaml, big07.yaml, big08.yaml, big09.yaml and 2 more), 1 zone served so far"},
		{"not serving", func() { srv.snap = testSnapshot(t) }, http.StatusServiceUnavailable, "not ready: DNS listeners not serving yet"},
		{"first round running", func() { srv.serving.Store(true) },
			http.StatusServiceUnavailable, "not ready: first probe round running: 0 of 0 probes answered"},
		{"ready", func() {
			close(health.firstDone)
			go func() { done <- rep.Run(ctx) }()
			dnstest.Receive(t, rep.ProbesSettled(), 5*time.Second, "the first probe round to settle")
		}, http.StatusOK, "ready: 1 zone, 0 probes"},
	} {
		step.do()
		if code, body := readyz(); code != step.status || !strings.Contains(body, step.want) {
			t.Errorf("%s: /readyz %d %q, want %d with %q", step.name, code, body, step.status, step.want)
		}
		st := rep.Status()
		if ready := step.status == http.StatusOK; st.Ready != ready || !ready && "not ready: "+st.NotReady != step.want {
			t.Errorf("%s: /status ready %v, not_ready %q", step.name, st.Ready, st.NotReady)
		}
		if st.Errors["popdns.yaml"] != "bad" {
			t.Errorf("%s: /status errors %v, want the reloader's", step.name, st.Errors)
		}
	}
	if err := dnstest.Receive(t, done, 5*time.Second, "Run to return"); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestRunStopsWithContext: Run returns when its context ends before the
// first probe round, and readiness stays unsettled.
func TestRunStopsWithContext(t *testing.T) {
	srv := &fakeServer{snap: testSnapshot(t)}
	rep := New(Deps{Server: srv, Health: fakeHealth{firstDone: make(chan struct{})}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := rep.Run(ctx); err != nil {
		t.Errorf("Run: %v", err)
	}
	select {
	case <-rep.ProbesSettled():
		t.Error("settled although Run was stopped first")
	default:
	}
}

// TestRunSettlesAfterTimeout: a first probe round that does not end in
// time settles readiness anyway, once the longest probe timeout (here no
// probe: none) and 100 ms have passed.
func TestRunSettlesAfterTimeout(t *testing.T) {
	fire := make(chan time.Time)
	var asked atomic.Int64
	rep := New(Deps{Server: &fakeServer{snap: testSnapshot(t)}, Health: fakeHealth{firstDone: make(chan struct{})},
		After: func(d time.Duration) <-chan time.Time { asked.Store(int64(d)); return fire }})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- rep.Run(ctx) }()
	select {
	case fire <- time.Time{}:
	case <-time.After(5 * time.Second):
		t.Fatal("Run never waited on its timer")
	}
	if err := dnstest.Receive(t, done, 5*time.Second, "Run to return"); err != nil {
		t.Errorf("Run: %v", err)
	}
	dnstest.Receive(t, rep.ProbesSettled(), time.Second, "readiness to settle")
	if got := time.Duration(asked.Load()); got != 100*time.Millisecond {
		t.Errorf("Run waited %v, want 100ms", got)
	}
}
