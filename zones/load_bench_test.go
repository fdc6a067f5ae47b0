package zones

import (
	"runtime"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/popdns/popdns/internal/zonegen"
)

const benchFile = "bench.test.yaml"

// benchZone is the 1M-record zone file of zonegen.Million, generated once
// for all benchmarks.
var benchZone = sync.OnceValue(func() fstest.MapFS {
	return fstest.MapFS{benchFile: {Data: zonegen.Million.Bytes()}}
})

// benchRecords is the number of records the generated zone holds.
var benchRecords = zonegen.Million.Records()

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
	b.ReportMetric(perLoad*1e9/float64(benchRecords), "ns/record")
	b.ReportMetric(float64(heapBytes)/float64(benchRecords), "retained-B/record")
	b.ReportMetric(float64(mallocs)/float64(benchRecords), "allocs/record")
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
	b.ReportMetric(float64(heapBytes)/float64(benchRecords), "retained-B/record")
	b.ReportMetric(float64(mallocs)/float64(benchRecords), "allocs/record")
}
