//go:build !popdns_noembed

package fleet

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/popdns/popdns/internal/overrides"
)

// runServer starts a NATS server with JetStream in dir on 127.0.0.1
// (port 0: any free one).
func runServer(t *testing.T, dir string, port int) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		ServerName: "test", Host: "127.0.0.1", Port: natsPort(port),
		JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready within 10s")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// openFleet opens a fleet member and waits for its buckets.
func openFleet(t *testing.T, cfg Config) *Fleet {
	t.Helper()
	if cfg.ReconnectWait == 0 {
		cfg.ReconnectWait = 100 * time.Millisecond
	}
	f, err := Open(t.Context(), cfg, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	select {
	case <-f.Ready():
	case <-time.After(20 * time.Second):
		t.Fatalf("fleet %s: buckets not ready within 20s", cfg.Instance)
	}
	return f
}

func testLogger(t *testing.T) zerolog.Logger {
	if testing.Verbose() {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}

// watcher runs a Watch and keeps the lists it is handed.
type watcher struct {
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	last   []overrides.Override
	calls  int
	ch     chan struct{} // signalled (non-blocking) on every call
}

func watch(t *testing.T, s overrides.Store) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{cancel: cancel, done: make(chan error, 1), ch: make(chan struct{}, 1)}
	go func() {
		w.done <- s.Watch(ctx, func(list []overrides.Override) {
			w.mu.Lock()
			w.last, w.calls = list, w.calls+1
			w.mu.Unlock()
			select {
			case w.ch <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *watcher) stop() {
	w.cancel()
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		buf := make([]byte, 1<<20)
		panic("Watch did not return within 5s of its context's end:\n" + string(buf[:runtime.Stack(buf, true)]))
	}
	w.done <- nil // stop is idempotent
}

func (w *watcher) list() ([]overrides.Override, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last, w.calls
}

// waitFor waits until cond holds on the watcher's list, up to d, and
// returns how long it took.
func (w *watcher) waitFor(t *testing.T, d time.Duration, what string, cond func([]overrides.Override) bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if l, calls := w.list(); calls > 0 && cond(l) {
			return time.Since(start)
		}
		select {
		case <-w.ch:
		case <-deadline.C:
			l, _ := w.list()
			t.Fatalf("%s: not seen within %v; last list %+v", what, d, l)
		}
	}
}

func hasPoP(pop string, rev uint64) func([]overrides.Override) bool {
	return func(l []overrides.Override) bool {
		for _, o := range l {
			if o.PoP == pop && (rev == 0 || o.Revision == rev) {
				return true
			}
		}
		return false
	}
}

// checkGoroutines fails t unless, within 5 s, no goroutine of this
// package's Fleet or of nats.go is left. (The NATS servers' own are
// not ours: they end with the servers.)
func checkGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 4<<20)
		dump := string(buf[:runtime.Stack(buf, true)])
		var left []string
		for _, g := range strings.Split(dump, "\n\n") {
			if strings.Contains(g, "nats-io/nats.go") || strings.Contains(g, "internal/fleet.(*Fleet)") || strings.Contains(g, "internal/fleet.store.") {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
