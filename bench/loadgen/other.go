//go:build !linux || !(amd64 || arm64)

package main

import (
	"fmt"
	"os"
)

// The load generator batches with sendmmsg/recvmmsg and reads /proc: Linux
// on amd64 or arm64 only.
func main() {
	fmt.Fprintln(os.Stderr, "loadgen: needs Linux on amd64 or arm64")
	os.Exit(2)
}
