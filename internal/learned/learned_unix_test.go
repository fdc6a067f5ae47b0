//go:build unix

package learned

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestInboxNotRegular: a FIFO, a device or a symlink under an inbox name
// is skipped and logged once, whether it is in the inbox when listed or
// replaces a file between the listing and the read; it never blocks the
// Run loop (a FIFO without a writer blocks a plain open for ever) nor
// reads the file a symlink names (review M7).
func TestInboxNotRegular(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	var logBuf bytes.Buffer
	s := New(Config{Learn: oneSample, Inbox: dir}, Deps{Log: zerolog.New(&logBuf), Now: func() time.Time { return t0 }})
	secret := filepath.Join(outside, "secret.csv")
	if err := os.WriteFile(secret, []byte("prefix,pop,rtt_ms\n192.0.2.0/24,fra,20\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.csv")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	link := filepath.Join(dir, "link.csv")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	run := func(name string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			// Unblock the open so that the goroutine ends.
			if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
			t.Fatalf("%s blocked", name)
		}
	}
	run("ReadInbox", s.ReadInbox)
	run("ReadInbox again", s.ReadInbox)
	// As if each had replaced a regular file after the listing.
	run("reading the FIFO", func() { s.readInboxFile(fifo) })
	run("reading the symlink", func() { s.readInboxFile(link) })
	if n := s.agg.Len(); n != 0 {
		t.Errorf("%d entries: the symlink's target was read", n)
	}
	for _, p := range []string{fifo, link, secret} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v, want left as it was", p, err)
		}
	}
	for _, name := range []string{"fifo.csv", "link.csv"} {
		if n := strings.Count(logBuf.String(), name); n != 1 {
			t.Errorf("%s logged %d times, want once:\n%s", name, n, logBuf.String())
		}
	}
}
