//go:build unix

package geo

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// readCopy reads size bytes of f into an anonymous private mapping, which
// nothing outside this process can change or truncate, and makes it read
// only. Outside the Go heap, the copy costs its size in RSS once, as the
// file's mapping used to once the lookups had touched its pages; on the
// heap it also counted as live data and let the garbage collector grow the
// heap by as much again. free unmaps it: only once no reader uses it.
func readCopy(f *os.File, size int) (data []byte, free func() error, err error) {
	if size == 0 {
		return nil, func() error { return nil }, nil
	}
	data, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	free = func() error { return unix.Munmap(data) }
	if _, err = io.ReadFull(f, data); err == nil {
		err = unix.Mprotect(data, unix.PROT_READ)
	}
	if err != nil {
		_ = free()
		return nil, nil, err
	}
	return data, free, nil
}
