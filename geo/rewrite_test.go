package geo

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rewriteChildEnv makes the test binary run TestOpenRewrittenInPlace's
// body itself, in the child process that the test starts.
const rewriteChildEnv = "POPDNS_GEO_REWRITE_CHILD"

// An operator may write a new database over the open file in place (cp,
// truncate and write) while lookups run. Lookups must go on answering from
// the database as it was opened; a memory-mapped file would kill the
// process with SIGBUS at the first lookup after the truncation. The body
// runs in a child process, so that such a crash fails this test instead of
// ending the whole test binary.
func TestOpenRewrittenInPlace(t *testing.T) {
	if os.Getenv(rewriteChildEnv) != "" {
		rewriteInPlace(t)
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), rewriteChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		const limit = 2000 // enough for the fault and the faulting goroutine
		if len(out) > limit {
			out = append(out[:limit:limit], "\n[...]"...)
		}
		t.Fatalf("lookups while the file was rewritten in place: %v\n%s", err, out)
	}
}

// rewriteInPlace runs lookups in goroutines while it truncates the open
// database file and writes it again, several times.
func rewriteInPlace(t *testing.T) {
	const (
		lookers = 4
		rounds  = 10
	)
	good, err := os.ReadFile(testCityPath)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "city.mmdb")
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	addrs := []netip.Addr{
		netip.MustParseAddr("192.0.2.1"),
		netip.MustParseAddr("2001:db8:1::1"),
		netip.MustParseAddr("::ffff:192.0.2.2"),
	}
	var (
		stop   atomic.Bool
		wg     sync.WaitGroup
		wrong  atomic.Int64
		looked = make(chan struct{}, lookers) // see TestLocatorConcurrentSwap
	)
	for g := range lookers {
		wg.Go(func() {
			for i := g; !stop.Load(); i++ {
				if loc, err := db.Lookup(addrs[i%len(addrs)]); err != nil || loc.Country != "DE" {
					wrong.Add(1)
				}
				select {
				case looked <- struct{}{}:
					runtime.Gosched()
				default:
				}
			}
		})
	}
	deadline := time.After(testTimeout)
	// waitLookups lets every looker run again after a change of the file.
	waitLookups := func(what string) {
		for range lookers {
			select {
			case <-looked:
			case <-deadline:
				stop.Store(true)
				t.Fatalf("lookups stalled after %s", what)
			}
		}
	}
	for range rounds {
		// Empty the file, then write half of it, then all of it, as cp
		// does, with lookups in between.
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
		waitLookups("truncating the file")
		if err := os.WriteFile(path, good[:len(good)/2], 0o644); err != nil {
			t.Fatal(err)
		}
		waitLookups("writing half of the file")
		if err := os.WriteFile(path, good, 0o644); err != nil {
			t.Fatal(err)
		}
		waitLookups("writing the file again")
	}
	stop.Store(true)
	waitGroup(t, &wg)
	if n := wrong.Load(); n != 0 {
		t.Errorf("%d lookups failed or changed answer while the file was rewritten", n)
	}
}
