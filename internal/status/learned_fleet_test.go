package status

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/learned"
	"github.com/popdns/popdns/latency/learn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// downFleet is a fleet whose NATS is away: every publish fails.
type downFleet struct{}

func (downFleet) Instance() string { return "ns1" }
func (downFleet) Publish(context.Context, string, []byte, int) error {
	return errors.New("store unavailable: disconnected from NATS")
}
func (downFleet) Follow(ctx context.Context, _ uint64, _ func(uint64, string, []byte)) error {
	<-ctx.Done()
	return ctx.Err()
}

// In a fleet, the status and its page show the sharing: what waits to
// be published and why it does not go.
func TestLearnedFleetStatus(t *testing.T) {
	l := learned.New(learned.Config{}, learned.Deps{Log: zerolog.Nop(), Fleet: downFleet{}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, err := l.Ingest([]byte("addr,pop,rtt_ms\n198.51.100.7,iad,80\n"), learn.FormatCSV, learned.SourceHTTP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for l.Info().Fleet.Error == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no publish error within 5s: %+v", l.Info().Fleet)
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv := &fakeServer{snap: testSnapshot(t)}
	rep := New(Deps{Server: srv, Health: fakeHealth{firstDone: make(chan struct{})}, Learned: l})
	h := rep.Handler(Endpoints{Metrics: prometheus.NewRegistry(), Learned: l})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/status", nil))
	if !strings.Contains(w.Body.String(), `"fleet":{"instance":"ns1",`) || !strings.Contains(w.Body.String(), `"buffered":1,`) {
		t.Errorf("/status has no learned.fleet with one batch buffered: %s", w.Body)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	for _, want := range []string{"shared with the fleet: 0 received, 0 published, <b>1</b> batch waiting", "publishing fails: store unavailable"} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("the status page has no %q", want)
		}
	}
}
