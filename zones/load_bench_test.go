package zones

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

// Shape of the generated zone: 700k names, of which the first 500k have an
// A record, the first 250k a TXT record and the last 250k an AAAA record,
// plus CNAMEs to some of them: 1.01M records beside the SOA, NS and glue.
// Names sit under 256 labels (h42.r42), so there are empty non-terminals.
const (
	benchNames  = 700_000
	benchA      = 500_000
	benchTXT    = 250_000
	benchAAAA   = 250_000
	benchCNAMEs = 10_000
	benchFile   = "bench.test.yaml"
)

// benchZone is the 1M-record zone file, generated once for all benchmarks.
var benchZone = sync.OnceValue(func() fstest.MapFS {
	var sb strings.Builder
	sb.Grow(40 << 20)
	sb.WriteString(`origin: bench.test.
ttl: 300
records:
  "@":
    - soa: { mname: ns1, rname: hostmaster, serial: auto }
    - ns: ns1
  ns1:
    - a: 192.0.2.53
`)
	for i := range benchNames {
		fmt.Fprintf(&sb, "  h%d.r%d:\n", i, i%256)
		if i < benchA {
			fmt.Fprintf(&sb, "    - a: 10.%d.%d.%d\n", i>>16&0xff, i>>8&0xff, i&0xff)
		}
		if i < benchTXT {
			fmt.Fprintf(&sb, "    - txt: v=bench%d tag=%x\n", i, i*2654435761)
		}
		if i >= benchNames-benchAAAA {
			fmt.Fprintf(&sb, "    - aaaa: 2001:db8:%x:%x::1\n", i>>16, i&0xffff)
		}
	}
	for j := range benchCNAMEs {
		k := j * (benchNames / benchCNAMEs)
		fmt.Fprintf(&sb, "  c%d:\n    - cname: h%d.r%d\n", j, k, k%256)
	}
	return fstest.MapFS{benchFile: {Data: []byte(sb.String())}}
})

// benchRecords is the number of records the generated zone holds.
const benchRecords = benchA + benchTXT + benchAAAA + benchCNAMEs + 3

// loadBench loads fsys and fails b unless it serves the whole bench zone.
func loadBench(b *testing.B, fsys fstest.MapFS, prev *Snapshot) *Snapshot {
	b.Helper()
	snap, err := Load(fsys, nil, prev)
	if err != nil {
		b.Fatal(err)
	}
	if z := snap.Match("bench.test."); z == nil || z.Records() != benchRecords {
		b.Fatalf("bench zone not served whole: %v", z)
	}
	return snap
}

// retained loads fsys once outside the timer and measures the heap the
// snapshot holds on to and the allocations the load made.
func retained(b *testing.B, fsys fstest.MapFS, prev *Snapshot) (heapBytes, mallocs uint64) {
	b.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	snap := loadBench(b, fsys, prev)
	runtime.ReadMemStats(&after)
	mallocs = after.Mallocs - before.Mallocs
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(snap)
	if after.HeapAlloc > before.HeapAlloc {
		heapBytes = after.HeapAlloc - before.HeapAlloc
	}
	return heapBytes, mallocs
}

// BenchmarkLoadMillion loads one zone file of 1M records from scratch.
func BenchmarkLoadMillion(b *testing.B) {
	fsys := benchZone()
	b.SetBytes(int64(len(fsys[benchFile].Data)))
	b.ReportAllocs()
	for b.Loop() {
		loadBench(b, fsys, nil)
	}
	perLoad := b.Elapsed().Seconds() / float64(b.N)
	heapBytes, mallocs := retained(b, fsys, nil)
	b.ReportMetric(perLoad, "s/load")
	b.ReportMetric(perLoad*1e9/benchRecords, "ns/record")
	b.ReportMetric(float64(heapBytes)/benchRecords, "retained-B/record")
	b.ReportMetric(float64(mallocs)/benchRecords, "allocs/record")
}

// BenchmarkReloadUnchanged reloads the 1M-record file unchanged: it is read
// and hashed, and the previous *Zone is served again.
func BenchmarkReloadUnchanged(b *testing.B) {
	fsys := benchZone()
	prev := loadBench(b, fsys, nil)
	b.SetBytes(int64(len(fsys[benchFile].Data)))
	b.ReportAllocs()
	for b.Loop() {
		if snap := loadBench(b, fsys, prev); snap.Match("bench.test.") != prev.Match("bench.test.") {
			b.Fatal("the unchanged zone was parsed again")
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/reload")
	heapBytes, mallocs := retained(b, fsys, prev)
	b.ReportMetric(float64(heapBytes)/benchRecords, "retained-B/record")
	b.ReportMetric(float64(mallocs)/benchRecords, "allocs/record")
}
