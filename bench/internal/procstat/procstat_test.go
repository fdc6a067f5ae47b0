package procstat

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A name with spaces and a ')' in it.
	line := "4242 (pdns_server (x) y) S 4241 4242 4242 0 -1 4194560 1234 0 0 0 150 75 0 0 20 0 5 0 99 1000 200\n"
	s, err := ParseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if s.PPID != 4241 || s.UTime != 150 || s.STime != 75 || s.CPU() != 2250*time.Millisecond {
		t.Errorf("%+v", s)
	}
	for _, bad := range []string{"", "1 (x S 1", "1 (x) S 1 2 3"} {
		if _, err := ParseStat(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	m, err := ParseStatus("Name:\tknotd\nVmPeak:\t 900 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t5\n")
	if err != nil || m.RSS != 10240 || m.HWM != 20480 {
		t.Errorf("%+v %v", m, err)
	}
	if _, err := ParseStatus("Name:\tkthreadd\n"); err == nil {
		t.Error("kernel thread: no error")
	}
}

func TestParseCPULines(t *testing.T) {
	text := "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 5 1 4 50 2 1 1 0 3 0\ncpu1 5 0 5 50 0 0 0 0 0 0\nintr 1 2\n"
	c, err := ParseCPULines([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 2 || c[0] != (CoreTimes{Busy: 12, Total: 64}) || c[1] != (CoreTimes{Busy: 10, Total: 60}) {
		t.Errorf("%+v", c)
	}
}

// TestTree reads a fake /proc with a parent, a child and a grandchild.
func TestTree(t *testing.T) {
	dir := t.TempDir()
	old := Root
	Root = dir
	t.Cleanup(func() { Root = old })
	procs := map[int]int{10: 1, 11: 10, 12: 11, 13: 1, 14: 10}
	for pid, ppid := range procs {
		p := filepath.Join(dir, itoa(pid))
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		line := itoa(pid) + " (x) S " + itoa(ppid) + " 0 0 0 0 0 0 0 0 0 3 4 0 0 20 0 1 0 1 1 1\n"
		if err := os.WriteFile(filepath.Join(p, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Tree(10)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got[1:])
	if !slices.Equal(got, []int{10, 11, 12, 14}) {
		t.Errorf("Tree(10) = %v", got)
	}
	cpu, err := CPU(got)
	if err != nil || cpu != 4*70*time.Millisecond {
		t.Errorf("CPU = %v, %v", cpu, err)
	}
}

func itoa(n int) string { return string(rune('0'+n/10)) + string(rune('0'+n%10)) }

// TestSelf reads this process's own entries.
func TestSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	pids, err := Tree(os.Getpid())
	if err != nil || pids[0] != os.Getpid() {
		t.Fatalf("%v %v", pids, err)
	}
	if m, err := ReadMemory(pids[:1]); err != nil || m.RSS <= 0 || m.HWM < m.RSS {
		t.Errorf("%+v %v", m, err)
	}
	if c, err := ReadCores(); err != nil || len(c) == 0 {
		t.Errorf("%v %v", c, err)
	}
}
