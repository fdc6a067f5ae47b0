package dnstest

import (
	"testing"
	"time"
)

// WaitLimit is how long Receive waits when a test has no reason to pick a
// limit of its own: far beyond anything a healthy test waits for on a
// loaded machine, far below go test's own 10 minutes, so a test that hangs
// fails on its own line instead of in a dump of every goroutine.
const WaitLimit = 30 * time.Second

// Receive returns the next value from ch, or fails the test (naming what it
// waited for) if none comes within limit. A closed channel yields its zero
// value, as a bare receive would. Call it from the test's goroutine or a
// Cleanup function, as t.Fatal requires.
func Receive[T any](t testing.TB, ch <-chan T, limit time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("waited %v for %s", limit, what)
	}
	var zero T
	return zero
}
