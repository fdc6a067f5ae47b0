//go:build unix

package learned

import (
	"errors"
	"os"
	"syscall"
)

// openInbox opens an inbox file for reading without following a symlink
// (ELOOP: errNotRegular) and without blocking on a FIFO.
func openInbox(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, errNotRegular
	}
	return f, err
}
