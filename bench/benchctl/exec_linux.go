//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// schedAttr is struct sched_attr of sched_setattr(2).
type schedAttr struct {
	size     uint32
	policy   uint32
	flags    uint64
	nice     int32
	priority uint32
	runtime  uint64 // for SCHED_OTHER: the requested slice (Linux 6.12+)
	deadline uint64
	period   uint64
	utilMin  uint32
	utilMax  uint32
}

// cmdExec runs a command pinned to one core, at a niceness and with a
// short scheduler slice: the slice lets a server or the load generator
// run soon after it wakes instead of waiting for other work's slice to
// end, which matters on a machine shared with other work. Both are
// inherited across exec, so the command's PID is this process's.
func cmdExec(args []string) error {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	cpu := fs.Int("cpu", -1, "pin to this core (-1: do not pin)")
	nice := fs.Int("nice", 0, "niceness (negative needs root)")
	slice := fs.Duration("slice", 0, "requested scheduler slice (0: the default; Linux 6.12+ honours 0.1 ms to 100 ms)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("exec: no command")
	}
	runtime.LockOSThread()
	if *cpu >= 0 {
		var set [16]uint64
		set[*cpu/64] |= 1 << (*cpu % 64)
		if _, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, 0, unsafe.Sizeof(set), uintptr(unsafe.Pointer(&set))); e != 0 {
			return fmt.Errorf("exec: sched_setaffinity: %w", e)
		}
	}
	if *nice != 0 || *slice > 0 {
		attr := schedAttr{size: uint32(unsafe.Sizeof(schedAttr{})), nice: int32(*nice), runtime: uint64(*slice / time.Nanosecond)}
		if *nice != 0 {
			attr.flags |= 0 // SCHED_OTHER with sched_nice
		}
		if _, _, e := syscall.RawSyscall(sysSchedSetattr, 0, uintptr(unsafe.Pointer(&attr)), 0); e != 0 {
			// An older kernel refuses the slice: keep the niceness.
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, *nice); err != nil {
				return fmt.Errorf("exec: setpriority: %w", err)
			}
			fmt.Fprintf(os.Stderr, "benchctl exec: sched_setattr: %v (slice not set)\n", e)
		}
	}
	path, err := exec.LookPath(fs.Arg(0))
	if err != nil {
		return err
	}
	return syscall.Exec(path, fs.Args(), os.Environ())
}
