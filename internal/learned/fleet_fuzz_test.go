package learned

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/popdns/popdns/latency/learn"
	"github.com/rs/zerolog"
)

// FuzzIngestPeer feeds a peer's message, which anyone with write access
// to the stream can fill: it never panics, counts no more than its lines,
// and leaves a table that saves and loads again (no NaN, nothing out
// of range).
func FuzzIngestPeer(f *testing.F) {
	ts := t0.Add(-time.Minute).Format(time.RFC3339Nano)
	f.Add([]byte(fleetCSVHeader + "192.0.2.0/24,fra,10," + ts + ",1,rum\n"))
	f.Add([]byte(fleetCSVHeader + "2001:db8::/48,fra,1e-300," + ts + ",1000,\n192.0.2.0/24,fra,NaN,x,0,\n"))
	f.Add([]byte("prefix,pop,rtt_ms\n192.0.2.0/24,fra,60000\n"))
	f.Add([]byte(`{"prefix": "192.0.2.0/24", "pop": "fra", "rtt_ms": 12}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := New(Config{MaxAge: time.Hour}, Deps{Log: zerolog.Nop(), Now: func() time.Time { return t0 }, Fleet: nopFleet{}})
		s.ingestPeer(1, "ns9", data)
		i := s.fleetInfo()
		lines := uint64(bytes.Count(data, []byte{'\n'}) + 1)
		if i.Received > lines || i.Sequence != 1 {
			t.Fatalf("%+v from %d lines", i, lines)
		}
		dir := t.TempDir()
		if err := s.agg.Save(dir, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := learn.Load(dir, learn.Config{}, t0); err != nil {
			t.Fatalf("a peer's message left a table that does not load: %v", err)
		}
	})
}

// nopFleet publishes nothing and hands out nothing.
type nopFleet struct{}

func (nopFleet) Instance() string                                   { return "ns0" }
func (nopFleet) Publish(context.Context, string, []byte, int) error { return nil }
func (nopFleet) Follow(ctx context.Context, _ uint64, _ func(uint64, string, []byte)) error {
	<-ctx.Done()
	return ctx.Err()
}
