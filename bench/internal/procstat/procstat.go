// Package procstat owns what the harness reads from Linux's /proc about the
// servers under test: CPU time (utime+stime of /proc/PID/stat, in clock
// ticks), memory (VmRSS and VmHWM of /proc/PID/status), a process's
// descendants, and per-core busy time from /proc/stat.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Tick is one clock tick of /proc's CPU times. USER_HZ is 100 on every
// Linux architecture Go supports.
const Tick = 10 * time.Millisecond

// Root is where proc is mounted; tests point it elsewhere.
var Root = "/proc"

// Stat is what the harness reads from /proc/PID/stat.
type Stat struct {
	PPID         int
	UTime, STime uint64 // clock ticks, all threads
}

// CPU returns utime+stime as a duration.
func (s Stat) CPU() time.Duration { return time.Duration(s.UTime+s.STime) * Tick }

// ParseStat reads a /proc/PID/stat line. The command name, in parentheses,
// may hold spaces and parentheses, so fields are counted from the last ')'.
func ParseStat(line string) (Stat, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return Stat{}, errors.New("procstat: stat: no ')'")
	}
	f := strings.Fields(line[i+1:])
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return Stat{}, fmt.Errorf("procstat: stat: %d fields after the name", len(f))
	}
	var s Stat
	var err1, err2, err3 error
	s.PPID, err1 = strconv.Atoi(f[1])
	s.UTime, err2 = strconv.ParseUint(f[11], 10, 64)
	s.STime, err3 = strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return Stat{}, fmt.Errorf("procstat: stat: %w", err)
	}
	return s, nil
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(filepath.Join(Root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return Stat{}, fmt.Errorf("procstat: %w", err)
	}
	return ParseStat(string(b))
}

// CPU sums utime+stime over pids. A process that has gone is an error.
func CPU(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, p := range pids {
		s, err := ReadStat(p)
		if err != nil {
			return 0, err
		}
		sum += s.CPU()
	}
	return sum, nil
}

// Memory is a process's resident set from /proc/PID/status, in KiB.
type Memory struct {
	RSS int64 // VmRSS: now
	HWM int64 // VmHWM: the peak
}

// ParseStatus reads VmRSS and VmHWM from a /proc/PID/status text.
func ParseStatus(text string) (Memory, error) {
	var m Memory
	found := 0
	for line := range strings.Lines(text) {
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &m.RSS
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &m.HWM
		default:
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return m, fmt.Errorf("procstat: status: %q", line)
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return m, fmt.Errorf("procstat: status: %w", err)
		}
		*dst = v
		found++
	}
	if found != 2 {
		return m, errors.New("procstat: status: no VmRSS/VmHWM (a kernel thread or a zombie?)")
	}
	return m, nil
}

// ReadMemory sums VmRSS and VmHWM over pids.
func ReadMemory(pids []int) (Memory, error) {
	var sum Memory
	for _, p := range pids {
		b, err := os.ReadFile(filepath.Join(Root, strconv.Itoa(p), "status"))
		if err != nil {
			return sum, fmt.Errorf("procstat: %w", err)
		}
		m, err := ParseStatus(string(b))
		if err != nil {
			return sum, fmt.Errorf("procstat: pid %d: %w", p, err)
		}
		sum.RSS += m.RSS
		sum.HWM += m.HWM
	}
	return sum, nil
}

// Tree returns pid and all its descendants, pid first.
func Tree(pid int) ([]int, error) {
	if _, err := ReadStat(pid); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(Root)
	if err != nil {
		return nil, fmt.Errorf("procstat: %w", err)
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := ReadStat(p)
		if err != nil {
			continue // gone meanwhile
		}
		children[s.PPID] = append(children[s.PPID], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

// CoreTimes is one core's line of /proc/stat, in clock ticks.
type CoreTimes struct {
	Busy, Total uint64
}

// ParseCPULines reads the per-core lines ("cpuN ...") of /proc/stat.
// Busy is everything but idle and iowait.
func ParseCPULines(text []byte) (map[int]CoreTimes, error) {
	out := map[int]CoreTimes{}
	for line := range bytes.Lines(text) {
		if !bytes.HasPrefix(line, []byte("cpu")) || len(line) < 4 || line[3] < '0' || line[3] > '9' {
			continue
		}
		f := strings.Fields(string(line))
		n, err := strconv.Atoi(strings.TrimPrefix(f[0], "cpu"))
		if err != nil || len(f) < 6 {
			return nil, fmt.Errorf("procstat: /proc/stat: %q", line)
		}
		var ct CoreTimes
		for i, s := range f[1:] {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("procstat: /proc/stat: %w", err)
			}
			// user nice system idle iowait irq softirq steal guest guest_nice;
			// guest time is already counted in user.
			if i >= 8 {
				break
			}
			ct.Total += v
			if i != 3 && i != 4 {
				ct.Busy += v
			}
		}
		out[n] = ct
	}
	return out, nil
}

// ReadCores reads /proc/stat's per-core lines.
func ReadCores() (map[int]CoreTimes, error) {
	b, err := os.ReadFile(filepath.Join(Root, "stat"))
	if err != nil {
		return nil, fmt.Errorf("procstat: %w", err)
	}
	return ParseCPULines(b)
}
