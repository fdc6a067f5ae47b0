//go:build !popdns_noembed

package fleet

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

type followed struct {
	seq  uint64
	inst string
	data string
}

// followN runs Follow from from until it has handed out n messages.
func followN(t *testing.T, s *LatencyStream, from uint64, n int) []followed {
	t.Helper()
	got, err := collect(t.Context(), s, from, n)
	if len(got) != n {
		t.Fatalf("Follow from %d: %v after %d messages %+v; want %d", from, err, len(got), got, n)
	}
	return got
}

// collect runs Follow from from until it has handed out n messages, or
// for 10 s at most.
func collect(ctx context.Context, s *LatencyStream, from uint64, n int) ([]followed, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []followed
	err := s.Follow(ctx, from, func(seq uint64, inst string, data []byte) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, followed{seq, inst, string(data)})
		if len(got) == n {
			cancel()
		}
	})
	mu.Lock()
	defer mu.Unlock()
	return got, err
}

// The stream: made with its bounds on first use, one subject per
// instance (its name escaped), a retried publish kept once, an
// oversized one refused, and a follow from beyond the end (the stream
// made again) reading from its start.
func TestLatencyStream(t *testing.T) {
	srv := runServer(t, t.TempDir(), 0)
	a := openFleet(t, Config{Instance: "ns.1-fra", NATS: []string{srv.ClientURL()}}).LatencyStream(LatencyStreamConfig{MaxAge: time.Hour, MaxBytes: 16 << 20})
	b := openFleet(t, Config{Instance: "ns2", NATS: []string{srv.ClientURL()}}).LatencyStream(LatencyStreamConfig{MaxAge: time.Hour, MaxBytes: 16 << 20})
	ctx := t.Context()
	for i, p := range []struct {
		s    *LatencyStream
		id   string
		data string
	}{{a, "a1", "one"}, {a, "a1", "one again"}, {b, "b1", "two"}, {a, "a2", "three"}} {
		if err := p.s.Publish(ctx, p.id, []byte(p.data), 1); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if err := a.Publish(ctx, "big", make([]byte, LatencyMaxMsgSize+1), 1); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("an oversized batch: %v", err)
	}
	st, err := a.bind(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := st.CachedInfo().Config
	if c.MaxAge != time.Hour || c.MaxBytes != 16<<20 || c.MaxMsgSize != LatencyMaxMsgSize || c.Subjects[0] != "popdns.learned.>" {
		t.Errorf("stream config %+v", c)
	}
	want := []followed{{1, "ns.1-fra", "one"}, {2, "ns2", "two"}, {3, "ns.1-fra", "three"}}
	got := followN(t, b, 1, 3)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if got := followN(t, b, 3, 1); got[0] != want[2] {
		t.Errorf("from 3: %+v", got)
	}
	if got := followN(t, b, 100, 3); got[0] != want[0] {
		t.Errorf("from beyond the end: %+v, want the stream from its start", got)
	}
	// From 0: what is published from now on.
	ch := make(chan []followed, 1)
	go func() {
		got, _ := collect(ctx, b, 0, 1)
		ch <- got
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(ch) == 0 && time.Now().Before(deadline) {
		// Published until the follower, started meanwhile, sees one.
		if err := a.Publish(ctx, "new"+time.Now().String(), []byte("new"), 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := <-ch; len(got) != 1 || got[0].seq < 4 || got[0].data != "new" {
		t.Errorf("from 0: %+v, want a message published after the start", got)
	}
	if got := latencySubject("ns.1-fra"); got != "popdns.learned.ns_2e1-fra" {
		t.Errorf("subject %q", got)
	}
}
