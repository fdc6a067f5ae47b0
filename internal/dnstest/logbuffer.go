package dnstest

import (
	"strings"
	"sync"
)

// LogBuffer is a log sink that a test reads while the code under test
// writes to it from its own goroutines. Its methods are safe for
// concurrent use; the zero value is empty and ready.
type LogBuffer struct {
	mu sync.Mutex // mu guards b
	b  strings.Builder
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
