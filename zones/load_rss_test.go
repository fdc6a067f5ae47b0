package zones

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/zonegen"
)

// rssEnv names the directory TestLoadRSSHelper loads; the benchmark sets
// it for the helper process it starts.
const rssEnv = "POPDNS_LOADRSS_DIR"

// rssReport is what TestLoadRSSHelper measured, as one JSON line.
type rssReport struct {
	Records   int     `json:"records"`
	LoadS     float64 `json:"load_s"`
	CPUS      float64 `json:"cpu_s"`       // user and system CPU of the load: wall time varies with a busy machine
	HeapB     uint64  `json:"heap_b"`      // live heap after the load, GC'd
	HWMB      uint64  `json:"hwm_b"`       // VmHWM: the peak RSS of the load
	RSSB      uint64  `json:"rss_b"`       // VmRSS after the load, GC'd
	DroppedB  uint64  `json:"dropped_b"`   // VmRSS after a load without the zone and a GC
	ReturnedB uint64  `json:"returned_b"`  // VmRSS after that and debug.FreeOSMemory
	Startup   uint64  `json:"startup_rss"` // VmRSS before the load
}

// BenchmarkLoadRSS loads a generated zone in a fresh process, a test
// binary run as TestLoadRSSHelper, so that the peak RSS it reports is the
// load's alone: what the kernel saw (VmHWM), not only what the Go heap
// holds. It reports per record the live heap after the load, the peak and
// the settled RSS, and the load time; and the RSS once the zone is dropped
// by a reload, before and after memory is handed back to the OS.
func BenchmarkLoadRSS(b *testing.B) {
	for _, c := range []struct {
		name  string
		shape zonegen.Shape
	}{{"million", zonegen.Million}, {"50MB", zonegen.FiftyMB}} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			f, err := os.Create(filepath.Join(dir, "big.yaml"))
			if err != nil {
				b.Fatal(err)
			}
			if err := c.shape.Write(f, ""); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
			var last rssReport
			for b.Loop() {
				last = loadInHelper(b, dir)
			}
			if last.Records != c.shape.Records() {
				b.Fatalf("helper loaded %d records, want %d", last.Records, c.shape.Records())
			}
			n := float64(last.Records)
			b.ReportMetric(last.LoadS, "s/load")
			b.ReportMetric(last.CPUS, "cpu-s/load")
			b.ReportMetric(float64(last.HeapB)/n, "heap-B/record")
			b.ReportMetric(float64(last.HWMB)/n, "peak-RSS-B/record")
			b.ReportMetric(float64(last.HWMB)/1e6, "peak-RSS-MB")
			b.ReportMetric(float64(last.RSSB)/1e6, "RSS-MB")
			b.ReportMetric(float64(last.DroppedB)/1e6, "dropped-RSS-MB")
			b.ReportMetric(float64(last.ReturnedB)/1e6, "returned-RSS-MB")
		})
	}
}

// loadInHelper runs TestLoadRSSHelper on dir in a new process of this
// test binary and returns what it measured.
func loadInHelper(b *testing.B, dir string) rssReport {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadRSSHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), rssEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("helper: %v\n%s", err, out)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "LOADRSS "); ok {
			var r rssReport
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				b.Fatalf("helper report %q: %v", rest, err)
			}
			return r
		}
	}
	b.Fatalf("helper reported nothing:\n%s", out)
	return rssReport{}
}

// TestLoadRSSHelper is BenchmarkLoadRSS's helper process; it does nothing
// unless the benchmark started it.
func TestLoadRSSHelper(t *testing.T) {
	dir := os.Getenv(rssEnv)
	if dir == "" {
		t.Skip("run by BenchmarkLoadRSS")
	}
	var r rssReport
	r.Startup = procStatus(t, "VmRSS")
	start, cpu0 := time.Now(), cpuTime(t)
	snap, err := Load(os.DirFS(dir), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.LoadS, r.CPUS = time.Since(start).Seconds(), cpuTime(t)-cpu0
	for _, z := range snap.Zones() {
		r.Records += z.Records()
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.HeapB = ms.HeapAlloc
	r.HWMB = procStatus(t, "VmHWM")
	r.RSSB = procStatus(t, "VmRSS")
	// A reload that finds the file gone drops the zone.
	if err := os.Remove(filepath.Join(dir, "big.yaml")); err != nil {
		t.Fatal(err)
	}
	snap, err = Load(os.DirFS(dir), nil, snap)
	if err != nil || len(snap.Zones()) != 0 {
		t.Fatalf("reload without the file: %v, %d zones", err, len(snap.Zones()))
	}
	runtime.GC()
	r.DroppedB = procStatus(t, "VmRSS")
	debug.FreeOSMemory()
	r.ReturnedB = procStatus(t, "VmRSS")
	runtime.KeepAlive(snap)
	line, _ := json.Marshal(r)
	os.Stdout.Write(append(append([]byte("LOADRSS "), line...), '\n'))
}

// cpuTime is the user and system CPU time the process has used, in
// seconds.
func cpuTime(t *testing.T) float64 {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// procStatus reads a size field of /proc/self/status, in bytes.
func procStatus(t *testing.T, field string) uint64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", field, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}
