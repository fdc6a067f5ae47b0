//go:build !unix

package geo

import (
	"io"
	"os"
)

// readCopy reads size bytes of f into memory; see copy_unix.go.
func readCopy(f *os.File, size int) (data []byte, free func() error, err error) {
	data = make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, nil, err
	}
	return data, func() error { return nil }, nil
}
