package geo

import (
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// newTestDB opens a fresh DB over the synthetic databases. A use after
// Close shows up as a lookup error (and, under -race, as a data race).
func newTestDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(testCityPath, testASNPath)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestLocatorWithoutDB(t *testing.T) {
	l := NewLocator(nil, zerolog.Nop())
	tests := []struct {
		addr netip.Addr
		want Location
	}{
		{netip.MustParseAddr("192.0.2.1"), Location{Prefix: mustPrefix("0.0.0.0/0")}},
		{netip.MustParseAddr("::ffff:192.0.2.1"), Location{Prefix: mustPrefix("0.0.0.0/0")}},
		{netip.MustParseAddr("2001:db8::1"), Location{Prefix: mustPrefix("::/0")}},
		{netip.Addr{}, Location{}},
	}
	for _, tt := range tests {
		t.Run(tt.addr.String(), func(t *testing.T) {
			if got := l.Locate(tt.addr); got != tt.want {
				t.Errorf("Locate(%s) = %+v, want %+v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestLocatorLocate(t *testing.T) {
	db := newTestDB(t)
	l := NewLocator(db, zerolog.Nop())
	defer l.Close()
	tests := []struct {
		addr string
		want Location
	}{
		{"192.0.2.1", Location{Point: fra, HasPoint: true, AccuracyKm: 50, Country: "DE", Continent: "EU", ASN: 64496, Prefix: mustPrefix("192.0.2.0/26"), Found: true}},
		{"::ffff:192.0.2.1", Location{Point: fra, HasPoint: true, AccuracyKm: 50, Country: "DE", Continent: "EU", ASN: 64496, Prefix: mustPrefix("192.0.2.0/26"), Found: true}},
		{"2001:db8:6::1", Location{Point: nrt, HasPoint: true, AccuracyKm: 50, Country: "JP", Continent: "AS", ASN: 64502, Prefix: mustPrefix("2001:db8:6::/48"), Found: true}},
		{"8.8.8.8", Location{Prefix: mustPrefix("0.0.0.0/1")}},
		{"invalid", Location{}},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			addr, _ := netip.ParseAddr(tt.addr)
			if got := l.Locate(addr); got != tt.want {
				t.Errorf("Locate(%s) = %+v, want %+v", tt.addr, got, tt.want)
			}
		})
	}
	if n := l.LookupErrors(); n != 0 {
		t.Errorf("LookupErrors() = %d, want 0", n)
	}
}

// A database error makes the location unknown and is counted.
func TestLocatorLookupError(t *testing.T) {
	db := newTestDB(t)
	l := NewLocator(db, zerolog.Nop())
	_ = db.Close() // behind the Locator's back
	want := Location{Prefix: mustPrefix("0.0.0.0/0")}
	if got := l.Locate(netip.MustParseAddr("192.0.2.1")); got != want {
		t.Errorf("Locate on a broken DB = %+v, want %+v", got, want)
	}
	if n := l.LookupErrors(); n != 1 {
		t.Errorf("LookupErrors() = %d, want 1", n)
	}
}

func TestLocatorSwap(t *testing.T) {
	addr := netip.MustParseAddr("192.0.2.1")
	db1, db2 := newTestDB(t), newTestDB(t)
	l := NewLocator(db1, zerolog.Nop())

	// Swapping in the current DB changes nothing.
	l.Swap(db1)
	if db1.closed.Load() {
		t.Fatal("Swap(current DB) closed it")
	}

	// A lookup in progress keeps the replaced DB open until it finishes.
	r := l.acquire()
	l.Swap(db2)
	if db1.closed.Load() {
		t.Fatal("Swap closed the old DB under a lookup")
	}
	if _, err := r.db.Lookup(addr); err != nil {
		t.Fatalf("lookup in the replaced DB, still in use: %v", err)
	}
	if got := l.Locate(addr); got.Country != "DE" {
		t.Errorf("Locate after Swap = %+v, want DE", got)
	}
	l.release(r)
	if !db1.closed.Load() {
		t.Error("the replaced DB was not closed when its last lookup finished")
	}

	// Without lookups in progress Swap closes the old DB at once.
	l.Swap(nil)
	if !db2.closed.Load() {
		t.Error("Swap(nil) did not close the old DB")
	}
	if got, want := l.Locate(addr), (Location{Prefix: mustPrefix("0.0.0.0/0")}); got != want {
		t.Errorf("Locate without a DB = %+v, want %+v", got, want)
	}

	db3 := newTestDB(t)
	l.Swap(db3)
	if got := l.Locate(addr); got.Country != "DE" {
		t.Errorf("Locate after Swap from nil = %+v, want DE", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !db3.closed.Load() {
		t.Error("Close did not close the DB")
	}
	if n := l.LookupErrors(); n != 0 {
		t.Errorf("LookupErrors() = %d, want 0", n)
	}
}

// Run with -race: lookups go on while the database is swapped again and
// again; no lookup may see a closed database, and every replaced database
// ends up closed.
func TestLocatorConcurrentSwap(t *testing.T) {
	const (
		lookers = 4
		swaps   = 200
	)
	addrs := []netip.Addr{
		netip.MustParseAddr("192.0.2.1"),
		netip.MustParseAddr("2001:db8:1::1"),
		netip.MustParseAddr("::ffff:192.0.2.2"),
	}
	first := newTestDB(t)
	dbs := []*DB{first}
	l := NewLocator(first, zerolog.Nop())

	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		lookups atomic.Int64
		wrong   atomic.Int64
		// looked gets a token after a lookup whenever it has room: the
		// swapper waits for lookups on it, without spinning.
		looked = make(chan struct{}, lookers)
	)
	for g := range lookers {
		wg.Go(func() {
			for i := g; !stop.Load(); i++ {
				if loc := l.Locate(addrs[i%len(addrs)]); loc.Country != "DE" {
					wrong.Add(1)
				}
				lookups.Add(1)
				select {
				case looked <- struct{}{}:
					// Hand the processor to the swapper, which this
					// token may have woken, instead of keeping it to the
					// end of the time slice.
					runtime.Gosched()
				default:
				}
			}
		})
	}
	deadline := time.After(testTimeout)
	for i := range swaps {
		// Let lookups run between swaps, so that they overlap them.
		for range lookers {
			select {
			case <-looked:
			case <-deadline:
				stop.Store(true)
				t.Fatalf("lookups stalled after %d of %d swaps", i, swaps)
			}
		}
		db := newTestDB(t)
		dbs = append(dbs, db)
		if i%50 == 49 {
			l.Swap(nil) // a moment without a database
		}
		l.Swap(db)
	}
	stop.Store(true)
	waitGroup(t, &wg)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	if n := l.LookupErrors(); n != 0 {
		t.Errorf("%d lookups failed; a database was closed under a lookup", n)
	}
	// Only the moments without a database may give an unknown location.
	if w := wrong.Load(); w > 0 {
		t.Logf("%d of %d lookups found no database", w, lookups.Load())
	}
	for i, db := range dbs {
		if !db.closed.Load() {
			t.Errorf("database %d of %d was never closed", i, len(dbs))
		}
	}
}

// testTimeout bounds every wait in this package's tests, far above what
// they need, so that a hang fails the test instead of running into go
// test's own limit.
const testTimeout = 30 * time.Second

// waitGroup waits for wg, failing the test after testTimeout.
func waitGroup(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatalf("goroutines still running after %v", testTimeout)
	}
}

func BenchmarkLocate(b *testing.B) {
	db, err := Open(testCityPath, testASNPath)
	if err != nil {
		b.Fatal(err)
	}
	l := NewLocator(db, zerolog.Nop())
	defer l.Close()
	addr := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		l.Locate(addr)
	}
}

func BenchmarkLocateParallel(b *testing.B) {
	db, err := Open(testCityPath, testASNPath)
	if err != nil {
		b.Fatal(err)
	}
	l := NewLocator(db, zerolog.Nop())
	defer l.Close()
	addr := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Locate(addr)
		}
	})
}

func TestLocatorNetwork(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.7")
	if _, _, ok := NewLocator(nil, zerolog.Nop()).Network(a); ok {
		t.Error("Network without a database reported a network")
	}
	l := NewLocator(newTestDB(t), zerolog.Nop())
	defer l.Close()
	p, _, ok := l.Network(a)
	if want := l.Locate(a).Prefix; !ok || p != want {
		t.Errorf("Network(%s) = %s, %v; want %s, true", a, p, ok, want)
	}
	if _, _, ok := l.Network(netip.Addr{}); ok {
		t.Error("Network(zero Addr) reported a network")
	}
}

// TestLocatorGeneration checks that Generation names the database in
// place: it moves with each database Swap puts in, not with a Swap of the
// current one, and is 0 without a database.
func TestLocatorGeneration(t *testing.T) {
	db1, db2 := newTestDB(t), newTestDB(t)
	l := NewLocator(db1, zerolog.Nop())
	g1 := l.Generation()
	if g1 == 0 {
		t.Fatal("generation 0 with a database")
	}
	l.Swap(db1)
	if g := l.Generation(); g != g1 {
		t.Errorf("Swap of the current database moved the generation from %d to %d", g1, g)
	}
	l.Swap(db2)
	g2 := l.Generation()
	if g2 <= g1 {
		t.Errorf("generation %d after a Swap, %d before", g2, g1)
	}
	l.Close()
	if g := l.Generation(); g != 0 {
		t.Errorf("generation %d without a database", g)
	}
	if g := NewLocator(nil, zerolog.Nop()).Generation(); g != 0 {
		t.Errorf("generation %d of a Locator without a database", g)
	}
}
