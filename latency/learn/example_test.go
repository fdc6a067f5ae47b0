package learn_test

import (
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/popdns/popdns/latency/learn"
)

// The path of a batch: parse, aggregate, publish a snapshot, look up a
// client the way the query path will, and export.
func Example() {
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	batch := []byte(`{"prefix": "85.214.0.0/24", "pop": "fra", "rtt_ms": 12.5}
{"addr": "85.214.0.99", "pop": "fra", "rtt_ms": 14}
{"addr": "85.214.1.7", "pop": "iad", "rtt_ms": 95, "weight": 2}
{"addr": "85.214.0.1", "pop": "fra", "rtt_ms": -3}
{"addr": "85.214.1.9", "pop": "iad", "rtt_ms": 95}
`)
	b, err := learn.ParseBatch(batch, learn.ParseOptions{Now: now, KnownPoP: func(p string) bool { return p == "fra" || p == "iad" }})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s: %d lines, %d good, %d rejected: %v\n", b.Format, b.Lines, len(b.Measurements), b.Rejected, b.Errors)

	// The GeoIP lookup lives elsewhere; here every client is in one /16 and AS.
	locate := func(netip.Addr) (netip.Prefix, uint32) { return netip.MustParsePrefix("85.214.0.0/16"), 6724 }
	agg := learn.NewAggregator(learn.Config{MinSamples: 2})
	if _, err := agg.Ingest(b.Measurements, now, locate); err != nil {
		fmt.Println(err)
		return
	}
	snap := agg.Snapshot(now) // publish through an atomic.Pointer

	client := learn.ClientOf(netip.MustParseAddr("85.214.0.200"), netip.MustParsePrefix("85.214.0.0/16"), 6724)
	f := snap.Find(client)
	for _, pop := range []string{"fra", "iad", "sin"} {
		if e, ok := f.Estimate(pop); ok {
			fmt.Printf("%s: %.1f ms from %v (%g samples)\n", pop, e.RTTMS, e.Cell, e.Samples)
		} else {
			fmt.Printf("%s: no learned RTT; distance decides\n", pop)
		}
	}
	fmt.Println("move fra→iad:", learn.ShouldMove(13.2, 9, learn.Margin{MS: 5, Percent: 10}))
	_ = snap.WriteTable(os.Stdout)
	// Output:
	// JSON lines: 5 lines, 4 good, 1 rejected: [line 4: rtt_ms: -3 is not a round-trip time (0.1 <= rtt_ms <= 60000)]
	// fra: 13.2 ms from 85.214.0.0/24 (2 samples)
	// iad: 95.0 ms from network 85.214.0.0/16 (2 samples)
	// sin: no learned RTT; distance decides
	// move fra→iad: false
	// # learned latency at 2026-12-02T01:00:00Z; AS cells are not exported
	// prefix,pop,rtt_ms,timestamp
	// 85.214.0.0/24,fra,13.229,1796173200
	// 85.214.1.0/24,iad,95.000,1796173200
	// 85.214.0.0/16,fra,13.229,1796173200
	// 85.214.0.0/16,iad,95.000,1796173200
}
