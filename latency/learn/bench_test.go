package learn

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// BenchmarkParseBatch parses a batch of 10,000 JSON lines or CSV
// records; b.SetBytes gives the throughput an ingest endpoint can take.
func BenchmarkParseBatch(b *testing.B) {
	for _, format := range []string{"json", "csv"} {
		var sb strings.Builder
		if format == "csv" {
			sb.WriteString("addr,pop,rtt_ms,time\n")
		}
		for i := range 10_000 {
			if format == "json" {
				fmt.Fprintf(&sb, `{"addr": "100.%d.%d.7", "pop": "fra", "rtt_ms": %d.5, "time": 1796173000}`+"\n", i>>8&255, i&255, i%300)
			} else {
				fmt.Fprintf(&sb, "100.%d.%d.7,fra,%d.5,1796173000\n", i>>8&255, i&255, i%300)
			}
		}
		data := []byte(sb.String())
		b.Run(format, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if bt, err := ParseBatch(data, opts()); err != nil || len(bt.Measurements) != 10_000 {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIngest adds batches of 1,000 measurements to an aggregator of
// about 300,000 entries; ns/op is per batch.
func BenchmarkIngest(b *testing.B) {
	agg := NewAggregator(Config{MaxEntries: 300_000})
	loc := func(a netip.Addr) (netip.Prefix, uint32) {
		p, _ := a.Prefix(16)
		return p, 64500 + uint32(a.As4()[1]%64)
	}
	batch := func(n int) []Measurement {
		ms := make([]Measurement, 1000)
		for i := range ms {
			j := n*1000 + i
			ms[i] = Measurement{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(j >> 16), byte(j >> 8), 0}), 24), PoP: []string{"fra", "iad", "sin"}[j%3], RTTMS: float64(1 + j%300), Weight: 1}
		}
		return ms
	}
	for n := range 300 {
		if _, err := agg.Ingest(batch(n), now, loc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := agg.Ingest(batch(n%300), now, loc); err != nil {
			b.Fatal(err)
		}
		n++
	}
}

// BenchmarkSnapshot builds a snapshot of about 400,000 entries: what
// publishing every few seconds costs the ingest side.
func BenchmarkSnapshot(b *testing.B) {
	agg := NewAggregator(Config{MaxEntries: 1 << 21, MaxNewPerIngest: 1 << 21, MinSamples: 1})
	var ms []Measurement
	for i := range 300_000 {
		ms = append(ms, Measurement{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(100 + i>>16), byte(i >> 8), byte(i), 0}), 24), PoP: []string{"fra", "iad", "sin"}[i%3], RTTMS: 10, Weight: 1})
	}
	loc := func(a netip.Addr) (netip.Prefix, uint32) { p, _ := a.Prefix(16); return p, 64500 }
	if _, err := agg.Ingest(ms, now, loc); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d entries", agg.Len())
	b.ReportAllocs()
	for b.Loop() {
		agg.Snapshot(now)
	}
}
